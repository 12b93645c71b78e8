//! `[repository] encryption_recipients`, `encryption_recipients_file`,
//! `encryption_identity_file` (or `AOFVAULT_ENCRYPTION_IDENTITY`): the age keys of encryption at
//! rest.
//!
//! Recipients are public keys (`age1...`): the agent that writes needs only them. Identities
//! are secret keys (`AGE-SECRET-KEY-1...`): only `restore` and `verify` need them, so they are
//! read into a [`Secret`] and never echoed — an error names the file and the line, never the
//! line's text. The shape of every key is checked here (prefix, alphabet, length), so the
//! common mistakes (the two files swapped, a truncated paste) are reported with the rest; the
//! agent parses the keys themselves.

use std::path::Path;

use super::source::read_secret;
use super::Check;
use crate::error::ErrorKind;
use crate::model::Encryption;
use crate::secret::Secret;

/// Environment variable holding the identities when no `encryption_identity_file` is set.
pub const IDENTITY_ENV: &str = "AOFVAULT_ENCRYPTION_IDENTITY";

/// The bech32 alphabet age keys are written in.
const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const RECIPIENT_PREFIX: &str = "age1";
const IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-1";
/// Both kinds carry 32 bytes plus a checksum: 58 characters after their prefix.
const KEY_CHARS: usize = 58;

fn is_recipient(key: &str) -> bool {
    key.strip_prefix(RECIPIENT_PREFIX)
        .is_some_and(|rest| rest.len() == KEY_CHARS && rest.chars().all(|c| BECH32.contains(c)))
}

fn is_identity(key: &str) -> bool {
    key.strip_prefix(IDENTITY_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_CHARS
            && rest
                .chars()
                .all(|c| BECH32.contains(c.to_ascii_lowercase()) && !c.is_ascii_lowercase())
    })
}

/// (line number, trimmed text) of each line that is neither blank nor a `#` comment.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

fn shown_path(path: &Path) -> Option<String> {
    Some(format!("{:?}", path.display().to_string()))
}

pub(super) fn validate(
    inline: Option<Vec<String>>,
    recipients_file: Option<&Path>,
    identity_file: Option<&Path>,
    check: &mut Check,
) -> Encryption {
    let mut recipients = Vec::new();
    for (i, key) in inline.unwrap_or_default().into_iter().enumerate() {
        let key = key.trim().to_string();
        if is_recipient(&key) {
            recipients.push(key);
        } else if key.starts_with("AGE-SECRET-KEY-") {
            // Never echo a secret key, even one in the wrong place.
            check.push(
                ErrorKind::InvalidValue,
                "repository.encryption_recipients",
                Some(format!("[{i}]: ***")),
                "this is a secret key (an identity): list its public key (`age-keygen -y`) and keep the secret off this host",
            );
        } else {
            check.push(
                ErrorKind::InvalidValue,
                "repository.encryption_recipients",
                Some(format!("{key:?}")),
                "not an age recipient: `age1` then 58 characters, as `age-keygen` prints",
            );
        }
    }
    if let Some(path) = recipients_file {
        const KEY: &str = "repository.encryption_recipients_file";
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let before = recipients.len();
                for (line, key) in key_lines(&text) {
                    if is_recipient(key) {
                        recipients.push(key.to_string());
                    } else {
                        let hint = if key.starts_with("AGE-SECRET-KEY-") {
                            ": it holds a secret key; write its public key (`age-keygen -y`) here and keep the secret off this host"
                        } else {
                            ""
                        };
                        let message =
                            format!("line {line} is not an age recipient (`age1...`){hint}");
                        check.push(ErrorKind::InvalidValue, KEY, shown_path(path), message);
                    }
                }
                if recipients.len() == before {
                    check.push(
                        ErrorKind::InvalidValue,
                        KEY,
                        shown_path(path),
                        "holds no recipient",
                    );
                }
            }
            Err(e) => check.push(
                ErrorKind::Io,
                KEY,
                shown_path(path),
                format!("cannot read: {e}"),
            ),
        }
    }
    let (identities, identities_from) = identities(identity_file, check);
    Encryption {
        recipients,
        identities,
        identities_from,
    }
}

/// The identities from the file, else from [`IDENTITY_ENV`], each line checked.
fn identities(file: Option<&Path>, check: &mut Check) -> (Option<Secret>, Option<String>) {
    const KEY: &str = "repository.encryption_identity_file";
    let (secret, from) = match file {
        Some(path) => {
            if readable_by_others(path) {
                check.push(
                    ErrorKind::Conflict,
                    KEY,
                    shown_path(path),
                    "every user of this host can read this secret key: chmod 600 it (or 640 for a group)",
                );
            }
            (read_secret(KEY, path, check), path.display().to_string())
        }
        None => match check.env().get(IDENTITY_ENV) {
            Some(text) => (Some(Secret::new(text)), IDENTITY_ENV.to_string()),
            None => return (None, None),
        },
    };
    let Some(secret) = secret else {
        return (None, None);
    };
    let mut any = false;
    for (line, key) in key_lines(secret.expose()) {
        if is_identity(key) {
            any = true;
            continue;
        }
        let hint = if key.starts_with(RECIPIENT_PREFIX) {
            ": it is a public key; it belongs in encryption_recipients(_file)"
        } else {
            ""
        };
        check.push(
            ErrorKind::InvalidValue,
            KEY,
            Some(format!("{from:?}")),
            format!("line {line} is not an age identity (`AGE-SECRET-KEY-1...`){hint}"),
        );
    }
    if !any {
        check.push(
            ErrorKind::InvalidValue,
            KEY,
            Some(format!("{from:?}")),
            "holds no identity",
        );
    }
    (Some(secret), Some(from))
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    // The recipient is the age specification's example; the identity has the right shape only.
    const PUBLIC: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    const SECRET: &str =
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";

    #[test]
    fn key_shapes() {
        assert!(is_recipient(PUBLIC));
        assert!(!is_recipient(&PUBLIC[..40]));
        assert!(!is_recipient(SECRET));
        assert!(is_identity(SECRET));
        assert!(!is_identity(&SECRET.to_lowercase()));
        assert!(!is_identity(PUBLIC));
        let lines: Vec<_> = key_lines("# a\n\n  x \n").collect();
        assert_eq!(lines, vec![(3, "x")]);
    }
}
