//! Hand-written f32 loops for the linear layer, written so that LLVM vectorises them.
//!
//! Every product is one small register-tiled matrix multiply ([`matmul`]): the inner loop
//! runs along a contiguous row of the right operand (`acc[j] += a * b[j]`), never as a dot
//! product, because a float reduction cannot be vectorised without reassociation while
//! independent updates can. All safe code; the `gemm` crate would bring AVX2/FMA dispatch
//! but needs `unsafe` calls and costs more per call than these sizes take in total.

/// `y[r, :] = b + x[r, :] · W^T` for `rows` rows; `wt` is scratch that receives `W^T`.
///
/// `w` is `[n_out, n_in]` row-major (the PyTorch layout), `x` is `[rows, n_in]`,
/// `y` is `[rows, n_out]`.
pub(crate) fn linear_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    wt: &mut [f32],
    y: &mut [f32],
    (rows, n_in, n_out): (usize, usize, usize),
) {
    let wt = &mut wt[..n_in * n_out];
    // The transpose costs n_in * n_out moves, a 1/rows share of the multiply-adds; it
    // lets the kernel read weight rows along the output dimension.
    for (o, w_row) in w.chunks_exact(n_in).enumerate() {
        for (i, &v) in w_row.iter().enumerate() {
            wt[i * n_out + o] = v;
        }
    }
    let y = &mut y[..rows * n_out];
    for y_row in y.chunks_exact_mut(n_out) {
        y_row.copy_from_slice(b);
    }
    let a = Lhs {
        data: x,
        row_stride: n_in,
        col_stride: 1,
    };
    matmul(a, (wt, n_out), y, (rows, n_out, n_in), true);
}

/// Gradients of a linear layer: `dw = dy^T · x`, `db = Σ_r dy[r, :]` (both overwritten)
/// and, when `dx` is given, `dx = dy · W`.
pub(crate) fn linear_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    grads: (&mut [f32], &mut [f32]),
    dx: Option<&mut [f32]>,
    (rows, n_in, n_out): (usize, usize, usize),
) {
    let (dw, db) = grads;
    let dy = &dy[..rows * n_out];
    db.fill(0.0);
    for dy_row in dy.chunks_exact(n_out) {
        axpy(1.0, dy_row, db);
    }
    // dw[o, i] = Σ_r dy[r, o] x[r, i]: dy read transposed.
    let dy_t = Lhs {
        data: dy,
        row_stride: 1,
        col_stride: n_out,
    };
    matmul(
        dy_t,
        (&x[..rows * n_in], n_in),
        dw,
        (n_out, n_in, rows),
        false,
    );
    if let Some(dx) = dx {
        let dy_rows = Lhs {
            data: dy,
            row_stride: n_out,
            col_stride: 1,
        };
        matmul(
            dy_rows,
            (w, n_in),
            &mut dx[..rows * n_in],
            (rows, n_in, n_out),
            false,
        );
    }
}

/// A strided view of the left operand: element (m, k) is `data[m * row_stride + k * col_stride]`.
#[derive(Clone, Copy)]
struct Lhs<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl Lhs<'_> {
    #[inline(always)]
    fn at(&self, m: usize, k: usize) -> f32 {
        self.data[m * self.row_stride + k * self.col_stride]
    }
}

/// `c[m, n] (+)= Σ_k a(m, k) · b[k, n]` with `b` row-major (row stride `ldb`) and `c`
/// dense `[m_len, n_len]`; `accumulate` keeps the old `c` (used to start from the bias).
///
/// Tiles of 4 rows × 8 (or 4) columns keep their accumulators in fixed-size arrays,
/// which LLVM holds in vector registers, so each loaded `b` vector serves four rows and
/// each broadcast `a` value a whole vector; ragged edges fall back to narrower tiles.
fn matmul(
    a: Lhs<'_>,
    (b, ldb): (&[f32], usize),
    c: &mut [f32],
    (m_len, n_len, k_len): (usize, usize, usize),
    accumulate: bool,
) {
    let mut m0 = 0;
    while m0 < m_len {
        let mr = if m_len - m0 >= 4 { 4 } else { 1 };
        let mut n0 = 0;
        while n0 < n_len {
            let width = n_len - n0;
            let tile = Tile {
                m0,
                n0,
                k_len,
                n_len,
            };
            match (mr, width) {
                (4, 8..) => tile.run::<4, 8>(a, b, ldb, c, accumulate),
                (4, 4..) => tile.run::<4, 4>(a, b, ldb, c, accumulate),
                (4, _) => tile.run::<4, 1>(a, b, ldb, c, accumulate),
                (_, 8..) => tile.run::<1, 8>(a, b, ldb, c, accumulate),
                (_, 4..) => tile.run::<1, 4>(a, b, ldb, c, accumulate),
                _ => tile.run::<1, 1>(a, b, ldb, c, accumulate),
            }
            n0 += if width >= 8 {
                8
            } else if width >= 4 {
                4
            } else {
                1
            };
        }
        m0 += mr;
    }
}

struct Tile {
    m0: usize,
    n0: usize,
    k_len: usize,
    n_len: usize,
}

impl Tile {
    #[inline(always)]
    fn run<const MR: usize, const NR: usize>(
        &self,
        a: Lhs<'_>,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        accumulate: bool,
    ) {
        let mut acc = [[0.0f32; NR]; MR];
        if accumulate {
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let start = (self.m0 + r) * self.n_len + self.n0;
                acc_row.copy_from_slice(&c[start..start + NR]);
            }
        }
        for k in 0..self.k_len {
            let start = k * ldb + self.n0;
            let b_vec: &[f32; NR] = b[start..start + NR]
                .try_into()
                .expect("slice of length NR: this is a bug");
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let av = a.at(self.m0 + r, k);
                for (acc_v, &bv) in acc_row.iter_mut().zip(b_vec) {
                    *acc_v += av * bv;
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate() {
            let start = (self.m0 + r) * self.n_len + self.n0;
            c[start..start + NR].copy_from_slice(acc_row);
        }
    }
}

/// `y += a * x`.
#[inline]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}
