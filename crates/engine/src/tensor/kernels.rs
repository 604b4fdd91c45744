//! Hand-written f32 loops for the linear layer, written so that LLVM vectorises them.
//!
//! The inner loops always run along a contiguous row (`axpy` form: `y += a * x`) rather
//! than as dot products, because a float reduction cannot be vectorised without
//! reassociation, while independent `y[j] += a * x[j]` updates can. Rows are handled four
//! at a time so that each weight row loaded from cache serves four examples.

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
    let x = &x[..rows * n_in];
    let y = &mut y[..rows * n_out];
    let wt = &mut wt[..n_in * n_out];
    // The transpose costs n_in * n_out moves, a 1/rows share of the multiply-adds; it
    // lets the inner loop run along the output row.
    for (o, w_row) in w.chunks_exact(n_in).enumerate() {
        for (i, &v) in w_row.iter().enumerate() {
            wt[i * n_out + o] = v;
        }
    }
    let mut y_blocks = y.chunks_exact_mut(4 * n_out);
    let mut x_blocks = x.chunks_exact(4 * n_in);
    for (y4, x4) in (&mut y_blocks).zip(&mut x_blocks) {
        let (y0, rest) = y4.split_at_mut(n_out);
        let (y1, rest) = rest.split_at_mut(n_out);
        let (y2, y3) = rest.split_at_mut(n_out);
        y0.copy_from_slice(b);
        y1.copy_from_slice(b);
        y2.copy_from_slice(b);
        y3.copy_from_slice(b);
        for (i, wt_row) in wt.chunks_exact(n_out).enumerate() {
            let (a0, a1, a2, a3) = (x4[i], x4[n_in + i], x4[2 * n_in + i], x4[3 * n_in + i]);
            for ((((v0, v1), v2), v3), &wv) in y0
                .iter_mut()
                .zip(y1.iter_mut())
                .zip(y2.iter_mut())
                .zip(y3.iter_mut())
                .zip(wt_row)
            {
                *v0 += a0 * wv;
                *v1 += a1 * wv;
                *v2 += a2 * wv;
                *v3 += a3 * wv;
            }
        }
    }
    for (y_row, x_row) in y_blocks
        .into_remainder()
        .chunks_exact_mut(n_out)
        .zip(x_blocks.remainder().chunks_exact(n_in))
    {
        y_row.copy_from_slice(b);
        for (&a, wt_row) in x_row.iter().zip(wt.chunks_exact(n_out)) {
            axpy(a, wt_row, y_row);
        }
    }
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
    let x = &x[..rows * n_in];
    let dy = &dy[..rows * n_out];
    dw.fill(0.0);
    db.fill(0.0);
    for dy_row in dy.chunks_exact(n_out) {
        axpy(1.0, dy_row, db);
    }
    // dw[o, :] += dy[r, o] * x[r, :], four examples per pass over dw.
    let mut x_blocks = x.chunks_exact(4 * n_in);
    let mut dy_blocks = dy.chunks_exact(4 * n_out);
    for (x4, dy4) in (&mut x_blocks).zip(&mut dy_blocks) {
        let (x0, rest) = x4.split_at(n_in);
        let (x1, rest) = rest.split_at(n_in);
        let (x2, x3) = rest.split_at(n_in);
        for (o, dw_row) in dw.chunks_exact_mut(n_in).enumerate() {
            let (g0, g1, g2, g3) = (dy4[o], dy4[n_out + o], dy4[2 * n_out + o], dy4[3 * n_out + o]);
            for ((((d, &v0), &v1), &v2), &v3) in dw_row
                .iter_mut()
                .zip(x0.iter())
                .zip(x1.iter())
                .zip(x2.iter())
                .zip(x3.iter())
            {
                *d += g0 * v0 + g1 * v1 + g2 * v2 + g3 * v3;
            }
        }
    }
    for (x_row, dy_row) in x_blocks
        .remainder()
        .chunks_exact(n_in)
        .zip(dy_blocks.remainder().chunks_exact(n_out))
    {
        for (&g, dw_row) in dy_row.iter().zip(dw.chunks_exact_mut(n_in)) {
            axpy(g, x_row, dw_row);
        }
    }
    if let Some(dx) = dx {
        let dx = &mut dx[..rows * n_in];
        dx.fill(0.0);
        for (dx_row, dy_row) in dx.chunks_exact_mut(n_in).zip(dy.chunks_exact(n_out)) {
            for (&g, w_row) in dy_row.iter().zip(w.chunks_exact(n_in)) {
                axpy(g, w_row, dx_row);
            }
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
