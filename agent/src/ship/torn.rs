//! The crash pattern: a frame torn by a `kill -9` (or a power loss), then whole frames that a
//! restarted server appended after it.
//!
//! kevy 1.19 keeps the half-written frame its crash left at the end of an AOF and appends after
//! it when it restarts; its own start-up replay stops at the torn frame and drops everything
//! after it. The agent recognises the pattern — bytes that are only the *beginning* of a command
//! (never invalid on their own), followed by whole commands from a new frame start — so that it
//! can record the torn bytes as skipped and go on shipping what follows. Anything else invalid
//! (a flipped byte, garbage) is not a crash, and stops the shard.

use aofvault_formats::aof::safe_prefix;

/// How far past a candidate restart the whole-command check reads: enough to see several
/// commands, bounded so that a large buffer is not parsed once per candidate.
const CONFIRM: usize = 64 * 1024;

/// At most this many candidate positions are tried.
const MAX_CANDIDATES: usize = 10_000;

/// A torn frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Torn {
    /// Length of the torn bytes: the restart's first whole command starts there.
    pub len: usize,
}

/// What the bytes after a safe cut show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A torn frame, then whole commands.
    Torn(Torn),
    /// Possibly a torn frame, but the commands after it are not all there yet: read more.
    NeedMore,
    /// Not the crash pattern.
    NotACrash,
}

/// Looks at `buf`, which starts at a safe cut (absolute offset `base`) where the stream stopped
/// parsing: is it a torn frame followed by a restart's whole commands? `at_eof` says `buf` ends
/// where the file ends (so an unfinished restart command may still be completed).
pub fn classify(buf: &[u8], base: u64, at_eof: bool) -> Verdict {
    if buf.first() != Some(&b'*') {
        return Verdict::NotACrash;
    }
    let mut tried = 0;
    for y in 1..buf.len() {
        if buf[y] != b'*' {
            continue;
        }
        tried += 1;
        if tried > MAX_CANDIDATES {
            break;
        }
        // The torn part must be the beginning of a command and nothing else: incomplete, never
        // invalid, and not one whole command either.
        match safe_prefix(&buf[..y], base) {
            Ok(p) if p.len == 0 => {}
            // Whole commands or invalid bytes before `y`: the frame at `base` is not torn here.
            _ => continue,
        }
        let rest = &buf[y..buf.len().min(y + CONFIRM)];
        match safe_prefix(rest, base + y as u64) {
            Ok(p) if p.len > 0 => {
                // Whole commands follow. If the window was cut by CONFIRM, what follows may be
                // unfinished; that is for the normal scan to judge.
                return Verdict::Torn(Torn { len: y });
            }
            Ok(_) if at_eof && buf.len() - y < CONFIRM => {
                // A new frame has begun but is not whole yet: wait for the server to finish it.
                return Verdict::NeedMore;
            }
            _ => {}
        }
    }
    Verdict::NotACrash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        out
    }

    #[test]
    fn a_torn_frame_then_whole_commands_is_the_crash_pattern() {
        let whole = cmd(&["SET", "key", "value"]);
        for cut in 1..whole.len() {
            let mut buf = whole[..cut].to_vec();
            let restart = [cmd(&["INCR", "c"]), cmd(&["SET", "a", "*b"])].concat();
            buf.extend_from_slice(&restart);
            assert_eq!(
                classify(&buf, 100, true),
                Verdict::Torn(Torn { len: cut }),
                "torn after {cut} bytes"
            );
        }
    }

    #[test]
    fn garbage_is_not_a_crash() {
        let mut buf = b"*2\r\n$3\r\nGET\r\nxx\r\n".to_vec();
        buf.extend_from_slice(&cmd(&["INCR", "c"]));
        assert_eq!(classify(&buf, 0, true), Verdict::NotACrash);
        assert_eq!(
            classify(b"hello *1\r\n$4\r\nPING\r\n", 0, true),
            Verdict::NotACrash
        );
    }

    #[test]
    fn an_unfinished_restart_command_asks_for_more() {
        let mut buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk".to_vec();
        buf.extend_from_slice(b"*2\r\n$4\r\nIN");
        assert_eq!(classify(&buf, 0, true), Verdict::NeedMore);
        assert_eq!(classify(&buf, 0, false), Verdict::NotACrash);
    }

    #[test]
    fn a_star_inside_the_torn_value_is_not_taken_for_the_restart() {
        // The torn value holds "*x": not a frame start that parses, so the real restart wins.
        let mut buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$9\r\nab*x".to_vec();
        let at = buf.len();
        buf.extend_from_slice(&cmd(&["INCR", "c"]));
        assert_eq!(classify(&buf, 0, true), Verdict::Torn(Torn { len: at }));
    }
}
