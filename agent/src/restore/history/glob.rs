//! Key patterns in Redis `MATCH` / `KEYS` syntax (`stringmatchlen` in Redis's util.c): `*`
//! any run of bytes, `?` one byte, `[abc]` / `[^abc]` / `[a-z]` a class, `\x` the byte `x`.
//! Matching is on bytes, like the server's: keys need not be UTF-8.

/// One or more patterns; a key matches when any of them does. No pattern matches every key.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    patterns: Vec<Vec<u8>>,
}

impl Patterns {
    pub fn new<S: AsRef<[u8]>>(patterns: &[S]) -> Patterns {
        Patterns {
            patterns: patterns.iter().map(|p| p.as_ref().to_vec()).collect(),
        }
    }

    /// True when no pattern was given (every key matches).
    pub fn is_all(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn matches(&self, key: &[u8]) -> bool {
        self.is_all() || self.patterns.iter().any(|p| glob_match(p, key))
    }

    /// The patterns as text, for messages.
    pub fn describe(&self) -> String {
        if self.is_all() {
            return "*".into();
        }
        let shown: Vec<String> = self
            .patterns
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        shown.join(" ")
    }
}

/// Redis's glob: does `pattern` match all of `s`?
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // Where the last `*` was, and the input position it is currently made to cover up to.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                _ if i < s.len() => {
                    if let Some(next) = one(pattern, p, s[i]) {
                        p = next;
                        i += 1;
                        continue;
                    }
                }
                _ => {}
            }
        } else if i == s.len() {
            return true;
        }
        // Mismatch: let the last `*` cover one more byte, or fail.
        match star {
            Some((sp, si)) if si < s.len() => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the single pattern element at `p` against byte `c`; returns the position after the
/// element when it matches.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => class(pattern, p + 1, c),
        other => (other == c).then_some(p + 1),
    }
}

/// A `[...]` class starting after its `[`; an unclosed class runs to the end, as in Redis.
fn class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            matched |= pattern[p + 1] == c;
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' && pattern[p + 2] != b']' {
            let (a, b) = (
                pattern[p].min(pattern[p + 2]),
                pattern[p].max(pattern[p + 2]),
            );
            matched |= (a..=b).contains(&c);
            p += 3;
        } else {
            matched |= pattern[p] == c;
            p += 1;
        }
    }
    let after = if p < pattern.len() { p + 1 } else { p };
    (matched != negate).then_some(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn redis_glob_cases() {
        assert!(m("user:*", "user:1"));
        assert!(m("user:*", "user:"));
        assert!(!m("user:*", "other:1"));
        assert!(m("*", ""));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*:*:x", "a:b:c:x"));
        assert!(!m("*:*:x", "a:x"));
        assert!(m("*a*b", "xxaxxb"));
        assert!(!m("*a*b", "xxaxxbx"));
    }

    #[test]
    fn patterns_match_any() {
        let p = Patterns::new(&["a*", "b*"]);
        assert!(p.matches(b"ab") && p.matches(b"bz") && !p.matches(b"cz"));
        assert!(Patterns::default().matches(b"anything"));
        assert!(glob_match(b"k\xff*", b"k\xff\x00"));
    }
}
