//! Integrated gradients (Sundararajan, Taly and Yan 2017,
//! <https://arxiv.org/abs/1703.01365>): how much each input feature moved one output
//! away from its value at a baseline.
//!
//! The attribution of feature `i` is `(x_i − b_i) · ∫₀¹ ∂f/∂x_i(b + α(x − b)) dα`, the
//! integral taken by the midpoint rule over `steps` points. All points go through the
//! network as one batch: one forward and one backward pass with the output gradient
//! seeded at the target. By the fundamental theorem of calculus the attributions sum to
//! `f(x) − f(b)` ("completeness"). The finite sum leaves a gap where the function bends
//! sharply (ReLU kinks, a layer norm of a nearly constant vector), so the number of
//! points doubles from the requested `steps` until the gap is within
//! [`COMPLETENESS_TOLERANCE`] of `|f(x) − f(b)|` or [`MAX_STEPS`] is reached; the steps
//! used and the gap left are reported.

use super::model::{ModelError, TensorModel};
use super::net::Workspace;

/// Most integration points of one explanation.
pub const MAX_STEPS: usize = 16384;

/// Refinement stops once `|Σ attributions − (f(x) − f(b))|` is at most this fraction of
/// `|f(x) − f(b)|`.
pub const COMPLETENESS_TOLERANCE: f64 = 0.005;

/// Why an explanation could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("steps must be 1..={MAX_STEPS}, got {0}")]
    Steps(usize),
    #[error("output index {index} is out of range: the model has {width} output values")]
    OutputIndex { index: usize, width: usize },
    #[error("the baseline has {actual} values; the input has {expected}")]
    BaselineLen { expected: usize, actual: usize },
    #[error("{what} has a non-finite value at index {index}")]
    NonFinite { what: &'static str, index: usize },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Attributions of one output to every input value (flat, inputs in spec order).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    pub attributions: Vec<f32>,
    /// The output at the input, `f(x)`.
    pub value: f32,
    /// The output at the baseline, `f(b)`.
    pub baseline_value: f32,
    pub steps: usize,
}

impl Attribution {
    /// `Σ attributions − (f(x) − f(b))`: zero for an exact integral.
    pub fn completeness_gap(&self) -> f64 {
        let sum: f64 = self.attributions.iter().map(|&a| f64::from(a)).sum();
        sum - (f64::from(self.value) - f64::from(self.baseline_value))
    }
}

impl TensorModel {
    /// Integrated gradients of flat output `output_index` at one example `input`
    /// (`input_width` values) against `baseline`, starting from `steps` points and
    /// refining as the module documentation says. Dropout is off, as in inference.
    pub fn integrated_gradients(
        &self,
        input: &[f32],
        baseline: &[f32],
        output_index: usize,
        steps: usize,
    ) -> Result<Attribution, ExplainError> {
        let mut path = Path::new(self, input, baseline, output_index, steps)?;
        let mut result = path.integrate(steps)?;
        let tolerance = |r: &Attribution| {
            COMPLETENESS_TOLERANCE * (f64::from(r.value) - f64::from(r.baseline_value)).abs()
        };
        while result.completeness_gap().abs() > tolerance(&result) && result.steps * 2 <= MAX_STEPS
        {
            result = path.integrate(result.steps * 2)?;
        }
        Ok(result)
    }

    /// Integrated gradients with exactly `steps` points.
    pub fn integrated_gradients_fixed(
        &self,
        input: &[f32],
        baseline: &[f32],
        output_index: usize,
        steps: usize,
    ) -> Result<Attribution, ExplainError> {
        Path::new(self, input, baseline, output_index, steps)?.integrate(steps)
    }
}

/// One checked explanation problem: the straight path from the baseline to the input,
/// the outputs at both ends, and the buffers each integration reuses.
struct Path<'a> {
    model: &'a TensorModel,
    input: &'a [f32],
    baseline: &'a [f32],
    output_index: usize,
    value: f32,
    baseline_value: f32,
    ws: Workspace,
    /// The backward pass also computes parameter gradients; they are not used.
    param_grads: Vec<f32>,
}

impl<'a> Path<'a> {
    fn new(
        model: &'a TensorModel,
        input: &'a [f32],
        baseline: &'a [f32],
        output_index: usize,
        steps: usize,
    ) -> Result<Self, ExplainError> {
        let width = model.spec().input_width();
        let out_width = model.spec().output_width();
        if !(1..=MAX_STEPS).contains(&steps) {
            return Err(ExplainError::Steps(steps));
        }
        if output_index >= out_width {
            return Err(ExplainError::OutputIndex {
                index: output_index,
                width: out_width,
            });
        }
        if baseline.len() != width {
            return Err(ExplainError::BaselineLen {
                expected: width,
                actual: baseline.len(),
            });
        }
        for (what, values) in [("input", input), ("baseline", baseline)] {
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(ExplainError::NonFinite { what, index });
            }
        }
        Ok(Self {
            model,
            input,
            baseline,
            output_index,
            value: model.forward(input, 1)?[output_index],
            baseline_value: model.forward(baseline, 1)?[output_index],
            ws: Workspace::default(),
            param_grads: vec![0.0; model.params().len()],
        })
    }

    /// The midpoint rule over `steps` points, as one batch: the count [`Path::new`]
    /// checked, or a doubling of it that stays within [`MAX_STEPS`].
    fn integrate(&mut self, steps: usize) -> Result<Attribution, ExplainError> {
        debug_assert!((1..=MAX_STEPS).contains(&steps), "{steps} steps");
        let (model, width) = (self.model, self.input.len());
        let net = &model.net;
        net.prepare(&mut self.ws, steps).map_err(ModelError::from)?;
        for (step, row) in net
            .input_mut(&mut self.ws, steps)
            .chunks_exact_mut(width)
            .enumerate()
        {
            let alpha = (step as f32 + 0.5) / steps as f32;
            for ((v, &x), &b) in row.iter_mut().zip(self.input).zip(self.baseline) {
                *v = b + alpha * (x - b);
            }
        }
        net.forward(model.params(), &mut self.ws, steps, None);
        net.seed_output_gradient(&mut self.ws, steps, self.output_index);
        self.param_grads.fill(0.0);
        net.backward(
            model.params(),
            &mut self.ws,
            steps,
            &mut self.param_grads,
            true,
        );

        let mut mean_gradient = vec![0.0f64; width];
        for row in net.input_gradient(&self.ws, steps).chunks_exact(width) {
            for (sum, &g) in mean_gradient.iter_mut().zip(row) {
                *sum += f64::from(g);
            }
        }
        let attributions = mean_gradient
            .iter()
            .zip(self.input.iter().zip(self.baseline))
            .map(|(sum, (&x, &b))| ((f64::from(x) - f64::from(b)) * sum / steps as f64) as f32)
            .collect();
        Ok(Attribution {
            attributions,
            value: self.value,
            baseline_value: self.baseline_value,
            steps,
        })
    }
}
