//! The checked-in OpenAPI document matches the code, and documents every route.

#[test]
fn checked_in_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = api::openapi::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{generated}\n")).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in.trim_end() == generated.trim_end(),
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p api --test it openapi` \
         or `cargo run -p charter -- openapi > docs/openapi.json`"
    );
}

#[test]
fn every_route_is_documented() {
    let document = api::openapi::document();
    for route in api::routes::table() {
        let item = document
            .paths
            .paths
            .get(route.path)
            .unwrap_or_else(|| panic!("{} is not in the OpenAPI document", route.path));
        let documented = serde_json::to_value(item).unwrap();
        let method = route.method.as_str().to_lowercase();
        let operation = documented
            .get(&method)
            .unwrap_or_else(|| panic!("{} {} is not documented", route.method, route.path));
        // Any route can be shed, time out, lose its audit log or fail.
        for status in ["500", "503"] {
            assert!(
                operation["responses"].get(status).is_some(),
                "{} {} does not document {status}",
                route.method,
                route.path
            );
        }
    }
}
