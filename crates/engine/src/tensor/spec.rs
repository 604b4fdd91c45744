//! The JSON description of a feed-forward tensor model and its validation.
//!
//! A [`TensorModelSpec`] is the wire form (what a user uploads); [`ValidSpec`] is the
//! only form the rest of the engine accepts. Validation checks that layer widths chain,
//! that names are unique and safe to use as safetensors keys, and that every size is
//! bounded, so a hostile spec cannot make the server allocate gigabytes.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Largest width of any layer or input/output (elements per example).
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest number of layers in one spec.
pub const MAX_LAYERS: usize = 256;
/// Largest number of trainable parameters (f32), 128 MiB of weights.
pub const MAX_PARAMETERS: usize = 1 << 25;
/// Longest layer or input/output name.
pub const MAX_NAME_LEN: usize = 64;
/// Most dimensions of one input/output shape.
pub const MAX_RANK: usize = 4;

/// A feed-forward network as a user describes it.
///
/// ```json
/// {"inputs": [{"name": "x", "shape": [10]}], "outputs": [{"name": "y", "shape": [10]}],
///  "layers": [{"type": "linear", "name": "layer1", "in": 10, "out": 20},
///             {"type": "linear", "name": "layer2", "in": 20, "out": 10}],
///  "loss": "mse"}
/// ```
///
/// Several inputs are concatenated (flattened, in the order listed) into the first
/// layer's input; the last layer's output is split into the outputs in the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorModelSpec {
    pub inputs: Vec<IoSpec>,
    pub outputs: Vec<IoSpec>,
    pub layers: Vec<LayerSpec>,
    pub loss: LossKind,
}

/// A named input or output; `shape` excludes the batch dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// One layer. Parameterised layers carry the name under which their weights are stored
/// (`{name}.weight`, `{name}.bias`, as in a PyTorch `state_dict`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Linear {
        name: String,
        #[serde(rename = "in")]
        in_features: usize,
        #[serde(rename = "out")]
        out_features: usize,
    },
    // Parameterless layers are empty struct variants rather than unit variants because
    // serde ignores unknown fields next to the tag of a unit variant, and a typo such as
    // `{"type": "relu", "inplace": true}` must be refused.
    Relu {},
    Gelu {},
    Tanh {},
    Sigmoid {},
    /// Softmax over the features of each example.
    Softmax {},
    /// Inverted dropout (scaled by `1 / (1 - p)` while training, identity otherwise).
    Dropout {
        p: f32,
    },
    LayerNorm {
        name: String,
        dim: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eps: Option<f64>,
    },
}

/// Training objective; each follows the PyTorch loss of the same name with `reduction="mean"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean squared error over all elements (`nn.MSELoss`).
    Mse,
    /// Softmax cross entropy on logits with probability (e.g. one-hot) targets, averaged
    /// over examples (`nn.CrossEntropyLoss`).
    CrossEntropy,
    /// Binary cross entropy on probabilities, averaged over all elements (`nn.BCELoss`);
    /// the last layer must be `sigmoid` or `softmax`.
    BinaryCrossEntropy,
}

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid spec JSON: {0}")]
    Json(String),
    #[error("the spec has no layers")]
    NoLayers,
    #[error("the spec has {0} layers, more than the limit of {MAX_LAYERS}")]
    TooManyLayers(usize),
    #[error("the spec needs at least one {0}")]
    NoIo(&'static str),
    #[error("name {name:?} is invalid: use 1 to {MAX_NAME_LEN} ASCII letters, digits or '_', not starting with a digit")]
    InvalidName { name: String },
    #[error("name {name:?} is used twice")]
    DuplicateName { name: String },
    #[error("{what} {name:?} has shape {shape:?}: every dimension must be 1..={MAX_WIDTH}, at most {MAX_RANK} dimensions, at most {MAX_WIDTH} elements")]
    InvalidShape {
        what: &'static str,
        name: String,
        shape: Vec<usize>,
    },
    #[error("layer {index} ({kind}) expects width {expected} but receives {actual}")]
    WidthMismatch {
        index: usize,
        kind: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("layer {index} ({kind}): width {width} must be 1..={MAX_WIDTH}")]
    InvalidWidth {
        index: usize,
        kind: &'static str,
        width: usize,
    },
    #[error("the inputs have {inputs} elements in total, more than the limit of {MAX_WIDTH}")]
    InputTooWide { inputs: usize },
    #[error("the last layer produces {actual} elements but the outputs need {expected}")]
    OutputMismatch { expected: usize, actual: usize },
    #[error("layer {index} (dropout): p = {p} must be in [0, 1)")]
    InvalidDropout { index: usize, p: f32 },
    #[error("layer {index} (layer_norm): eps = {eps} must be finite and > 0")]
    InvalidEps { index: usize, eps: f64 },
    #[error("the model has more than {MAX_PARAMETERS} parameters")]
    TooManyParameters,
    #[error("binary_cross_entropy needs probabilities: end the layers with sigmoid or softmax")]
    BceNeedsProbabilities,
}

/// A tensor parameter of the model: its safetensors name, shape and place in the flat
/// parameter buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
}

/// A validated spec with the facts derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    spec: TensorModelSpec,
    input_width: usize,
    output_width: usize,
    max_width: usize,
    params: Vec<ParamInfo>,
    n_params: usize,
}

impl TensorModelSpec {
    /// Parses and validates a spec from JSON.
    pub fn parse(json: &str) -> Result<ValidSpec, SpecError> {
        let spec: TensorModelSpec =
            serde_json::from_str(json).map_err(|e| SpecError::Json(e.to_string()))?;
        spec.validate()
    }

    /// Checks the spec and derives the parameter layout.
    pub fn validate(self) -> Result<ValidSpec, SpecError> {
        ValidSpec::try_from(self)
    }
}

impl TryFrom<TensorModelSpec> for ValidSpec {
    type Error = SpecError;

    fn try_from(spec: TensorModelSpec) -> Result<Self, SpecError> {
        if spec.layers.is_empty() {
            return Err(SpecError::NoLayers);
        }
        if spec.layers.len() > MAX_LAYERS {
            return Err(SpecError::TooManyLayers(spec.layers.len()));
        }
        if spec.inputs.is_empty() {
            return Err(SpecError::NoIo("input"));
        }
        if spec.outputs.is_empty() {
            return Err(SpecError::NoIo("output"));
        }
        // Input and output names share one namespace because dataset rows key both.
        let mut io_names = HashSet::new();
        let input_width = io_width("input", &spec.inputs, &mut io_names)?;
        let output_width = io_width("output", &spec.outputs, &mut io_names)?;
        if input_width > MAX_WIDTH {
            return Err(SpecError::InputTooWide {
                inputs: input_width,
            });
        }

        let mut layer_names = HashSet::new();
        let mut params = Vec::new();
        let mut n_params = 0usize;
        let mut width = input_width;
        let mut max_width = input_width;
        for (index, layer) in spec.layers.iter().enumerate() {
            let kind = layer.kind();
            match layer {
                LayerSpec::Linear {
                    name,
                    in_features,
                    out_features,
                } => {
                    check_name(name)?;
                    if !layer_names.insert(name.as_str()) {
                        return Err(SpecError::DuplicateName { name: name.clone() });
                    }
                    for &w in [*in_features, *out_features].iter() {
                        if w == 0 || w > MAX_WIDTH {
                            return Err(SpecError::InvalidWidth {
                                index,
                                kind,
                                width: w,
                            });
                        }
                    }
                    if *in_features != width {
                        return Err(SpecError::WidthMismatch {
                            index,
                            kind,
                            expected: *in_features,
                            actual: width,
                        });
                    }
                    push_param(
                        &mut params,
                        &mut n_params,
                        format!("{name}.weight"),
                        vec![*out_features, *in_features],
                    )?;
                    push_param(
                        &mut params,
                        &mut n_params,
                        format!("{name}.bias"),
                        vec![*out_features],
                    )?;
                    width = *out_features;
                }
                LayerSpec::LayerNorm { name, dim, eps } => {
                    check_name(name)?;
                    if !layer_names.insert(name.as_str()) {
                        return Err(SpecError::DuplicateName { name: name.clone() });
                    }
                    if *dim == 0 || *dim > MAX_WIDTH {
                        return Err(SpecError::InvalidWidth {
                            index,
                            kind,
                            width: *dim,
                        });
                    }
                    if *dim != width {
                        return Err(SpecError::WidthMismatch {
                            index,
                            kind,
                            expected: *dim,
                            actual: width,
                        });
                    }
                    if let Some(eps) = eps {
                        if !eps.is_finite() || *eps <= 0.0 {
                            return Err(SpecError::InvalidEps { index, eps: *eps });
                        }
                    }
                    push_param(
                        &mut params,
                        &mut n_params,
                        format!("{name}.weight"),
                        vec![*dim],
                    )?;
                    push_param(
                        &mut params,
                        &mut n_params,
                        format!("{name}.bias"),
                        vec![*dim],
                    )?;
                }
                LayerSpec::Dropout { p } => {
                    if !(p.is_finite() && *p >= 0.0 && *p < 1.0) {
                        return Err(SpecError::InvalidDropout { index, p: *p });
                    }
                }
                LayerSpec::Relu {}
                | LayerSpec::Gelu {}
                | LayerSpec::Tanh {}
                | LayerSpec::Sigmoid {}
                | LayerSpec::Softmax {} => {}
            }
            max_width = max_width.max(width);
        }
        if width != output_width {
            return Err(SpecError::OutputMismatch {
                expected: output_width,
                actual: width,
            });
        }
        if spec.loss == LossKind::BinaryCrossEntropy
            && !matches!(
                spec.layers.last(),
                Some(LayerSpec::Sigmoid {} | LayerSpec::Softmax {})
            )
        {
            return Err(SpecError::BceNeedsProbabilities);
        }
        Ok(ValidSpec {
            spec,
            input_width,
            output_width,
            max_width,
            params,
            n_params,
        })
    }
}

impl<'de> Deserialize<'de> for ValidSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = TensorModelSpec::deserialize(deserializer)?;
        spec.validate().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ValidSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl ValidSpec {
    pub fn spec(&self) -> &TensorModelSpec {
        &self.spec
    }
    pub fn layers(&self) -> &[LayerSpec] {
        &self.spec.layers
    }
    pub fn inputs(&self) -> &[IoSpec] {
        &self.spec.inputs
    }
    pub fn outputs(&self) -> &[IoSpec] {
        &self.spec.outputs
    }
    pub fn loss(&self) -> LossKind {
        self.spec.loss
    }
    /// Elements of one example's concatenated inputs.
    pub fn input_width(&self) -> usize {
        self.input_width
    }
    /// Elements of one example's concatenated outputs.
    pub fn output_width(&self) -> usize {
        self.output_width
    }
    /// Widest activation, used to size workspaces.
    pub fn max_width(&self) -> usize {
        self.max_width
    }
    /// Every parameter tensor in the order of the flat parameter buffer.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }
    /// Total number of f32 parameters.
    pub fn n_params(&self) -> usize {
        self.n_params
    }
    /// The canonical JSON form, stored beside weights and inside checkpoints.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.spec).expect("spec serialises to JSON: this is a bug")
    }
}

impl IoSpec {
    /// Elements per example (product of the shape; 1 for a scalar).
    pub fn width(&self) -> usize {
        self.shape.iter().product()
    }
}

impl LayerSpec {
    /// The `type` tag, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Relu {} => "relu",
            LayerSpec::Gelu {} => "gelu",
            LayerSpec::Tanh {} => "tanh",
            LayerSpec::Sigmoid {} => "sigmoid",
            LayerSpec::Softmax {} => "softmax",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::LayerNorm { .. } => "layer_norm",
        }
    }
}

/// Default `eps` of `layer_norm`, as in PyTorch.
pub const LAYER_NORM_EPS: f64 = 1e-5;

fn io_width<'a>(
    what: &'static str,
    ios: &'a [IoSpec],
    seen: &mut HashSet<&'a str>,
) -> Result<usize, SpecError> {
    let mut total = 0usize;
    for io in ios {
        check_name(&io.name)?;
        if !seen.insert(io.name.as_str()) {
            return Err(SpecError::DuplicateName {
                name: io.name.clone(),
            });
        }
        let bad = || SpecError::InvalidShape {
            what,
            name: io.name.clone(),
            shape: io.shape.clone(),
        };
        if io.shape.len() > MAX_RANK || io.shape.iter().any(|&d| d == 0 || d > MAX_WIDTH) {
            return Err(bad());
        }
        let width = io
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&w| w <= MAX_WIDTH)
            .ok_or_else(bad)?;
        // Both terms are at most MAX_WIDTH each and there are few inputs, but a spec may
        // list many, so keep the sum checked.
        total = total
            .checked_add(width)
            .filter(|&t| t <= MAX_WIDTH * MAX_LAYERS)
            .ok_or_else(bad)?;
    }
    Ok(total)
}

fn push_param(
    params: &mut Vec<ParamInfo>,
    n_params: &mut usize,
    name: String,
    shape: Vec<usize>,
) -> Result<(), SpecError> {
    let len = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(SpecError::TooManyParameters)?;
    let end = n_params
        .checked_add(len)
        .filter(|&end| end <= MAX_PARAMETERS)
        .ok_or(SpecError::TooManyParameters)?;
    params.push(ParamInfo {
        name,
        shape,
        offset: *n_params,
        len,
    });
    *n_params = end;
    Ok(())
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SpecError::InvalidName {
            name: name.to_owned(),
        })
    }
}
