//! The example file and the reference documentation stay in step with the schema:
//! the example validates, names every key the schema knows, and every key it names is
//! documented in docs/CONFIGURATION.md.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use aofvault_config::{Config, Env, RawConfig, EXAMPLE};

const DOCS: &str = include_str!("../../docs/CONFIGURATION.md");

fn env() -> Env {
    Env::empty()
        .with("STATE_DIRECTORY", "/var/lib/aofvault")
        .with("HOSTNAME", "db1")
}

#[test]
fn the_example_validates() {
    let config = Config::from_toml(EXAMPLE, "example", &env()).unwrap();
    assert_eq!(
        config.source.dir.as_deref(),
        Some(std::path::Path::new("/var/lib/kevy"))
    );
    assert_eq!(config.retention.keep_daily, Some(7));
}

/// Dotted paths of every leaf in a JSON object (tables recurse, everything else is a key).
fn leaf_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(map) = value {
        for (key, inner) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if inner.is_object() {
                leaf_paths(inner, &path, out);
            } else {
                out.insert(path);
            }
        }
    }
}

/// Every key the schema knows: the raw types serialize every field, unset ones as null.
fn schema_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    leaf_paths(
        &serde_json::to_value(RawConfig::default()).unwrap(),
        "",
        &mut keys,
    );
    keys
}

/// Every key the example names, set or commented out (`# key = value` under a section
/// header, itself possibly commented out).
fn example_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in EXAMPLE.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.to_string();
        } else if let Some((key, _)) = line.split_once(" = ") {
            let is_key = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if is_key {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    keys
}

#[test]
fn the_schema_has_keys_to_compare() {
    let keys = schema_keys();
    assert!(keys.contains("ship.interval"), "{keys:?}");
    assert!(keys.contains("source.tls.ca_file"), "{keys:?}");
    assert!(keys.contains("repository.s3.endpoint"), "{keys:?}");
    assert!(keys.len() > 40, "{keys:?}");
}

#[test]
fn the_example_names_exactly_the_schema_keys() {
    let schema = schema_keys();
    let example = example_keys();
    let missing: Vec<_> = schema.difference(&example).collect();
    let unknown: Vec<_> = example.difference(&schema).collect();
    assert!(
        missing.is_empty(),
        "keys missing from the example: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "example keys the schema does not know: {unknown:?}"
    );
}

#[test]
fn every_example_key_is_documented() {
    let undocumented: Vec<_> = example_keys()
        .into_iter()
        .filter(|path| !DOCS.contains(&format!("`{path}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys not in docs/CONFIGURATION.md: {undocumented:?}"
    );
}

#[test]
fn commented_out_example_values_validate_too() {
    // Uncomment every line that looks like `# key = value` (except the file-backed
    // secrets and TLS files, which must exist) and check the result still parses: the
    // example must not suggest values that would be rejected.
    let skip = ["_file = "];
    let mut text = String::new();
    for line in EXAMPLE.lines() {
        let body = line.trim_start_matches("# ");
        let looks_like_setting = line.starts_with("# ")
            && (body.starts_with('[')
                || body
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')));
        if looks_like_setting && !skip.iter().any(|s| body.contains(s)) {
            text.push_str(body);
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    let env = env().with("AWS_ACCESS_KEY_ID", "").with("HOSTNAME", "db1");
    let result = Config::from_toml(&text, "uncommented", &env);
    // access_key_id is set without a secret in the uncommented text: that one conflict is
    // expected and proves the S3 section was really uncommented.
    let errors = result.unwrap_err();
    assert_eq!(
        errors.paths(),
        vec!["repository.s3.access_key_id"],
        "{errors}"
    );
}
