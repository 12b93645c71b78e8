//! The Redis ≥ 7 multi-part AOF manifest (`appendonlydir/<appendfilename>.manifest`): which base,
//! history and incr files make up the AOF, in which order.
//!
//! The reader follows Redis's own loader (FORMATS.md §1.2) so that what it accepts, Redis
//! accepts: lines end with LF and are at most 1024 bytes; `#` lines are comments; each line is
//! split with Redis's `sdssplitargs` rules (double quotes with C escapes and `\xHH`, single
//! quotes); tokens are `key value` pairs, at least three; `file`, `seq` and `type` are required
//! (keys compared case-insensitively, `seq` read like C's `atoll` and non-zero, `type` its first
//! character: `b`, `h` or `i`); file names are bare names; at most one base; incr sequence
//! numbers strictly increase. Unknown keys are kept in [`AofFileEntry::extra`] and written back.
//!
//! Newer Redis writes optional `startoffset N` and `endoffset N` pairs on a line (replication
//! offsets the file's commands start and end at). They stay in `extra`, in line order, so that
//! they are written back unchanged, and are read with [`AofFileEntry::start_offset`] and
//! [`AofFileEntry::end_offset`]; a value that is not a non-negative decimal integer, an
//! `endoffset` without a `startoffset`, or an end before the start is an error naming the line.
//!
//! The writer produces Redis's format: `file <name> seq <n> type <c>\n` per entry, in the order
//! of [`AofManifest::entries`] (Redis writes the base, then history newest-first, then incrs),
//! quoting a name as Redis does when it holds a space, a quote, a backslash or a non-printable
//! byte (and, unlike Redis, a single quote, which Redis's reader would otherwise misread).

/// The role of a file in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AofFileType {
    /// `b`: the full state the incr files apply to.
    Base,
    /// `h`: retired by a rewrite, about to be deleted; never loaded.
    History,
    /// `i`: commands appended after the base; only the last one still grows.
    Incr,
}

impl AofFileType {
    fn code(self) -> char {
        match self {
            AofFileType::Base => 'b',
            AofFileType::History => 'h',
            AofFileType::Incr => 'i',
        }
    }
}

/// One `file … seq … type …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFileEntry {
    pub name: String,
    pub seq: i64,
    pub file_type: AofFileType,
    /// Keys this reader does not know, with their values, in line order.
    pub extra: Vec<(String, String)>,
}

/// The key of the optional replication offset a file's commands start at.
pub const START_OFFSET_KEY: &str = "startoffset";
/// The key of the optional replication offset a file's commands end at.
pub const END_OFFSET_KEY: &str = "endoffset";

impl AofFileEntry {
    /// The `startoffset` of this line, if it has one (checked when parsed).
    pub fn start_offset(&self) -> Option<u64> {
        self.offset(START_OFFSET_KEY)
    }

    /// The `endoffset` of this line, if it has one (checked when parsed).
    pub fn end_offset(&self) -> Option<u64> {
        self.offset(END_OFFSET_KEY)
    }

    fn offset(&self, key: &str) -> Option<u64> {
        self.extra
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| parse_offset(v))
    }
}

/// A replication offset: a non-negative decimal integer.
fn parse_offset(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Checks the optional offset pairs of one line.
fn check_offsets(entry: &AofFileEntry) -> Result<(), String> {
    for key in [START_OFFSET_KEY, END_OFFSET_KEY] {
        let mut values = entry
            .extra
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key));
        if let Some((_, value)) = values.next() {
            if parse_offset(value).is_none() {
                return Err(format!("{key} {value:?} is not a non-negative integer"));
            }
            if values.next().is_some() {
                return Err(format!("{key} appears twice"));
            }
        }
    }
    match (entry.start_offset(), entry.end_offset()) {
        (None, Some(_)) => Err("endoffset without startoffset".into()),
        (Some(start), Some(end)) if end < start => {
            Err(format!("endoffset {end} is before startoffset {start}"))
        }
        _ => Ok(()),
    }
}

/// A parsed manifest; entries in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AofManifest {
    pub entries: Vec<AofFileEntry>,
}

/// A manifest Redis would refuse to load. Lines are numbered from 1, comments included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("AOF manifest line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the AOF manifest is empty")]
    Empty,
}

/// Longest line Redis's loader reads, newline included.
const MAX_LINE: usize = 1024;

impl AofManifest {
    /// Parse a manifest with Redis's loader rules (see the module doc).
    pub fn parse(text: &[u8]) -> Result<Self, ManifestError> {
        if text.is_empty() {
            return Err(ManifestError::Empty);
        }
        let mut manifest = AofManifest::default();
        let mut last_incr_seq: Option<i64> = None;
        let mut rest = text;
        let mut line_no = 0;
        while !rest.is_empty() {
            line_no += 1;
            let (raw, has_newline, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => (&rest[..nl], true, &rest[nl + 1..]),
                None => (rest, false, &rest[rest.len()..]),
            };
            rest = next;
            if raw.first() == Some(&b'#') {
                continue;
            }
            let fail = |reason: &str| ManifestError::Line {
                line: line_no,
                reason: reason.to_owned(),
            };
            if !has_newline {
                return Err(fail("the last line does not end with a newline"));
            }
            if raw.len() + 1 > MAX_LINE {
                return Err(fail("line longer than 1024 bytes"));
            }
            if raw.contains(&0) {
                return Err(fail("NUL byte in line"));
            }
            let entry = parse_line(raw).map_err(|reason| ManifestError::Line {
                line: line_no,
                reason,
            })?;
            match entry.file_type {
                AofFileType::Base if manifest.base().is_some() => {
                    return Err(fail("a second base file"));
                }
                AofFileType::Incr => {
                    if last_incr_seq.is_some_and(|last| entry.seq <= last) {
                        return Err(fail("non-monotonic incr sequence number"));
                    }
                    last_incr_seq = Some(entry.seq);
                }
                _ => {}
            }
            manifest.entries.push(entry);
        }
        Ok(manifest)
    }

    /// The manifest as Redis writes it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str("file ");
            out.push_str(&quote(&e.name));
            out.push_str(&format!(" seq {} type {}", e.seq, e.file_type.code()));
            for (key, value) in &e.extra {
                out.push(' ');
                out.push_str(&quote(key));
                out.push(' ');
                out.push_str(&quote(value));
            }
            out.push('\n');
        }
        out
    }

    /// The base file, if any.
    pub fn base(&self) -> Option<&AofFileEntry> {
        self.entries
            .iter()
            .find(|e| e.file_type == AofFileType::Base)
    }

    /// The incr files, in load order; the last one is the one Redis appends to.
    pub fn incrs(&self) -> impl Iterator<Item = &AofFileEntry> {
        self.entries
            .iter()
            .filter(|e| e.file_type == AofFileType::Incr)
    }

    /// The history files (retired, never loaded).
    pub fn history(&self) -> impl Iterator<Item = &AofFileEntry> {
        self.entries
            .iter()
            .filter(|e| e.file_type == AofFileType::History)
    }
}

fn parse_line(raw: &[u8]) -> Result<AofFileEntry, String> {
    let line = trim(raw);
    if line.is_empty() {
        return Err("empty line".into());
    }
    let tokens = split_args(line)?;
    if tokens.len() < 6 || tokens.len() % 2 != 0 {
        return Err(format!(
            "expected at least 3 key/value pairs, found {} tokens",
            tokens.len()
        ));
    }
    let (mut name, mut seq, mut file_type) = (None, None, None);
    let mut extra = Vec::new();
    for pair in tokens.chunks_exact(2) {
        let (key, value) = (&pair[0], &pair[1]);
        if key.eq_ignore_ascii_case(b"file") {
            let text = String::from_utf8(value.clone())
                .map_err(|_| "file name is not UTF-8".to_owned())?;
            if text.contains('/') {
                return Err(format!("file {text:?} is a path, not a bare file name"));
            }
            name = Some(text);
        } else if key.eq_ignore_ascii_case(b"seq") {
            seq = Some(atoll(value).ok_or_else(|| {
                format!("seq {:?} is out of range", value.escape_ascii().to_string())
            })?);
        } else if key.eq_ignore_ascii_case(b"type") {
            file_type = Some(value.first().copied().unwrap_or(0));
        } else {
            let utf8 = |b: &[u8]| {
                String::from_utf8(b.to_vec()).map_err(|_| "a key or value is not UTF-8".to_owned())
            };
            extra.push((utf8(key)?, utf8(value)?));
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or("missing file name")?;
    let seq = seq.filter(|&s| s != 0).ok_or("missing or zero seq")?;
    let file_type = match file_type.ok_or("missing type")? {
        b'b' => AofFileType::Base,
        b'h' => AofFileType::History,
        b'i' => AofFileType::Incr,
        other => return Err(format!("unknown file type {:?}", char::from(other))),
    };
    let entry = AofFileEntry {
        name,
        seq,
        file_type,
        extra,
    };
    check_offsets(&entry)?;
    Ok(entry)
}

/// C `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Redis trims `" \t\r\n"` at both ends.
fn trim(mut s: &[u8]) -> &[u8] {
    let strip = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while s.first().is_some_and(strip) {
        s = &s[1..];
    }
    while s.last().is_some_and(strip) {
        s = &s[..s.len() - 1];
    }
    s
}

/// C `atoll`: leading spaces, an optional sign, digits up to the first non-digit. `None` only on
/// overflow (where C's result is undefined).
fn atoll(s: &[u8]) -> Option<i64> {
    let mut i = s.iter().take_while(|&&b| is_space(b)).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    for &b in s[i..].iter().take_while(|b| b.is_ascii_digit()) {
        let digit = i64::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// Redis's `sdssplitargs`: whitespace-separated tokens, `"…"` with C escapes, `'…'` with `\'`.
/// A closing quote must be followed by whitespace or the end of the line.
fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut tokens = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Ok(tokens);
        }
        let mut token = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = line.get(p).copied();
            let next = line.get(p + 1).copied();
            if in_double {
                match (c, next) {
                    (None, _) => return Err("unbalanced double quotes".into()),
                    (Some(b'\\'), Some(b'x')) if hex_pair(line, p + 2).is_some() => {
                        token.extend(hex_pair(line, p + 2));
                        p += 3;
                    }
                    (Some(b'\\'), Some(e)) => {
                        token.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 1;
                    }
                    (Some(b'"'), after) => {
                        if after.is_some_and(|a| !is_space(a)) {
                            return Err("closing quote must be followed by a space".into());
                        }
                        p += 1;
                        break;
                    }
                    (Some(other), _) => token.push(other),
                }
            } else if in_single {
                match (c, next) {
                    (None, _) => return Err("unbalanced single quotes".into()),
                    (Some(b'\\'), Some(b'\'')) => {
                        token.push(b'\'');
                        p += 1;
                    }
                    (Some(b'\''), after) => {
                        if after.is_some_and(|a| !is_space(a)) {
                            return Err("closing quote must be followed by a space".into());
                        }
                        p += 1;
                        break;
                    }
                    (Some(other), _) => token.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        p += 1;
                        break;
                    }
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => token.push(other),
                }
            }
            p += 1;
        }
        tokens.push(token);
    }
}

fn hex_pair(line: &[u8], at: usize) -> Option<u8> {
    let hi = (*line.get(at)? as char).to_digit(16)?;
    let lo = (*line.get(at + 1)? as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// The name as Redis writes it: raw, or quoted with C escapes when it "needs repr". A single
/// quote also gets quoted here (Redis's writer leaves it bare, which its own reader rejects).
fn quote(s: &str) -> String {
    let needs_repr = s
        .bytes()
        .any(|b| matches!(b, b'\\' | b'"' | b'\'') || !(0x20..0x7f).contains(&b) || is_space(b));
    if !needs_repr {
        return s.to_owned();
    }
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}
