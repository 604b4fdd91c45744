//! Matrix products with bfloat16 weights: `C = A · W` where `A` is `[m, k]` f32
//! activations and `W` a `[k, n]` weight matrix stored as bf16, packed once at load.
//!
//! On CPUs with AVX-512 BF16 (`vdpbf16ps`: two bf16 products summed into each f32 lane)
//! the activations are rounded to bf16 row by row and the product accumulates in f32,
//! which doubles the multiply rate of fp32 FMAs and halves the weight bytes read. On
//! other CPUs the packed weights are widened back to f32 and go through the same
//! blocked loop in portable code: the same weights, slower, never a different answer
//! beyond rounding.
//!
//! Layout: the weight columns are cut into panels of [`NR`] columns. Inside a panel, for
//! every pair of rows `(2p, 2p + 1)` of `W`, the panel holds [`NR`] `u32` words, each
//! carrying `W[2p, j]` in its low half and `W[2p + 1, j]` in its high half: exactly the
//! operand shape `vdpbf16ps` multiplies against a broadcast pair of activations. An odd
//! `k` is padded with a zero row; a partial last panel with zero columns.
//!
//! This is the one module of the engine with `unsafe` code: the AVX-512 intrinsics load
//! and store through raw pointers. Every pointer is derived from a slice whose length
//! is checked before the kernel runs (see the `SAFETY` notes).

#![allow(unsafe_code)]

use rayon::prelude::*;

/// Output columns per panel: two 16-lane f32 registers.
const NR: usize = 32;
/// Activation rows per micro-kernel call: `MR × 2` accumulators stay in registers.
const MR: usize = 8;
/// Rows per parallel task: enough reuse of a panel from cache, enough tasks to spread a
/// single sentence's few tokens over the threads by panels.
const ROWS_PER_TASK: usize = 64;

/// Rounds an f32 to bf16, to nearest with ties to even (NaN stays NaN).
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((bits >> 16) | 0x40) as u16;
    // A select rather than an early return, so loops over this vectorise.
    if x.is_nan() {
        quiet_nan
    } else {
        rounded
    }
}

/// Widens a bf16 to f32 (exact).
pub(crate) fn from_bf16(x: u16) -> f32 {
    f32::from_bits(u32::from(x) << 16)
}

/// `x` rounded to the nearest bf16, as f32: the weight the bf16 products use.
pub(crate) fn round(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// A `[k, n]` weight matrix in bf16, packed for [`PackedBf16::matmul`].
pub(crate) struct PackedBf16 {
    k: usize,
    n: usize,
    k_pairs: usize,
    /// `n_panels × k_pairs × NR` words, panel after panel.
    panels: Vec<u32>,
}

impl PackedBf16 {
    /// Packs a row-major `[k, n]` f32 matrix, rounding every weight to bf16.
    pub(crate) fn pack(weight: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), k * n, "weight is not [k, n]");
        let k_pairs = k.div_ceil(2);
        let n_panels = n.div_ceil(NR);
        let mut panels = vec![0u32; n_panels * k_pairs * NR];
        let at = |row: usize, col: usize| -> u32 {
            if row < k && col < n {
                u32::from(to_bf16(weight[row * n + col]))
            } else {
                0
            }
        };
        for (panel_idx, panel) in panels.chunks_exact_mut(k_pairs * NR).enumerate() {
            for (pair, words) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, word) in words.iter_mut().enumerate() {
                    let col = panel_idx * NR + j;
                    *word = at(2 * pair, col) | (at(2 * pair + 1, col) << 16);
                }
            }
        }
        Self {
            k,
            n,
            k_pairs,
            panels,
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// The weights widened back to a row-major `[k, n]` f32 matrix (what the products
    /// compute with, up to the rounding of the activations).
    #[cfg(test)]
    pub(crate) fn unpack(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.k * self.n];
        for (row, out_row) in out.chunks_exact_mut(self.n).enumerate() {
            for (col, value) in out_row.iter_mut().enumerate() {
                *value = from_bf16(self.weight_bits(row, col));
            }
        }
        out
    }

    #[cfg(test)]
    fn weight_bits(&self, row: usize, col: usize) -> u16 {
        let word = self.panels[((col / NR) * self.k_pairs + row / 2) * NR + col % NR];
        if row.is_multiple_of(2) {
            word as u16
        } else {
            (word >> 16) as u16
        }
    }

    /// `a · W` for a row-major `[m, k]` `a`; returns `[m, n]` row-major. Runs on the
    /// current rayon pool.
    pub(crate) fn matmul(&self, a: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(a.len(), m * self.k, "activations are not [m, k]");
        let mut out = vec![0.0f32; m * self.n];
        if m == 0 || self.n == 0 {
            return out;
        }
        let a_pairs = pairs_of_rows(a, m, self.k, self.k_pairs);
        let n_panels = self.n.div_ceil(NR);
        let row_blocks = m.div_ceil(ROWS_PER_TASK);
        let out_ptr = SharedOut(out.as_mut_ptr());
        let accelerated = has_avx512_bf16();
        (0..row_blocks * n_panels).into_par_iter().for_each(|task| {
            let (block, panel) = (task / n_panels, task % n_panels);
            let rows = block * ROWS_PER_TASK..((block + 1) * ROWS_PER_TASK).min(m);
            let panel_words = &self.panels[panel * self.k_pairs * NR..][..self.k_pairs * NR];
            let cols = panel * NR..((panel + 1) * NR).min(self.n);
            for start in rows.clone().step_by(MR) {
                let n_rows = MR.min(rows.end - start);
                let a_block = &a_pairs[start * self.k_pairs..(start + n_rows) * self.k_pairs];
                let mut tile = [[0.0f32; NR]; MR];
                if accelerated {
                    // SAFETY: AVX-512 F and BF16 were detected at run time above.
                    unsafe { tile_avx512(a_block, n_rows, self.k_pairs, panel_words, &mut tile) };
                } else {
                    tile_portable(a_block, n_rows, self.k_pairs, panel_words, &mut tile);
                }
                for (r, tile_row) in tile.iter().take(n_rows).enumerate() {
                    let offset = (start + r) * self.n + cols.start;
                    // SAFETY: tasks write disjoint `[row, column-panel]` tiles of `out`,
                    // which outlives the parallel loop, and `offset + cols.len()` is
                    // within `m × n` because `start + r < m` and `cols.end <= n`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            tile_row.as_ptr(),
                            out_ptr.get().add(offset),
                            cols.len(),
                        );
                    }
                }
            }
        });
        out
    }
}

/// The output buffer shared by the tasks of one product, each writing its own tiles.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used for the disjoint writes described in `matmul`.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// A method (not field access) so closures capture the whole `Sync` wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Whether this CPU runs the bf16 products natively (AVX-512 BF16).
pub fn accelerated() -> bool {
    has_avx512_bf16()
}

fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rounds the activations to bf16 and packs each row as `k_pairs` words of two values.
fn pairs_of_rows(a: &[f32], m: usize, k: usize, k_pairs: usize) -> Vec<u32> {
    let mut pairs = vec![0u32; m * k_pairs];
    pairs
        .par_chunks_mut(k_pairs * 16)
        .zip(a.par_chunks(k * 16))
        .for_each(|(pairs, a)| {
            for (row_pairs, row) in pairs.chunks_exact_mut(k_pairs).zip(a.chunks_exact(k)) {
                let done = if has_avx512_bf16() {
                    // SAFETY: AVX-512 F and BF16 were detected.
                    unsafe { round_pairs_avx512(row, row_pairs) }
                } else {
                    0
                };
                for (word, values) in row_pairs[done..].iter_mut().zip(row[2 * done..].chunks(2)) {
                    let low = u32::from(to_bf16(values[0]));
                    let high = values.get(1).map_or(0, |&v| u32::from(to_bf16(v)));
                    *word = low | (high << 16);
                }
            }
        });
    pairs
}

/// Rounds the first `32 × ⌊len / 32⌋` values of `row` into `pairs` (two per word) and
/// returns how many words it wrote.
///
/// # Safety
/// The CPU must support AVX-512 F and BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round_pairs_avx512(row: &[f32], pairs: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    let chunks = (row.len() / 32).min(pairs.len() / 16);
    for chunk in 0..chunks {
        // SAFETY: `chunk < chunks` keeps the two 16-float loads inside `row` and the
        // 16-word store inside `pairs`.
        unsafe {
            let src = row.as_ptr().add(chunk * 32);
            let rounded = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src.add(16)), _mm512_loadu_ps(src));
            let rounded = std::mem::transmute::<__m512bh, __m512i>(rounded);
            _mm512_storeu_si512(pairs.as_mut_ptr().add(chunk * 16).cast(), rounded);
        }
    }
    chunks * 16
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn round_pairs_avx512(_row: &[f32], _pairs: &mut [u32]) -> usize {
    0
}

/// One `n_rows × NR` tile over the whole depth, in portable code.
fn tile_portable(
    a_block: &[u32],
    n_rows: usize,
    k_pairs: usize,
    panel: &[u32],
    tile: &mut [[f32; NR]; MR],
) {
    for (r, tile_row) in tile.iter_mut().take(n_rows).enumerate() {
        let a_row = &a_block[r * k_pairs..][..k_pairs];
        for (&a_word, weights) in a_row.iter().zip(panel.chunks_exact(NR)) {
            let (a0, a1) = (from_bf16(a_word as u16), from_bf16((a_word >> 16) as u16));
            for (acc, &w) in tile_row.iter_mut().zip(weights) {
                *acc += a0 * from_bf16(w as u16) + a1 * from_bf16((w >> 16) as u16);
            }
        }
    }
}

/// One `n_rows × NR` tile over the whole depth with `vdpbf16ps`.
///
/// # Safety
/// The CPU must support AVX-512 F and BF16. Slice lengths are checked here.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_avx512(
    a_block: &[u32],
    n_rows: usize,
    k_pairs: usize,
    panel: &[u32],
    tile: &mut [[f32; NR]; MR],
) {
    assert!(n_rows <= MR && a_block.len() == n_rows * k_pairs && panel.len() == k_pairs * NR);
    // SAFETY (all calls below): the asserts above bound every pointer offset.
    unsafe {
        match n_rows {
            8 => tile_rows::<8>(a_block, k_pairs, panel, tile),
            7 => tile_rows::<7>(a_block, k_pairs, panel, tile),
            6 => tile_rows::<6>(a_block, k_pairs, panel, tile),
            5 => tile_rows::<5>(a_block, k_pairs, panel, tile),
            4 => tile_rows::<4>(a_block, k_pairs, panel, tile),
            3 => tile_rows::<3>(a_block, k_pairs, panel, tile),
            2 => tile_rows::<2>(a_block, k_pairs, panel, tile),
            1 => tile_rows::<1>(a_block, k_pairs, panel, tile),
            _ => {}
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_avx512(
    a_block: &[u32],
    n_rows: usize,
    k_pairs: usize,
    panel: &[u32],
    tile: &mut [[f32; NR]; MR],
) {
    tile_portable(a_block, n_rows, k_pairs, panel, tile)
}

/// # Safety
/// AVX-512 F and BF16 present; `a_block` holds `R × k_pairs` words and `panel`
/// `k_pairs × NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn tile_rows<const R: usize>(
    a_block: &[u32],
    k_pairs: usize,
    panel: &[u32],
    tile: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let a = a_block.as_ptr();
    let w = panel.as_ptr();
    for pair in 0..k_pairs {
        // SAFETY: `pair < k_pairs`, so both 16-word loads lie inside `panel` and every
        // `r * k_pairs + pair` inside `a_block`.
        let (w0, w1) = unsafe {
            let at = w.add(pair * NR);
            (
                _mm512_loadu_si512(at.cast()),
                _mm512_loadu_si512(at.add(16).cast()),
            )
        };
        let (w0, w1) = (as_bf16_pairs(w0), as_bf16_pairs(w1));
        for (r, acc) in acc.iter_mut().enumerate() {
            let broadcast = as_bf16_pairs(_mm512_set1_epi32(
                // SAFETY: see above.
                unsafe { *a.add(r * k_pairs + pair) } as i32,
            ));
            acc[0] = _mm512_dpbf16_ps(acc[0], broadcast, w0);
            acc[1] = _mm512_dpbf16_ps(acc[1], broadcast, w1);
        }
    }
    for (acc, row) in acc.iter().zip(tile.iter_mut()) {
        // SAFETY: each tile row holds NR = 32 floats.
        unsafe {
            _mm512_storeu_ps(row.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc[1]);
        }
    }
}

/// Reinterprets 16 words as 32 bf16 values (the same 512 bits).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn as_bf16_pairs(words: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512bh {
    use std::arch::x86_64::{__m512bh, __m512i};
    // SAFETY: both are plain 512-bit vectors; every bit pattern is valid for either.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(words) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) without a random-number dependency.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The product of the bf16-rounded operands in f64: what the kernel must match up to
    /// f32 accumulation error.
    fn reference(a: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let round = |x: f32| f64::from(from_bf16(to_bf16(x)));
        (0..m * n)
            .map(|idx| {
                let (row, col) = (idx / n, idx % n);
                (0..k)
                    .map(|i| round(a[row * k + i]) * round(w[i * n + col]))
                    .sum::<f64>() as f32
            })
            .collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3F80);
        // Just above halfway rounds up.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3F81);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    }

    #[test]
    fn products_match_the_rounded_reference_for_ragged_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 7, 5),
            (9, 33, 40),
            (17, 64, 96),
            (70, 385, 33),
        ] {
            let a = values(m * k, (m * 31 + k) as u32);
            let w = values(k * n, (n * 17 + k) as u32);
            let packed = PackedBf16::pack(&w, k, n);
            let got = packed.matmul(&a, m);
            let want = reference(&a, &w, m, k, n);
            for (idx, (g, r)) in got.iter().zip(&want).enumerate() {
                let tolerance = 1e-5 * (k as f32).sqrt() + 1e-6;
                assert!(
                    (g - r).abs() <= tolerance,
                    "({m},{k},{n}) element {idx}: {g} vs {r}"
                );
            }
        }
    }

    #[test]
    fn portable_and_accelerated_tiles_agree() {
        let (rows, k) = (5, 50);
        let k_pairs = k / 2;
        let a = pairs_of_rows(&values(rows * k, 3), rows, k, k_pairs);
        let packed = PackedBf16::pack(&values(k * NR, 4), k, NR);
        let mut portable = [[0.0; NR]; MR];
        tile_portable(&a, rows, k_pairs, &packed.panels, &mut portable);
        let mut accelerated = [[0.0; NR]; MR];
        if has_avx512_bf16() {
            unsafe { tile_avx512(&a, rows, k_pairs, &packed.panels, &mut accelerated) };
            for (p, q) in portable.iter().flatten().zip(accelerated.iter().flatten()) {
                assert!((p - q).abs() <= 1e-5, "{p} vs {q}");
            }
        }
        assert!(portable[0].iter().any(|&v| v != 0.0));
    }

    #[test]
    fn unpack_returns_the_rounded_weights() {
        let (k, n) = (5, 37);
        let w = values(k * n, 9);
        let unpacked = PackedBf16::pack(&w, k, n).unpack();
        for (u, x) in unpacked.iter().zip(&w) {
            assert_eq!(*u, from_bf16(to_bf16(*x)));
        }
    }
}
