//! Validation of the harness's output against the JSON Schemas checked in under
//! `reports/schema/`, shared by the unit and end-to-end tests.

use std::path::PathBuf;

/// `reports/schema/<name>` in the repository.
pub fn schema_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../reports/schema")
        .join(name)
}

/// Every way `instance` breaks the schema `name`, with the instance path; empty if valid.
pub fn schema_errors(name: &str, instance: &serde_json::Value) -> Vec<String> {
    let text = std::fs::read_to_string(schema_path(name))
        .unwrap_or_else(|e| panic!("read schema {name}: {e}"));
    let schema: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema {name} is not JSON: {e}"));
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("schema {name} is not a valid JSON Schema: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Validate every line of a `history.jsonl` text; the errors name the line.
pub fn history_errors(jsonl: &str) -> Vec<String> {
    jsonl
        .lines()
        .enumerate()
        .flat_map(|(i, line)| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("history line {} is not JSON: {e}", i + 1));
            schema_errors("history.schema.json", &value)
                .into_iter()
                .map(move |e| format!("line {}: {e}", i + 1))
        })
        .collect()
}
