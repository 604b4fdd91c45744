//! A tensor model: a validated spec plus its weights, with safetensors I/O and inference.
//!
//! Weights live in one flat f32 buffer in the order of [`ValidSpec::params`] and are
//! stored under PyTorch `state_dict` names (`layer1.weight` `[out, in]`, `layer1.bias`),
//! so a model trained with PyTorch loads here and the other way round.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};

use super::net::{Net, Workspace, WorkspaceTooLarge};
use super::rng::Rng;
use super::spec::{LayerSpec, ParamInfo, ValidSpec};

/// Most examples in one inference call.
pub const MAX_INFER_BATCH: usize = 1 << 16;

/// Errors of loading, saving and running a tensor model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid safetensors data: {0}")]
    Safetensors(#[from] SafeTensorError),
    #[error("weights file lacks tensor {name:?}")]
    MissingTensor { name: String },
    #[error("weights file has tensor {name:?} that the spec does not declare")]
    UnexpectedTensor { name: String },
    #[error("tensor {name:?} has shape {actual:?}, the spec needs {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("tensor {name:?} has dtype {dtype}, only F32 is supported")]
    TensorDtype { name: String, dtype: String },
    #[error("tensor {name:?} contains a non-finite value")]
    NonFiniteWeight { name: String },
    #[error("missing input {name:?}")]
    MissingInput { name: String },
    #[error("unknown input {name:?}; the model's inputs are {expected:?}")]
    UnknownInput { name: String, expected: Vec<String> },
    #[error("input {name:?} is given twice")]
    DuplicateInput { name: String },
    #[error(
        "input {name:?} has shape {actual:?}, expected {}",
        fmt_batched(expected)
    )]
    InputShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("input {name:?} has {actual} values but its shape {shape:?} needs {expected}")]
    ElementCount {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error("input {name:?} has batch size {actual}, other inputs have {expected}")]
    BatchMismatch {
        name: String,
        expected: usize,
        actual: usize,
    },
    #[error("batch size {0} must be 1..={MAX_INFER_BATCH}")]
    BatchSize(usize),
    #[error("input {name:?} has a non-finite value at flat index {index}")]
    NonFiniteInput { name: String, index: usize },
    #[error("expected {expected} input values ({rows} rows of {width}), got {actual}")]
    FlatInputLen {
        rows: usize,
        width: usize,
        expected: usize,
        actual: usize,
    },
    #[error(transparent)]
    Workspace(#[from] WorkspaceTooLarge),
}

/// One named input of an inference request; `shape` includes the batch dimension.
#[derive(Debug, Clone, Copy)]
pub struct InferInput<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

/// One named output; `shape` is `[batch, ...output shape]`.
#[derive(Debug, Clone, PartialEq)]
pub struct InferOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A feed-forward model ready for inference or training.
#[derive(Debug, Clone)]
pub struct TensorModel {
    spec: ValidSpec,
    pub(super) net: Net,
    params: Vec<f32>,
}

impl TensorModel {
    /// Fresh weights as PyTorch initialises them: linear weight and bias uniform in
    /// ±1/√in (`kaiming_uniform_(a=√5)`), layer-norm weight 1 and bias 0. Not the same
    /// numbers as PyTorch (different generator), but the same distribution.
    pub fn init(spec: ValidSpec, seed: u64) -> TensorModel {
        let mut rng = Rng::from_seed(seed);
        let mut params = vec![0.0f32; spec.n_params()];
        let mut infos = spec.params().iter();
        for layer in spec.layers() {
            match layer {
                LayerSpec::Linear { in_features, .. } => {
                    let bound = 1.0 / (*in_features as f32).sqrt();
                    for _ in 0..2 {
                        let info = infos
                            .next()
                            .expect("linear has weight and bias: this is a bug");
                        for v in &mut params[info.offset..info.offset + info.len] {
                            *v = (rng.next_f32() * 2.0 - 1.0) * bound;
                        }
                    }
                }
                LayerSpec::LayerNorm { .. } => {
                    let weight = infos
                        .next()
                        .expect("layer norm has a weight: this is a bug");
                    params[weight.offset..weight.offset + weight.len].fill(1.0);
                    infos.next();
                }
                _ => {}
            }
        }
        let net = Net::new(&spec);
        TensorModel { spec, net, params }
    }

    /// Builds a model from named tensors (`name -> (shape, row-major data)`).
    pub fn from_tensors(
        spec: ValidSpec,
        tensors: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    ) -> Result<TensorModel, ModelError> {
        let mut params = vec![0.0f32; spec.n_params()];
        for info in spec.params() {
            let (shape, data) =
                tensors
                    .get(&info.name)
                    .ok_or_else(|| ModelError::MissingTensor {
                        name: info.name.clone(),
                    })?;
            check_shape(info, shape)?;
            if data.len() != info.len {
                return Err(ModelError::TensorShape {
                    name: info.name.clone(),
                    expected: info.shape.clone(),
                    actual: vec![data.len()],
                });
            }
            params[info.offset..info.offset + info.len].copy_from_slice(data);
        }
        if let Some(name) = tensors
            .keys()
            .find(|name| !spec.params().iter().any(|p| &p.name == *name))
        {
            return Err(ModelError::UnexpectedTensor { name: name.clone() });
        }
        TensorModel::from_flat(spec, params)
    }

    /// Loads weights from a safetensors file; every declared tensor must be present
    /// with its exact shape and dtype F32, and no other tensor may be.
    pub fn from_safetensors(spec: ValidSpec, bytes: &[u8]) -> Result<TensorModel, ModelError> {
        let file = SafeTensors::deserialize(bytes)?;
        if let Some(name) = file
            .names()
            .into_iter()
            .find(|name| !spec.params().iter().any(|p| p.name == **name))
        {
            return Err(ModelError::UnexpectedTensor {
                name: name.to_owned(),
            });
        }
        let mut params = vec![0.0f32; spec.n_params()];
        read_params(&file, spec.params(), "", &mut params)?;
        TensorModel::from_flat(spec, params)
    }

    /// The weights as a safetensors file with PyTorch names.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, ModelError> {
        Ok(write_safetensors(
            self.spec.params(),
            &[("", &self.params)],
            None,
        )?)
    }

    pub(crate) fn from_flat(spec: ValidSpec, params: Vec<f32>) -> Result<TensorModel, ModelError> {
        if let Some(info) = spec.params().iter().find(|info| {
            params[info.offset..info.offset + info.len]
                .iter()
                .any(|v| !v.is_finite())
        }) {
            return Err(ModelError::NonFiniteWeight {
                name: info.name.clone(),
            });
        }
        let net = Net::new(&spec);
        Ok(TensorModel { spec, net, params })
    }

    pub fn spec(&self) -> &ValidSpec {
        &self.spec
    }

    /// All weights, flat, in the order of [`ValidSpec::params`].
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Mutable weights; the length is fixed by the spec.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// One parameter tensor by its safetensors name.
    pub fn param(&self, name: &str) -> Option<&[f32]> {
        let info = self.spec.params().iter().find(|p| p.name == name)?;
        Some(&self.params[info.offset..info.offset + info.len])
    }

    pub(crate) fn net(&self) -> &Net {
        &self.net
    }

    /// The compiled net beside mutable weights, for the trainer's in-place updates.
    pub(crate) fn net_and_params_mut(&mut self) -> (&Net, &mut [f32]) {
        (&self.net, &mut self.params)
    }

    /// A workspace for [`TensorModel::forward_into`]; keep one per serving thread.
    pub fn workspace(&self) -> Workspace {
        Workspace::default()
    }

    /// Inference on `rows` examples given as one flat `[rows, input_width]` buffer
    /// (inputs concatenated in spec order); returns `[rows, output_width]`.
    pub fn forward(&self, input: &[f32], rows: usize) -> Result<Vec<f32>, ModelError> {
        let mut ws = Workspace::default();
        Ok(self.forward_into(&mut ws, input, rows)?.to_vec())
    }

    /// Like [`TensorModel::forward`] but reusing `ws`, so repeated small requests
    /// allocate nothing once the workspace has grown to their batch size.
    pub fn forward_into<'w>(
        &self,
        ws: &'w mut Workspace,
        input: &[f32],
        rows: usize,
    ) -> Result<&'w [f32], ModelError> {
        if rows == 0 || rows > MAX_INFER_BATCH {
            return Err(ModelError::BatchSize(rows));
        }
        let width = self.net.input_width();
        let expected = rows * width;
        if input.len() != expected {
            return Err(ModelError::FlatInputLen {
                rows,
                width,
                expected,
                actual: input.len(),
            });
        }
        self.net.prepare(ws, rows)?;
        self.net.input_mut(ws, rows).copy_from_slice(input);
        self.net.forward(&self.params, ws, rows, None);
        Ok(self.net.output(ws, rows))
    }

    /// Inference with named inputs, each `[batch, ...shape]`, checked against the spec
    /// (names, shapes, element counts, finiteness) with errors that say what was expected.
    pub fn infer(&self, inputs: &[InferInput<'_>]) -> Result<Vec<InferOutput>, ModelError> {
        self.infer_with(&mut Workspace::default(), inputs)
    }

    /// [`TensorModel::infer`] reusing a workspace, for a serving thread.
    pub fn infer_with(
        &self,
        ws: &mut Workspace,
        inputs: &[InferInput<'_>],
    ) -> Result<Vec<InferOutput>, ModelError> {
        let specs = self.spec.inputs();
        for input in inputs {
            if !specs.iter().any(|s| s.name == input.name) {
                return Err(ModelError::UnknownInput {
                    name: input.name.to_owned(),
                    expected: specs.iter().map(|s| s.name.clone()).collect(),
                });
            }
        }
        let mut ordered = Vec::with_capacity(specs.len());
        let mut batch = None;
        for io in specs {
            let mut found = inputs.iter().filter(|i| i.name == io.name);
            let input = found.next().ok_or_else(|| ModelError::MissingInput {
                name: io.name.clone(),
            })?;
            if found.next().is_some() {
                return Err(ModelError::DuplicateInput {
                    name: io.name.clone(),
                });
            }
            let shape_err = || ModelError::InputShape {
                name: io.name.clone(),
                expected: io.shape.clone(),
                actual: input.shape.to_vec(),
            };
            let Some((&rows, rest)) = input.shape.split_first() else {
                return Err(shape_err());
            };
            if rest != io.shape.as_slice() {
                return Err(shape_err());
            }
            if rows == 0 || rows > MAX_INFER_BATCH {
                return Err(ModelError::BatchSize(rows));
            }
            match batch {
                None => batch = Some(rows),
                Some(b) if b != rows => {
                    return Err(ModelError::BatchMismatch {
                        name: io.name.clone(),
                        expected: b,
                        actual: rows,
                    })
                }
                Some(_) => {}
            }
            // rows ≤ MAX_INFER_BATCH and width ≤ MAX_WIDTH, so this cannot overflow.
            let expected = rows * io.width();
            if input.data.len() != expected {
                return Err(ModelError::ElementCount {
                    name: io.name.clone(),
                    shape: input.shape.to_vec(),
                    expected,
                    actual: input.data.len(),
                });
            }
            if let Some(index) = input.data.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::NonFiniteInput {
                    name: io.name.clone(),
                    index,
                });
            }
            ordered.push((input.data, io.width()));
        }
        let rows = batch.expect("a valid spec has at least one input: this is a bug");
        self.net.prepare(ws, rows)?;
        let total_width = self.net.input_width();
        let buffer = self.net.input_mut(ws, rows);
        let mut column = 0;
        for (data, width) in ordered {
            for (dst, src) in buffer
                .chunks_exact_mut(total_width)
                .zip(data.chunks_exact(width))
            {
                dst[column..column + width].copy_from_slice(src);
            }
            column += width;
        }
        self.net.forward(&self.params, ws, rows, None);
        let output = self.net.output(ws, rows);
        let out_width = self.net.output_width();
        let mut column = 0;
        let mut outputs = Vec::with_capacity(self.spec.outputs().len());
        for io in self.spec.outputs() {
            let width = io.width();
            let mut data = Vec::with_capacity(rows * width);
            for row in output.chunks_exact(out_width) {
                data.extend_from_slice(&row[column..column + width]);
            }
            column += width;
            let mut shape = vec![rows];
            shape.extend_from_slice(&io.shape);
            outputs.push(InferOutput {
                name: io.name.clone(),
                shape,
                data,
            });
        }
        Ok(outputs)
    }

    /// Mean loss and its gradient with respect to every parameter (flat, in the order of
    /// [`ValidSpec::params`]) for `rows` examples. With `dropout_seed` dropout is active
    /// with masks drawn from that seed, otherwise the model runs in inference mode.
    pub fn loss_and_gradient(
        &self,
        inputs: &[f32],
        targets: &[f32],
        rows: usize,
        dropout_seed: Option<u64>,
    ) -> Result<(f64, Vec<f32>), ModelError> {
        let width = self.net.input_width();
        let out_width = self.net.output_width();
        if rows == 0 || inputs.len() != rows * width || targets.len() != rows * out_width {
            return Err(ModelError::FlatInputLen {
                rows,
                width,
                expected: rows * width,
                actual: inputs.len(),
            });
        }
        let mut ws = Workspace::default();
        self.net.prepare(&mut ws, rows)?;
        self.net.input_mut(&mut ws, rows).copy_from_slice(inputs);
        let mut rng = dropout_seed.map(Rng::from_seed);
        self.net.forward(&self.params, &mut ws, rows, rng.as_mut());
        let loss = self.net.loss(&mut ws, targets, rows);
        let mut grads = vec![0.0; self.params.len()];
        self.net
            .backward(&self.params, &mut ws, rows, &mut grads, false);
        Ok((loss, grads))
    }
}

/// `[batch, d1, d2]`: the shape an input needs, batch dimension first.
fn fmt_batched(dims: &[usize]) -> String {
    let dims: Vec<String> = std::iter::once("batch".to_owned())
        .chain(dims.iter().map(|d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

fn check_shape(info: &ParamInfo, shape: &[usize]) -> Result<(), ModelError> {
    if shape != info.shape.as_slice() {
        return Err(ModelError::TensorShape {
            name: info.name.clone(),
            expected: info.shape.clone(),
            actual: shape.to_vec(),
        });
    }
    Ok(())
}

/// Reads every parameter `prefix + info.name` of `infos` into `out` (flat layout).
pub(crate) fn read_params(
    file: &SafeTensors<'_>,
    infos: &[ParamInfo],
    prefix: &str,
    out: &mut [f32],
) -> Result<(), ModelError> {
    for info in infos {
        let name = format!("{prefix}{}", info.name);
        let view = file
            .tensor(&name)
            .map_err(|_| ModelError::MissingTensor { name: name.clone() })?;
        if view.dtype() != Dtype::F32 {
            return Err(ModelError::TensorDtype {
                name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        check_shape(
            &ParamInfo {
                name: name.clone(),
                ..info.clone()
            },
            view.shape(),
        )?;
        let dst = &mut out[info.offset..info.offset + info.len];
        for (d, bytes) in dst.iter_mut().zip(view.data().chunks_exact(4)) {
            *d = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
    }
    Ok(())
}

/// Writes flat buffers laid out as `infos`, each under `prefix + name`, to safetensors.
pub(crate) fn write_safetensors(
    infos: &[ParamInfo],
    buffers: &[(&str, &[f32])],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, SafeTensorError> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, buffer) in buffers {
        for info in infos {
            let bytes = buffer[info.offset..info.offset + info.len]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            owned.push((format!("{prefix}{}", info.name), info.shape.clone(), bytes));
        }
    }
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, metadata)
}
