//! Optimisers with PyTorch's update rules: SGD (momentum, dampening, Nesterov, weight
//! decay), Adam and AdamW.
//!
//! The updates follow `torch.optim`'s single-tensor code path operation by operation
//! (scalars rounded to f32 where PyTorch's CPU kernels round them, bias corrections in
//! f64 like PyTorch's Python scalars), so trajectories match PyTorch to float rounding.
//! All state is flat buffers parallel to the model's flat parameter buffer.

use serde::{Deserialize, Serialize};

/// Which optimiser to use and its hyper-parameters (`lr` is the base rate that a
/// schedule scales).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        dampening: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam with L2 weight decay added to the gradient (`torch.optim.Adam`).
    Adam {
        lr: f64,
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (`torch.optim.AdamW`, default decay 0.01).
    AdamW {
        lr: f64,
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
    },
}

fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_decay() -> f64 {
    0.01
}

/// A hyper-parameter outside its valid range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("optimizer {field} = {value} is invalid: {reason}")]
pub struct OptimizerConfigError {
    pub field: &'static str,
    pub value: f64,
    pub reason: &'static str,
}

impl OptimizerConfig {
    /// Plain SGD with learning rate `lr`.
    pub fn sgd(lr: f64) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adam {
            lr,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. } => *lr,
        }
    }

    pub fn validate(&self) -> Result<(), OptimizerConfigError> {
        let check = |field, value: f64, ok: bool, reason| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(OptimizerConfigError {
                    field,
                    value,
                    reason,
                })
            }
        };
        check("lr", self.lr(), self.lr() > 0.0, "must be > 0")?;
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
                ..
            } => {
                check(
                    "momentum",
                    momentum,
                    (0.0..1.0).contains(&momentum),
                    "must be in [0, 1)",
                )?;
                check(
                    "dampening",
                    dampening,
                    (0.0..=1.0).contains(&dampening),
                    "must be in [0, 1]",
                )?;
                check(
                    "weight_decay",
                    weight_decay,
                    weight_decay >= 0.0,
                    "must be >= 0",
                )?;
                if nesterov {
                    check(
                        "momentum",
                        momentum,
                        momentum > 0.0,
                        "nesterov needs momentum > 0",
                    )?;
                    check(
                        "dampening",
                        dampening,
                        dampening == 0.0,
                        "nesterov needs dampening 0",
                    )?;
                }
            }
            OptimizerConfig::Adam {
                betas,
                eps,
                weight_decay,
                ..
            }
            | OptimizerConfig::AdamW {
                betas,
                eps,
                weight_decay,
                ..
            } => {
                check(
                    "betas.0",
                    betas.0,
                    (0.0..1.0).contains(&betas.0),
                    "must be in [0, 1)",
                )?;
                check(
                    "betas.1",
                    betas.1,
                    (0.0..1.0).contains(&betas.1),
                    "must be in [0, 1)",
                )?;
                check("eps", eps, eps > 0.0, "must be > 0")?;
                check(
                    "weight_decay",
                    weight_decay,
                    weight_decay >= 0.0,
                    "must be >= 0",
                )?;
            }
        }
        Ok(())
    }
}

/// Optimiser state: SGD keeps `first` as the momentum buffer; Adam keeps `first` =
/// `exp_avg` and `second` = `exp_avg_sq`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OptimizerState {
    /// Updates applied so far (Adam's `step`; SGD uses it to know the buffer is set).
    pub(crate) step: u64,
    pub(crate) first: Vec<f32>,
    pub(crate) second: Vec<f32>,
}

impl OptimizerState {
    pub(crate) fn new(config: &OptimizerConfig, n_params: usize) -> Self {
        let (first, second) = match config {
            OptimizerConfig::Sgd { momentum, .. } if *momentum == 0.0 => (0, 0),
            OptimizerConfig::Sgd { .. } => (n_params, 0),
            _ => (n_params, n_params),
        };
        OptimizerState {
            step: 0,
            first: vec![0.0; first],
            second: vec![0.0; second],
        }
    }

    /// Applies one update with learning rate `lr` (the scheduled rate). `grads` may be
    /// modified (weight decay is folded into it, as PyTorch does with a copy).
    pub(crate) fn update(
        &mut self,
        config: &OptimizerConfig,
        lr: f64,
        params: &mut [f32],
        grads: &mut [f32],
    ) {
        self.step += 1;
        match *config {
            OptimizerConfig::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
                ..
            } => {
                let neg_lr = -lr as f32;
                let wd = weight_decay as f32;
                let mu = momentum as f32;
                let keep = (1.0 - dampening) as f32;
                let first_step = self.step == 1;
                if momentum == 0.0 {
                    for (p, g) in params.iter_mut().zip(grads.iter_mut()) {
                        let g = if weight_decay != 0.0 {
                            *g + wd * *p
                        } else {
                            *g
                        };
                        *p += neg_lr * g;
                    }
                    return;
                }
                for ((p, g), buf) in params
                    .iter_mut()
                    .zip(grads.iter_mut())
                    .zip(self.first.iter_mut())
                {
                    let g = if weight_decay != 0.0 {
                        *g + wd * *p
                    } else {
                        *g
                    };
                    // PyTorch starts the buffer as a copy of the first gradient, undamped.
                    *buf = if first_step { g } else { *buf * mu + keep * g };
                    let d = if nesterov { g + mu * *buf } else { *buf };
                    *p += neg_lr * d;
                }
            }
            OptimizerConfig::Adam {
                betas,
                eps,
                weight_decay,
                ..
            } => self.adam(lr, betas, eps, (weight_decay, false), params, grads),
            OptimizerConfig::AdamW {
                betas,
                eps,
                weight_decay,
                ..
            } => self.adam(lr, betas, eps, (weight_decay, true), params, grads),
        }
    }

    fn adam(
        &mut self,
        lr: f64,
        (beta1, beta2): (f64, f64),
        eps: f64,
        (weight_decay, decoupled): (f64, bool),
        params: &mut [f32],
        grads: &mut [f32],
    ) {
        let step = self.step as f64;
        let bias_correction1 = 1.0 - beta1.powf(step);
        let bias_correction2 = 1.0 - beta2.powf(step);
        let neg_step_size = (-(lr / bias_correction1)) as f32;
        let bias_correction2_sqrt = bias_correction2.sqrt() as f32;
        let lerp_weight = (1.0 - beta1) as f32;
        let b2 = beta2 as f32;
        let one_minus_b2 = (1.0 - beta2) as f32;
        let eps = eps as f32;
        let wd = weight_decay as f32;
        let decay_factor = (1.0 - lr * weight_decay) as f32;
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads.iter_mut())
            .zip(self.first.iter_mut())
            .zip(self.second.iter_mut())
        {
            let mut g = *g;
            if weight_decay != 0.0 {
                if decoupled {
                    *p *= decay_factor;
                } else {
                    g += wd * *p;
                }
            }
            // torch.lerp with weight < 0.5 computes self + weight * (end - self).
            *m += lerp_weight * (g - *m);
            *v = *v * b2 + one_minus_b2 * g * g;
            let denom = v.sqrt() / bias_correction2_sqrt + eps;
            *p += neg_step_size * *m / denom;
        }
    }
}
