//! Sentence embeddings: a tokenizer, an encoder model and the sentence-transformers
//! pooling and normalisation, behind one synchronous type.
//!
//! ```no_run
//! # fn main() -> Result<(), engine::EngineError> {
//! use engine::encoder::{Encoder, EncoderOptions};
//! let encoder = Encoder::load("models/all-MiniLM-L6-v2".as_ref(), EncoderOptions::default())?;
//! let vectors = encoder.embed(&["a sentence", "another one"])?;
//! assert_eq!(vectors[0].len(), encoder.dim());
//! # Ok(()) }
//! ```

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::bert::BertModel;
use crate::bert_candle::CandleBert;
use crate::config::{ModelConfig, Pooling, SentenceTransformerConfig};
use crate::{kernels, weights, EngineError};

/// Upper bound on the tokens of one forward pass; larger inputs are split. It bounds
/// memory (about 40 KiB of activations per token for MiniLM) while keeping each matrix
/// product large enough for gemm to run at full speed.
const MAX_TOKENS_PER_FORWARD: usize = 8192;

/// Number format of the weights and activations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Precision {
    /// Exact parity with the reference implementation.
    #[default]
    F32,
    /// Dense-layer weights in bfloat16 with f32 accumulation: half the weight memory and,
    /// on CPUs with AVX-512 BF16, about twice the multiply rate. Embeddings agree with
    /// f32 to a cosine similarity above 0.999.
    Bf16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Self, EngineError> {
        match text {
            "f32" | "fp32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(EngineError::Unsupported(format!(
                "precision `{other}` (expected `f32` or `bf16`)"
            ))),
        }
    }
}

/// How to load an encoder.
#[derive(Debug, Clone, Default)]
pub struct EncoderOptions {
    pub precision: Precision,
    /// Truncation limit in tokens, `[CLS]` and `[SEP]` included. Defaults to
    /// `max_seq_length` of `sentence_bert_config.json`, else the model's position limit.
    pub max_seq_length: Option<usize>,
    /// Threads for one call (matrix products, attention, tokenisation): a pool of this
    /// size owned by the encoder. `None` uses the global rayon pool, sized by
    /// `RAYON_NUM_THREADS` or the number of cores. candle cuts each matrix product into
    /// as many parts as `RAYON_NUM_THREADS` (else the core count) says, whatever pool
    /// runs it, so a process serving with few threads should set that variable to match.
    pub threads: Option<usize>,
    /// Where the model runs. `None`: the first CUDA GPU when built with the `cuda`
    /// feature and one is present, else the CPU.
    pub device: Option<Device>,
    /// Run candle's device-generic ops (padded batches, attention mask) even on the
    /// CPU, instead of the fused padding-free kernels. Slower; it is the path a GPU
    /// runs, and this is how it is tested where there is none.
    pub portable_ops: bool,
}

/// The two implementations of the same encoder.
enum Model {
    /// Padding-free, fused CPU kernels.
    Fused(BertModel),
    /// candle ops on any device.
    Portable(CandleBert),
}

impl Model {
    fn forward<S: AsRef<[u32]>>(&self, sequences: &[S]) -> Result<Vec<f32>, EngineError> {
        match self {
            Self::Fused(model) => model.forward(sequences),
            Self::Portable(model) => model.forward(sequences),
        }
    }
}

/// The device of [`EncoderOptions::device`] when it is `None`.
fn default_device() -> Result<Device, EngineError> {
    #[cfg(feature = "cuda")]
    {
        Ok(Device::cuda_if_available(0)?)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(Device::Cpu)
    }
}

/// Token ids of one input, ready for [`Encoder::embed_tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Ids with the special tokens, truncated to [`Encoder::max_seq_length`].
    pub ids: Vec<u32>,
    /// Length before truncation, special tokens included (what a client is billed for
    /// and what tells it that text was cut).
    pub n_tokens_untruncated: usize,
}

impl Encoding {
    pub fn truncated(&self) -> bool {
        self.n_tokens_untruncated > self.ids.len()
    }
}

/// One scored token of [`Encoder::explain_similarity`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScore {
    /// The token as the tokenizer spells it (`##` marks a word piece).
    pub token: String,
    /// Index among the text's token ids, special tokens included.
    pub position: usize,
    pub score: f32,
}

/// What [`Encoder::explain_similarity`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityExplanation {
    /// Cosine similarity of the two whole texts.
    pub similarity: f32,
    pub tokens: Vec<TokenScore>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)
}

/// A loaded sentence encoder. `Send + Sync`: one worker thread owns it, and nothing stops
/// several threads from sharing it.
pub struct Encoder {
    model: Model,
    hidden_size: usize,
    vocab_size: usize,
    /// Without truncation or padding: tells how long each input really is.
    tokenizer: Tokenizer,
    /// The same tokenizer truncating at `max_seq_length`, used for inputs that are too
    /// long. Truncating through the tokenizer (not by cutting ids) keeps its rules for
    /// where the special tokens go.
    truncating_tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
    thread_pool: Option<rayon::ThreadPool>,
}

impl Encoder {
    /// Loads a Hugging Face / sentence-transformers folder: `config.json`,
    /// `tokenizer.json`, `model.safetensors` (or shards with
    /// `model.safetensors.index.json`), and when present `modules.json`,
    /// `1_Pooling/config.json`, `sentence_bert_config.json`.
    pub fn load(dir: &Path, options: EncoderOptions) -> Result<Self, EngineError> {
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        let sentence_config = SentenceTransformerConfig::from_dir(dir)?;

        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(EngineError::MissingFile {
                path: tokenizer_path,
            });
        }
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|err| {
            EngineError::Tokenizer(format!("{}: {err}", tokenizer_path.display()))
        })?;

        let device = match &options.device {
            Some(device) => device.clone(),
            None => default_device()?,
        };
        let portable = options.portable_ops || !device.is_cpu();
        if portable && options.precision != Precision::F32 {
            return Err(EngineError::Unsupported(format!(
                "precision {} off the fused CPU kernels (use f32)",
                options.precision.as_str()
            )));
        }
        let tensors = weights::load_dir(dir, &device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let ModelConfig::Bert(bert_config) = &config;
        let (hidden_size, vocab_size, max_positions) = (
            bert_config.hidden_size,
            bert_config.vocab_size,
            bert_config.max_position_embeddings,
        );
        let model = match &config {
            ModelConfig::Bert(bert) if portable => Model::Portable(CandleBert::load(vb, bert)?),
            ModelConfig::Bert(bert) => Model::Fused(BertModel::load(vb, bert, options.precision)?),
        };

        let max_seq_length = options
            .max_seq_length
            .or(sentence_config.max_seq_length)
            .unwrap_or(max_positions);
        if !(2..=max_positions).contains(&max_seq_length) {
            return Err(EngineError::Unsupported(format!(
                "max_seq_length {max_seq_length} (the model accepts 2 to {} tokens)",
                max_positions
            )));
        }

        // tokenizer.json files often carry the training-time settings (MiniLM's pads and
        // truncates to 128); the encoder decides both itself.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|err| EngineError::Tokenizer(err.to_string()))?;
        let mut truncating_tokenizer = tokenizer.clone();
        truncating_tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|err| EngineError::Tokenizer(err.to_string()))?;

        let thread_pool = options
            .threads
            .map(|n_threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n_threads)
                    .thread_name(|idx| format!("engine-encoder-{idx}"))
                    .build()
                    .map_err(|err| EngineError::ThreadPool(err.to_string()))
            })
            .transpose()?;

        Ok(Self {
            model,
            hidden_size,
            vocab_size,
            tokenizer,
            truncating_tokenizer,
            pooling: sentence_config.pooling,
            normalize: sentence_config.normalize,
            max_seq_length,
            thread_pool,
        })
    }

    /// Length of the embedding vectors.
    pub fn dim(&self) -> usize {
        self.hidden_size
    }

    /// Inputs are truncated to this many tokens, special tokens included.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Token ids must be below this.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Tokenises texts with the model's special tokens, truncating to
    /// [`Self::max_seq_length`].
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>, EngineError> {
        self.run(|| {
            let full = self
                .tokenizer
                .encode_batch(texts.to_vec(), true)
                .map_err(|err| EngineError::Tokenizer(err.to_string()))?;
            full.into_iter()
                .zip(texts)
                .map(|(encoding, text)| {
                    let n_tokens_untruncated = encoding.len();
                    let ids = if n_tokens_untruncated > self.max_seq_length {
                        self.truncating_tokenizer
                            .encode(*text, true)
                            .map_err(|err| EngineError::Tokenizer(err.to_string()))?
                            .get_ids()
                            .to_vec()
                    } else {
                        encoding.get_ids().to_vec()
                    };
                    Ok(Encoding {
                        ids,
                        n_tokens_untruncated,
                    })
                })
                .collect()
        })
    }

    /// Embeds token sequences (as [`Self::tokenize`] returns them): one vector of
    /// [`Self::dim`] floats per sequence, pooled and normalised as the model's
    /// sentence-transformers configuration says.
    ///
    /// Errors on an empty batch, an empty sequence, a sequence longer than
    /// [`Self::max_seq_length`] or a token id outside the vocabulary.
    pub fn embed_tokens<S: AsRef<[u32]> + Sync>(
        &self,
        sequences: &[S],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        if sequences.is_empty() {
            return Err(EngineError::EmptyBatch);
        }
        if let Some((index, sequence)) = sequences
            .iter()
            .enumerate()
            .find(|(_, s)| s.as_ref().len() > self.max_seq_length)
        {
            return Err(EngineError::SequenceTooLong {
                index,
                n_tokens: sequence.as_ref().len(),
                max_tokens: self.max_seq_length,
            });
        }
        self.run(|| {
            // No sorting by length: the forward is padding-free, so a chunk costs its
            // real tokens whatever their order (attention sorts its own tasks).
            let mut embeddings = Vec::with_capacity(sequences.len());
            for (start, end) in token_budget_chunks(sequences, MAX_TOKENS_PER_FORWARD) {
                let chunk = &sequences[start..end];
                let states = self.model.forward(chunk).map_err(|err| match err {
                    // Report positions in the caller's batch, not in the chunk.
                    EngineError::TokenIdOutOfRange {
                        index,
                        token_id,
                        vocab_size,
                    } => EngineError::TokenIdOutOfRange {
                        index: index + start,
                        token_id,
                        vocab_size,
                    },
                    EngineError::EmptySequence { index } => EngineError::EmptySequence {
                        index: index + start,
                    },
                    other => other,
                })?;
                let mut offset = 0;
                for sequence in chunk {
                    let len = sequence.as_ref().len();
                    let rows = &states[offset * self.dim()..(offset + len) * self.dim()];
                    let mut vector = pool(rows, self.dim(), self.pooling);
                    if self.normalize {
                        l2_normalize(&mut vector);
                    }
                    embeddings.push(vector);
                    offset += len;
                }
            }
            Ok(embeddings)
        })
    }

    /// Tokenises and embeds texts.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EngineError> {
        if texts.is_empty() {
            return Err(EngineError::EmptyBatch);
        }
        let encodings = self.tokenize(texts)?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.ids.as_slice()).collect();
        self.embed_tokens(&ids)
    }

    /// Explains the cosine similarity of `text` to `other` token by token, by
    /// occlusion: a token's score is the similarity lost when that token is left out of
    /// `text` (negative when leaving it out makes the texts more alike). All variants
    /// go through the model as one batch. Special tokens (`[CLS]`, `[SEP]`) are kept in
    /// every variant and not scored.
    pub fn explain_similarity(
        &self,
        text: &str,
        other: &str,
    ) -> Result<SimilarityExplanation, EngineError> {
        let encoding = self
            .truncating_tokenizer
            .encode(text, true)
            .map_err(|err| EngineError::Tokenizer(err.to_string()))?;
        let ids = encoding.get_ids();
        let special = encoding.get_special_tokens_mask();
        let other_ids = self
            .tokenize(&[other])?
            .pop()
            .ok_or(EngineError::EmptyBatch)?
            .ids;
        let scored: Vec<usize> = (0..ids.len()).filter(|&i| special[i] == 0).collect();
        let mut batch: Vec<Vec<u32>> = vec![other_ids, ids.to_vec()];
        batch.extend(scored.iter().map(|&left_out| {
            let mut variant = ids.to_vec();
            variant.remove(left_out);
            variant
        }));
        let vectors = self.embed_tokens(&batch)?;
        let similarity = cosine(&vectors[0], &vectors[1]);
        let tokens = scored
            .iter()
            .zip(&vectors[2..])
            .map(|(&position, vector)| TokenScore {
                token: self
                    .tokenizer
                    .id_to_token(ids[position])
                    .unwrap_or_else(|| format!("[{}]", ids[position])),
                position,
                score: similarity - cosine(&vectors[0], vector),
            })
            .collect();
        Ok(SimilarityExplanation { similarity, tokens })
    }

    fn run<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match &self.thread_pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }
}

/// Consecutive `[start, end)` ranges of sequences holding at most `budget` tokens each
/// (a longer single sequence gets a range of its own).
fn token_budget_chunks<S: AsRef<[u32]>>(sequences: &[S], budget: usize) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let (mut start, mut n_tokens) = (0, 0);
    for (idx, sequence) in sequences.iter().enumerate() {
        let len = sequence.as_ref().len();
        if idx > start && n_tokens + len > budget {
            chunks.push((start, idx));
            start = idx;
            n_tokens = 0;
        }
        n_tokens += len;
    }
    chunks.push((start, sequences.len()));
    chunks
}

/// Reduces the `[len, dim]` token states of one sequence to one vector.
fn pool(rows: &[f32], dim: usize, pooling: Pooling) -> Vec<f32> {
    let len = rows.len() / dim;
    match pooling {
        Pooling::Cls => rows[..dim].to_vec(),
        Pooling::Max => {
            let mut out = rows[..dim].to_vec();
            for row in rows.chunks_exact(dim).skip(1) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o = o.max(*v);
                }
            }
            out
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            let mut out = vec![0f32; dim];
            for row in rows.chunks_exact(dim) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o += v;
                }
            }
            let divisor = match pooling {
                Pooling::Mean => len as f32,
                _ => (len as f32).sqrt(),
            };
            out.iter_mut().for_each(|o| *o /= divisor);
            out
        }
    }
}

/// Scales to unit length like `torch.nn.functional.normalize` (norm floored at 1e-12).
fn l2_normalize(vector: &mut [f32]) {
    let norm = kernels::dot(vector, vector).sqrt().max(1e-12);
    vector.iter_mut().for_each(|v| *v /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_token_budget() {
        let sequences = vec![vec![1u32; 3], vec![1; 3], vec![1; 5], vec![1; 1]];
        assert_eq!(token_budget_chunks(&sequences, 6), vec![(0, 2), (2, 4)]);
        assert_eq!(token_budget_chunks(&sequences, 100), vec![(0, 4)]);
        assert_eq!(
            token_budget_chunks(&sequences, 1),
            vec![(0, 1), (1, 2), (2, 3), (3, 4)]
        );
    }

    #[test]
    fn pooling_modes() {
        let rows = [1.0, -2.0, 3.0, 4.0];
        assert_eq!(pool(&rows, 2, Pooling::Mean), vec![2.0, 1.0]);
        assert_eq!(pool(&rows, 2, Pooling::Cls), vec![1.0, -2.0]);
        assert_eq!(pool(&rows, 2, Pooling::Max), vec![3.0, 4.0]);
        let sqrt2 = 2f32.sqrt();
        assert_eq!(
            pool(&rows, 2, Pooling::MeanSqrtLen),
            vec![4.0 / sqrt2, 2.0 / sqrt2]
        );
    }
}
