//! Model folder configuration: `config.json` mapped to an architecture, and the
//! sentence-transformers files (`modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`) that say how token states become one embedding.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::EngineError;

/// The architectures this engine can run, named as `model_type` in `config.json`.
const SUPPORTED_ARCHITECTURES: &str = "bert";

/// `config.json`, dispatched on its `model_type` field as Hugging Face does.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "model_type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelConfig {
    Bert(crate::bert::BertConfig),
}

impl ModelConfig {
    /// Reads `config.json`; an architecture we do not implement is named in the error
    /// rather than surfacing as a serde "unknown variant" message.
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        #[derive(Deserialize)]
        struct Tag {
            model_type: Option<String>,
        }
        let text = read_to_string(path)?;
        let tag: Tag = parse_json(path, &text)?;
        match tag.model_type.as_deref() {
            Some("bert") => parse_json(path, &text),
            Some(other) => Err(EngineError::UnsupportedArchitecture {
                model_type: other.to_owned(),
                supported: SUPPORTED_ARCHITECTURES,
            }),
            None => Err(EngineError::InvalidConfig {
                path: path.to_owned(),
                message: "missing field `model_type`".to_owned(),
            }),
        }
    }
}

/// How the token states of one input are reduced to a single vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average of all token states (sentence-transformers' default).
    Mean,
    /// The state of the first token, `[CLS]`.
    Cls,
    /// Element-wise maximum over the tokens.
    Max,
    /// Sum of the token states divided by the square root of the number of tokens.
    MeanSqrtLen,
}

/// What the sentence-transformers files of a folder say about pooling and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceTransformerConfig {
    pub pooling: Pooling,
    pub normalize: bool,
    /// `max_seq_length` from `sentence_bert_config.json`, when present.
    pub max_seq_length: Option<usize>,
}

impl SentenceTransformerConfig {
    /// Reads the folder's sentence-transformers files. A plain Hugging Face folder without
    /// `modules.json` gets mean pooling and no normalisation, which is what
    /// sentence-transformers itself builds for such a folder.
    pub fn from_dir(dir: &Path) -> Result<Self, EngineError> {
        let max_seq_length = {
            #[derive(Deserialize)]
            struct SentenceBertConfig {
                max_seq_length: Option<usize>,
            }
            let path = dir.join("sentence_bert_config.json");
            if path.is_file() {
                read_json::<SentenceBertConfig>(&path)?.max_seq_length
            } else {
                None
            }
        };
        let modules_path = dir.join("modules.json");
        if !modules_path.is_file() {
            return Ok(Self {
                pooling: Pooling::Mean,
                normalize: false,
                max_seq_length,
            });
        }
        #[derive(Deserialize)]
        struct Module {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            path: String,
        }
        let modules: Vec<Module> = read_json(&modules_path)?;
        let mut pooling = None;
        let mut normalize = false;
        for module in &modules {
            match module.kind.rsplit('.').next().unwrap_or_default() {
                "Transformer" => {}
                "Pooling" => {
                    let path = dir.join(&module.path).join("config.json");
                    pooling = Some(read_json::<PoolingConfig>(&path)?.mode(&path)?);
                }
                "Normalize" => normalize = true,
                // Dense, LayerNorm, … change the output; ignoring them would return
                // plausible but wrong vectors, so refuse.
                _ => {
                    return Err(EngineError::Unsupported(format!(
                        "sentence-transformers module `{}` in {}",
                        module.kind,
                        modules_path.display()
                    )))
                }
            }
        }
        Ok(Self {
            pooling: pooling.unwrap_or(Pooling::Mean),
            normalize,
            max_seq_length,
        })
    }
}

/// `1_Pooling/config.json`.
#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

impl PoolingConfig {
    fn mode(&self, path: &Path) -> Result<Pooling, EngineError> {
        let modes = [
            (self.pooling_mode_mean_tokens, Some(Pooling::Mean)),
            (self.pooling_mode_cls_token, Some(Pooling::Cls)),
            (self.pooling_mode_max_tokens, Some(Pooling::Max)),
            (
                self.pooling_mode_mean_sqrt_len_tokens,
                Some(Pooling::MeanSqrtLen),
            ),
            (self.pooling_mode_weightedmean_tokens, None),
            (self.pooling_mode_lasttoken, None),
        ];
        let enabled: Vec<Option<Pooling>> = modes
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, mode)| *mode)
            .collect();
        match enabled.as_slice() {
            [Some(mode)] => Ok(*mode),
            _ => Err(EngineError::Unsupported(format!(
                "pooling in {} (exactly one of mean, cls, max, mean_sqrt_len is supported)",
                path.display()
            ))),
        }
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, EngineError> {
    let text = read_to_string(path)?;
    parse_json(path, &text)
}

fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, EngineError> {
    serde_json::from_str(text).map_err(|err| EngineError::InvalidConfig {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

pub(crate) fn read_to_string(path: &Path) -> Result<String, EngineError> {
    std::fs::read_to_string(path).map_err(|source| io_error(path, source))
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> EngineError {
    if source.kind() == std::io::ErrorKind::NotFound {
        EngineError::MissingFile {
            path: PathBuf::from(path),
        }
    } else {
        EngineError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
