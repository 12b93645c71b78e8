//! Asking a server for its ACL users and its config file, and redacting the file's secrets.

use crate::server::Server;

use super::{ServerConfigDoc, DOC_VERSION};

/// What replaces a secret value in a redacted config file.
pub const REDACTED: &str = "[redacted by aofvault]";

/// Config directives whose value is a secret (Redis 6/7, Valkey).
const SECRET_DIRECTIVES: [&str; 5] = [
    "requirepass",
    "masterauth",
    "tls-key-file-pass",
    "tls-client-key-file-pass",
    "sentinel-auth-pass",
];

/// Captures what the server tells; each part that fails is a note, never an error.
pub async fn capture(server: &mut Server, instance: &str, redact: bool) -> ServerConfigDoc {
    let mut notes = Vec::new();
    let server_version = server.version().await;
    let aclfile = server
        .config_get("aclfile")
        .await
        .ok()
        .flatten()
        .filter(|p| !p.is_empty());
    let mut acl_source = "none".to_string();
    let mut acl = Vec::new();
    if let Some(path) = &aclfile {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                acl_source = "aclfile".into();
                acl = acl_lines(&text);
            }
            Err(e) => notes.push(format!(
                "cannot read the ACL file {path} ({e}); ACL LIST used instead"
            )),
        }
    }
    if acl_source == "none" {
        match server.acl_list().await {
            Ok(lines) => {
                acl_source = "acl-list".into();
                acl = lines;
            }
            Err(e) => notes.push(format!(
                "the server answers no ACL LIST ({e:#}): no ACL users captured"
            )),
        }
    }
    let config_file = server
        .info("server")
        .await
        .ok()
        .and_then(|i| i.get("config_file").cloned())
        .filter(|p| !p.trim().is_empty());
    let config = match &config_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) if redact => Some(redact_config(&text)),
            Ok(text) => Some(text),
            Err(e) => {
                notes.push(format!("cannot read the config file {path}: {e}"));
                None
            }
        },
        None => {
            notes.push("the server names no config file (INFO server: config_file)".into());
            None
        }
    };
    ServerConfigDoc {
        format_version: DOC_VERSION,
        instance: instance.to_string(),
        captured_ms: crate::context::now_ms(),
        server_version,
        acl_source,
        aclfile_path: aclfile,
        acl,
        config_file,
        config_redacted: redact && config.is_some(),
        config,
        notes,
    }
}

/// The `user ...` lines of an ACL file.
pub fn acl_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("user "))
        .map(String::from)
        .collect()
}

/// The config file with every secret value replaced: the directives above, and clear-text
/// passwords (`>pass`) in `user` lines. Hashed passwords (`#...`) stay: they are what a
/// restored server needs, and reveal no password.
pub fn redact_config(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let directive = trimmed
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if SECRET_DIRECTIVES.contains(&directive.as_str()) {
            out.push_str(&format!("{directive} {REDACTED}"));
        } else if directive == "user" {
            let words: Vec<String> = trimmed
                .split_whitespace()
                .map(|w| {
                    if w.starts_with('>') {
                        format!(">{REDACTED}")
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            out.push_str(&words.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let text = "port 6379\nrequirepass hunter2\n  MasterAuth s3cret\nuser bob on >clear #abc ~* +@all\nappendonly yes\n";
        let out = redact_config(text);
        assert!(
            !out.contains("hunter2") && !out.contains("s3cret") && !out.contains("clear"),
            "{out}"
        );
        assert!(
            out.contains("port 6379") && out.contains("appendonly yes"),
            "{out}"
        );
        assert!(out.contains("#abc"), "hashes stay: {out}");
    }

    #[test]
    fn acl_file_lines_are_the_user_lines() {
        let text = "# users\nuser default on nopass ~* +@all\n\nuser alice on #ab ~* +@all\n";
        assert_eq!(acl_lines(text).len(), 2);
    }
}
