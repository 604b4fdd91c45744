//! The tensors of a BERT checkpoint, read once by their checkpoint names, for both
//! implementations (`bert`: fused CPU kernels, `bert_candle`: candle ops on any
//! device) to build from.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::bert::BertConfig;
use crate::EngineError;

/// A dense layer as PyTorch stores it: weight `[out, in]`, bias `[out]`.
pub(crate) struct DenseTensors {
    pub weight: Tensor,
    pub bias: Tensor,
}

/// LayerNorm scale and shift, `[dim]` each.
pub(crate) struct NormTensors {
    pub gamma: Tensor,
    pub beta: Tensor,
}

pub(crate) struct LayerTensors {
    pub query: DenseTensors,
    pub key: DenseTensors,
    pub value: DenseTensors,
    pub attention_output: DenseTensors,
    pub attention_norm: NormTensors,
    pub intermediate: DenseTensors,
    pub output: DenseTensors,
    pub output_norm: NormTensors,
}

pub(crate) struct BertTensors {
    /// `[vocab, hidden]`.
    pub word: Tensor,
    /// `[max_positions, hidden]`.
    pub position: Tensor,
    /// Row 0 of the token-type table: single-segment inputs only ever use type 0.
    pub token_type_0: Tensor,
    pub embedding_norm: NormTensors,
    pub layers: Vec<LayerTensors>,
}

impl BertTensors {
    /// Reads every tensor with its expected shape from `vb`, which points at the
    /// encoder's weights (see [`crate::bert::checked_root`]).
    pub(crate) fn load(vb: &VarBuilder, config: &BertConfig) -> Result<Self, EngineError> {
        let hidden = config.hidden_size;
        let dense = |vb: VarBuilder, in_dim: usize, out_dim: usize| {
            Ok::<_, EngineError>(DenseTensors {
                weight: vb.get((out_dim, in_dim), "weight")?,
                bias: vb.get(out_dim, "bias")?,
            })
        };
        let embeddings = vb.pp("embeddings");
        let layers = (0..config.num_hidden_layers)
            .map(|idx| {
                let vb = vb.pp("encoder").pp("layer").pp(idx);
                let attention = vb.pp("attention");
                let projection = |name| dense(attention.pp("self").pp(name), hidden, hidden);
                Ok(LayerTensors {
                    query: projection("query")?,
                    key: projection("key")?,
                    value: projection("value")?,
                    attention_output: dense(attention.pp("output").pp("dense"), hidden, hidden)?,
                    attention_norm: norm(attention.pp("output").pp("LayerNorm"), hidden)?,
                    intermediate: dense(
                        vb.pp("intermediate").pp("dense"),
                        hidden,
                        config.intermediate_size,
                    )?,
                    output: dense(
                        vb.pp("output").pp("dense"),
                        config.intermediate_size,
                        hidden,
                    )?,
                    output_norm: norm(vb.pp("output").pp("LayerNorm"), hidden)?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Self {
            word: embeddings
                .pp("word_embeddings")
                .get((config.vocab_size, hidden), "weight")?,
            position: embeddings
                .pp("position_embeddings")
                .get((config.max_position_embeddings, hidden), "weight")?,
            token_type_0: embeddings
                .pp("token_type_embeddings")
                .get((config.type_vocab_size, hidden), "weight")?
                .get(0)?,
            embedding_norm: norm(embeddings.pp("LayerNorm"), hidden)?,
            layers,
        })
    }
}

fn norm(vb: VarBuilder, dim: usize) -> Result<NormTensors, EngineError> {
    // Checkpoints converted from the original TensorFlow BERT name these gamma/beta.
    let (gamma, beta) = if vb.contains_tensor("weight") {
        (vb.get(dim, "weight")?, vb.get(dim, "bias")?)
    } else {
        (vb.get(dim, "gamma")?, vb.get(dim, "beta")?)
    };
    Ok(NormTensors { gamma, beta })
}
