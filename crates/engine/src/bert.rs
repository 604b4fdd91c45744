//! BERT encoder (Devlin et al. 2018, <https://arxiv.org/abs/1810.04805>), inference only.
//!
//! Follows Hugging Face's `transformers/models/bert/modeling_bert.py` and candle's
//! `candle-transformers/src/models/bert.rs`; weight paths (`vb.pp(…)`) are the checkpoint
//! keys. Unlike both, the forward pass is padding-free: the tokens of all sequences in a
//! batch are packed into one `[n_tokens, hidden]` matrix, so the dense layers (fused
//! query/key/value, attention output, feed-forward) are one matrix product each over real
//! tokens only, and attention runs per sequence on its own tokens (no mask). That is
//! the same arithmetic as the padded model with a mask, without the wasted rows.

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Storage, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::bert_weights::{BertTensors, DenseTensors, LayerTensors, NormTensors};
use crate::bf16::{self, PackedBf16};
use crate::encoder::Precision;
use crate::{kernels, EngineError};

/// `config.json` of a BERT checkpoint (the fields this implementation reads).
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".to_owned()
}

/// Refuses configurations this implementation does not compute, and returns the
/// builder at the encoder's weights: the bare layout (`embeddings.…`, as
/// sentence-transformers saves it) or the `bert.`-prefixed one of task models.
pub(crate) fn checked_root<'a>(
    vb: VarBuilder<'a>,
    config: &BertConfig,
) -> Result<VarBuilder<'a>, EngineError> {
    if config.hidden_act != "gelu" {
        return Err(EngineError::Unsupported(format!(
            "BERT hidden_act `{}` (only `gelu`)",
            config.hidden_act
        )));
    }
    if config.position_embedding_type != "absolute" {
        return Err(EngineError::Unsupported(format!(
            "BERT position_embedding_type `{}` (only `absolute`)",
            config.position_embedding_type
        )));
    }
    if config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return Err(EngineError::Unsupported(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size, config.num_attention_heads
        )));
    }
    Ok(
        if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        },
    )
}

/// The sizes both BERT implementations work with, taken from the config once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BertDims {
    pub hidden_size: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub layer_norm_eps: f32,
    pub vocab_size: usize,
    pub max_positions: usize,
}

impl BertDims {
    /// The dims of a config [`checked_root`] accepted (heads divide the hidden size).
    pub(crate) fn of(config: &BertConfig) -> Self {
        Self {
            hidden_size: config.hidden_size,
            n_heads: config.num_attention_heads,
            head_dim: config.hidden_size / config.num_attention_heads.max(1),
            layer_norm_eps: config.layer_norm_eps as f32,
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
        }
    }

    /// Checks every token id and length before any indexing, so bad input is an error
    /// naming the offending sequence rather than a panic; returns the lengths.
    pub(crate) fn validate<S: AsRef<[u32]>>(
        &self,
        sequences: &[S],
    ) -> Result<Vec<usize>, EngineError> {
        let (vocab_size, max_positions) = (self.vocab_size, self.max_positions);
        if sequences.is_empty() {
            return Err(EngineError::EmptyBatch);
        }
        sequences
            .iter()
            .enumerate()
            .map(|(index, sequence)| {
                let sequence = sequence.as_ref();
                if sequence.is_empty() {
                    return Err(EngineError::EmptySequence { index });
                }
                if sequence.len() > max_positions {
                    return Err(EngineError::SequenceTooLong {
                        index,
                        n_tokens: sequence.len(),
                        max_tokens: max_positions,
                    });
                }
                if let Some(&token_id) = sequence.iter().find(|&&id| id as usize >= vocab_size) {
                    return Err(EngineError::TokenIdOutOfRange {
                        index,
                        token_id,
                        vocab_size,
                    });
                }
                Ok(sequence.len())
            })
            .collect()
    }
}

/// A loaded BERT encoder: token ids in, one hidden state per token out.
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    dims: BertDims,
}

struct Embeddings {
    /// `[vocab_size, hidden]`, row-major.
    word: Vec<f32>,
    /// `[max_positions, hidden]`.
    position: Vec<f32>,
    /// Row 0 of the token-type table: single-segment inputs only ever use type 0.
    token_type_0: Vec<f32>,
    layer_norm: LayerNorm,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// A dense layer stored as `[in, out]` so `x · weight` needs no transpose; the bias is
/// added by the fused kernel that consumes the product.
struct Dense {
    weight: Weight,
    bias: Vec<f32>,
}

enum Weight {
    /// Multiplied by candle's gemm.
    F32(Tensor),
    /// Packed once for the bf16 kernels of [`crate::bf16`].
    Bf16(PackedBf16),
}

struct Layer {
    /// Query, key and value projections concatenated along the output: one matrix
    /// product instead of three.
    qkv: Dense,
    attention_output: Dense,
    attention_layer_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_layer_norm: LayerNorm,
}

impl BertModel {
    /// Builds the model from checkpoint tensors. Accepts both the bare layout
    /// (`embeddings.…`, as sentence-transformers saves it) and the `bert.`-prefixed one of
    /// task models (`BertForSequenceClassification`, …).
    ///
    /// With [`Precision::Bf16`] the weights of the dense layers are rounded to bf16 (the
    /// embeddings, biases and LayerNorms stay f32); on CPUs without AVX-512 BF16 the
    /// rounded weights are widened back and multiplied in f32.
    pub fn load(
        vb: VarBuilder,
        config: &BertConfig,
        precision: Precision,
    ) -> Result<Self, EngineError> {
        let vb = checked_root(vb, config)?;
        let tensors = BertTensors::load(&vb, config)?;
        let embeddings = Embeddings {
            word: to_vec(&tensors.word)?,
            position: to_vec(&tensors.position)?,
            token_type_0: to_vec(&tensors.token_type_0)?,
            layer_norm: LayerNorm::new(&tensors.embedding_norm)?,
        };
        let layers = tensors
            .layers
            .iter()
            .map(|layer| Layer::new(layer, precision))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            embeddings,
            layers,
            dims: BertDims::of(config),
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.dims.hidden_size
    }

    pub fn vocab_size(&self) -> usize {
        self.dims.vocab_size
    }

    pub fn max_positions(&self) -> usize {
        self.dims.max_positions
    }

    /// Runs the encoder over packed sequences and returns the last hidden states,
    /// `[sum of lengths, hidden]` row-major, sequences one after another in input order.
    pub fn forward<S: AsRef<[u32]>>(&self, sequences: &[S]) -> Result<Vec<f32>, EngineError> {
        let seq_lens = self.dims.validate(sequences)?;
        let n_tokens: usize = seq_lens.iter().sum();
        let hidden = self.dims.hidden_size;
        let eps = self.dims.layer_norm_eps;

        let mut states = Vec::with_capacity(n_tokens * hidden);
        for sequence in sequences {
            for (position, &token_id) in sequence.as_ref().iter().enumerate() {
                let word = &self.embeddings.word[token_id as usize * hidden..][..hidden];
                let pos = &self.embeddings.position[position * hidden..][..hidden];
                states.extend(
                    word.iter()
                        .zip(pos)
                        .zip(&self.embeddings.token_type_0)
                        .map(|((w, p), t)| w + p + t),
                );
            }
        }
        let norm = &self.embeddings.layer_norm;
        kernels::layer_norm_rows(&mut states, &norm.gamma, &norm.beta, eps);

        let mut states = Tensor::from_vec(states, (n_tokens, hidden), &Device::Cpu)?;
        for layer in &self.layers {
            let qkv = layer.qkv.product(&states)?;
            let context = with_f32(&qkv, |qkv| {
                kernels::attention(
                    qkv,
                    &layer.qkv.bias,
                    &seq_lens,
                    self.dims.n_heads,
                    self.dims.head_dim,
                )
            })?;
            let context = Tensor::from_vec(context, (n_tokens, hidden), &Device::Cpu)?;
            let projected = layer.attention_output.product(&context)?;
            let attended = add_norm(
                projected,
                &layer.attention_output.bias,
                &states,
                &layer.attention_layer_norm,
                eps,
            )?;
            let intermediate = layer.intermediate.product(&attended)?;
            intermediate.inplace_op1(&BiasGelu {
                bias: &layer.intermediate.bias,
            })?;
            let output = layer.output.product(&intermediate)?;
            states = add_norm(
                output,
                &layer.output.bias,
                &attended,
                &layer.output_layer_norm,
                eps,
            )?;
        }
        with_f32(&states, <[f32]>::to_vec)
    }
}

impl Layer {
    fn new(tensors: &LayerTensors, precision: Precision) -> Result<Self, EngineError> {
        let dense =
            |d: &DenseTensors| Dense::new(transposed(&d.weight)?, to_vec(&d.bias)?, precision);
        let (q, k, v) = (&tensors.query, &tensors.key, &tensors.value);
        let qkv = Dense::new(
            transposed(&Tensor::cat(&[&q.weight, &k.weight, &v.weight], 0)?)?,
            [to_vec(&q.bias)?, to_vec(&k.bias)?, to_vec(&v.bias)?].concat(),
            precision,
        )?;
        Ok(Self {
            qkv,
            attention_output: dense(&tensors.attention_output)?,
            attention_layer_norm: LayerNorm::new(&tensors.attention_norm)?,
            intermediate: dense(&tensors.intermediate)?,
            output: dense(&tensors.output)?,
            output_layer_norm: LayerNorm::new(&tensors.output_norm)?,
        })
    }
}

/// PyTorch stores `[out, in]`; the fused path keeps a contiguous `[in, out]` copy so
/// the product is a plain row-major one.
fn transposed(weight: &Tensor) -> Result<Tensor, EngineError> {
    Ok(weight.t()?.contiguous()?)
}

impl Dense {
    fn new(weight: Tensor, bias: Vec<f32>, precision: Precision) -> Result<Self, EngineError> {
        let weight = match precision {
            Precision::F32 => Weight::F32(weight),
            Precision::Bf16 => {
                let (k, n) = weight.dims2()?;
                let values = to_vec(&weight)?;
                if bf16::accelerated() {
                    Weight::Bf16(PackedBf16::pack(&values, k, n))
                } else {
                    // The same rounded weights, on the f32 path.
                    let rounded = values.into_iter().map(bf16::round).collect();
                    Weight::F32(Tensor::from_vec(rounded, (k, n), &Device::Cpu)?)
                }
            }
        };
        Ok(Self { weight, bias })
    }

    /// `x · weight` for a `[tokens, in]` x (the bias is left to the caller's kernel).
    fn product(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        match &self.weight {
            Weight::F32(weight) => Ok(x.matmul(weight)?),
            Weight::Bf16(packed) => {
                let m = x.dims2()?.0;
                let out = with_f32(x, |x| packed.matmul(x, m))?;
                Ok(Tensor::from_vec(out, (m, packed.n()), &Device::Cpu)?)
            }
        }
    }
}

impl LayerNorm {
    fn new(tensors: &NormTensors) -> Result<Self, EngineError> {
        Ok(Self {
            gamma: to_vec(&tensors.gamma)?,
            beta: to_vec(&tensors.beta)?,
        })
    }
}

/// `layer_norm(x + bias + residual)`, computed in the storage of `x`.
fn add_norm(
    x: Tensor,
    bias: &[f32],
    residual: &Tensor,
    norm: &LayerNorm,
    eps: f32,
) -> Result<Tensor, EngineError> {
    with_f32(residual, |residual| {
        x.inplace_op1(&BiasResidualLayerNorm {
            bias,
            residual,
            norm,
            eps,
        })
    })??;
    Ok(x)
}

/// In-place ops on a fresh matrix-product output, so the fused kernels neither allocate
/// nor fault in a new buffer per layer.
struct BiasGelu<'a> {
    bias: &'a [f32],
}

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        kernels::bias_gelu(contiguous_f32_mut(storage, layout)?, self.bias);
        Ok(())
    }
}

struct BiasResidualLayerNorm<'a> {
    bias: &'a [f32],
    residual: &'a [f32],
    norm: &'a LayerNorm,
    eps: f32,
}

impl InplaceOp1 for BiasResidualLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-layer-norm"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let x = contiguous_f32_mut(storage, layout)?;
        if x.len() != self.residual.len() {
            candle_core::bail!("residual has {} values, x {}", self.residual.len(), x.len());
        }
        kernels::bias_residual_layer_norm(
            x,
            self.bias,
            self.residual,
            &self.norm.gamma,
            &self.norm.beta,
            self.eps,
        );
        Ok(())
    }
}

fn contiguous_f32_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
        candle_core::bail!("expected a contiguous f32 tensor: this is a bug");
    };
    Ok(&mut data[start..end])
}

fn to_vec(tensor: &Tensor) -> Result<Vec<f32>, EngineError> {
    Ok(tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

/// Borrows the data of a contiguous f32 CPU tensor without copying it.
fn with_f32<R>(tensor: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, EngineError> {
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(EngineError::Unsupported("tensors off the CPU".to_owned()));
    };
    let data = cpu.as_slice::<f32>()?;
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| EngineError::Weights("non-contiguous tensor: this is a bug".to_owned()))?;
    Ok(f(&data[start..end]))
}
