//! BERT on candle's device-generic ops: what runs on a GPU (the `cuda` feature).
//!
//! The same arithmetic as [`crate::bert::BertModel`], written the conventional way:
//! sequences padded to the longest in the batch, an additive attention mask, one
//! candle op per step. Every op has a CUDA kernel, so the model runs wherever candle
//! runs; on the CPU it is slower than the fused padding-free path and is used only when
//! asked for (`EncoderOptions::portable_ops`), which is how its parity is tested on
//! machines without a GPU. The output has the fused path's shape: the real tokens'
//! states, `[sum of lengths, hidden]`, padding removed.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::bert::{checked_root, BertConfig, BertDims};
use crate::bert_weights::{BertTensors, DenseTensors, NormTensors};
use crate::EngineError;

/// Added to the attention scores of padding keys. Finite (not `f32::MIN`) so that a
/// half-precision run cannot overflow it into NaN.
const MASKED: f64 = -1e4;

struct Norm {
    gamma: Tensor,
    beta: Tensor,
}

impl Norm {
    fn new(tensors: &NormTensors) -> Self {
        Self {
            gamma: tensors.gamma.clone(),
            beta: tensors.beta.clone(),
        }
    }

    fn forward(&self, x: &Tensor, eps: f32) -> Result<Tensor, EngineError> {
        Ok(candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, eps)?)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

fn linear(tensors: &DenseTensors) -> Linear {
    Linear::new(tensors.weight.clone(), Some(tensors.bias.clone()))
}

/// A BERT encoder on candle ops, on any device.
pub struct CandleBert {
    word: Tensor,
    position: Tensor,
    token_type_0: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    dims: BertDims,
    device: Device,
}

impl CandleBert {
    /// Loads the weights onto the builder's device.
    pub fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self, EngineError> {
        let vb = checked_root(vb, config)?;
        let tensors = BertTensors::load(&vb, config)?;
        let layers = tensors
            .layers
            .iter()
            .map(|layer| Layer {
                query: linear(&layer.query),
                key: linear(&layer.key),
                value: linear(&layer.value),
                attention_output: linear(&layer.attention_output),
                attention_norm: Norm::new(&layer.attention_norm),
                intermediate: linear(&layer.intermediate),
                output: linear(&layer.output),
                output_norm: Norm::new(&layer.output_norm),
            })
            .collect();
        Ok(Self {
            word: tensors.word,
            position: tensors.position,
            token_type_0: tensors.token_type_0,
            embedding_norm: Norm::new(&tensors.embedding_norm),
            layers,
            dims: BertDims::of(config),
            device: vb.device().clone(),
        })
    }

    /// The last hidden states of the real tokens, `[sum of lengths, hidden]`, sequences
    /// one after another in input order (as [`crate::bert::BertModel::forward`]).
    pub fn forward<S: AsRef<[u32]>>(&self, sequences: &[S]) -> Result<Vec<f32>, EngineError> {
        let lens = self.dims.validate(sequences)?;
        let (batch, longest) = (lens.len(), lens.iter().copied().max().unwrap_or(0));
        let mut ids = vec![0u32; batch * longest];
        // Added to the attention scores: 0 for real tokens, MASKED for padding.
        let mut mask = vec![MASKED as f32; batch * longest];
        for (row, sequence) in sequences.iter().enumerate() {
            let sequence = sequence.as_ref();
            ids[row * longest..][..sequence.len()].copy_from_slice(sequence);
            mask[row * longest..][..sequence.len()].fill(0.0);
        }
        let ids = Tensor::from_vec(ids, batch * longest, &self.device)?;
        let additive_mask = Tensor::from_vec(mask, (batch, 1, 1, longest), &self.device)?;

        let (hidden, eps) = (self.dims.hidden_size, self.dims.layer_norm_eps);
        let words = self
            .word
            .index_select(&ids, 0)?
            .reshape((batch, longest, hidden))?;
        let positions = self.position.narrow(0, 0, longest)?;
        let mut x = words
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type_0)?;
        x = self.embedding_norm.forward(&x, eps)?;
        let heads = |t: Tensor| -> Result<Tensor, EngineError> {
            Ok(
                t.reshape((batch, longest, self.dims.n_heads, self.dims.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?,
            )
        };
        let scale = 1.0 / (self.dims.head_dim as f64).sqrt();
        for layer in &self.layers {
            let q = heads(layer.query.forward(&x)?)?;
            let k = heads(layer.key.forward(&x)?)?;
            let v = heads(layer.value.forward(&x)?)?;
            let scores =
                (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&additive_mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, longest, hidden))?;
            let attended = layer
                .attention_norm
                .forward(&(layer.attention_output.forward(&context)? + &x)?, eps)?;
            let intermediate = layer.intermediate.forward(&attended)?.gelu_erf()?;
            x = layer
                .output_norm
                .forward(&(layer.output.forward(&intermediate)? + &attended)?, eps)?;
        }

        let states = x
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut out = Vec::with_capacity(lens.iter().sum::<usize>() * hidden);
        for (row, &len) in lens.iter().enumerate() {
            out.extend_from_slice(&states[row * longest * hidden..][..len * hidden]);
        }
        Ok(out)
    }
}
