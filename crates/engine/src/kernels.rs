//! CPU kernels on plain `f32` slices for everything in the forward pass except matrix
//! products (those go to candle's gemm).
//!
//! Why not candle ops: the padding-free forward keeps the tokens of a whole batch in one
//! `[n_tokens, hidden]` matrix with ragged sequences, which candle's attention-by-matmul
//! cannot express without padding; and fusing bias + activation or bias + residual +
//! layer norm into one pass saves several trips through memory per layer. candle's GELU is
//! a scalar `erf` per element and its `exp` is libm's, so both are replaced here by
//! branch-free polynomial versions that the compiler vectorises.

use rayon::prelude::*;

/// Rows per rayon task: large enough that scheduling costs nothing next to the work,
/// small enough that a batch of a few hundred tokens still spreads over the threads.
const ROWS_PER_TASK: usize = 16;

/// Runs `work` compiled for the best instruction set of this CPU (AVX-512, AVX2+FMA, or
/// baseline). The build targets baseline x86-64 (SSE2), so without this the loops below
/// would vectorise four lanes wide at most. Everything `work` calls must be
/// `#[inline(always)]` to inherit the instruction set.
#[inline(always)]
fn with_best_simd<R>(work: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(work)
}

/// `x[r] = layer_norm(x[r] + bias + residual[r]) * gamma + beta`, row by row, in place.
pub(crate) fn bias_residual_layer_norm(
    x: &mut [f32],
    bias: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let width = gamma.len();
    x.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(residual.par_chunks(width * ROWS_PER_TASK))
        .for_each(|(x, residual)| {
            with_best_simd(
                #[inline(always)]
                || {
                    for (x, residual) in x.chunks_exact_mut(width).zip(residual.chunks_exact(width))
                    {
                        for ((x, r), b) in x.iter_mut().zip(residual).zip(bias) {
                            *x += r + b;
                        }
                        layer_norm_row(x, gamma, beta, eps);
                    }
                },
            )
        });
}

/// Layer norm of each `gamma.len()`-wide row of `rows`, in place.
pub(crate) fn layer_norm_rows(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    rows.par_chunks_mut(width * ROWS_PER_TASK).for_each(|rows| {
        with_best_simd(
            #[inline(always)]
            || {
                for row in rows.chunks_exact_mut(width) {
                    layer_norm_row(row, gamma, beta, eps);
                }
            },
        )
    });
}

/// Layer norm of one row in place, with the two-pass variance PyTorch uses.
#[inline(always)]
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut squares = [0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for chunk in &mut chunks {
        for (acc, v) in squares.iter_mut().zip(chunk) {
            let d = v - mean;
            *acc = d.mul_add(d, *acc);
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    let variance = (squares.iter().sum::<f32>() + tail) / n;
    let inv_std = 1.0 / (variance + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = ((*v - mean) * inv_std).mul_add(*g, *b);
    }
}

/// `x = gelu(x + bias)` in place, with the exact (erf) GELU that BERT's
/// `hidden_act = "gelu"` means.
pub(crate) fn bias_gelu(x: &mut [f32], bias: &[f32]) {
    let width = bias.len();
    x.par_chunks_mut(width * ROWS_PER_TASK).for_each(|x| {
        with_best_simd(
            #[inline(always)]
            || {
                for x in x.chunks_exact_mut(width) {
                    for (x, b) in x.iter_mut().zip(bias) {
                        let v = *x + b;
                        *x = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                    }
                }
            },
        )
    });
}

/// Self-attention over ragged sequences packed one after another.
///
/// `qkv` is `[n_tokens, 3 * hidden]` (queries, keys, values side by side, before their
/// bias), `seq_lens` the length of each packed sequence. Returns the context
/// `[n_tokens, hidden]`. Each sequence attends only to its own tokens, so no mask and no
/// padding is needed.
pub(crate) fn attention(
    qkv: &[f32],
    qkv_bias: &[f32],
    seq_lens: &[usize],
    n_heads: usize,
    head_dim: usize,
) -> Vec<f32> {
    let hidden = n_heads * head_dim;
    let n_tokens: usize = seq_lens.iter().sum();
    // One task per (head, sequence), so even a single sentence uses every thread. Each
    // task writes a contiguous block of a head-major scratch `[n_heads, n_tokens,
    // head_dim]`; one transposing pass then interleaves the heads.
    let mut by_head = vec![0f32; n_tokens * hidden];
    let mut tasks = Vec::with_capacity(n_heads * seq_lens.len());
    for (head, mut rest) in by_head.chunks_exact_mut(n_tokens * head_dim).enumerate() {
        let mut first_token = 0;
        for &len in seq_lens {
            let (block, tail) = rest.split_at_mut(len * head_dim);
            let rows = &qkv[first_token * 3 * hidden..(first_token + len) * 3 * hidden];
            tasks.push((head, rows, block));
            rest = tail;
            first_token += len;
        }
    }
    // Longest first, so a long sequence does not start last and hold up the batch.
    tasks.sort_by_key(|(_, _, block)| std::cmp::Reverse(block.len()));
    tasks
        .into_par_iter()
        .with_max_len(1)
        .for_each(|(head, rows, block)| {
            with_best_simd(
                #[inline(always)]
                || attend_head(rows, qkv_bias, head, n_heads, block),
            )
        });

    let mut out = vec![0f32; n_tokens * hidden];
    out.par_chunks_mut(hidden * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk_idx, out)| {
            for (row_idx, out_row) in out.chunks_exact_mut(hidden).enumerate() {
                let token = chunk_idx * ROWS_PER_TASK + row_idx;
                for (head, out_head) in out_row.chunks_exact_mut(head_dim).enumerate() {
                    let src = (head * n_tokens + token) * head_dim;
                    out_head.copy_from_slice(&by_head[src..src + head_dim]);
                }
            }
        });
    out
}

/// Attention of one head over one sequence: `rows` are the sequence's `[len, 3 *
/// hidden]` projections, `out` receives its `[len, head_dim]` context.
#[inline(always)]
fn attend_head(rows: &[f32], qkv_bias: &[f32], head: usize, n_heads: usize, out: &mut [f32]) {
    let hidden = qkv_bias.len() / 3;
    let head_dim = hidden / n_heads;
    let len = out.len() / head_dim;
    // Score rows padded to whole 16-float vectors so the loops over keys have no scalar
    // tail; the padding keys are zero and are left out of the softmax.
    let stride = len.div_ceil(16) * 16;
    let scale = 1.0 / (head_dim as f32).sqrt();
    // Queries [len, head_dim] (pre-scaled by 1/sqrt(d)), keys transposed [head_dim,
    // stride] and values [len, head_dim], with their biases.
    let mut q = vec![0f32; len * head_dim];
    let mut k_t = vec![0f32; head_dim * stride];
    let mut v = vec![0f32; len * head_dim];
    let q_src = head * head_dim;
    let k_src = hidden + head * head_dim;
    let v_src = 2 * hidden + head * head_dim;
    for (token, row) in rows.chunks_exact(3 * hidden).enumerate() {
        let dst = token * head_dim..(token + 1) * head_dim;
        for ((d, x), b) in q[dst.clone()]
            .iter_mut()
            .zip(&row[q_src..q_src + head_dim])
            .zip(&qkv_bias[q_src..q_src + head_dim])
        {
            *d = (x + b) * scale;
        }
        for (dim, (x, b)) in row[k_src..k_src + head_dim]
            .iter()
            .zip(&qkv_bias[k_src..k_src + head_dim])
            .enumerate()
        {
            k_t[dim * stride + token] = x + b;
        }
        for ((d, x), b) in v[dst]
            .iter_mut()
            .zip(&row[v_src..v_src + head_dim])
            .zip(&qkv_bias[v_src..v_src + head_dim])
        {
            *d = x + b;
        }
    }
    // Both products as sums of outer products: every inner loop is a vector update of a
    // different row, so consecutive updates do not wait on each other (a dot product per
    // score, or one running context row, would be a chain of dependent adds).
    let mut scores = vec![0f32; len * stride];
    for (dim, keys) in k_t.chunks_exact(stride).enumerate() {
        for (score_row, query) in scores
            .chunks_exact_mut(stride)
            .zip(q.chunks_exact(head_dim))
        {
            let q_d = query[dim];
            for (s, k) in score_row.iter_mut().zip(keys) {
                *s = q_d.mul_add(*k, *s);
            }
        }
    }
    for score_row in scores.chunks_exact_mut(stride) {
        softmax_in_place(&mut score_row[..len]);
    }
    for (key, value) in v.chunks_exact(head_dim).enumerate() {
        for (context_row, score_row) in out
            .chunks_exact_mut(head_dim)
            .zip(scores.chunks_exact(stride))
        {
            let p = score_row[key];
            for (c, x) in context_row.iter_mut().zip(value) {
                *c = p.mul_add(*x, *c);
            }
        }
    }
}

#[inline(always)]
pub(crate) fn softmax_in_place(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in values.iter_mut() {
        *v = exp(*v - max);
    }
    let inv_total = 1.0 / sum(values);
    for v in values.iter_mut() {
        *v *= inv_total;
    }
}

/// Dot product with sixteen independent accumulators so the loop vectorises (a plain
/// `sum()` is ordered and stays scalar).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks_a = a.chunks_exact(16);
    let mut chunks_b = b.chunks_exact(16);
    for (ca, cb) in (&mut chunks_a).zip(&mut chunks_b) {
        for ((s, x), y) in acc.iter_mut().zip(ca).zip(cb) {
            *s = x.mul_add(*y, *s);
        }
    }
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
pub(crate) fn sum(values: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (s, x) in acc.iter_mut().zip(chunk) {
            *s += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `exp(x)` for `x <= 0` (softmax after subtracting the maximum) and moderate positive
/// `x`: Cephes' `expf` polynomial after range reduction by powers of two, written without
/// branches or libm calls so loops over it vectorise. Relative error about 2e-7.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Below -87 the result is under f32::MIN_POSITIVE; clamping keeps 2^n a normal number.
    let x = x.clamp(-87.0, 88.0);
    // Round x / ln 2 to the nearest integer n with the 1.5 * 2^23 trick (no `round`
    // instruction on baseline x86-64).
    const ROUNDER: f32 = 12_582_912.0;
    let shifted = x.mul_add(std::f32::consts::LOG2_E, ROUNDER);
    let n = shifted - ROUNDER;
    let r = n.mul_add(2.121_944_4e-4, n.mul_add(-0.693_359_4, x));
    let mut y = 1.987_569_1e-4f32;
    y = y.mul_add(r, 1.398_199_9e-3);
    y = y.mul_add(r, 8.333_452e-3);
    y = y.mul_add(r, 4.166_579_6e-2);
    y = y.mul_add(r, 1.666_666_5e-1);
    y = y.mul_add(r, 0.5);
    y = (y * r).mul_add(r, r + 1.0);
    let n_int = shifted.to_bits() as i32 - ROUNDER.to_bits() as i32;
    y * f32::from_bits(((n_int + 127) << 23) as u32)
}

/// `erf(x)`: the rational approximation Eigen and XLA use for `f32` (max error a few
/// ulp), branch-free so loops over it vectorise.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    // erf is ±1 in f32 beyond |x| = 4.
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_6e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f32;
        for i in 0..=20_000 {
            let x = -87.0 + i as f32 * (87.0 + 20.0) / 20_000.0;
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    #[allow(clippy::excessive_precision)] // table values, rounded by the compiler
    fn erf_matches_reference_values() {
        // Values from the standard normal tables (erf to 9 digits).
        for (x, expect) in [
            (0.0f32, 0.0f32),
            (0.1, 0.112_462_916),
            (0.5, 0.520_499_878),
            (1.0, 0.842_700_793),
            (1.5, 0.966_105_146),
            (2.0, 0.995_322_265),
            (3.0, 0.999_977_910),
            (5.0, 1.0),
        ] {
            assert!((erf(x) - expect).abs() < 2e-7, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + expect).abs() < 2e-7);
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut values = vec![1.0, 2.0, 3.0, -1e9];
        softmax_in_place(&mut values);
        assert!((values.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((values[2] - 0.665_240_9).abs() < 1e-6);
        assert!(values[3] < 1e-30);
    }
}
