//! Training data for a tensor model: JSONL and CSV parsed into dense f32 matrices.
//!
//! Every value is checked on the way in (numeric, finite in f32, right width, targets in
//! the range the loss needs) and every error names the 1-based row and the column, so a
//! user can fix a file without guessing. Sizes are bounded by [`DatasetLimits`].

use serde_json::Value;

mod csv;

use csv::CsvRecords;

use super::spec::{IoSpec, LossKind, ValidSpec};

/// The JSONL key, and the CSV header column, that names a row's data subject (a string
/// id). It is never a feature or target: training skips it, and erasing the subject
/// removes the rows that carry it.
pub const SUBJECT_KEY: &str = "subject";

/// Bounds on what a dataset may occupy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetLimits {
    pub max_rows: usize,
    /// Most f32 values (inputs plus targets) in memory.
    pub max_values: usize,
}

impl Default for DatasetLimits {
    fn default() -> Self {
        DatasetLimits {
            max_rows: 10_000_000,
            max_values: 1 << 26,
        }
    }
}

/// Which CSV columns hold the features (in the order of the spec's inputs, flattened)
/// and which hold the targets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvColumns {
    pub features: Vec<String>,
    pub targets: Vec<String>,
}

/// Why a dataset was refused. Rows are 1-based; for CSV, row 1 is the first data row
/// after the header and `line` is the line in the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    #[error("the dataset is empty")]
    Empty,
    #[error("the dataset is not UTF-8 text (byte {offset})")]
    NotUtf8 { offset: usize },
    #[error("row {row}: invalid JSON: {message}")]
    Json { row: usize, message: String },
    #[error("row {row}: expected a JSON object")]
    NotAnObject { row: usize },
    #[error("row {row}: missing key {key:?}")]
    MissingKey { row: usize, key: String },
    #[error("row {row}: unknown key {key:?}; expected {expected:?}")]
    UnknownKey {
        row: usize,
        key: String,
        expected: Vec<String>,
    },
    #[error("row {row}, column {column:?}: expected {expected} numbers, found {actual}")]
    Width {
        row: usize,
        column: String,
        expected: usize,
        actual: usize,
    },
    #[error("row {row}, column {column:?}: {value} is not a number")]
    NotNumeric {
        row: usize,
        column: String,
        value: String,
    },
    #[error("row {row}, column {column:?}: {value} is not finite in f32")]
    NonFinite {
        row: usize,
        column: String,
        value: String,
    },
    #[error("row {row}, column {column:?}: target {value} outside [0, 1], needed by binary_cross_entropy")]
    TargetOutOfRange {
        row: usize,
        column: String,
        value: f32,
    },
    #[error("row {row}, column {column:?}: cross_entropy targets must be >= 0, found {value}")]
    NegativeTarget {
        row: usize,
        column: String,
        value: f32,
    },
    #[error("row {row}, column {column:?}: class {value} is not an index below {classes}")]
    ClassIndex {
        row: usize,
        column: String,
        value: String,
        classes: usize,
    },
    #[error("row {row} (line {line}): {actual} fields, the header has {expected}")]
    Ragged {
        row: usize,
        line: usize,
        expected: usize,
        actual: usize,
    },
    #[error("line {line}: unterminated quoted field")]
    UnterminatedQuote { line: usize },
    #[error("line {line}: unexpected character after a closing quote")]
    BadQuote { line: usize },
    #[error("CSV header lacks column {column:?}")]
    MissingColumn { column: String },
    #[error("CSV header has column {column:?} twice")]
    DuplicateColumn { column: String },
    #[error("{what} cannot list {SUBJECT_KEY:?}: that column names a row's data subject")]
    SubjectColumn { what: &'static str },
    #[error("{what} lists {actual} columns, the spec needs {expected}")]
    ColumnCount {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("the dataset has more than {limit} rows")]
    TooManyRows { limit: usize },
    #[error("the dataset has more than {limit} values")]
    TooManyValues { limit: usize },
    #[error("inputs have {inputs} values and targets {targets}; expected {rows} rows of {input_width} and {output_width}")]
    FlatLen {
        rows: usize,
        input_width: usize,
        output_width: usize,
        inputs: usize,
        targets: usize,
    },
}

/// Dense examples: `inputs` is `[n_rows, input_width]`, `targets` `[n_rows, output_width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    n_rows: usize,
    input_width: usize,
    output_width: usize,
    inputs: Vec<f32>,
    targets: Vec<f32>,
    /// Rows that name their data subject (CSV only; see [`Dataset::subject_rows`]).
    subject_rows: usize,
}

impl Dataset {
    /// Wraps dense buffers, checking their lengths, finiteness and target ranges.
    pub fn from_dense(
        spec: &ValidSpec,
        inputs: Vec<f32>,
        targets: Vec<f32>,
    ) -> Result<Dataset, DatasetError> {
        let (iw, ow) = (spec.input_width(), spec.output_width());
        let rows = inputs.len() / iw;
        if inputs.len() != rows * iw || targets.len() != rows * ow {
            return Err(DatasetError::FlatLen {
                rows,
                input_width: iw,
                output_width: ow,
                inputs: inputs.len(),
                targets: targets.len(),
            });
        }
        if rows == 0 {
            return Err(DatasetError::Empty);
        }
        for (r, (xr, yr)) in inputs
            .chunks_exact(iw)
            .zip(targets.chunks_exact(ow))
            .enumerate()
        {
            for (io, slice) in split_by_io(spec.inputs(), xr) {
                check_values(r + 1, &io.name, slice, None)?;
            }
            for (io, slice) in split_by_io(spec.outputs(), yr) {
                check_values(r + 1, &io.name, slice, Some(spec.loss()))?;
            }
        }
        Ok(Dataset {
            n_rows: rows,
            input_width: iw,
            output_width: ow,
            inputs,
            targets,
            subject_rows: 0,
        })
    }

    /// Parses JSON Lines: one object per row keyed by the spec's input and output names,
    /// each value an array of numbers (nested arrays are flattened) or a number for a
    /// one-element shape. With `cross_entropy`, a target may also be a class index, read
    /// as a one-hot row. Blank lines are skipped but still counted as rows. A
    /// [`SUBJECT_KEY`] is ignored.
    pub fn from_jsonl(
        spec: &ValidSpec,
        bytes: &[u8],
        limits: DatasetLimits,
    ) -> Result<Dataset, DatasetError> {
        let text = as_text(bytes)?;
        let mut builder = Builder::new(spec, limits);
        let expected_keys: Vec<String> = spec
            .inputs()
            .iter()
            .chain(spec.outputs())
            .map(|io| io.name.clone())
            .collect();
        let mut numbers = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let row = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| DatasetError::Json {
                row,
                message: e.to_string(),
            })?;
            let Value::Object(object) = value else {
                return Err(DatasetError::NotAnObject { row });
            };
            if let Some(key) = object
                .keys()
                .find(|k| !expected_keys.contains(k) && k.as_str() != SUBJECT_KEY)
            {
                return Err(DatasetError::UnknownKey {
                    row,
                    key: key.clone(),
                    expected: expected_keys.clone(),
                });
            }
            builder.check_room()?;
            for (is_target, ios) in [(false, spec.inputs()), (true, spec.outputs())] {
                for io in ios {
                    let value = object
                        .get(&io.name)
                        .ok_or_else(|| DatasetError::MissingKey {
                            row,
                            key: io.name.clone(),
                        })?;
                    numbers.clear();
                    if is_target && spec.loss() == LossKind::CrossEntropy && io.width() > 1 {
                        if let Value::Number(n) = value {
                            one_hot(n, row, &io.name, io.width(), &mut numbers)?;
                        }
                    }
                    if numbers.is_empty() {
                        flatten(value, row, &io.name, io.width(), &mut numbers)?;
                    }
                    if numbers.len() != io.width() {
                        return Err(DatasetError::Width {
                            row,
                            column: io.name.clone(),
                            expected: io.width(),
                            actual: numbers.len(),
                        });
                    }
                    check_values(row, &io.name, &numbers, is_target.then_some(spec.loss()))?;
                    builder.push(is_target, &numbers);
                }
            }
            builder.rows += 1;
        }
        builder.finish()
    }

    /// Parses CSV with a header row. `columns.features` must cover the spec's inputs
    /// (flattened, in order) and `columns.targets` its outputs; other columns, a
    /// [`SUBJECT_KEY`] column among them, are ignored, and that one may be neither a
    /// feature nor a target. Quoted fields (`"a ""b"""`) and CRLF line ends are accepted.
    pub fn from_csv(
        spec: &ValidSpec,
        bytes: &[u8],
        columns: &CsvColumns,
        limits: DatasetLimits,
    ) -> Result<Dataset, DatasetError> {
        let text = as_text(bytes)?;
        for (what, list, expected) in [
            ("features", &columns.features, spec.input_width()),
            ("targets", &columns.targets, spec.output_width()),
        ] {
            if list.iter().any(|c| c == SUBJECT_KEY) {
                return Err(DatasetError::SubjectColumn { what });
            }
            if list.len() != expected {
                return Err(DatasetError::ColumnCount {
                    what,
                    expected,
                    actual: list.len(),
                });
            }
        }
        let mut records = CsvRecords::new(text);
        let (_, header) = records.next().ok_or(DatasetError::Empty)??;
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                return Err(DatasetError::DuplicateColumn {
                    column: name.clone(),
                });
            }
        }
        let find = |column: &String| {
            header
                .iter()
                .position(|h| h == column)
                .ok_or_else(|| DatasetError::MissingColumn {
                    column: column.clone(),
                })
        };
        let feature_idx = columns
            .features
            .iter()
            .map(find)
            .collect::<Result<Vec<_>, _>>()?;
        let target_idx = columns
            .targets
            .iter()
            .map(find)
            .collect::<Result<Vec<_>, _>>()?;
        let subject = header.iter().position(|name| name == SUBJECT_KEY);
        let mut subject_rows = 0;
        let mut builder = Builder::new(spec, limits);
        let mut numbers = Vec::new();
        for record in records {
            let (line, fields) = record?;
            let row = builder.rows + 1;
            if fields.len() == 1 && fields[0].trim().is_empty() {
                continue;
            }
            if fields.len() != header.len() {
                return Err(DatasetError::Ragged {
                    row,
                    line,
                    expected: header.len(),
                    actual: fields.len(),
                });
            }
            builder.check_room()?;
            if subject.is_some_and(|i| !fields[i].trim().is_empty()) {
                subject_rows += 1;
            }
            for (is_target, idx) in [(false, &feature_idx), (true, &target_idx)] {
                numbers.clear();
                for &i in idx.iter() {
                    numbers.push(parse_cell(row, &header[i], &fields[i])?);
                }
                for (k, &i) in idx.iter().enumerate() {
                    check_values(
                        row,
                        &header[i],
                        &numbers[k..k + 1],
                        is_target.then_some(spec.loss()),
                    )?;
                }
                builder.push(is_target, &numbers);
            }
            builder.rows += 1;
        }
        let mut data = builder.finish()?;
        data.subject_rows = subject_rows;
        Ok(data)
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    /// How many rows of a CSV dataset name their subject (a non-empty [`SUBJECT_KEY`]
    /// cell), as [`csv_subject_rows`] counts them; 0 for other formats.
    pub fn subject_rows(&self) -> usize {
        self.subject_rows
    }
    pub fn input_width(&self) -> usize {
        self.input_width
    }
    pub fn output_width(&self) -> usize {
        self.output_width
    }
    /// `[n_rows, input_width]`, row-major.
    pub fn inputs(&self) -> &[f32] {
        &self.inputs
    }
    /// `[n_rows, output_width]`, row-major.
    pub fn targets(&self) -> &[f32] {
        &self.targets
    }
    pub fn input_row(&self, row: usize) -> &[f32] {
        &self.inputs[row * self.input_width..(row + 1) * self.input_width]
    }
    pub fn target_row(&self, row: usize) -> &[f32] {
        &self.targets[row * self.output_width..(row + 1) * self.output_width]
    }
}

/// How many data rows of a CSV dataset name their subject (a non-empty
/// [`SUBJECT_KEY`] cell); 0 when the header has no such column.
pub fn csv_subject_rows(bytes: &[u8]) -> Result<usize, DatasetError> {
    let mut count = 0;
    csv_records_by_subject(bytes, |subject| {
        if subject.is_some_and(|s| !s.is_empty()) {
            count += 1;
        }
        true
    })?;
    Ok(count)
}

/// The CSV `bytes` without the data rows whose [`SUBJECT_KEY`] cell (trimmed) is
/// `subject`, and how many were removed. The header and every other record are kept
/// byte for byte; without that column nothing is removed.
pub fn csv_without_subject(bytes: &[u8], subject: &str) -> Result<(Vec<u8>, u64), DatasetError> {
    let mut removed = 0;
    let kept = csv_records_by_subject(bytes, |cell| {
        let of_subject = !subject.is_empty() && cell == Some(subject);
        removed += u64::from(of_subject);
        !of_subject
    })?;
    Ok((kept, removed))
}

/// Walks the data records of a CSV dataset, calling `keep(subject cell)` for each
/// (the cell trimmed; `None` without a [`SUBJECT_KEY`] column or for a short record),
/// and returns the bytes of the header (with any byte-order mark) and of the records
/// kept, unchanged.
fn csv_records_by_subject(
    bytes: &[u8],
    mut keep: impl FnMut(Option<&str>) -> bool,
) -> Result<Vec<u8>, DatasetError> {
    let text = as_text(bytes)?;
    let bom = bytes.len() - text.len();
    let mut records = CsvRecords::new(text);
    let mut out = Vec::with_capacity(bytes.len());
    let (_, header) = records.next().ok_or(DatasetError::Empty)??;
    out.extend_from_slice(&bytes[..bom + records.offset()]);
    let column = header.iter().position(|h| h == SUBJECT_KEY);
    loop {
        let start = records.offset();
        let Some(record) = records.next() else {
            break;
        };
        let (_, fields) = record?;
        let span = &text.as_bytes()[start..records.offset()];
        if fields.len() == 1 && fields[0].trim().is_empty() {
            out.extend_from_slice(span);
            continue;
        }
        let cell = column.and_then(|i| fields.get(i)).map(|c| c.trim());
        if keep(cell) {
            out.extend_from_slice(span);
        }
    }
    Ok(out)
}

struct Builder {
    limits: DatasetLimits,
    input_width: usize,
    output_width: usize,
    rows: usize,
    inputs: Vec<f32>,
    targets: Vec<f32>,
}

impl Builder {
    fn new(spec: &ValidSpec, limits: DatasetLimits) -> Self {
        Builder {
            limits,
            input_width: spec.input_width(),
            output_width: spec.output_width(),
            rows: 0,
            inputs: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Refuses the next row before it is stored if it would pass a limit.
    fn check_room(&self) -> Result<(), DatasetError> {
        if self.rows >= self.limits.max_rows {
            return Err(DatasetError::TooManyRows {
                limit: self.limits.max_rows,
            });
        }
        let per_row = self.input_width + self.output_width;
        let after = (self.rows + 1).checked_mul(per_row);
        if after.is_none_or(|v| v > self.limits.max_values) {
            return Err(DatasetError::TooManyValues {
                limit: self.limits.max_values,
            });
        }
        Ok(())
    }

    fn push(&mut self, is_target: bool, values: &[f32]) {
        if is_target {
            self.targets.extend_from_slice(values);
        } else {
            self.inputs.extend_from_slice(values);
        }
    }

    fn finish(self) -> Result<Dataset, DatasetError> {
        if self.rows == 0 {
            return Err(DatasetError::Empty);
        }
        Ok(Dataset {
            n_rows: self.rows,
            input_width: self.input_width,
            output_width: self.output_width,
            inputs: self.inputs,
            targets: self.targets,
            subject_rows: 0,
        })
    }
}

fn as_text(bytes: &[u8]) -> Result<&str, DatasetError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DatasetError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(DatasetError::Empty);
    }
    Ok(text)
}

fn split_by_io<'a>(
    ios: &'a [IoSpec],
    row: &'a [f32],
) -> impl Iterator<Item = (&'a IoSpec, &'a [f32])> {
    let mut start = 0;
    ios.iter().map(move |io| {
        let slice = &row[start..start + io.width()];
        start += io.width();
        (io, slice)
    })
}

/// A class index as a cross-entropy target becomes a one-hot row.
fn one_hot(
    n: &serde_json::Number,
    row: usize,
    column: &str,
    classes: usize,
    out: &mut Vec<f32>,
) -> Result<(), DatasetError> {
    let class = n
        .as_u64()
        .and_then(|c| usize::try_from(c).ok())
        .filter(|&c| c < classes)
        .ok_or_else(|| DatasetError::ClassIndex {
            row,
            column: column.to_owned(),
            value: n.to_string(),
            classes,
        })?;
    out.extend((0..classes).map(|c| if c == class { 1.0 } else { 0.0 }));
    Ok(())
}

/// Appends the numbers of `value` to `out`, stopping early once more than `limit` are
/// found so that a hostile row cannot grow the buffer.
fn flatten(
    value: &Value,
    row: usize,
    column: &str,
    limit: usize,
    out: &mut Vec<f32>,
) -> Result<(), DatasetError> {
    match value {
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !v.is_finite() {
                return Err(DatasetError::NonFinite {
                    row,
                    column: column.to_owned(),
                    value: n.to_string(),
                });
            }
            out.push(v);
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                if out.len() > limit {
                    break;
                }
                flatten(item, row, column, limit, out)?;
            }
            Ok(())
        }
        other => {
            let mut shown = other.to_string();
            shown.truncate(40);
            Err(DatasetError::NotNumeric {
                row,
                column: column.to_owned(),
                value: shown,
            })
        }
    }
}

fn parse_cell(row: usize, column: &str, cell: &str) -> Result<f32, DatasetError> {
    let trimmed = cell.trim();
    let shown = || {
        let mut s = trimmed.to_owned();
        s.truncate(40);
        format!("{s:?}")
    };
    let value: f32 = trimmed.parse().map_err(|_| DatasetError::NotNumeric {
        row,
        column: column.to_owned(),
        value: shown(),
    })?;
    if !value.is_finite() {
        return Err(DatasetError::NonFinite {
            row,
            column: column.to_owned(),
            value: shown(),
        });
    }
    Ok(value)
}

/// Checks finiteness and, for targets, the range the loss needs.
fn check_values(
    row: usize,
    column: &str,
    values: &[f32],
    target_of: Option<LossKind>,
) -> Result<(), DatasetError> {
    for &value in values {
        if !value.is_finite() {
            return Err(DatasetError::NonFinite {
                row,
                column: column.to_owned(),
                value: value.to_string(),
            });
        }
        match target_of {
            Some(LossKind::BinaryCrossEntropy) if !(0.0..=1.0).contains(&value) => {
                return Err(DatasetError::TargetOutOfRange {
                    row,
                    column: column.to_owned(),
                    value,
                })
            }
            Some(LossKind::CrossEntropy) if value < 0.0 => {
                return Err(DatasetError::NegativeTarget {
                    row,
                    column: column.to_owned(),
                    value,
                })
            }
            _ => {}
        }
    }
    Ok(())
}
