//! Spec validation, safetensors round trip and inference input checks.

use engine::tensor::{
    InferInput, LayerSpec, LossKind, ModelError, SpecError, TensorModel, TensorModelSpec,
};

use crate::train::{Reference, SEED_SPEC};

#[test]
fn the_seed_spec_parses() {
    let spec = TensorModelSpec::parse(SEED_SPEC).unwrap();
    assert_eq!(spec.input_width(), 10);
    assert_eq!(spec.output_width(), 10);
    assert_eq!(spec.n_params(), 10 * 20 + 20 + 20 * 10 + 10);
    assert_eq!(spec.loss(), LossKind::Mse);
    let names: Vec<_> = spec
        .params()
        .iter()
        .map(|p| (p.name.as_str(), p.shape.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("layer1.weight", vec![20, 10]),
            ("layer1.bias", vec![20]),
            ("layer2.weight", vec![10, 20]),
            ("layer2.bias", vec![10])
        ]
    );
    assert_eq!(
        spec.layers()[0],
        LayerSpec::Linear {
            name: "layer1".into(),
            in_features: 10,
            out_features: 20
        }
    );
    // The canonical JSON parses back to the same spec.
    assert_eq!(TensorModelSpec::parse(&spec.to_json()).unwrap(), spec);
}

fn spec_with(layers: &str, extra: &str) -> String {
    format!(
        r#"{{"inputs": [{{"name": "x", "shape": [10]}}], "outputs": [{{"name": "y", "shape": [10]}}], "layers": [{layers}], "loss": "mse"{extra}}}"#
    )
}

/// Parses `json` and expects an error whose message contains `message`.
fn refused(json: &str, message: &str) -> SpecError {
    let err = TensorModelSpec::parse(json).expect_err(json);
    assert!(
        err.to_string().contains(message),
        "{json}: got {err:?}, wanted {message:?}"
    );
    err
}

#[test]
fn invalid_specs_are_refused_with_clear_errors() {
    let lin = |name: &str, i: usize, o: usize| {
        format!(r#"{{"type": "linear", "name": "{name}", "in": {i}, "out": {o}}}"#)
    };
    let l1 = lin("a", 10, 10);
    refused(&spec_with(&l1, r#", "extra": 1"#), "unknown field `extra`");
    refused(
        &spec_with(
            r#"{"type": "linear", "name": "a", "in": 10, "out": 10, "bias": false}"#,
            "",
        ),
        "unknown field `bias`",
    );
    refused(
        &spec_with(r#"{"type": "conv2d", "name": "a"}"#, ""),
        "unknown variant `conv2d`",
    );
    refused(&spec_with("", ""), "no layers");
    assert!(matches!(
        refused(
            &spec_with(&format!("{},{}", lin("a", 10, 20), lin("b", 21, 10)), ""),
            "expects width 21 but receives 20"
        ),
        SpecError::WidthMismatch {
            index: 1,
            expected: 21,
            actual: 20,
            ..
        }
    ));
    refused(
        &spec_with(&lin("a", 10, 20), ""),
        "the last layer produces 20 elements but the outputs need 10",
    );
    refused(
        &spec_with(&format!("{},{}", lin("a", 10, 10), lin("a", 10, 10)), ""),
        r#"name "a" is used twice"#,
    );
    refused(&spec_with(&lin("../etc", 10, 10), ""), "is invalid");
    refused(&spec_with(&lin("a.weight", 10, 10), ""), "is invalid");
    refused(&spec_with(&lin("", 10, 10), ""), "is invalid");
    refused(
        &spec_with(&format!(r#"{},{{"type": "dropout", "p": 1.0}}"#, l1), ""),
        "p = 1 must be in [0, 1)",
    );
    refused(
        &spec_with(
            &format!(
                r#"{},{{"type": "layer_norm", "name": "n", "dim": 10, "eps": -1}}"#,
                l1
            ),
            "",
        ),
        "eps",
    );
    refused(
        &spec_with(
            &format!(r#"{},{{"type": "layer_norm", "name": "n", "dim": 9}}"#, l1),
            "",
        ),
        "expects width 9",
    );
    // A hostile spec cannot make us allocate gigabytes.
    refused(
        &spec_with(
            &format!(
                "{},{},{}",
                lin("a", 10, 65536),
                lin("b", 65536, 65536),
                lin("c", 65536, 10)
            ),
            "",
        ),
        "more than 33554432 parameters",
    );
    refused(&spec_with(&lin("a", 10, 1 << 40), ""), "must be 1..=65536");
    refused(
        r#"{"inputs": [{"name": "x", "shape": [65536, 65536]}], "outputs": [{"name": "y", "shape": [1]}], "layers": [{"type": "relu"}], "loss": "mse"}"#,
        "has shape",
    );
    refused(
        r#"{"inputs": [{"name": "x", "shape": [10]}], "outputs": [{"name": "x", "shape": [10]}], "layers": [{"type": "relu"}], "loss": "mse"}"#,
        "used twice",
    );
    refused(
        r#"{"inputs": [{"name": "x", "shape": [2]}], "outputs": [{"name": "y", "shape": [2]}], "layers": [{"type": "relu"}], "loss": "binary_cross_entropy"}"#,
        "end the layers with sigmoid or softmax",
    );
    refused(
        r#"{"inputs": [], "outputs": [{"name": "y", "shape": [2]}], "layers": [{"type": "relu"}], "loss": "mse"}"#,
        "at least one input",
    );
    refused("not json", "invalid spec JSON");
    refused(
        &spec_with(&format!(r#"{l1}, {{"type": "relu", "inplace": true}}"#), ""),
        "unknown field",
    );
    // Every layer type and loss parses.
    let all = r#"{"inputs": [{"name": "a", "shape": [2, 2]}, {"name": "b", "shape": [1]}],
        "outputs": [{"name": "p", "shape": [3]}],
        "layers": [{"type": "linear", "name": "l1", "in": 5, "out": 8}, {"type": "relu"}, {"type": "gelu"},
                   {"type": "tanh"}, {"type": "dropout", "p": 0.1}, {"type": "layer_norm", "name": "n", "dim": 8},
                   {"type": "linear", "name": "l2", "in": 8, "out": 3}, {"type": "sigmoid"}, {"type": "softmax"}],
        "loss": "binary_cross_entropy"}"#;
    let spec = TensorModelSpec::parse(all).unwrap();
    assert_eq!(spec.input_width(), 5);
    assert!(TensorModelSpec::parse(&all.replace("binary_cross_entropy", "cross_entropy")).is_ok());
}

#[test]
fn safetensors_round_trip() {
    let reference = Reference::load();
    let model = reference.initial_model();
    let bytes = model.to_safetensors().unwrap();
    let loaded = TensorModel::from_safetensors(Reference::spec(), &bytes).unwrap();
    assert_eq!(loaded.params(), model.params());
    assert_eq!(loaded.to_safetensors().unwrap(), bytes);
    // PyTorch names and shapes are what is stored.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(
        names,
        [
            "layer1.bias",
            "layer1.weight",
            "layer2.bias",
            "layer2.weight"
        ]
    );
    assert_eq!(file.tensor("layer1.weight").unwrap().shape(), [20, 10]);
    let first = f32::from_le_bytes(
        file.tensor("layer1.weight").unwrap().data()[..4]
            .try_into()
            .unwrap(),
    );
    assert_eq!(
        first,
        crate::train::floats(&reference.json["initial_weights"]["layer1.weight"]["data"])[0]
    );

    // A file for another spec is refused with the tensor named.
    let other = TensorModelSpec::parse(
        &SEED_SPEC
            .replace(r#""out": 20"#, r#""out": 21"#)
            .replace(r#""in": 20"#, r#""in": 21"#),
    )
    .unwrap();
    let err = TensorModel::from_safetensors(other, &bytes).unwrap_err();
    assert!(
        matches!(&err, ModelError::TensorShape { name, .. } if name == "layer1.weight"),
        "{err}"
    );
    assert!(TensorModel::from_safetensors(Reference::spec(), b"garbage").is_err());
}

#[test]
fn forward_matches_a_hand_computation() {
    let model = Reference::load().initial_model();
    let x: Vec<f32> = (0..30).map(|i| (i as f32 - 15.0) / 7.0).collect();
    let out = model.forward(&x, 3).unwrap();
    let (w1, b1) = (
        model.param("layer1.weight").unwrap(),
        model.param("layer1.bias").unwrap(),
    );
    let (w2, b2) = (
        model.param("layer2.weight").unwrap(),
        model.param("layer2.bias").unwrap(),
    );
    for r in 0..3 {
        let xr = &x[r * 10..(r + 1) * 10];
        let h: Vec<f64> = (0..20)
            .map(|o| {
                b1[o] as f64
                    + (0..10)
                        .map(|i| w1[o * 10 + i] as f64 * xr[i] as f64)
                        .sum::<f64>()
            })
            .collect();
        for o in 0..10 {
            let y = b2[o] as f64 + (0..20).map(|i| w2[o * 20 + i] as f64 * h[i]).sum::<f64>();
            assert!((out[r * 10 + o] as f64 - y).abs() < 1e-5, "row {r} out {o}");
        }
    }
    // The workspace path gives the same numbers and can be reused across batch sizes.
    let mut ws = model.workspace();
    assert_eq!(model.forward_into(&mut ws, &x, 3).unwrap(), &out[..]);
    assert_eq!(
        model.forward_into(&mut ws, &x[..10], 1).unwrap(),
        &out[..10]
    );
    assert_eq!(model.forward_into(&mut ws, &x, 3).unwrap(), &out[..]);
}

#[test]
fn a_workspace_can_move_between_models() {
    let narrow = Reference::load().initial_model();
    let wide_spec = SEED_SPEC
        .replace(r#""out": 20"#, r#""out": 64"#)
        .replace(r#""in": 20"#, r#""in": 64"#);
    let wide = TensorModel::init(TensorModelSpec::parse(&wide_spec).unwrap(), 3);
    let x: Vec<f32> = (0..40).map(|i| i as f32 / 40.0).collect();
    let mut ws = narrow.workspace();
    narrow.forward_into(&mut ws, &x, 4).unwrap();
    // Same number of layers, wider buffers: the workspace must be re-laid, not reused.
    assert_eq!(
        wide.forward_into(&mut ws, &x, 4).unwrap(),
        &wide.forward(&x, 4).unwrap()[..]
    );
    assert_eq!(
        narrow.forward_into(&mut ws, &x[..20], 2).unwrap(),
        &narrow.forward(&x[..20], 2).unwrap()[..]
    );
}

#[test]
fn infer_checks_names_shapes_and_counts() {
    let spec = TensorModelSpec::parse(
        r#"{"inputs": [{"name": "a", "shape": [2]}, {"name": "b", "shape": [1, 2]}],
            "outputs": [{"name": "p", "shape": [1]}, {"name": "q", "shape": [2]}],
            "layers": [{"type": "linear", "name": "l", "in": 4, "out": 3}], "loss": "mse"}"#,
    )
    .unwrap();
    let model = TensorModel::init(spec, 0);
    let a = [1.0, 2.0, 3.0, 4.0];
    let b = [5.0, 6.0, 7.0, 8.0];
    let ok = model
        .infer(&[
            InferInput {
                name: "b",
                shape: &[2, 1, 2],
                data: &b,
            },
            InferInput {
                name: "a",
                shape: &[2, 2],
                data: &a,
            },
        ])
        .unwrap();
    let flat = model
        .forward(&[1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0], 2)
        .unwrap();
    assert_eq!(ok[0].name, "p");
    assert_eq!(ok[0].shape, [2, 1]);
    assert_eq!(ok[0].data, [flat[0], flat[3]]);
    assert_eq!(ok[1].shape, [2, 2]);
    assert_eq!(ok[1].data, [flat[1], flat[2], flat[4], flat[5]]);
    let mut ws = model.workspace();
    let inputs = [
        InferInput {
            name: "a",
            shape: &[2, 2],
            data: &a,
        },
        InferInput {
            name: "b",
            shape: &[2, 1, 2],
            data: &b,
        },
    ];
    assert_eq!(model.infer_with(&mut ws, &inputs).unwrap(), ok);
    assert_eq!(model.infer_with(&mut ws, &inputs).unwrap(), ok);

    let err = |inputs: &[InferInput<'_>]| model.infer(inputs).unwrap_err().to_string();
    let a_ok = InferInput {
        name: "a",
        shape: &[2, 2],
        data: &a,
    };
    assert_eq!(err(&[a_ok]), r#"missing input "b""#);
    assert!(err(&[
        a_ok,
        InferInput {
            name: "c",
            shape: &[2, 2],
            data: &a
        }
    ])
    .contains(r#"unknown input "c""#));
    assert_eq!(
        err(&[
            a_ok,
            InferInput {
                name: "b",
                shape: &[2, 2],
                data: &b
            }
        ]),
        r#"input "b" has shape [2, 2], expected [batch, 1, 2]"#
    );
    assert_eq!(
        err(&[
            a_ok,
            InferInput {
                name: "b",
                shape: &[2, 1, 2],
                data: &b[..3]
            }
        ]),
        r#"input "b" has 3 values but its shape [2, 1, 2] needs 4"#
    );
    assert!(err(&[
        a_ok,
        InferInput {
            name: "b",
            shape: &[1, 1, 2],
            data: &b[..2]
        }
    ])
    .contains("batch size 1"));
    assert!(err(&[
        a_ok,
        InferInput {
            name: "b",
            shape: &[2, 1, 2],
            data: &[1.0, f32::NAN, 0.0, 0.0]
        }
    ])
    .contains("non-finite"));
    assert!(err(&[
        a_ok,
        a_ok,
        InferInput {
            name: "b",
            shape: &[2, 1, 2],
            data: &b
        }
    ])
    .contains("given twice"));
    assert!(model
        .forward(&a[..3], 1)
        .unwrap_err()
        .to_string()
        .contains("expected 4 input values"));
    assert!(model.forward(&[], 0).is_err());
}
