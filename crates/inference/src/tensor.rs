//! Tensor models (the feed-forward family of `engine::tensor`) behind a batching worker,
//! and the cache of loaded ones.
//!
//! Each request is checked on the caller's task against the spec (names, datatypes,
//! shapes, element counts, finiteness, size) and flattened into `[rows, input_width]`;
//! the worker then concatenates the rows of every waiting request, runs one forward pass
//! and splits the output back, so concurrent small requests cost one pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::tensor::{ModelError, TensorModel, ValidSpec, Workspace};

use crate::worker::{BatchModel, BatchPolicy, WorkerHandle};

/// Most rows one request may carry.
pub const MAX_REQUEST_ROWS: usize = 4096;
/// Most values one request may carry over all its inputs.
pub const MAX_REQUEST_VALUES: usize = 1 << 20;

/// Why a tensor request was refused; the message says what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorRequestError {
    #[error("input '{name}' has datatype {datatype}; this model takes FP32")]
    Datatype { name: String, datatype: String },
    #[error("the request has {actual} values; at most {limit} are accepted")]
    TooManyValues { actual: usize, limit: usize },
    #[error("input '{name}' has {rows} rows; at most {limit} are accepted per request")]
    TooManyRows {
        name: String,
        rows: usize,
        limit: usize,
    },
    #[error("{0}")]
    Model(String),
}

impl From<ModelError> for TensorRequestError {
    fn from(error: ModelError) -> Self {
        TensorRequestError::Model(error.to_string())
    }
}

/// One input as it arrives: name, shape with the batch dimension, datatype, data.
#[derive(Debug, Clone, Copy)]
pub struct TensorInput<'a> {
    pub name: &'a str,
    pub shape: &'a [i64],
    pub datatype: &'a str,
    pub data: &'a [f32],
}

/// A checked request: `rows` examples as one flat `[rows, input_width]` buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRequest {
    pub rows: usize,
    pub input: Vec<f32>,
}

impl TensorRequest {
    /// Checks `inputs` against `spec` and flattens them in spec order.
    pub fn new(
        spec: &ValidSpec,
        inputs: &[TensorInput<'_>],
    ) -> Result<TensorRequest, TensorRequestError> {
        let total: usize = inputs.iter().map(|i| i.data.len()).sum();
        if total > MAX_REQUEST_VALUES {
            return Err(TensorRequestError::TooManyValues {
                actual: total,
                limit: MAX_REQUEST_VALUES,
            });
        }
        for input in inputs {
            if input.datatype != "FP32" {
                return Err(TensorRequestError::Datatype {
                    name: input.name.to_owned(),
                    datatype: input.datatype.to_owned(),
                });
            }
        }
        let expected: Vec<String> = spec.inputs().iter().map(|s| s.name.clone()).collect();
        if let Some(input) = inputs
            .iter()
            .find(|i| !expected.iter().any(|n| n == i.name))
        {
            return Err(ModelError::UnknownInput {
                name: input.name.to_owned(),
                expected,
            }
            .into());
        }
        let mut ordered = Vec::with_capacity(spec.inputs().len());
        let mut batch: Option<usize> = None;
        for io in spec.inputs() {
            let mut found = inputs.iter().filter(|i| i.name == io.name);
            let input = found.next().ok_or_else(|| ModelError::MissingInput {
                name: io.name.clone(),
            })?;
            if found.next().is_some() {
                return Err(ModelError::DuplicateInput {
                    name: io.name.clone(),
                }
                .into());
            }
            let shape: Option<Vec<usize>> = input
                .shape
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect();
            let shape_error = || ModelError::InputShape {
                name: io.name.clone(),
                expected: io.shape.clone(),
                actual: shape.clone().unwrap_or_default(),
            };
            let Some(shape_ok) = shape.as_ref() else {
                return Err(shape_error().into());
            };
            let Some((&rows, rest)) = shape_ok.split_first() else {
                return Err(shape_error().into());
            };
            if rest != io.shape.as_slice() || rows == 0 {
                return Err(shape_error().into());
            }
            if rows > MAX_REQUEST_ROWS {
                return Err(TensorRequestError::TooManyRows {
                    name: io.name.clone(),
                    rows,
                    limit: MAX_REQUEST_ROWS,
                });
            }
            if let Some(b) = batch {
                if b != rows {
                    return Err(ModelError::BatchMismatch {
                        name: io.name.clone(),
                        expected: b,
                        actual: rows,
                    }
                    .into());
                }
            }
            batch = Some(rows);
            let expected = rows * io.width();
            if input.data.len() != expected {
                return Err(ModelError::ElementCount {
                    name: io.name.clone(),
                    shape: shape_ok.clone(),
                    expected,
                    actual: input.data.len(),
                }
                .into());
            }
            if let Some(index) = input.data.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::NonFiniteInput {
                    name: io.name.clone(),
                    index,
                }
                .into());
            }
            ordered.push((input.data, io.width()));
        }
        let rows =
            batch.ok_or_else(|| TensorRequestError::Model("the model has no inputs".into()))?;
        let input = if ordered.len() == 1 {
            ordered[0].0.to_vec()
        } else {
            let width = spec.input_width();
            let mut flat = vec![0.0f32; rows * width];
            let mut column = 0;
            for (data, w) in ordered {
                for (dst, src) in flat.chunks_exact_mut(width).zip(data.chunks_exact(w)) {
                    dst[column..column + w].copy_from_slice(src);
                }
                column += w;
            }
            flat
        };
        Ok(TensorRequest { rows, input })
    }
}

/// A tensor model on its worker thread, with a reusable workspace.
pub struct TensorBatchModel {
    model: Arc<TensorModel>,
    ws: Workspace,
    buffer: Vec<f32>,
}

impl TensorBatchModel {
    pub fn new(model: Arc<TensorModel>) -> Self {
        Self {
            ws: model.workspace(),
            model,
            buffer: Vec::new(),
        }
    }
}

impl BatchModel for TensorBatchModel {
    type Request = TensorRequest;
    /// `[rows, output_width]`, row-major.
    type Response = Vec<f32>;

    fn cost(request: &TensorRequest) -> usize {
        request.rows
    }

    fn run(&mut self, requests: Vec<TensorRequest>) -> Vec<Result<Vec<f32>, String>> {
        let rows: usize = requests.iter().map(|r| r.rows).sum();
        self.buffer.clear();
        for request in &requests {
            self.buffer.extend_from_slice(&request.input);
        }
        let output = match self.model.forward_into(&mut self.ws, &self.buffer, rows) {
            Ok(output) => output,
            Err(error) => return requests.iter().map(|_| Err(error.to_string())).collect(),
        };
        let width = self.model.spec().output_width();
        let mut offset = 0;
        requests
            .iter()
            .map(|request| {
                let len = request.rows * width;
                let part = output[offset..offset + len].to_vec();
                offset += len;
                Ok(part)
            })
            .collect()
    }

    fn warm_up(&mut self) {
        let width = self.model.spec().input_width();
        let _ = self.model.forward_into(&mut self.ws, &vec![0.0; width], 1);
    }
}

/// A loaded tensor model: its spec, the model (shared with its worker, for work that
/// is not batched inference, such as explanations) and the handle of its worker.
pub struct LoadedTensorModel {
    pub spec: ValidSpec,
    pub model: Arc<TensorModel>,
    pub worker: WorkerHandle<TensorBatchModel>,
}

/// The batching policy of tensor models: tiny per-row cost, so large batches and almost
/// no waiting; requests that arrive while a batch runs form the next one.
pub fn tensor_policy() -> BatchPolicy {
    BatchPolicy {
        queue_capacity: 2048,
        max_batch_cost: 8192,
        max_batch_requests: 512,
        max_wait: Duration::ZERO,
    }
}

/// Loaded tensor models by key (the caller builds it from tenant, model and version).
#[derive(Clone, Default)]
pub struct TensorModels {
    loaded: Arc<Mutex<HashMap<String, Arc<LoadedTensorModel>>>>,
}

impl TensorModels {
    pub fn get(&self, key: &str) -> Option<Arc<LoadedTensorModel>> {
        self.loaded.lock().ok()?.get(key).cloned()
    }

    /// Starts a worker for `model` under `key`, or returns the one a concurrent load
    /// started first.
    pub fn insert(
        &self,
        key: String,
        model: TensorModel,
    ) -> std::io::Result<Arc<LoadedTensorModel>> {
        if let Some(existing) = self.get(&key) {
            return Ok(existing);
        }
        let spec = model.spec().clone();
        let model = Arc::new(model);
        let worker =
            WorkerHandle::spawn(&key, TensorBatchModel::new(model.clone()), tensor_policy())?;
        let loaded = Arc::new(LoadedTensorModel {
            spec,
            model,
            worker,
        });
        let mut map = self
            .loaded
            .lock()
            .map_err(|_| std::io::Error::other("the model cache lock is poisoned"))?;
        Ok(map.entry(key).or_insert(loaded).clone())
    }

    pub fn len(&self) -> usize {
        self.loaded.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::tensor::TensorModelSpec;

    fn spec() -> ValidSpec {
        TensorModelSpec::parse(r#"{"inputs": [{"name": "a", "shape": [2]}, {"name": "b", "shape": [1]}], "outputs": [{"name": "y", "shape": [1]}], "layers": [{"type": "linear", "name": "l", "in": 3, "out": 1}], "loss": "mse"}"#).unwrap()
    }

    fn check(inputs: &[TensorInput<'_>], expect: Result<(usize, Vec<f32>), &str>) {
        match (TensorRequest::new(&spec(), inputs), expect) {
            (Ok(r), Ok((rows, input))) => assert_eq!((r.rows, r.input), (rows, input)),
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{e} lacks {needle}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn requests_are_checked_and_flattened_in_spec_order() {
        let input = |name, shape, data| TensorInput {
            name,
            shape,
            datatype: "FP32",
            data,
        };
        check(
            &[
                input("b", &[2, 1], &[5.0, 6.0]),
                input("a", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            ],
            Ok((2, vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0])),
        );
        check(
            &[
                input("a", &[1, 3], &[1.0, 2.0, 3.0]),
                input("b", &[1, 1], &[1.0]),
            ],
            Err("expected"),
        );
        check(
            &[input("a", &[1, 2], &[1.0]), input("b", &[1, 1], &[1.0])],
            Err("needs 2"),
        );
        check(
            &[
                input("a", &[1, 2], &[1.0, f32::INFINITY]),
                input("b", &[1, 1], &[1.0]),
            ],
            Err("non-finite"),
        );
        check(&[input("a", &[1, 2], &[1.0, 2.0])], Err("missing input"));
        check(
            &[
                input("a", &[-1, 2], &[1.0, 2.0]),
                input("b", &[1, 1], &[1.0]),
            ],
            Err("shape"),
        );
        let fp64 = TensorInput {
            name: "a",
            shape: &[1, 2],
            datatype: "FP64",
            data: &[1.0, 2.0],
        };
        check(&[fp64], Err("takes FP32"));
    }
}
