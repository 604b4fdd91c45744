//! Bounds-checked validation of a safetensors file's header, without trusting any
//! declared size and without loading the tensor data.
//!
//! Layout: 8-byte little-endian header length `N`, `N` bytes of UTF-8 JSON mapping tensor
//! names to `{dtype, shape, data_offsets: [begin, end]}` (plus an optional
//! `__metadata__` string map), then the data section that the offsets index.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// Headers larger than this are refused before reading them, as upstream does.
pub(crate) const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

#[derive(serde::Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// Checks the header of a safetensors stream of `file_len` bytes positioned at its start;
/// returns the tensor names. Reads only the header.
pub(crate) fn check(reader: &mut dyn Read, file_len: u64) -> Result<BTreeSet<String>, String> {
    if file_len < 8 {
        return Err(format!(
            "the file has {file_len} bytes, fewer than the 8-byte header length"
        ));
    }
    let mut length_bytes = [0u8; 8];
    reader
        .read_exact(&mut length_bytes)
        .map_err(|e| format!("reading the header length: {e}"))?;
    let header_len = u64::from_le_bytes(length_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(format!(
            "the header declares {header_len} bytes, more than the limit of {MAX_HEADER_BYTES}"
        ));
    }
    let data_len = (file_len - 8).checked_sub(header_len).ok_or_else(|| {
        format!(
            "the header declares {header_len} bytes but the file has only {} after the length (truncated file?)",
            file_len - 8
        )
    })?;
    let mut header = Vec::new();
    reader
        .take(header_len)
        .read_to_end(&mut header)
        .map_err(|e| format!("reading the header: {e}"))?;
    if header.len() as u64 != header_len {
        return Err("the file ended inside the header (truncated file?)".into());
    }
    let header = std::str::from_utf8(&header).map_err(|_| "the header is not UTF-8".to_owned())?;
    if !header.starts_with('{') {
        return Err("the header is not a JSON object".into());
    }
    // Trailing spaces are how writers pad the header to an alignment.
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(header.trim_end())
        .map_err(|e| format!("the header is not valid JSON: {e}"))?;

    let mut spans: Vec<(u64, u64, String)> = Vec::with_capacity(entries.len());
    let mut names = BTreeSet::new();
    for (name, value) in entries {
        if name == "__metadata__" {
            let _: BTreeMap<String, String> = serde_json::from_value(value)
                .map_err(|_| "__metadata__ must map strings to strings".to_owned())?;
            continue;
        }
        let info: TensorInfo = serde_json::from_value(value)
            .map_err(|e| format!("tensor '{name}': invalid entry: {e}"))?;
        let bits = dtype_bits(&info.dtype)
            .ok_or_else(|| format!("tensor '{name}': unknown dtype '{}'", info.dtype))?;
        let n_elements = info
            .shape
            .iter()
            .try_fold(1u64, |acc, &dim| acc.checked_mul(dim))
            .ok_or_else(|| format!("tensor '{name}': the shape overflows"))?;
        let n_bits = n_elements
            .checked_mul(bits)
            .ok_or_else(|| format!("tensor '{name}': the size overflows"))?;
        if n_bits % 8 != 0 {
            return Err(format!(
                "tensor '{name}': its size is not a whole number of bytes"
            ));
        }
        let [begin, end] = info.data_offsets;
        if begin > end {
            return Err(format!(
                "tensor '{name}': data offsets [{begin}, {end}] are reversed"
            ));
        }
        if end - begin != n_bits / 8 {
            return Err(format!(
                "tensor '{name}': {} {} × {:?} needs {} bytes but its offsets span {}",
                n_elements,
                info.dtype,
                info.shape,
                n_bits / 8,
                end - begin
            ));
        }
        if end > data_len {
            return Err(format!(
                "tensor '{name}': data ends at {end}, beyond the {data_len}-byte data section (truncated file?)"
            ));
        }
        spans.push((begin, end, name.clone()));
        names.insert(name);
    }

    // Tensors must tile the data section exactly: no overlap (two tensors aliasing the
    // same bytes), no gap, no trailing bytes, as the upstream loader requires.
    spans.sort();
    let mut position = 0u64;
    let mut previous: Option<&str> = None;
    for (begin, end, name) in &spans {
        if *begin < position {
            return Err(format!(
                "tensor '{name}' overlaps tensor '{}'",
                previous.unwrap_or_default()
            ));
        }
        if *begin > position {
            return Err(format!(
                "unused bytes {position}..{begin} before tensor '{name}'"
            ));
        }
        position = *end;
        previous = Some(name);
    }
    if position != data_len {
        return Err(format!(
            "the tensors cover {position} bytes but the data section has {data_len}"
        ));
    }
    Ok(names)
}

/// Bits per element of the dtypes safetensors defines.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data_len));
        bytes
    }

    fn run(bytes: &[u8]) -> Result<BTreeSet<String>, String> {
        check(&mut &bytes[..], bytes.len() as u64)
    }

    #[test]
    fn headers_are_checked() {
        let ok = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;
        assert_eq!(run(&file(ok, 22)).unwrap().len(), 2);
        let cases = [
            (file(ok, 21), "data ends"),
            (file(ok, 23), "cover"),
            (file(&ok.replace("BF16", "Q9"), 22), "unknown dtype"),
            (file(&ok.replace("[16,22]", "[16,24]"), 22), "needs"),
            (
                file(
                    &ok.replace(
                        "[3],\"data_offsets\":[16,22]",
                        "[3],\"data_offsets\":[10,16]",
                    )
                    .replace("BF16", "I16"),
                    22,
                ),
                "overlaps",
            ),
            (
                file(&ok.replace("[2,2]", "[4294967296,4294967296,16]"), 22),
                "overflow",
            ),
            (b"\x01\x02".to_vec(), "fewer than"),
            (file("[]", 0), "not a JSON object"),
        ];
        for (bytes, expect) in cases {
            let error = run(&bytes).unwrap_err();
            assert!(error.contains(expect), "{error} should contain {expect}");
        }
        let mut huge = (MAX_HEADER_BYTES + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(run(&huge).unwrap_err().contains("limit"));
        let mut lying = 1000u64.to_le_bytes().to_vec();
        lying.extend_from_slice(b"{}");
        assert!(run(&lying).unwrap_err().contains("truncated"));
    }
}
