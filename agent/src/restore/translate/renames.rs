//! `RENAME`/`RENAMENX` replayed as their effect, for kevy targets: the renamed object's whole
//! history is written under the name it has at the end, so that no `RENAME` reaches kevy.
//!
//! Why: kevy 1.19 logs a same-shard `RENAME src dst` to the shard's AOF, but its own start-up
//! replay has no `RENAME` (the command is served by the runtime, not by the store's dispatch:
//! the replay answers "unknown command" and goes on), so a kevy restart — and a restore that
//! copies those bytes — brings `src` back and loses `dst`. A live kevy target would apply it,
//! but a rename whose keys fall on two shards of the target is never logged there (kevy does
//! not log cross-shard renames), and a restore to files cannot route one command to two
//! shards. Sending the value under its final name needs no model of the data and works for
//! every type:
//!
//! - a command before a rename that names `src` is written with `dst` (the name that object
//!   has after the rename), following chains of renames to the last name;
//! - the object `dst` named before the rename is destroyed by it: its commands are written
//!   under a private name ([`overwritten_name`]), deleted (`DEL`) where the rename was;
//! - the rename itself is not written.
//!
//! All of it needs the renames first, so a shard's stream is scanned once before it is fed
//! ([`Renames::scan`]); a stream without the bytes "rename" costs one byte search. Only the
//! keys a rename names are looked up per command: memory grows with the number of renames,
//! not with the data.

use std::collections::HashMap;

use anyhow::Context;

use crate::restore::fetch::StagedShard;
use crate::restore::stream::{for_each_item, Item};
use crate::restore::translate::{key_positions, Command};

/// One rename of the stream (src ≠ dst).
#[derive(Debug, Clone)]
struct Rename {
    /// Logical offset where the command ends.
    at: u64,
    src: Vec<u8>,
    dst: Vec<u8>,
}

/// The renames of one shard's stream, and which overwritten objects were written so far.
#[derive(Debug)]
pub struct Renames {
    shard: u32,
    list: Vec<Rename>,
    /// key → indices in `list` of the renames naming it, ascending.
    by_key: HashMap<Vec<u8>, Vec<usize>>,
    /// Per rename: a command was written under its overwritten name.
    used: Vec<bool>,
}

/// The private name under which the object that rename `index` of `shard` overwrote lives
/// until that rename.
pub fn overwritten_name(shard: u32, index: usize, dst: &[u8]) -> Vec<u8> {
    let mut name = format!("aofvault:overwritten:{shard}:{index}:").into_bytes();
    name.extend_from_slice(dst);
    name
}

fn is_rename(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"RENAME") || name.eq_ignore_ascii_case(b"RENAMENX")
}

impl Renames {
    /// The renames of `s`'s stream from logical offset `from` on; `None` when there is none.
    pub fn scan(s: &StagedShard, from: u64) -> anyhow::Result<Option<Renames>> {
        let open = || s.open_stream(from);
        if !crate::restore::search::contains_ignore_case(open()?, b"rename")? {
            return Ok(None);
        }
        let mut list = Vec::new();
        for_each_item(open()?, from, |item, end| {
            if let Item::Command(args) = item {
                if is_rename(args[0]) && args.len() == 3 && args[1] != args[2] {
                    list.push(Rename {
                        at: end,
                        src: args[1].to_vec(),
                        dst: args[2].to_vec(),
                    });
                }
            }
            Ok(())
        })
        .with_context(|| format!("shard {}: AOF stream", s.shard))?;
        Ok(Self::from_list(s.shard, list))
    }

    fn from_list(shard: u32, list: Vec<Rename>) -> Option<Renames> {
        if list.is_empty() {
            return None;
        }
        let mut by_key: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, r) in list.iter().enumerate() {
            by_key.entry(r.src.clone()).or_default().push(i);
            by_key.entry(r.dst.clone()).or_default().push(i);
        }
        let used = vec![false; list.len()];
        Some(Renames {
            shard,
            list,
            by_key,
            used,
        })
    }

    /// How many renames the stream has.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The name under which the object `key` names at offset `at` must be written, when it is
    /// not `key`.
    pub fn label(&mut self, key: &[u8], at: u64) -> Option<Vec<u8>> {
        let mut name: Option<Vec<u8>> = None;
        let mut pos = at;
        loop {
            let current = name.as_deref().unwrap_or(key);
            let Some(indices) = self.by_key.get(current) else {
                return name;
            };
            let next = indices.partition_point(|&i| self.list[i].at <= pos);
            let Some(&i) = indices.get(next) else {
                return name;
            };
            let r = &self.list[i];
            if r.dst == current {
                // Overwritten (or, once renamed away and back, replaced) at rename i.
                self.used[i] = true;
                return Some(overwritten_name(self.shard, i, &r.dst));
            }
            pos = r.at;
            name = Some(r.dst.clone());
        }
    }

    /// `args` (a command ending at `at`) with its keys renamed; `None` when no key changes.
    pub fn rewrite(&mut self, args: &[&[u8]], at: u64) -> Option<Command> {
        let mut out: Option<Command> = None;
        for i in key_positions(args) {
            let Some(key) = args.get(i) else { continue };
            if !self.by_key.contains_key(*key) {
                continue;
            }
            if let Some(new) = self.label(key, at) {
                out.get_or_insert_with(|| args.iter().map(|a| a.to_vec()).collect())[i] = new;
            }
        }
        out
    }

    /// What replaces the rename ending at `at`: the `DEL` of the object it overwrote, if any
    /// command was written under that object's name. `None` when `at` is not one of the
    /// scanned renames (a rename of a key onto itself, which changes nothing).
    pub fn at_rename(&self, at: u64) -> Option<Option<Command>> {
        let i = self.list.binary_search_by_key(&at, |r| r.at).ok()?;
        let r = &self.list[i];
        Some(self.used[i].then(|| vec![b"DEL".to_vec(), overwritten_name(self.shard, i, &r.dst)]))
    }

    /// Whether a command is a rename this table replaces.
    pub fn replaces(&self, args: &[&[u8]]) -> bool {
        args.first().is_some_and(|n| is_rename(n))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A tiny model of string keys: SET, APPEND, DEL, RENAME; enough to check that relabeled
    /// commands without renames end in the same state as the original with them.
    type State = BTreeMap<Vec<u8>, Vec<u8>>;

    fn apply(state: &mut State, args: &[Vec<u8>]) {
        let name = String::from_utf8_lossy(&args[0]).to_uppercase();
        match name.as_str() {
            "SET" => {
                state.insert(args[1].clone(), args[2].clone());
            }
            "APPEND" => state
                .entry(args[1].clone())
                .or_default()
                .extend_from_slice(&args[2]),
            "DEL" => {
                state.remove(&args[1]);
            }
            "RENAME" => {
                let v = state.remove(&args[1]).unwrap();
                state.insert(args[2].clone(), v);
            }
            other => panic!("{other}"),
        }
    }

    /// The state after `commands` as given, and after them relabeled (renames dropped).
    fn run(commands: &[&str]) -> (State, State) {
        let cmds: Vec<Vec<Vec<u8>>> = commands
            .iter()
            .map(|c| c.split(' ').map(|a| a.as_bytes().to_vec()).collect())
            .collect();
        let mut direct = BTreeMap::new();
        for c in &cmds {
            apply(&mut direct, c);
        }
        let list: Vec<Rename> = cmds
            .iter()
            .enumerate()
            .filter(|(_, c)| c[0] == b"RENAME" && c[1] != c[2])
            .map(|(i, c)| Rename {
                at: i as u64 + 1,
                src: c[1].clone(),
                dst: c[2].clone(),
            })
            .collect();
        let mut renames = Renames::from_list(7, list).unwrap();
        let mut relabeled = BTreeMap::new();
        for (i, c) in cmds.iter().enumerate() {
            let at = i as u64 + 1;
            let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            if renames.replaces(&refs) {
                if let Some(Some(del)) = renames.at_rename(at) {
                    apply(&mut relabeled, &del);
                }
                continue;
            }
            let out = renames.rewrite(&refs, at).unwrap_or_else(|| c.clone());
            apply(&mut relabeled, &out);
        }
        (direct, relabeled)
    }

    #[test]
    fn a_rename_moves_the_history_and_drops_the_overwritten_object() {
        let (direct, relabeled) = run(&[
            "SET a 1",
            "SET b old",
            "APPEND a 2",
            "RENAME a b",
            "APPEND b 3",
            "SET a new",
        ]);
        assert_eq!(direct, relabeled);
        assert_eq!(relabeled.get(&b"b"[..]).unwrap(), b"123");
        assert_eq!(relabeled.len(), 2, "no private name is left: {relabeled:?}");
    }

    #[test]
    fn chains_swaps_and_renames_back() {
        let (direct, relabeled) = run(&[
            "SET a 1",
            "SET b 2",
            "SET c 3",
            "RENAME a t",
            "RENAME b a",
            "RENAME t b",
            "APPEND a x",
            "RENAME a c",
            "RENAME c d",
            "SET a again",
            "RENAME d a",
            "APPEND b y",
        ]);
        assert_eq!(direct, relabeled);
    }

    #[test]
    fn unrelated_keys_and_self_renames_are_untouched() {
        let mut r = Renames::from_list(
            0,
            vec![Rename {
                at: 10,
                src: b"a".to_vec(),
                dst: b"b".to_vec(),
            }],
        )
        .unwrap();
        assert_eq!(r.rewrite(&[b"SET", b"x", b"1"], 5), None);
        assert_eq!(
            r.rewrite(&[b"SET", b"a", b"1"], 11),
            None,
            "after the rename"
        );
        assert_eq!(
            r.rewrite(&[b"DEL", b"x", b"a"], 5),
            Some(vec![b"DEL".to_vec(), b"x".to_vec(), b"b".to_vec()])
        );
        assert_eq!(r.at_rename(3), None);
        assert_eq!(r.at_rename(10), Some(None), "b was never written before");
    }
}
