//! Receiving request bodies that are too large to buffer: model archives and datasets
//! are streamed into a temporary file with a byte counter, refused with 413 as soon as
//! `Content-Length` or the running count passes the limit.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The 413 every upload route answers past its limit.
pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("the upload exceeds the limit of {limit} bytes (serve --max-upload-mb)"),
    )
}

/// Streams `body` into a temporary file under the upload dir. The file is removed when
/// the returned path drops, on success and on every error path. `what` names the
/// expected body in the error for an empty upload.
pub async fn stage_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    what: &str,
) -> ApiResult<tempfile::TempPath> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let staging = state.config().upload_dir.clone();
    let temp = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&staging)?;
        tempfile::NamedTempFile::new_in(&staging)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| ApiError::failure(&e))?;
    let (file, path) = temp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    // No whole-request deadline applies to uploads (see `crate::deadline`): each
    // chunk must arrive within `request_timeout_secs` of the previous one instead.
    let pause = std::time::Duration::from_secs(state.config().request_timeout_secs);
    loop {
        let chunk = match tokio::time::timeout(pause, stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                return Err(crate::abandoned(format!(
                    "the upload sent nothing for {} s and was abandoned",
                    pause.as_secs()
                )))
            }
        };
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("upload_interrupted", "the upload was interrupted")
        })?;
        received = received.saturating_add(chunk.len() as u64);
        if received > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::failure(&e))?;
    }
    file.flush().await.map_err(|e| ApiError::failure(&e))?;
    if received == 0 {
        return Err(ApiError::bad_request(
            "empty_upload",
            format!("the upload is empty: send {what} as the body"),
        ));
    }
    Ok(path)
}
