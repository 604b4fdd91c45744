//! Uploaded datasets: structural validation at upload, storage as a content-addressed
//! blob plus a row, and parsing against a model spec when a job trains on one.
//!
//! The spec is not known at upload time, so the upload is checked for structure: JSONL
//! rows must all have the keys of the first row, each an array of finite numbers of the
//! same width in every row; CSV must have the named feature and target columns and a
//! finite number in each of their cells. Errors name the 1-based row and the column.
//! Rows may name their data subject (a JSONL `"subject"` key, a CSV `subject` column);
//! erasing the subject removes them.
//! Training parses the blob again with the job's spec (`engine::tensor::Dataset`).

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use engine::tensor::CsvColumns;
use engine::tensor::{
    csv_without_subject, Dataset, DatasetError, DatasetLimits, TensorModelSpec, ValidSpec,
    SUBJECT_KEY,
};
use registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{Caller, DatasetRecord, NewDataset};
use types::{ModelName, TenantName};

use crate::{blocking, JobsError};

/// How a dataset file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// One JSON object per line, keyed by the model's input and output names.
    #[default]
    Jsonl,
    /// A header row, then numbers; features and targets name the columns.
    Csv,
}

impl DatasetFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Jsonl => "jsonl",
            DatasetFormat::Csv => "csv",
        }
    }

    /// Guesses the format from a file name: `.csv` is CSV, anything else JSONL.
    pub fn from_path(path: &std::path::Path) -> DatasetFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => DatasetFormat::Csv,
            _ => DatasetFormat::Jsonl,
        }
    }
}

impl std::str::FromStr for DatasetFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "jsonl" => Ok(DatasetFormat::Jsonl),
            "csv" => Ok(DatasetFormat::Csv),
            other => Err(format!(
                "unknown dataset format '{other}'; use jsonl or csv"
            )),
        }
    }
}

/// One column of a JSONL dataset and how many numbers it holds per row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonlColumn {
    pub name: String,
    pub width: usize,
}

/// What an upload needs: where the file was staged and how to read it.
#[derive(Debug, Clone)]
pub struct DatasetUpload {
    pub tenant: TenantName,
    pub name: ModelName,
    pub format: DatasetFormat,
    /// Required for CSV: which columns are features and which targets.
    pub csv_columns: Option<CsvColumns>,
    pub path: PathBuf,
    pub max_bytes: u64,
}

/// Dataset upload, listing and removal; cheap to clone.
#[derive(Debug, Clone)]
pub struct Datasets {
    registry: Registry,
}

impl Datasets {
    pub fn new(registry: Registry) -> Datasets {
        Datasets { registry }
    }

    /// Validates the staged file and stores it; the name must be new in the tenant.
    pub async fn upload(&self, upload: DatasetUpload) -> Result<DatasetRecord, JobsError> {
        let blobs = self.registry.blobs().clone();
        let key = self.registry.tenant_key(&upload.tenant).await?;
        let (format, csv_columns, path, max_bytes) = (
            upload.format,
            upload.csv_columns.clone(),
            upload.path.clone(),
            upload.max_bytes,
        );
        let (info, structure) = blocking(move || {
            let bytes = read_capped(&path, max_bytes)?;
            let structure = validate(format, csv_columns.as_ref(), &bytes)?;
            let info = blobs.put_bytes(&key, &bytes)?;
            Ok((info, structure))
        })
        .await?;
        let record = self
            .registry
            .store()
            .insert_dataset(NewDataset {
                tenant: upload.tenant,
                name: upload.name,
                digest: info.digest.to_string(),
                format: format.as_str().to_owned(),
                size: info.size as i64,
                n_rows: structure.n_rows as i64,
                columns: structure.columns,
            })
            .await?;
        tracing::info!(tenant = %record.tenant, dataset = %record.name, rows = record.n_rows, "dataset stored");
        Ok(record)
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<DatasetRecord>, JobsError> {
        Ok(self.registry.store().list_datasets(caller).await?)
    }

    pub async fn show(
        &self,
        caller: &Caller,
        name: &ModelName,
    ) -> Result<DatasetRecord, JobsError> {
        Ok(self.registry.store().find_dataset(caller, name).await?)
    }

    /// Removes the dataset; jobs already queued on it keep its content (by digest).
    pub async fn remove(
        &self,
        caller: &Caller,
        name: &ModelName,
    ) -> Result<DatasetRecord, JobsError> {
        Ok(self.registry.store().delete_dataset(caller, name).await?)
    }

    /// Erases the rows whose subject is `subject` (JSONL rows with that `"subject"`, CSV
    /// rows with it in the `subject` column) from every dataset of `tenant`: each
    /// affected dataset is rewritten without them (a dataset left empty is removed) and
    /// its old blob deleted unless another dataset holds the same content. Jobs queued on
    /// the old content will fail to find it: erasure wins.
    pub async fn erase_subject(
        &self,
        tenant: &TenantName,
        subject: &str,
    ) -> Result<SubjectErasure, JobsError> {
        let store = self.registry.store();
        let caller = Caller::tenant(tenant.clone());
        let mut erasure = SubjectErasure::default();
        for record in store.list_datasets(&caller).await? {
            let subject_rows = record.columns.get("subject_rows").and_then(Value::as_u64);
            let (format, csv_columns) = match record.format.as_str() {
                // Marked at upload when a row names its subject.
                "jsonl" if subject_rows.is_some() => (DatasetFormat::Jsonl, None),
                // CSV datasets are marked with their count, 0 included; one stored before
                // the mark existed is read to find out.
                "csv" if subject_rows != Some(0) => {
                    (DatasetFormat::Csv, Some(csv_columns_of(&record.columns)?))
                }
                _ => continue,
            };
            let blobs = self.registry.blobs().clone();
            let key = self.registry.tenant_key(tenant).await?;
            let old_digest = parse_digest(&record.digest)?;
            let subject = subject.to_owned();
            let rewritten = blocking(move || {
                let bytes = blobs.get(&key, &old_digest, None)?;
                let (kept, removed) = match format {
                    DatasetFormat::Jsonl => without_subject(&bytes, &subject)?,
                    DatasetFormat::Csv => csv_without_subject(&bytes, &subject)?,
                };
                if removed == 0 {
                    return Ok(None);
                }
                match validate(format, csv_columns.as_ref(), &kept) {
                    Ok(structure) => {
                        let info = blobs.put_bytes(&key, &kept)?;
                        Ok(Some((removed, Some((info, structure)))))
                    }
                    // No row left (a CSV keeps its header).
                    Err(JobsError::Dataset(DatasetError::Empty)) => Ok(Some((removed, None))),
                    Err(e) => Err(e),
                }
            })
            .await?;
            let Some((removed, replacement)) = rewritten else {
                continue;
            };
            match replacement {
                None => {
                    store.delete_dataset(&caller, &record.name).await?;
                }
                Some((info, structure)) => {
                    store
                        .replace_dataset_content(
                            record.id,
                            info.digest.as_str(),
                            info.size as i64,
                            structure.n_rows as i64,
                            &structure.columns,
                        )
                        .await?;
                }
            }
            if !store.dataset_digest_in_use(tenant, &record.digest).await? {
                self.registry
                    .blobs()
                    .delete(tenant, &parse_digest(&record.digest)?)?;
            }
            erasure.rows += removed;
            erasure.datasets.push(record.name.to_string());
        }
        if !erasure.datasets.is_empty() {
            tracing::info!(%tenant, rows = erasure.rows, datasets = erasure.datasets.len(), "subject rows erased from datasets");
        }
        Ok(erasure)
    }
}

/// What [`Datasets::erase_subject`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubjectErasure {
    /// Rows removed, over all datasets.
    pub rows: u64,
    /// Datasets rewritten (or removed, when no row was left).
    pub datasets: Vec<String>,
}

/// The JSONL `bytes` without the rows of `subject`, and how many were removed.
fn without_subject(bytes: &[u8], subject: &str) -> Result<(Vec<u8>, u64), JobsError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| JobsError::Internal("a stored dataset is not UTF-8".into()))?;
    let mut kept = Vec::with_capacity(bytes.len());
    let mut removed = 0;
    for line in text.lines() {
        let row: Option<Value> = serde_json::from_str(line).ok();
        let of_subject = row
            .as_ref()
            .and_then(|row| row.get(SUBJECT_KEY))
            .and_then(Value::as_str)
            == Some(subject);
        if of_subject {
            removed += 1;
        } else {
            kept.extend_from_slice(line.as_bytes());
            kept.push(b'\n');
        }
    }
    Ok((kept, removed))
}

fn parse_digest(text: &str) -> Result<blobstore::Digest, JobsError> {
    blobstore::Digest::parse(text).map_err(|e| JobsError::Internal(format!("stored digest: {e}")))
}

/// What validation found: rows and the column description stored with the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    pub n_rows: usize,
    pub columns: Value,
}

fn read_capped(path: &std::path::Path, max_bytes: u64) -> Result<Vec<u8>, JobsError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| JobsError::Invalid(format!("cannot read the dataset file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| JobsError::Invalid(format!("cannot read the dataset file: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(JobsError::TooLarge { limit: max_bytes });
    }
    Ok(bytes)
}

/// Checks the structure of a dataset without a spec.
pub fn validate(
    format: DatasetFormat,
    csv_columns: Option<&CsvColumns>,
    bytes: &[u8],
) -> Result<Structure, JobsError> {
    match format {
        DatasetFormat::Jsonl => validate_jsonl(bytes),
        DatasetFormat::Csv => {
            let columns = csv_columns.ok_or_else(|| {
                JobsError::Invalid("a CSV dataset needs features and targets (column names)".into())
            })?;
            let spec = csv_probe_spec(columns)?;
            let data = Dataset::from_csv(&spec, bytes, columns, DatasetLimits::default())?;
            if data.n_rows() == 0 {
                return Err(DatasetError::Empty.into());
            }
            Ok(Structure {
                n_rows: data.n_rows(),
                columns: serde_json::json!({
                    "features": columns.features,
                    "targets": columns.targets,
                    // Erasure reads the CSV datasets whose count is not 0.
                    "subject_rows": data.subject_rows(),
                }),
            })
        }
    }
}

/// A spec with one input of the feature count and one output of the target count, so
/// the engine's CSV parser can check every cell without knowing the real model.
fn csv_probe_spec(columns: &CsvColumns) -> Result<ValidSpec, JobsError> {
    if columns.features.is_empty() || columns.targets.is_empty() {
        return Err(JobsError::Invalid(
            "a CSV dataset needs at least one feature and one target column".into(),
        ));
    }
    let spec = serde_json::json!({
        "inputs": [{"name": "features", "shape": [columns.features.len()]}],
        "outputs": [{"name": "targets", "shape": [columns.targets.len()]}],
        "layers": [{"type": "linear", "name": "probe", "in": columns.features.len(), "out": columns.targets.len()}],
        "loss": "mse",
    });
    TensorModelSpec::parse(&spec.to_string())
        .map_err(|e| JobsError::Invalid(format!("invalid CSV columns: {e}")))
}

fn validate_jsonl(bytes: &[u8]) -> Result<Structure, JobsError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DatasetError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let limits = DatasetLimits::default();
    let mut widths: Option<BTreeMap<String, usize>> = None;
    let mut n_rows = 0usize;
    let mut n_values = 0usize;
    let mut subject_rows = 0usize;
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
            return Err(DatasetError::NotAnObject { row }.into());
        };
        let mut found = BTreeMap::new();
        for (key, value) in &object {
            if key == SUBJECT_KEY {
                if !value.is_string() {
                    return Err(JobsError::Invalid(format!(
                        "row {row}: \"{SUBJECT_KEY}\" must be a string (a data subject id)"
                    )));
                }
                subject_rows += 1;
                continue;
            }
            numbers.clear();
            flatten(value, row, key, &mut numbers)?;
            found.insert(key.clone(), numbers.len());
        }
        match &widths {
            None => {
                if found.len() < 2 {
                    return Err(JobsError::Invalid(format!(
                        "row {row}: expected at least two keys (inputs and targets), found {}",
                        found.len()
                    )));
                }
                widths = Some(found.clone());
            }
            Some(expected) => check_row(row, expected, &found)?,
        }
        n_rows += 1;
        n_values = n_values.saturating_add(found.values().sum());
        if n_rows > limits.max_rows {
            return Err(DatasetError::TooManyRows {
                limit: limits.max_rows,
            }
            .into());
        }
        if n_values > limits.max_values {
            return Err(DatasetError::TooManyValues {
                limit: limits.max_values,
            }
            .into());
        }
    }
    let widths = widths.ok_or(DatasetError::Empty)?;
    let columns: Vec<JsonlColumn> = widths
        .into_iter()
        .map(|(name, width)| JsonlColumn { name, width })
        .collect();
    let mut description = serde_json::json!({ "columns": columns });
    if subject_rows > 0 {
        // Erasure looks for datasets with subjects by this.
        description["subject_rows"] = subject_rows.into();
    }
    Ok(Structure {
        n_rows,
        columns: description,
    })
}

fn check_row(
    row: usize,
    expected: &BTreeMap<String, usize>,
    found: &BTreeMap<String, usize>,
) -> Result<(), JobsError> {
    if let Some(key) = found.keys().find(|k| !expected.contains_key(*k)) {
        return Err(DatasetError::UnknownKey {
            row,
            key: key.clone(),
            expected: expected.keys().cloned().collect(),
        }
        .into());
    }
    for (key, &width) in expected {
        match found.get(key) {
            None => {
                return Err(DatasetError::MissingKey {
                    row,
                    key: key.clone(),
                }
                .into())
            }
            Some(&actual) if actual != width => {
                return Err(DatasetError::Width {
                    row,
                    column: key.clone(),
                    expected: width,
                    actual,
                }
                .into())
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Flattens nested arrays of numbers, refusing anything else and non-finite f32 values.
fn flatten(
    value: &Value,
    row: usize,
    column: &str,
    out: &mut Vec<f32>,
) -> Result<(), DatasetError> {
    match value {
        Value::Number(n) => {
            let as_f64 = n.as_f64().unwrap_or(f64::NAN);
            let as_f32 = as_f64 as f32;
            if !as_f32.is_finite() {
                return Err(DatasetError::NonFinite {
                    row,
                    column: column.to_owned(),
                    value: n.to_string(),
                });
            }
            out.push(as_f32);
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| flatten(item, row, column, out)),
        other => Err(DatasetError::NotNumeric {
            row,
            column: column.to_owned(),
            value: truncate(&other.to_string()),
        }),
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= 40 {
        return text.to_owned();
    }
    let mut end = 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Checks that a stored dataset fits `spec` (names and widths), so a job is refused at
/// submission instead of failing later.
pub fn check_fits(record: &DatasetRecord, spec: &ValidSpec) -> Result<(), JobsError> {
    let misfit = |detail: String| {
        JobsError::Invalid(format!(
            "dataset '{}' does not fit the spec: {detail}",
            record.name
        ))
    };
    match record.format.as_str() {
        "csv" => {
            let columns = csv_columns_of(&record.columns)?;
            if columns.features.len() != spec.input_width() {
                return Err(misfit(format!(
                    "{} feature columns, the inputs need {}",
                    columns.features.len(),
                    spec.input_width()
                )));
            }
            if columns.targets.len() != spec.output_width() {
                return Err(misfit(format!(
                    "{} target columns, the outputs need {}",
                    columns.targets.len(),
                    spec.output_width()
                )));
            }
            Ok(())
        }
        _ => {
            let columns: Vec<JsonlColumn> =
                serde_json::from_value(record.columns["columns"].clone())
                    .map_err(|e| JobsError::Internal(format!("dataset columns: {e}")))?;
            let wanted: Vec<_> = spec.inputs().iter().chain(spec.outputs()).collect();
            for io in &wanted {
                match columns.iter().find(|c| c.name == io.name) {
                    None => return Err(misfit(format!("it has no column '{}'", io.name))),
                    Some(c) if c.width != io.width() => {
                        return Err(misfit(format!(
                            "column '{}' has {} numbers per row, the spec needs {}",
                            io.name,
                            c.width,
                            io.width()
                        )))
                    }
                    Some(_) => {}
                }
            }
            if let Some(extra) = columns
                .iter()
                .find(|c| !wanted.iter().any(|io| io.name == c.name))
            {
                return Err(misfit(format!(
                    "column '{}' is neither an input nor an output of the spec",
                    extra.name
                )));
            }
            Ok(())
        }
    }
}

/// The feature and target columns of a stored CSV dataset's description.
fn csv_columns_of(description: &Value) -> Result<CsvColumns, JobsError> {
    let mut description = description.clone();
    if let Value::Object(fields) = &mut description {
        fields.remove("subject_rows");
    }
    serde_json::from_value(description)
        .map_err(|e| JobsError::Internal(format!("dataset columns: {e}")))
}

/// Parses dataset content for training with `spec`.
pub fn parse_for_spec(
    format: &str,
    columns: &Value,
    spec: &ValidSpec,
    bytes: &[u8],
) -> Result<Dataset, JobsError> {
    let limits = DatasetLimits::default();
    Ok(match format {
        "csv" => Dataset::from_csv(spec, bytes, &csv_columns_of(columns)?, limits)?,
        _ => Dataset::from_jsonl(spec, bytes, limits)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<usize, &str>) {
        let got = validate(DatasetFormat::Jsonl, None, input.as_bytes());
        match (got, expect) {
            (Ok(s), Ok(rows)) => assert_eq!(s.n_rows, rows, "{input}"),
            (Err(e), Err(needle)) => {
                assert!(
                    e.to_string().contains(needle),
                    "{input}: {e} lacks {needle}"
                )
            }
            (got, expect) => panic!("{input}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn jsonl_structure_is_checked_with_row_and_column() {
        check("{\"x\":[1,2],\"y\":[3]}\n{\"x\":[4,5],\"y\":[6]}\n", Ok(2));
        check(
            "{\"x\":[1,2],\"y\":[3]}\n{\"x\":[4],\"y\":[6]}\n",
            Err("row 2, column \"x\": expected 2 numbers, found 1"),
        );
        check(
            "{\"x\":[1,2],\"y\":[3]}\n{\"x\":[4,\"a\"],\"y\":[6]}\n",
            Err("row 2, column \"x\""),
        );
        check("{\"x\":[1,2],\"y\":[1e39]}\n", Err("row 1, column \"y\""));
        check(
            "{\"x\":[1,2],\"y\":[3]}\n{\"x\":[4,5]}\n",
            Err("row 2: missing key \"y\""),
        );
        check(
            "{\"x\":[1,2],\"y\":[3]}\n{\"x\":[4,5],\"y\":[6],\"z\":1}\n",
            Err("row 2: unknown key \"z\""),
        );
        check(
            "{\"x\":[1,2],\"y\":[3]}\nnot json\n",
            Err("row 2: invalid JSON"),
        );
        check("", Err("empty"));
        // A row may name its data subject; the key is not a column.
        check(
            "{\"x\":[1],\"y\":[2],\"subject\":\"u1\"}\n{\"x\":[3],\"y\":[4]}\n",
            Ok(2),
        );
        check(
            "{\"x\":[1],\"y\":[2],\"subject\":7}\n",
            Err("row 1: \"subject\" must be a string"),
        );
    }

    #[test]
    fn subject_rows_are_counted_and_removed() {
        let data = "{\"x\":[1],\"y\":[2],\"subject\":\"u1\"}\n{\"x\":[3],\"y\":[4]}\n{\"subject\":\"u1\",\"x\":[5],\"y\":[6]}\n";
        let structure = validate(DatasetFormat::Jsonl, None, data.as_bytes()).unwrap();
        assert_eq!(structure.columns["subject_rows"], 2);
        assert_eq!(structure.columns["columns"].as_array().unwrap().len(), 2);
        let (kept, removed) = without_subject(data.as_bytes(), "u1").unwrap();
        assert_eq!(removed, 2);
        assert_eq!(String::from_utf8(kept).unwrap(), "{\"x\":[3],\"y\":[4]}\n");
        let (kept, removed) = without_subject(data.as_bytes(), "u2").unwrap();
        assert_eq!((kept.len(), removed), (data.len(), 0));
    }

    #[test]
    fn csv_subject_rows_are_counted_and_the_column_is_never_a_feature() {
        let columns = CsvColumns {
            features: vec!["x".into()],
            targets: vec!["y".into()],
        };
        let data = "x,subject,y\n1,u1,2\n3,,4\n5, u2 ,6\n";
        let structure = validate(DatasetFormat::Csv, Some(&columns), data.as_bytes()).unwrap();
        assert_eq!(structure.n_rows, 3);
        assert_eq!(structure.columns["subject_rows"], 2);
        assert_eq!(csv_columns_of(&structure.columns).unwrap(), columns);
        let untagged = validate(DatasetFormat::Csv, Some(&columns), b"x,y\n1,2\n").unwrap();
        assert_eq!(untagged.columns["subject_rows"], 0);
        let as_feature = CsvColumns {
            features: vec!["x".into(), SUBJECT_KEY.into()],
            targets: vec!["y".into()],
        };
        let err = validate(
            DatasetFormat::Csv,
            Some(&as_feature),
            b"x,subject,y\n1,2,3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("names a row's data subject"), "{err}");
    }
}
