//! `charter openapi`: prints the OpenAPI document generated from the code.

use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    println!("{}", api::openapi::document_json());
    Ok(ExitCode::SUCCESS)
}
