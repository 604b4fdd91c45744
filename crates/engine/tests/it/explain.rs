//! Integrated gradients: completeness on nets with every kind of layer, exactness on a
//! linear model, and refusals of bad requests.

use engine::tensor::explain::MAX_STEPS;
use engine::tensor::{ExplainError, TensorModel, TensorModelSpec};

fn model(middle: &str, seed: u64) -> TensorModel {
    let json = format!(
        r#"{{"inputs": [{{"name": "a", "shape": [3]}}, {{"name": "b", "shape": [2]}}],
            "outputs": [{{"name": "y", "shape": [4]}}],
            "layers": [{{"type": "linear", "name": "first", "in": 5, "out": 8}}, {middle}
                       {{"type": "linear", "name": "last", "in": 8, "out": 4}}],
            "loss": "mse"}}"#
    );
    TensorModel::init(TensorModelSpec::parse(&json).unwrap(), seed)
}

/// Deterministic inputs away from zero, so the output moves between baseline and input.
fn point(seed: u32) -> Vec<f32> {
    (0..5)
        .map(|i| ((seed * 7 + i * 13) % 17) as f32 / 4.0 - 2.0)
        .collect()
}

#[test]
fn attributions_sum_to_the_output_difference_within_one_percent() {
    let middles = [
        "",
        r#"{"type": "relu"},"#,
        r#"{"type": "gelu"},"#,
        r#"{"type": "tanh"},"#,
        r#"{"type": "sigmoid"},"#,
        r#"{"type": "layer_norm", "name": "norm", "dim": 8}, {"type": "relu"},"#,
        r#"{"type": "softmax"},"#,
        r#"{"type": "dropout", "p": 0.5}, {"type": "tanh"},"#,
    ];
    let mut checked = 0;
    for (case, middle) in middles.iter().enumerate() {
        let model = model(middle, case as u64 + 1);
        for (target, seed) in [(0, 3), (2, 8), (3, 11)] {
            let input = point(seed);
            let baseline = vec![0.0; 5];
            let result = model
                .integrated_gradients(&input, &baseline, target, 64)
                .unwrap();
            let difference = f64::from(result.value) - f64::from(result.baseline_value);
            // Outputs that barely move make a relative error meaningless.
            if difference.abs() < 1e-3 {
                continue;
            }
            let relative = result.completeness_gap().abs() / difference.abs();
            assert!(
                relative <= 0.01,
                "{middle} target {target}: attributions sum off by {relative:.4} of f(x)-f(b) = {difference}"
            );
            assert!(result.steps >= 64 && result.steps <= MAX_STEPS);
            // f(x) is what plain inference says.
            assert_eq!(result.value, model.forward(&input, 1).unwrap()[target]);
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} cases moved the output");
}

#[test]
fn a_linear_model_attributes_weight_times_displacement() {
    let model = model("", 4);
    // Two linear layers compose to one: attribution_i = (W2 W1)[t, i] (x_i - b_i).
    let w1 = model.param("first.weight").unwrap(); // [8, 5]
    let w2 = model.param("last.weight").unwrap(); // [4, 8]
    let (input, baseline) = (point(5), point(9));
    let target = 1;
    let result = model
        .integrated_gradients(&input, &baseline, target, 1)
        .unwrap();
    for i in 0..5 {
        let slope: f32 = (0..8).map(|h| w2[target * 8 + h] * w1[h * 5 + i]).sum();
        let want = slope * (input[i] - baseline[i]);
        assert!(
            (result.attributions[i] - want).abs() <= 1e-5,
            "feature {i}: {} vs {want}",
            result.attributions[i]
        );
    }
}

#[test]
fn bad_requests_are_typed_errors() {
    let model = model(r#"{"type": "relu"},"#, 2);
    let (x, b) = (point(1), vec![0.0; 5]);
    assert!(matches!(
        model.integrated_gradients(&x, &b, 4, 16),
        Err(ExplainError::OutputIndex { index: 4, width: 4 })
    ));
    assert!(matches!(
        model.integrated_gradients(&x, &b, 0, 0),
        Err(ExplainError::Steps(0))
    ));
    assert!(matches!(
        model.integrated_gradients_fixed(&x, &b, 0, MAX_STEPS + 1),
        Err(ExplainError::Steps(_))
    ));
    assert!(matches!(
        model.integrated_gradients(&x, &b[..4], 0, 16),
        Err(ExplainError::BaselineLen {
            expected: 5,
            actual: 4
        })
    ));
    let mut nan = x.clone();
    nan[2] = f32::NAN;
    assert!(matches!(
        model.integrated_gradients(&nan, &b, 0, 16),
        Err(ExplainError::NonFinite {
            what: "input",
            index: 2
        })
    ));
    assert!(model.integrated_gradients(&x[..4], &b[..4], 0, 16).is_err());
}
