//! JSONL and CSV datasets: parsing and the errors that name row and column.

use engine::tensor::{
    csv_subject_rows, csv_without_subject, CsvColumns, Dataset, DatasetError, DatasetLimits,
    TensorModelSpec, ValidSpec,
};

fn spec(loss: &str, last: &str) -> ValidSpec {
    TensorModelSpec::parse(&format!(
        r#"{{"inputs": [{{"name": "x", "shape": [3]}}], "outputs": [{{"name": "y", "shape": [2]}}],
            "layers": [{{"type": "linear", "name": "l", "in": 3, "out": 2}}{last}], "loss": "{loss}"}}"#
    ))
    .unwrap()
}

fn jsonl(text: &str) -> Result<Dataset, DatasetError> {
    Dataset::from_jsonl(&spec("mse", ""), text.as_bytes(), DatasetLimits::default())
}

fn csv(text: &str) -> Result<Dataset, DatasetError> {
    let columns = CsvColumns {
        features: vec!["a".into(), "b".into(), "c".into()],
        targets: vec!["t1".into(), "t2".into()],
    };
    Dataset::from_csv(
        &spec("mse", ""),
        text.as_bytes(),
        &columns,
        DatasetLimits::default(),
    )
}

/// Expects `result` to fail with a message containing `message`.
fn check_err(result: Result<Dataset, DatasetError>, message: &str) {
    let err = result.expect_err(message).to_string();
    assert!(err.contains(message), "got {err:?}, wanted {message:?}");
}

#[test]
fn jsonl_rows_may_name_their_data_subject() {
    let data = jsonl(
        "{\"x\": [1, 2, 3], \"y\": [0, 1], \"subject\": \"user-7\"}\n{\"x\": [4, 5, 6], \"y\": [1, 0]}\n",
    )
    .unwrap();
    assert_eq!(data.n_rows(), 2);
    assert_eq!(data.inputs(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

/// A CSV `subject` column is skipped by training, may not be a feature or target, and
/// erasure drops the rows that name the subject, keeping the rest byte for byte.
#[test]
fn csv_rows_may_name_their_data_subject() {
    let text = "\u{feff}a,b,subject,c,t1,t2\r\n1,2,user-7,3,0,1\r\n\r\n4,5,\"user-8\",6,1,0\r\n7,8,,9,0,0\r\n10,11, user-7 ,12,1,1";
    let data = csv(text).unwrap();
    assert_eq!(data.n_rows(), 4);
    assert_eq!(data.input_row(1), [4.0, 5.0, 6.0]);
    let as_target = CsvColumns {
        features: vec!["a".into(), "b".into(), "c".into()],
        targets: vec!["t1".into(), "subject".into()],
    };
    let spec = spec("mse", "");
    check_err(
        Dataset::from_csv(&spec, text.as_bytes(), &as_target, DatasetLimits::default()),
        "targets cannot list \"subject\"",
    );
    assert_eq!(csv_subject_rows(text.as_bytes()).unwrap(), 3);
    let with_subject = CsvColumns {
        features: vec!["a".into(), "b".into(), "c".into()],
        targets: vec!["t1".into(), "t2".into()],
    };
    let parsed = Dataset::from_csv(
        &spec,
        text.as_bytes(),
        &with_subject,
        DatasetLimits::default(),
    );
    assert_eq!(
        parsed.unwrap().subject_rows(),
        3,
        "counted while parsing, too"
    );
    let (kept, removed) = csv_without_subject(text.as_bytes(), "user-7").unwrap();
    assert_eq!(removed, 2);
    let kept = String::from_utf8(kept).unwrap();
    assert_eq!(
        kept,
        "\u{feff}a,b,subject,c,t1,t2\r\n\r\n4,5,\"user-8\",6,1,0\r\n7,8,,9,0,0\r\n"
    );
    assert_eq!(csv(&kept).unwrap().n_rows(), 2);
    let (same, removed) = csv_without_subject(text.as_bytes(), "user-9").unwrap();
    assert_eq!((same.as_slice(), removed), (text.as_bytes(), 0));
    // Without the column nothing is a subject's.
    let plain = "a,b,c,t1,t2\n1,2,3,0,1\n";
    assert_eq!(csv_subject_rows(plain.as_bytes()).unwrap(), 0);
    assert_eq!(csv(plain).unwrap().subject_rows(), 0);
    assert_eq!(csv_without_subject(plain.as_bytes(), "").unwrap().1, 0);
}

#[test]
fn jsonl_parses() {
    let data = jsonl(
        "{\"x\": [1, 2, 3], \"y\": [0.5, -1]}\n\n{\"y\": [1e-3, 2], \"x\": [[4], [5], [6]]}\n",
    )
    .unwrap();
    assert_eq!(data.n_rows(), 2);
    assert_eq!(data.inputs(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(data.targets(), [0.5, -1.0, 1e-3, 2.0]);
    assert_eq!(data.input_row(1), [4.0, 5.0, 6.0]);
}

#[test]
fn jsonl_errors_name_row_and_column() {
    check_err(jsonl(""), "empty");
    check_err(jsonl("\n  \n"), "empty");
    check_err(
        jsonl("{\"x\": [1, 2, 3], \"y\": [1, 2]}\n{\"x\": [1, 2], \"y\": [1, 2]}"),
        r#"row 2, column "x": expected 3 numbers, found 2"#,
    );
    check_err(
        jsonl("{\"x\": [1, 2, 3, 4], \"y\": [1, 2]}"),
        r#"row 1, column "x": expected 3 numbers, found 4"#,
    );
    check_err(jsonl("{\"x\": [1, 2, 3]}"), r#"row 1: missing key "y""#);
    check_err(
        jsonl("{\"x\": [1, 2, 3], \"y\": [1, 2], \"z\": 1}"),
        r#"row 1: unknown key "z""#,
    );
    check_err(
        jsonl("{\"x\": [1, \"two\", 3], \"y\": [1, 2]}"),
        r#"row 1, column "x": "two" is not a number"#,
    );
    check_err(
        jsonl("{\"x\": [1, null, 3], \"y\": [1, 2]}"),
        r#"column "x": null is not a number"#,
    );
    check_err(
        jsonl("{\"x\": [1, 2, 3], \"y\": [1, 1e39]}"),
        r#"row 1, column "y": 1e+39 is not finite in f32"#,
    );
    check_err(
        jsonl("{\"x\": [1, 2, 3], \"y\": [1, 2]}\n{\"x\": [NaN, 2, 3], \"y\": [1, 2]}"),
        "row 2: invalid JSON",
    );
    check_err(jsonl("[1, 2]"), "row 1: expected a JSON object");
    let limits = DatasetLimits {
        max_rows: 2,
        max_values: 100,
    };
    let three = "{\"x\": [1, 2, 3], \"y\": [1, 2]}\n".repeat(3);
    check_err(
        Dataset::from_jsonl(&spec("mse", ""), three.as_bytes(), limits),
        "more than 2 rows",
    );
    let limits = DatasetLimits {
        max_rows: 100,
        max_values: 12,
    };
    check_err(
        Dataset::from_jsonl(&spec("mse", ""), three.as_bytes(), limits),
        "more than 12 values",
    );
    check_err(
        Dataset::from_jsonl(&spec("mse", ""), &[0xff, 0xfe], DatasetLimits::default()),
        "not UTF-8",
    );
}

#[test]
fn targets_are_checked_against_the_loss() {
    let bce = spec("binary_cross_entropy", r#", {"type": "sigmoid"}"#);
    let ok = Dataset::from_jsonl(
        &bce,
        b"{\"x\": [1, 2, 3], \"y\": [0, 1]}",
        DatasetLimits::default(),
    );
    assert!(ok.is_ok());
    check_err(
        Dataset::from_jsonl(
            &bce,
            b"{\"x\": [1, 2, 3], \"y\": [0, 1]}\n{\"x\": [1, 2, 3], \"y\": [0, 2]}",
            DatasetLimits::default(),
        ),
        r#"row 2, column "y": target 2 outside [0, 1]"#,
    );
    let ce = spec("cross_entropy", "");
    check_err(
        Dataset::from_jsonl(
            &ce,
            b"{\"x\": [1, 2, 3], \"y\": [-1, 1]}",
            DatasetLimits::default(),
        ),
        "must be >= 0",
    );
    check_err(
        Dataset::from_dense(&ce, vec![1.0, 2.0, f32::NAN], vec![0.0, 1.0]),
        r#"row 1, column "x""#,
    );
    check_err(
        Dataset::from_dense(&ce, vec![1.0, 2.0], vec![0.0, 1.0]),
        "expected 0 rows",
    );
    // Class indices are one-hot encoded for cross entropy.
    let two_rows = b"{\"x\": [1, 2, 3], \"y\": 1}\n{\"x\": [1, 2, 3], \"y\": 0}";
    let data = Dataset::from_jsonl(&ce, two_rows, DatasetLimits::default()).unwrap();
    assert_eq!(data.targets(), [0.0, 1.0, 1.0, 0.0]);
    check_err(
        Dataset::from_jsonl(
            &ce,
            b"{\"x\": [1, 2, 3], \"y\": 2}",
            DatasetLimits::default(),
        ),
        r#"row 1, column "y": class 2 is not an index below 2"#,
    );
    check_err(
        Dataset::from_jsonl(
            &ce,
            b"{\"x\": [1, 2, 3], \"y\": 0.5}",
            DatasetLimits::default(),
        ),
        "class 0.5 is not an index",
    );
}

#[test]
fn csv_parses() {
    let data =
        csv("id,a,b,c,t1,t2,note\r\n7,1,2,3,0.5,-1,\"hello, \"\"world\"\"\"\n8, 4 ,5,6,1e-3,2,x\n")
            .unwrap();
    assert_eq!(data.n_rows(), 2);
    assert_eq!(data.inputs(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(data.targets(), [0.5, -1.0, 1e-3, 2.0]);
    // Columns may come in any order in the file; the lists give the order.
    let data = csv("t2,c,b,a,t1\n1,3,2,1,0\n").unwrap();
    assert_eq!(data.inputs(), [1.0, 2.0, 3.0]);
    assert_eq!(data.targets(), [0.0, 1.0]);
}

#[test]
fn csv_errors_name_row_and_column() {
    check_err(csv(""), "empty");
    check_err(csv("a,b,c,t1,t2\n"), "empty");
    check_err(csv("a,b,c,t1\n1,2,3,4\n"), r#"lacks column "t2""#);
    check_err(csv("a,b,c,t1,t2,a\n"), r#"column "a" twice"#);
    check_err(
        csv("a,b,c,t1,t2\n1,2,3,4,5\n1,2,3,4\n"),
        "row 2 (line 3): 4 fields, the header has 5",
    );
    check_err(
        csv("a,b,c,t1,t2\n1,2,x,4,5\n"),
        r#"row 1, column "c": "x" is not a number"#,
    );
    check_err(
        csv("a,b,c,t1,t2\n1,2,3,4,NaN\n"),
        r#"row 1, column "t2": "NaN" is not finite"#,
    );
    check_err(
        csv("a,b,c,t1,t2\n1,2,3,4,inf\n"),
        r#"row 1, column "t2": "inf" is not finite"#,
    );
    check_err(
        csv("a,b,c,t1,t2\n1,2,3,4,\n"),
        r#"row 1, column "t2": "" is not a number"#,
    );
    check_err(
        csv("a,b,c,t1,t2\n1,2,3,4,\"5\n"),
        "line 2: unterminated quoted field",
    );
    check_err(
        csv("a,b,c,t1,t2\n1,2,3,4,\"5\"x\n"),
        "unexpected character after a closing quote",
    );
    let columns = CsvColumns {
        features: vec!["a".into()],
        targets: vec!["t1".into(), "t2".into()],
    };
    check_err(
        Dataset::from_csv(
            &spec("mse", ""),
            b"a,t1,t2\n1,2,3\n",
            &columns,
            DatasetLimits::default(),
        ),
        "features lists 1 columns, the spec needs 3",
    );
}
