//! `[source]`: the server's directory, its URL, credentials and TLS files.
//!
//! Credentials written into the URL (`redis://user:pass@host`) are moved out of it into
//! `username` / `password`, so that the URL can be logged and shown freely afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::{Check, MILLI, MINUTE, SECOND};
use crate::error::ErrorKind;
use crate::model::{Source, SourceKind, Tls};
use crate::raw::{RawSource, RawTls};
use crate::secret::{Secret, REDACTED};

/// Environment variable that supplies the server password when the file does not.
pub const PASSWORD_ENV: &str = "AOFVAULT_SOURCE_PASSWORD";

const SCHEMES: [&str; 4] = ["redis", "rediss", "unix", "redis+unix"];

pub(super) fn validate(raw: RawSource, check: &mut Check) -> Source {
    let kind = check.choice(
        "source.kind",
        raw.kind.as_deref(),
        SourceKind::Auto,
        &[
            ("auto", SourceKind::Auto),
            ("kevy", SourceKind::Kevy),
            ("redis", SourceKind::Redis),
            ("valkey", SourceKind::Redis),
        ],
    );
    let dir = check.absolute("source.dir", raw.dir);
    let server = raw.url.as_deref().and_then(|text| server_url(text, check));
    let (url, url_username, url_password) = match server {
        Some((url, user, pass)) => (Some(url), user, pass),
        None => (None, None, None),
    };

    let username = match (raw.username, url_username) {
        (Some(file), Some(in_url)) if file != in_url => {
            check.push(
                ErrorKind::Conflict,
                "source.username",
                Some(format!("{file:?}")),
                format!("source.url names another user ({in_url:?}): set the user in one place"),
            );
            Some(file)
        }
        (file, in_url) => file.or(in_url),
    };

    let from_file = raw
        .password_file
        .as_deref()
        .and_then(|path| read_secret("source.password_file", path, check));
    if from_file.is_some() && url_password.is_some() {
        check.push(
            ErrorKind::Conflict,
            "source.password_file",
            None,
            "source.url carries a password too: set the password in one place",
        );
    }
    let password = from_file
        .or(url_password)
        .or_else(|| check.env().get(PASSWORD_ENV).map(Secret::new));

    let is_tls = url.as_ref().is_some_and(|u| u.scheme() == "rediss");
    let tls = tls(raw.tls, is_tls, check);
    let cluster = raw.cluster.filter(|name| {
        let ok = super::repository::check_instance(name);
        if let Err(message) = &ok {
            check.push(
                ErrorKind::InvalidValue,
                "source.cluster",
                Some(format!("{name:?}")),
                message.clone(),
            );
        }
        ok.is_ok()
    });
    Source {
        cluster,
        kind,
        dir,
        url,
        username,
        password,
        tls,
        connect_timeout: check.duration(
            "source.connect_timeout",
            raw.connect_timeout.as_deref(),
            5 * SECOND,
            100 * MILLI..=5 * MINUTE,
        ),
        command_timeout: check.duration(
            "source.command_timeout",
            raw.command_timeout.as_deref(),
            Duration::from_secs(10),
            100 * MILLI..=10 * MINUTE,
        ),
    }
}

type ServerUrl = (Url, Option<String>, Option<Secret>);

/// Parses the server URL and takes the credentials out of it.
fn server_url(text: &str, check: &mut Check) -> Option<ServerUrl> {
    let mut url = match Url::parse(text.trim()) {
        Ok(url) => url,
        Err(e) => {
            // An unparsable URL may still contain a password: never echo it.
            check.push(
                ErrorKind::InvalidValue,
                "source.url",
                Some(REDACTED.into()),
                format!("not a URL ({e}); write e.g. \"redis://127.0.0.1:6379\""),
            );
            return None;
        }
    };
    if !SCHEMES.contains(&url.scheme()) {
        let message = format!(
            "unsupported scheme `{}`: use redis://, rediss:// (TLS) or unix:///path/to/socket",
            url.scheme()
        );
        check.push(
            ErrorKind::InvalidValue,
            "source.url",
            Some(redacted(&url)),
            message,
        );
        return None;
    }
    let username = Some(percent_decode(url.username())).filter(|u| !u.is_empty());
    let password = url.password().map(|p| Secret::new(percent_decode(p)));
    // Setting empty credentials on a URL that has a host cannot fail.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some((url, username, password))
}

/// Decodes `%XX` escapes (URL userinfo is stored encoded); invalid escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL as text with its password replaced by `***`.
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some(REDACTED));
    }
    shown.to_string()
}

/// Reads a secret from a file, trimming the final newline editors add.
pub(super) fn read_secret(path_key: &str, file: &Path, check: &mut Check) -> Option<Secret> {
    let shown = Some(format!("{:?}", file.display().to_string()));
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let secret = text.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                check.push(
                    ErrorKind::InvalidValue,
                    path_key,
                    shown,
                    "the file is empty",
                );
                None
            } else {
                Some(Secret::new(secret))
            }
        }
        Err(e) => {
            check.push(ErrorKind::Io, path_key, shown, format!("cannot read: {e}"));
            None
        }
    }
}

fn tls(raw: RawTls, is_tls: bool, check: &mut Check) -> Tls {
    let mut file = |key: &str, path: Option<PathBuf>| {
        let path = path?;
        let full = format!("source.tls.{key}");
        if !is_tls {
            check.push(
                ErrorKind::Conflict,
                &full,
                Some(format!("{:?}", path.display().to_string())),
                "TLS options need a rediss:// source.url",
            );
        } else if !path.is_file() {
            check.push(
                ErrorKind::Io,
                &full,
                Some(format!("{:?}", path.display().to_string())),
                "no such file",
            );
        }
        Some(path)
    };
    let ca_file = file("ca_file", raw.ca_file);
    let cert_file = file("cert_file", raw.cert_file);
    let key_file = file("key_file", raw.key_file);
    if cert_file.is_some() != key_file.is_some() {
        check.push(
            ErrorKind::Conflict,
            "source.tls.cert_file",
            None,
            "a client certificate needs both cert_file and key_file",
        );
    }
    Tls {
        ca_file,
        cert_file,
        key_file,
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
    }
}
