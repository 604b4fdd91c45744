//! Analytic gradients against central finite differences, for every layer type and loss.

use engine::tensor::{TensorModel, TensorModelSpec};

/// A small deterministic generator so the cases do not depend on a crate's RNG.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
    fn normalish(&mut self) -> f32 {
        (self.uniform() + self.uniform() + self.uniform() - 1.5) * 2.0
    }
}

#[derive(Clone, Copy)]
enum Targets {
    Real,
    OneHot,
    Probabilities,
}

/// Builds `linear(4→6) → middle → linear(6→3) [→ tail]`, compares every parameter's
/// gradient with `(L(p+h) − L(p−h)) / 2h` and returns the largest relative error.
fn check(middle: &str, tail: &str, loss: &str, targets: Targets, dropout_seed: Option<u64>) {
    let json = format!(
        r#"{{"inputs": [{{"name": "a", "shape": [2]}}, {{"name": "b", "shape": [2]}}],
            "outputs": [{{"name": "out", "shape": [3]}}],
            "layers": [{{"type": "linear", "name": "first", "in": 4, "out": 6}}, {middle}
                       {{"type": "linear", "name": "last", "in": 6, "out": 3}} {tail}],
            "loss": "{loss}"}}"#
    );
    let spec = TensorModelSpec::parse(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    let mut model = TensorModel::init(spec, 11);
    // Non-zero layer-norm affine parameters so their gradients are exercised fully.
    let mut rng = Lcg(5);
    for p in model.params_mut() {
        *p += 0.1 * rng.normalish();
    }
    let rows = 5;
    let inputs: Vec<f32> = (0..rows * 4).map(|_| rng.normalish()).collect();
    let targets: Vec<f32> = (0..rows)
        .flat_map(|r| match targets {
            Targets::Real => (0..3).map(|_| rng.normalish()).collect::<Vec<_>>(),
            Targets::OneHot => (0..3).map(|c| if c == r % 3 { 1.0 } else { 0.0 }).collect(),
            Targets::Probabilities => (0..3).map(|_| rng.uniform()).collect(),
        })
        .collect();
    let (loss, grads) = model
        .loss_and_gradient(&inputs, &targets, rows, dropout_seed)
        .unwrap();
    assert!(loss.is_finite() && loss > 0.0);
    let h = 3e-3f32;
    let names: Vec<_> = model.spec().params().to_vec();
    for info in &names {
        let tensor_grads = &grads[info.offset..info.offset + info.len];
        for (j, &grad) in tensor_grads.iter().enumerate() {
            let k = info.offset + j;
            let original = model.params()[k];
            model.params_mut()[k] = original + h;
            let (up, _) = model
                .loss_and_gradient(&inputs, &targets, rows, dropout_seed)
                .unwrap();
            model.params_mut()[k] = original - h;
            let (down, _) = model
                .loss_and_gradient(&inputs, &targets, rows, dropout_seed)
                .unwrap();
            model.params_mut()[k] = original;
            let numeric = (up - down) / (2.0 * h as f64);
            let analytic = grad as f64;
            let error = (numeric - analytic).abs();
            assert!(
                error <= 1e-3 + 1e-2 * analytic.abs(),
                "{middle} {tail} {loss}: d/d {}[{}]: analytic {analytic}, numeric {numeric}",
                info.name,
                j
            );
        }
    }
}

#[test]
fn linear_and_mse() {
    check("", "", "mse", Targets::Real, None);
}

#[test]
fn relu() {
    check(r#"{"type": "relu"},"#, "", "mse", Targets::Real, None);
}

#[test]
fn gelu() {
    check(r#"{"type": "gelu"},"#, "", "mse", Targets::Real, None);
}

#[test]
fn tanh() {
    check(r#"{"type": "tanh"},"#, "", "mse", Targets::Real, None);
}

#[test]
fn sigmoid() {
    check(r#"{"type": "sigmoid"},"#, "", "mse", Targets::Real, None);
}

#[test]
fn softmax() {
    check(r#"{"type": "softmax"},"#, "", "mse", Targets::Real, None);
}

#[test]
fn layer_norm() {
    check(
        r#"{"type": "layer_norm", "name": "norm", "dim": 6},"#,
        "",
        "mse",
        Targets::Real,
        None,
    );
    check(
        r#"{"type": "layer_norm", "name": "norm", "dim": 6, "eps": 0.1},"#,
        "",
        "mse",
        Targets::Real,
        None,
    );
}

#[test]
fn dropout_with_a_fixed_mask() {
    check(
        r#"{"type": "dropout", "p": 0.4},"#,
        "",
        "mse",
        Targets::Real,
        Some(9),
    );
    // Inference mode is the identity.
    check(
        r#"{"type": "dropout", "p": 0.4},"#,
        "",
        "mse",
        Targets::Real,
        None,
    );
}

#[test]
fn cross_entropy() {
    check(
        r#"{"type": "tanh"},"#,
        "",
        "cross_entropy",
        Targets::OneHot,
        None,
    );
    check(
        r#"{"type": "relu"},"#,
        "",
        "cross_entropy",
        Targets::Probabilities,
        None,
    );
}

#[test]
fn binary_cross_entropy() {
    check(
        r#"{"type": "gelu"},"#,
        r#", {"type": "sigmoid"}"#,
        "binary_cross_entropy",
        Targets::Probabilities,
        None,
    );
    check(
        "",
        r#", {"type": "softmax"}"#,
        "binary_cross_entropy",
        Targets::OneHot,
        None,
    );
}

#[test]
fn dropout_changes_the_loss_only_in_training_mode() {
    let spec = TensorModelSpec::parse(
        r#"{"inputs": [{"name": "x", "shape": [8]}], "outputs": [{"name": "y", "shape": [8]}],
            "layers": [{"type": "dropout", "p": 0.5}, {"type": "linear", "name": "l", "in": 8, "out": 8}],
            "loss": "mse"}"#,
    )
    .unwrap();
    let model = TensorModel::init(spec, 1);
    let x: Vec<f32> = (0..32).map(|i| i as f32 / 10.0).collect();
    let y = vec![0.0; 32];
    let (eval, _) = model.loss_and_gradient(&x, &y, 4, None).unwrap();
    let (train_a, _) = model.loss_and_gradient(&x, &y, 4, Some(1)).unwrap();
    let (train_b, _) = model.loss_and_gradient(&x, &y, 4, Some(1)).unwrap();
    let (train_c, _) = model.loss_and_gradient(&x, &y, 4, Some(2)).unwrap();
    assert_eq!(train_a, train_b);
    assert_ne!(train_a, eval);
    assert_ne!(train_a, train_c);
    let out = model.forward(&x, 4).unwrap();
    let out2 = model.forward(&x, 4).unwrap();
    assert_eq!(out, out2, "inference is deterministic");
}

/// Loss values and gradients of PyTorch itself (`golden/layers.json`, made by
/// `bench/train/make_golden.py`), pinning the semantics that a finite-difference check
/// cannot see: which GELU, biased layer-norm variance, how each loss averages.
#[test]
fn losses_and_gradients_match_pytorch() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/layers.json")).unwrap();
    let cases = [
        ("tanh_cross_entropy", r#"{"type": "tanh"}"#, "cross_entropy"),
        ("relu_cross_entropy", r#"{"type": "relu"}"#, "cross_entropy"),
        (
            "sigmoid_bce",
            r#"{"type": "sigmoid"}"#,
            "binary_cross_entropy",
        ),
        (
            "gelu_layer_norm_softmax_mse",
            r#"{"type": "gelu"}, {"type": "layer_norm", "name": "m1", "dim": 4}, {"type": "softmax"}"#,
            "mse",
        ),
        (
            "dropout_eval_mse",
            r#"{"type": "dropout", "p": 0.5}"#,
            "mse",
        ),
    ];
    for (name, layers, loss) in cases {
        let case = &golden[name];
        let spec = TensorModelSpec::parse(&format!(
            r#"{{"inputs": [{{"name": "x", "shape": [3]}}], "outputs": [{{"name": "y", "shape": [4]}}],
                "layers": [{{"type": "linear", "name": "lin", "in": 3, "out": 4}}, {layers}], "loss": "{loss}"}}"#
        ))
        .unwrap();
        let tensors = spec
            .params()
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    (
                        p.shape.clone(),
                        crate::train::floats(&case["params"][&p.name]),
                    ),
                )
            })
            .collect();
        let model = TensorModel::from_tensors(spec, &tensors).unwrap();
        let x = crate::train::floats(&case["x"]);
        let t = crate::train::floats(&case["t"]);
        let (value, grads) = model.loss_and_gradient(&x, &t, 5, None).unwrap();
        let expected = case["loss"].as_f64().unwrap();
        assert!(
            (value - expected).abs() < 1e-6,
            "{name}: loss {value} vs PyTorch {expected}"
        );
        for info in model.spec().params() {
            let want = crate::train::floats(&case["grads"][&info.name]);
            let got = &grads[info.offset..info.offset + info.len];
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-5,
                    "{name}: grad {}[{i}] {g} vs PyTorch {w}",
                    info.name
                );
            }
        }
    }
}
