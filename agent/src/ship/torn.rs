//! The crash pattern: a frame torn by a `kill -9` (or a power loss), then whole frames that a
//! restarted server appended after it.
//!
//! kevy 1.19 keeps the half-written frame its crash left at the end of an AOF and appends after
//! it when it restarts; its own start-up replay stops at the torn frame and drops everything
//! after it. The agent recognises the pattern — bytes that are only the *beginning* of a command
//! (never invalid on their own), followed by whole commands from a new frame start — so that it
//! can record the torn bytes as skipped and go on shipping what follows. Anything else invalid
//! (a flipped byte, garbage) is not a crash, and stops the shard.

use aofvault_formats::aof::{items, safe_prefix, AofItem};

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

/// How many whole commands before invalid bytes [`torn_start`] looks back through.
const LOOK_BACK: usize = 64;

/// `buf[..good]` (from absolute offset `base`) holds whole commands and ends at a safe cut after
/// which the stream fails to parse; `buf` goes on with what was read after it. A torn command can hide among them: when the crash cut a
/// command inside a value, the restarted server's first bytes can complete it into one that
/// parses (`SET k` + `vv` torn, then `*2\r\n$4` of the next frame taken as the rest of the
/// value) — and only the bytes after it fail. Returns the offset in `buf` of such a torn
/// command, looking back through the last whole commands; `None` when there is none (then the
/// bad bytes start where `buf` ends). A command counts as torn only if the crash pattern holds
/// from its start ([`classify`]): its bytes up to a new frame start are only the beginning of a
/// command, and whole commands follow from that frame start.
pub fn torn_start(buf: &[u8], good: usize, base: u64, at_eof: bool) -> Option<usize> {
    let starts: Vec<usize> = items(&buf[..good.min(buf.len())], base)
        .filter_map(|item| match item {
            Ok(AofItem::Command { start, .. }) => Some((start - base) as usize),
            _ => None,
        })
        .collect();
    starts.iter().rev().take(LOOK_BACK).copied().find(|&at| {
        // Only at a safe cut (never inside MULTI … EXEC), and with the pattern holding.
        safe_prefix(&buf[..at], base).is_ok_and(|p| p.len == at)
            && matches!(
                classify(&buf[at..], base + at as u64, at_eof),
                Verdict::Torn(_)
            )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
    fn a_torn_command_completed_by_the_restart_is_found_behind_the_bad_bytes() {
        // `SET k` with 2 of its 8 value bytes, then the restart's `INCR c`: the SET swallows
        // `*2\r\n$4` as the rest of its value and parses; the bytes after it do not.
        let before = cmd(&["SET", "a", "1"]);
        let whole = cmd(&["SET", "k", "vvvvvvvv"]);
        let torn = &whole[..whole.len() - 8];
        let mut buf = before.clone();
        buf.extend_from_slice(torn);
        let restart = cmd(&["INCR", "c"]);
        buf.extend_from_slice(&restart);
        buf.extend_from_slice(&cmd(&["INCR", "c"]));
        let Err(aofvault_formats::aof::AofError::Invalid { offset, .. }) = safe_prefix(&buf, 0)
        else {
            panic!("the bytes after the completed SET do not parse");
        };
        let good = safe_prefix(&buf[..offset as usize], 0).unwrap().len;
        assert_eq!(
            good,
            before.len() + torn.len() + 8,
            "the SET parsed, swallowing 6 bytes"
        );
        let at = torn_start(&buf, good, 0, true);
        assert_eq!(
            at,
            Some(before.len()),
            "the torn SET starts after the whole one"
        );
        assert_eq!(
            classify(&buf[before.len()..], before.len() as u64, true),
            Verdict::Torn(Torn { len: torn.len() })
        );
    }

    #[test]
    fn whole_commands_before_garbage_hide_no_torn_one() {
        let mut buf = cmd(&["SET", "a", "*1\r\n$4\r\nPING\r\n"]);
        buf.extend_from_slice(&cmd(&["INCR", "c"]));
        assert_eq!(torn_start(&buf, buf.len(), 0, true), None);
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
