//! Forward and backward passes of a validated spec over a flat parameter buffer.
//!
//! Every activation, gradient and saved intermediate lives in a [`Workspace`] that is
//! allocated once for a maximum batch size and reused, so a training step or an
//! inference call allocates nothing.

use super::kernels::{linear_backward, linear_forward};
use super::rng::Rng;
use super::spec::{LayerSpec, LossKind, ValidSpec, LAYER_NORM_EPS};

/// Largest workspace, in f32 elements (1 GiB), so that a large batch over a wide model is
/// refused with an error rather than exhausting memory.
pub const MAX_WORKSPACE_ELEMENTS: usize = 1 << 28;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Linear {
        w: usize,
        b: usize,
        n_in: usize,
        n_out: usize,
    },
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    Softmax,
    Dropout {
        p: f32,
    },
    LayerNorm {
        w: usize,
        b: usize,
        dim: usize,
        eps: f32,
    },
}

/// The compiled form of a spec: a list of ops with their parameter offsets.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub(crate) ops: Vec<Op>,
    /// `widths[k]` is the width of the input of op `k`; the last is the output width.
    pub(crate) widths: Vec<usize>,
    pub(crate) loss: LossKind,
    /// Buffer sizes per example (widths, then saved values per op, then the scratch
    /// size), recorded in a workspace so that one built for another net is never used.
    layout: Vec<usize>,
}

/// Preallocated buffers for passes of up to `capacity` examples.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    capacity: usize,
    /// The [`Net`] layout these buffers were sized for.
    layout: Vec<usize>,
    /// `acts[k]` is the input of op `k`; `acts[n_ops]` is the network output.
    acts: Vec<Vec<f32>>,
    /// Gradient of the loss with respect to `acts[k]`.
    grads: Vec<Vec<f32>>,
    /// Per-op saved values: dropout mask; layer-norm x̂ followed by 1/σ per row.
    saved: Vec<Vec<f32>>,
    /// Scratch for a transposed weight matrix.
    scratch: Vec<f32>,
}

/// The requested batch would need more than `MAX_WORKSPACE_ELEMENTS` (2^28) working values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a batch of {rows} examples needs more than {MAX_WORKSPACE_ELEMENTS} working values for this model: use a smaller batch")]
pub struct WorkspaceTooLarge {
    pub rows: usize,
}

impl Net {
    pub(crate) fn new(spec: &ValidSpec) -> Net {
        let mut ops = Vec::with_capacity(spec.layers().len());
        let mut widths = vec![spec.input_width()];
        let mut params = spec.params().iter();
        let mut width = spec.input_width();
        let mut next_offset = || {
            params
                .next()
                .expect("spec lists a parameter for every parameterised layer: this is a bug")
                .offset
        };
        for layer in spec.layers() {
            let op = match layer {
                LayerSpec::Linear {
                    in_features,
                    out_features,
                    ..
                } => {
                    width = *out_features;
                    Op::Linear {
                        w: next_offset(),
                        b: next_offset(),
                        n_in: *in_features,
                        n_out: *out_features,
                    }
                }
                LayerSpec::LayerNorm { dim, eps, .. } => Op::LayerNorm {
                    w: next_offset(),
                    b: next_offset(),
                    dim: *dim,
                    eps: eps.unwrap_or(LAYER_NORM_EPS) as f32,
                },
                LayerSpec::Relu {} => Op::Relu,
                LayerSpec::Gelu {} => Op::Gelu,
                LayerSpec::Tanh {} => Op::Tanh,
                LayerSpec::Sigmoid {} => Op::Sigmoid,
                LayerSpec::Softmax {} => Op::Softmax,
                LayerSpec::Dropout { p } => Op::Dropout { p: *p },
            };
            ops.push(op);
            widths.push(width);
        }
        let saved_per_row = ops.iter().zip(&widths).map(|(op, &w)| match op {
            Op::Dropout { .. } => w,
            Op::LayerNorm { .. } => w + 1,
            _ => 0,
        });
        let scratch = ops
            .iter()
            .map(|op| match op {
                Op::Linear { n_in, n_out, .. } => n_in * n_out,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let layout = widths
            .iter()
            .copied()
            .chain(saved_per_row)
            .chain([scratch])
            .collect();
        Net {
            ops,
            widths,
            loss: spec.loss(),
            layout,
        }
    }

    pub(crate) fn input_width(&self) -> usize {
        self.widths[0]
    }

    pub(crate) fn output_width(&self) -> usize {
        *self
            .widths
            .last()
            .expect("a net has an output width: this is a bug")
    }

    /// Makes sure `ws` can hold `rows` examples; grows it (never shrinks) when needed.
    pub(crate) fn prepare(&self, ws: &mut Workspace, rows: usize) -> Result<(), WorkspaceTooLarge> {
        if ws.capacity >= rows && ws.layout == self.layout {
            return Ok(());
        }
        let too_large = WorkspaceTooLarge { rows };
        // Activations and their gradients (two per width) plus the saved values.
        let n_widths = self.widths.len();
        let (widths, rest) = self.layout.split_at(n_widths);
        let (saved, scratch) = rest.split_at(self.ops.len());
        let per_row: usize = widths
            .iter()
            .try_fold(0usize, |acc, &w| acc.checked_add(w.checked_mul(2)?))
            .and_then(|acc| saved.iter().try_fold(acc, |acc, &w| acc.checked_add(w)))
            .ok_or(too_large)?;
        let total = per_row.checked_mul(rows).ok_or(too_large)?;
        if total > MAX_WORKSPACE_ELEMENTS {
            return Err(too_large);
        }
        ws.capacity = rows;
        ws.layout.clone_from(&self.layout);
        ws.acts = widths.iter().map(|&w| vec![0.0; w * rows]).collect();
        ws.grads = widths.iter().map(|&w| vec![0.0; w * rows]).collect();
        ws.saved = saved.iter().map(|&w| vec![0.0; w * rows]).collect();
        ws.scratch = vec![0.0; scratch[0]];
        Ok(())
    }

    /// The input buffer of the workspace, to be filled with `rows` examples.
    pub(crate) fn input_mut<'w>(&self, ws: &'w mut Workspace, rows: usize) -> &'w mut [f32] {
        &mut ws.acts[0][..rows * self.widths[0]]
    }

    pub(crate) fn output<'w>(&self, ws: &'w Workspace, rows: usize) -> &'w [f32] {
        &ws.acts[self.ops.len()][..rows * self.output_width()]
    }

    /// Runs the layers on the `rows` examples in the workspace input. `dropout_rng` is
    /// `Some` while training (dropout active) and `None` for inference.
    pub(crate) fn forward(
        &self,
        params: &[f32],
        ws: &mut Workspace,
        rows: usize,
        mut dropout_rng: Option<&mut Rng>,
    ) {
        for (k, op) in self.ops.iter().enumerate() {
            let (before, after) = ws.acts.split_at_mut(k + 1);
            let x = &before[k][..rows * self.widths[k]];
            let y = &mut after[0][..rows * self.widths[k + 1]];
            match *op {
                Op::Linear { w, b, n_in, n_out } => linear_forward(
                    x,
                    &params[w..w + n_in * n_out],
                    &params[b..b + n_out],
                    &mut ws.scratch,
                    y,
                    (rows, n_in, n_out),
                ),
                Op::Relu => map(x, y, |v| v.max(0.0)),
                Op::Gelu => map(x, y, gelu),
                Op::Tanh => map(x, y, f32::tanh),
                Op::Sigmoid => map(x, y, sigmoid),
                Op::Softmax => {
                    for (xr, yr) in x
                        .chunks_exact(self.widths[k])
                        .zip(y.chunks_exact_mut(self.widths[k]))
                    {
                        softmax_row(xr, yr);
                    }
                }
                Op::Dropout { p } => match dropout_rng.as_deref_mut() {
                    Some(rng) if p > 0.0 => {
                        let mask = &mut ws.saved[k][..rows * self.widths[k]];
                        let scale = 1.0 / (1.0 - p);
                        for ((m, yv), &xv) in mask.iter_mut().zip(y.iter_mut()).zip(x) {
                            *m = if rng.next_f32() < p { 0.0 } else { scale };
                            *yv = xv * *m;
                        }
                    }
                    _ => {
                        y.copy_from_slice(x);
                        // Backward after an inference-mode forward sees an identity mask.
                        if let Some(mask) = ws.saved[k].get_mut(..rows * self.widths[k]) {
                            mask.fill(1.0);
                        }
                    }
                },
                Op::LayerNorm { w, b, dim, eps } => {
                    let (xhat, rstd) = ws.saved[k].split_at_mut(ws.capacity * dim);
                    let gamma = &params[w..w + dim];
                    let beta = &params[b..b + dim];
                    for (r, (xr, yr)) in
                        x.chunks_exact(dim).zip(y.chunks_exact_mut(dim)).enumerate()
                    {
                        let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
                        let var = xr
                            .iter()
                            .map(|&v| {
                                let d = v as f64 - mean;
                                d * d
                            })
                            .sum::<f64>()
                            / dim as f64;
                        let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
                        rstd[r] = inv;
                        let mean = mean as f32;
                        let xh = &mut xhat[r * dim..(r + 1) * dim];
                        for ((((h, yv), &xv), &g), &bb) in xh
                            .iter_mut()
                            .zip(yr.iter_mut())
                            .zip(xr)
                            .zip(gamma)
                            .zip(beta)
                        {
                            *h = (xv - mean) * inv;
                            *yv = *h * g + bb;
                        }
                    }
                }
            }
        }
    }

    /// Back-propagates the gradient stored by [`Net::loss`] into `grad_params`
    /// (overwritten). Must follow a `forward` of the same rows.
    /// Back-propagates the output gradient in the workspace. `input_grad` also
    /// computes the gradient with respect to the input (left in `ws.grads[0]`), which
    /// training never needs and explanations do.
    pub(crate) fn backward(
        &self,
        params: &[f32],
        ws: &mut Workspace,
        rows: usize,
        grad_params: &mut [f32],
        input_grad: bool,
    ) {
        for (k, op) in self.ops.iter().enumerate().rev() {
            let (g_before, g_after) = ws.grads.split_at_mut(k + 1);
            let dy = &g_after[0][..rows * self.widths[k + 1]];
            // The input gradient of the first op is needed only for explanations.
            let need_dx = k > 0 || input_grad;
            let dx = &mut g_before[k][..rows * self.widths[k]];
            let x = &ws.acts[k][..rows * self.widths[k]];
            let y = &ws.acts[k + 1][..rows * self.widths[k + 1]];
            match *op {
                Op::Linear { w, b, n_in, n_out } => {
                    let (gw, gb) = grad_params[w..].split_at_mut(n_in * n_out);
                    linear_backward(
                        x,
                        &params[w..w + n_in * n_out],
                        dy,
                        (gw, &mut gb[b - w - n_in * n_out..][..n_out]),
                        need_dx.then_some(dx),
                        (rows, n_in, n_out),
                    );
                }
                _ if !need_dx && !matches!(op, Op::LayerNorm { .. }) => {}
                Op::Relu => zip3(dx, x, dy, |xv, g| if xv > 0.0 { g } else { 0.0 }),
                Op::Gelu => zip3(dx, x, dy, |xv, g| g * gelu_grad(xv)),
                Op::Tanh => zip3(dx, y, dy, |yv, g| g * (1.0 - yv * yv)),
                Op::Sigmoid => zip3(dx, y, dy, |yv, g| g * yv * (1.0 - yv)),
                Op::Softmax => {
                    let width = self.widths[k];
                    for ((dxr, yr), dyr) in dx
                        .chunks_exact_mut(width)
                        .zip(y.chunks_exact(width))
                        .zip(dy.chunks_exact(width))
                    {
                        let dot: f32 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
                        for ((d, &yv), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
                            *d = yv * (g - dot);
                        }
                    }
                }
                Op::Dropout { .. } => {
                    let mask = &ws.saved[k][..rows * self.widths[k]];
                    zip3(dx, mask, dy, |m, g| m * g);
                }
                Op::LayerNorm { w, b, dim, .. } => {
                    let (xhat, rstd) = ws.saved[k].split_at(ws.capacity * dim);
                    let gamma = &params[w..w + dim];
                    let (gw, rest) = grad_params[w..].split_at_mut(dim);
                    let gb = &mut rest[b - w - dim..][..dim];
                    gw.fill(0.0);
                    gb.fill(0.0);
                    for (r, dyr) in dy.chunks_exact(dim).enumerate() {
                        let xh = &xhat[r * dim..(r + 1) * dim];
                        let mut sum_dxhat = 0.0f64;
                        let mut sum_dxhat_xhat = 0.0f64;
                        for j in 0..dim {
                            gw[j] += dyr[j] * xh[j];
                            gb[j] += dyr[j];
                            let dxh = (dyr[j] * gamma[j]) as f64;
                            sum_dxhat += dxh;
                            sum_dxhat_xhat += dxh * xh[j] as f64;
                        }
                        if need_dx {
                            let mean_dxhat = (sum_dxhat / dim as f64) as f32;
                            let mean_dxhat_xhat = (sum_dxhat_xhat / dim as f64) as f32;
                            let dxr = &mut dx[r * dim..(r + 1) * dim];
                            for j in 0..dim {
                                let dxh = dyr[j] * gamma[j];
                                dxr[j] = rstd[r] * (dxh - mean_dxhat - xh[j] * mean_dxhat_xhat);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sets the output gradient to 1 at column `index` of every row and 0 elsewhere, so
    /// [`Net::backward`] yields the gradient of that one output.
    pub(crate) fn seed_output_gradient(&self, ws: &mut Workspace, rows: usize, index: usize) {
        let width = self.output_width();
        let grad = &mut ws.grads[self.ops.len()][..rows * width];
        grad.fill(0.0);
        for row in grad.chunks_exact_mut(width) {
            row[index] = 1.0;
        }
    }

    /// The gradient with respect to the input left by [`Net::backward`] with
    /// `input_grad`.
    pub(crate) fn input_gradient<'w>(&self, ws: &'w Workspace, rows: usize) -> &'w [f32] {
        &ws.grads[0][..rows * self.widths[0]]
    }

    /// Loss of the network output against `target` (`rows` examples); also stores the
    /// gradient of the loss with respect to the output for [`Net::backward`].
    pub(crate) fn loss(&self, ws: &mut Workspace, target: &[f32], rows: usize) -> f64 {
        let n = self.ops.len();
        let width = self.output_width();
        let pred = &ws.acts[n][..rows * width];
        let grad = &mut ws.grads[n][..rows * width];
        let target = &target[..rows * width];
        loss_and_grad(self.loss, pred, target, width, grad)
    }
}

/// Loss (mean, as PyTorch's `reduction="mean"`) and its gradient with respect to `pred`.
pub(crate) fn loss_and_grad(
    kind: LossKind,
    pred: &[f32],
    target: &[f32],
    width: usize,
    grad: &mut [f32],
) -> f64 {
    let n_elements = pred.len();
    if n_elements == 0 {
        return 0.0;
    }
    let rows = n_elements / width;
    match kind {
        LossKind::Mse => {
            let scale = 2.0 / n_elements as f32;
            let mut sum = 0.0f64;
            for ((g, &p), &t) in grad.iter_mut().zip(pred).zip(target) {
                let d = p - t;
                sum += (d as f64) * (d as f64);
                *g = d * scale;
            }
            sum / n_elements as f64
        }
        LossKind::CrossEntropy => {
            let inv_rows = 1.0 / rows as f32;
            let mut sum = 0.0f64;
            for ((pr, tr), gr) in pred
                .chunks_exact(width)
                .zip(target.chunks_exact(width))
                .zip(grad.chunks_exact_mut(width))
            {
                let max = pr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum_exp: f64 = pr.iter().map(|&z| ((z - max) as f64).exp()).sum();
                let lse = max as f64 + sum_exp.ln();
                let t_sum: f64 = tr.iter().map(|&t| t as f64).sum();
                for ((g, &z), &t) in gr.iter_mut().zip(pr).zip(tr) {
                    let log_p = z as f64 - lse;
                    sum -= t as f64 * log_p;
                    *g = ((log_p.exp() * t_sum - t as f64) as f32) * inv_rows;
                }
            }
            sum / rows as f64
        }
        LossKind::BinaryCrossEntropy => {
            let inv_n = 1.0 / n_elements as f32;
            let mut sum = 0.0f64;
            for ((g, &p), &t) in grad.iter_mut().zip(pred).zip(target) {
                // PyTorch clamps the logs at -100 so that p = 0 or 1 gives a finite loss.
                let log_p = (p as f64).ln().max(-100.0);
                let log_1p = (1.0 - p as f64).ln().max(-100.0);
                sum -= t as f64 * log_p + (1.0 - t as f64) * log_1p;
                let denom = ((1.0 - p) * p).max(1e-12);
                *g = (p - t) / denom * inv_n;
            }
            sum / n_elements as f64
        }
    }
}

fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = f(xv);
    }
}

fn zip3(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &av), &bv) in out.iter_mut().zip(a).zip(b) {
        *o = f(av, bv);
    }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Exact GELU, `x Φ(x)`, PyTorch's default (`approximate="none"`).
fn gelu(v: f32) -> f32 {
    let x = v as f64;
    (0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

fn gelu_grad(v: f32) -> f32 {
    let x = v as f64;
    let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (cdf + x * pdf) as f32
}

fn softmax_row(x: &[f32], y: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = (xv - max).exp();
        sum += *yv;
    }
    let inv = 1.0 / sum;
    for yv in y.iter_mut() {
        *yv *= inv;
    }
}
