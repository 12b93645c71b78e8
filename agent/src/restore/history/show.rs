//! How the incident tools print bytes: text for people (UTF-8 as is, other bytes as `\xNN`,
//! long arguments shortened), JSON for scripts (as `aofvault inspect --json` does: UTF-8 as a
//! string, other bytes as `{"base64": …}`).

use aofvault_formats::json::bytes_json;

/// Bytes of one argument shown before it is shortened.
pub const SHORT: usize = 48;
/// Arguments of one command shown before the rest is summarised.
pub const ARGS: usize = 10;

/// One argument as text: quoted when it holds spaces, quotes or nothing; shortened to
/// [`SHORT`] bytes unless `full`.
pub fn arg_text(a: &[u8], full: bool) -> String {
    let (shown, cut) = if full || a.len() <= SHORT {
        (a, 0)
    } else {
        (&a[..SHORT], a.len() - SHORT)
    };
    let mut s = match std::str::from_utf8(shown) {
        Ok(t) => t.escape_debug().to_string(),
        // A cut may split a UTF-8 sequence: show what is valid, escape the rest.
        Err(e) if e.valid_up_to() > 0 && cut > 0 => {
            let (ok, rest) = shown.split_at(e.valid_up_to());
            format!(
                "{}{}",
                String::from_utf8_lossy(ok).escape_debug(),
                rest.escape_ascii()
            )
        }
        Err(_) => shown.escape_ascii().to_string(),
    };
    if s.is_empty() || s.contains(' ') || s.contains('"') {
        s = format!("\"{}\"", s.replace('"', "\\\""));
    }
    if cut > 0 {
        s.push_str(&format!("…(+{cut} bytes)"));
    }
    s
}

/// A command as one line of text.
pub fn command_text(args: &[&[u8]], full: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if !full && i == ARGS {
            parts.push(format!("…(+{} args)", args.len() - ARGS));
            break;
        }
        let t = arg_text(a, full);
        parts.push(if i == 0 { t.to_ascii_uppercase() } else { t });
    }
    parts.join(" ")
}

/// A command as a JSON array; args are cut to [`SHORT`] bytes (and the list to [`ARGS`])
/// unless `full`. Returns whether anything was cut.
pub fn command_json(args: &[&[u8]], full: bool) -> (serde_json::Value, bool) {
    let mut cut = false;
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if !full && i == ARGS {
            cut = true;
            break;
        }
        let a = if !full && a.len() > SHORT {
            cut = true;
            &a[..SHORT]
        } else {
            a
        };
        out.push(bytes_json(a));
    }
    (serde_json::Value::Array(out), cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_shortened_and_escaped() {
        assert_eq!(arg_text(b"user:1", false), "user:1");
        assert_eq!(arg_text(b"a b", false), "\"a b\"");
        assert_eq!(arg_text(b"\xff\x00", false), "\\xff\\x00");
        let long = vec![b'x'; 100];
        assert!(arg_text(&long, false).ends_with("…(+52 bytes)"));
        assert_eq!(arg_text(&long, true).len(), 100);
        assert_eq!(command_text(&[b"set", b"k", b"v"], false), "SET k v");
        let (j, cut) = command_json(&[b"SET", b"k", &long], false);
        assert!(cut);
        assert_eq!(j[2].as_str().map(str::len), Some(SHORT));
    }
}
