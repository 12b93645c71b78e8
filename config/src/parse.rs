//! TOML text → [`RawConfig`], reporting every unknown key and every wrongly typed value.
//!
//! serde stops at the first error, so the document is first read into a `toml::Table` (only
//! a syntax error stops there) and then probed key by key: each key is deserialized alone,
//! nested under its section, into [`RawConfig`]. A key serde rejects is reported with its
//! dotted path and dropped; a key that is a known sub-table is probed recursively. What is
//! left deserializes in one go. The raw types stay the single description of the schema.

use toml::{Table, Value};

use crate::error::{ConfigError, ConfigErrors, ErrorKind, Report};
use crate::raw::RawConfig;

/// Keys whose values may hold a secret and are never echoed back in an error.
const SECRET_PATHS: [&str; 1] = ["source.url"];

/// Longest value echoed in an error message.
const VALUE_ECHO_MAX: usize = 80;

/// Parses a config file's text. `origin` names the file in syntax error messages.
///
/// Fails only on a TOML syntax error. Unknown keys and values of the wrong TOML type are
/// dropped and kept in [`RawConfig::rejected`]; [`RawConfig::validate`] reports them with
/// everything else it finds, so that one run shows every mistake.
pub fn parse(toml_text: &str, origin: &str) -> Result<RawConfig, ConfigErrors> {
    let table: Table = toml::from_str(toml_text)
        .map_err(|e| ConfigErrors::one(syntax_error(&e, toml_text, origin)))?;
    let mut report = Report::default();
    let clean = probe_table(&[], table, &mut report);
    let mut raw = match Value::Table(clean).try_into::<RawConfig>() {
        Ok(raw) => raw,
        Err(e) => {
            // Every key was accepted on its own; a failure here is a bug in the probing.
            report.push(ErrorKind::InvalidValue, "", None, e.message().to_string());
            RawConfig::default()
        }
    };
    raw.rejected = report.into_errors();
    Ok(raw)
}

fn syntax_error(error: &toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let location = match error.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("{origin}:{line}:{column}")
        }
        None => origin.to_string(),
    };
    ConfigError::new(
        ErrorKind::Syntax,
        location,
        None,
        format!("TOML syntax error: {}", error.message().trim_end()),
    )
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Keeps the keys of `table` (found at `path`) that the schema accepts, reporting the others.
fn probe_table(path: &[&str], table: Table, report: &mut Report) -> Table {
    let mut kept = Table::new();
    for (key, value) in table {
        let mut key_path: Vec<&str> = path.to_vec();
        key_path.push(&key);
        match accepts(&key_path, value.clone()) {
            Ok(()) => {
                kept.insert(key, value);
            }
            Err(message) => match value {
                Value::Table(inner) if accepts(&key_path, Value::Table(Table::new())).is_ok() => {
                    let inner = probe_table(&key_path, inner, report);
                    kept.insert(key, Value::Table(inner));
                }
                other => {
                    let dotted = key_path.join(".");
                    let kind = if message.starts_with("unknown field") {
                        ErrorKind::UnknownKey
                    } else {
                        ErrorKind::InvalidType
                    };
                    let echo = echo_value(&dotted, &other);
                    report.push(kind, &dotted, echo, explain(&message, &other));
                }
            },
        }
    }
    kept
}

/// Whether `value` placed at `path` (and nothing else) deserializes into [`RawConfig`];
/// serde's message when not.
fn accepts(path: &[&str], value: Value) -> Result<(), String> {
    let mut nested = value;
    for key in path.iter().rev() {
        let mut table = Table::new();
        table.insert((*key).to_string(), nested);
        nested = Value::Table(table);
    }
    nested
        .try_into::<RawConfig>()
        .map(|_| ())
        .map_err(|e| e.message().trim_end().to_string())
}

/// serde's message, with a hint when a section was written as a plain key or vice versa.
fn explain(message: &str, value: &Value) -> String {
    if message.starts_with("unknown field") {
        let noun = if value.is_table() {
            "unknown section"
        } else {
            "unknown key"
        };
        return message.replacen("unknown field", noun, 1);
    }
    match message.find("expected struct Raw") {
        Some(at) => format!("{}expected a table (a [section])", &message[..at]),
        None => message.to_string(),
    }
}

fn echo_value(path: &str, value: &Value) -> Option<String> {
    if SECRET_PATHS.contains(&path) {
        return Some(crate::secret::REDACTED.to_string());
    }
    if value.is_table() {
        return None;
    }
    let mut text = value.to_string();
    if text.chars().count() > VALUE_ECHO_MAX {
        text = text.chars().take(VALUE_ECHO_MAX).collect::<String>() + "…";
    }
    Some(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_pass_through() {
        let raw = parse(
            "[source]\ndir = \"/var/lib/kevy\"\n[source.tls]\ninsecure_skip_verify = true\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(raw.source.dir.unwrap().to_str(), Some("/var/lib/kevy"));
        assert_eq!(raw.source.tls.insecure_skip_verify, Some(true));
    }

    #[test]
    fn every_unknown_key_and_type_error_is_reported_with_its_path() {
        let text = r#"
            colour = "blue"
            [source]
            dri = "/data"
            [source.tls]
            ca_fiel = "/ca.pem"
            [ship]
            interval = 5
            upload_concurrency = "four"
            [nonsense]
            x = 1
        "#;
        let errors = ConfigErrors(parse(text, "t.toml").unwrap().rejected().to_vec());
        let mut paths = errors.paths();
        paths.sort_unstable();
        assert_eq!(
            paths,
            vec![
                "colour",
                "nonsense",
                "ship.interval",
                "ship.upload_concurrency",
                "source.dri",
                "source.tls.ca_fiel"
            ]
        );
        let dri = errors.0.iter().find(|e| e.path == "source.dri").unwrap();
        assert_eq!(dri.kind, ErrorKind::UnknownKey);
        assert!(dri.message.contains("expected one of"), "{}", dri.message);
        let interval = errors.0.iter().find(|e| e.path == "ship.interval").unwrap();
        assert_eq!(interval.kind, ErrorKind::InvalidType);
        assert_eq!(interval.value.as_deref(), Some("5"));
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let errors = parse("[ship]\ninterval = \n", "/etc/aofvault/x.toml").unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].kind, ErrorKind::Syntax);
        assert!(
            errors.0[0].path.starts_with("/etc/aofvault/x.toml:2:"),
            "{}",
            errors.0[0].path
        );
    }

    #[test]
    fn source_url_is_never_echoed() {
        let raw = parse("[source]\nurl = 42\n", "t.toml").unwrap();
        assert_eq!(raw.rejected()[0].value.as_deref(), Some("***"));
    }
}
