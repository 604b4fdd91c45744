//! Detection quality on the labelled corpus (`tests/data/pii_corpus.jsonl`): per-type
//! precision and recall with exact span matching, against the thresholds of issue 5.

use std::collections::{BTreeMap, BTreeSet};

use governance::pii::{detect, EntityKind};

const CORPUS: &str = include_str!("../../data/pii_corpus.jsonl");
const MIN_RECALL: f64 = 0.98;
const MIN_PRECISION: f64 = 0.97;

#[derive(serde::Deserialize)]
struct Row {
    text: String,
    entities: Vec<Expected>,
}

#[derive(serde::Deserialize)]
struct Expected {
    #[serde(rename = "type")]
    kind: EntityKind,
    value: String,
}

#[derive(Default)]
struct Counts {
    expected: usize,
    predicted: usize,
    true_positive: usize,
}

impl Counts {
    fn recall(&self) -> f64 {
        ratio(self.true_positive, self.expected)
    }

    fn precision(&self) -> f64 {
        ratio(self.true_positive, self.predicted)
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Spans of the expected values, found left to right so repeated values line up.
fn expected_spans(row: &Row) -> BTreeSet<(EntityKind, usize, usize)> {
    let mut spans = BTreeSet::new();
    let mut from = 0;
    for expected in &row.entities {
        let start = from
            + row.text[from..]
                .find(&expected.value)
                .unwrap_or_else(|| panic!("corpus value {:?} not in its text", expected.value));
        let end = start + expected.value.len();
        spans.insert((expected.kind, start, end));
        from = end;
    }
    spans
}

#[test]
fn corpus_precision_and_recall() {
    let mut counts: BTreeMap<EntityKind, Counts> = EntityKind::ALL
        .into_iter()
        .map(|kind| (kind, Counts::default()))
        .collect();
    let mut mistakes = Vec::new();
    let mut n_rows = 0;
    for line in CORPUS.lines().filter(|line| !line.trim().is_empty()) {
        n_rows += 1;
        let row: Row = serde_json::from_str(line).expect("corpus line is valid JSON");
        let expected = expected_spans(&row);
        let predicted: BTreeSet<(EntityKind, usize, usize)> = detect(&row.text)
            .expect("corpus rows are under the size limit")
            .into_iter()
            .map(|entity| (entity.kind, entity.start, entity.end))
            .collect();
        for &(kind, start, end) in &expected {
            let count = counts.entry(kind).or_default();
            count.expected += 1;
            if predicted.contains(&(kind, start, end)) {
                count.true_positive += 1;
            } else {
                mistakes.push(format!(
                    "missed {kind} {:?} in {:?}",
                    &row.text[start..end],
                    row.text
                ));
            }
        }
        for &(kind, start, end) in &predicted {
            counts.entry(kind).or_default().predicted += 1;
            if !expected.contains(&(kind, start, end)) {
                mistakes.push(format!(
                    "spurious {kind} {:?} in {:?}",
                    &row.text[start..end],
                    row.text
                ));
            }
        }
    }
    println!("corpus: {n_rows} rows");
    println!("| type | expected | predicted | correct | precision | recall |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (kind, count) in &counts {
        println!(
            "| {kind} | {} | {} | {} | {:.3} | {:.3} |",
            count.expected,
            count.predicted,
            count.true_positive,
            count.precision(),
            count.recall()
        );
    }
    for mistake in &mistakes {
        println!("{mistake}");
    }
    assert!(n_rows >= 500, "corpus has only {n_rows} rows");
    for (kind, count) in &counts {
        assert!(count.expected > 0, "no positives for {kind} in the corpus");
        assert!(
            count.recall() >= MIN_RECALL,
            "{kind}: recall {:.3} < {MIN_RECALL}",
            count.recall()
        );
        assert!(
            count.precision() >= MIN_PRECISION,
            "{kind}: precision {:.3} < {MIN_PRECISION}",
            count.precision()
        );
    }
}
