//! Which objects a verify run checks, and what each document says each must be.
//!
//! An object may be described by several documents — a base by its chain head and by every
//! manifest naming the chain, a segment by its own name (which carries its range and CRC-32C)
//! — or by none (a base whose head and manifests are all unreadable). Each description is a
//! [`Claim`]; the object is downloaded once and the claims are weighed against what it holds
//! (see `object`), so a damaged document is named as such instead of blaming the object.
//!
//! Segments are weighed here, before any download: a manifest's record of a segment must match
//! the segment's name. A chain's segments are followed with [`longest_run`], which tolerates
//! overlapping segments (a retry after a lost reply stores `[a,c)` beside `[a,b)`): the one off
//! the run is a note, not a problem, and only a hole no document explains is a gap.

use std::collections::{BTreeMap, BTreeSet};

use aofvault_formats::vault::{BaseFormat, SegmentRef, ShardCut, SnapshotManifest};

use super::finding::{finding, Finding};
use super::inventory::{Chain, Chains, Head};
use crate::repo::keys;
use crate::repo::run::longest_run;
use crate::repo::ShardId;

/// One document's description of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claim {
    /// The document's key (for a segment, the segment's own key: its name is the record).
    pub by: String,
    pub crc: u32,
    pub size: u64,
}

/// What an object must decode as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A base part; `None`: no readable document says which format (sniffed from the bytes).
    Base(Option<BaseFormat>),
    Segment {
        start: u64,
    },
    /// A torn range (a crash's half-written command, recorded on purpose): size and CRC only,
    /// never decoded.
    Torn,
}

impl Kind {
    /// What a stored range must be: a segment decodes as whole commands, a torn range does not.
    pub(super) fn of_range(s: &SegmentRef) -> Kind {
        if keys::is_torn(s) {
            Kind::Torn
        } else {
            Kind::Segment { start: s.start }
        }
    }
}

/// One object to check.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub kind: Kind,
    pub claims: Vec<Claim>,
}

/// The objects to check, with the findings and notes found while choosing them.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub targets: BTreeMap<String, Target>,
    pub findings: Vec<Finding>,
    /// Things worth knowing that are not problems (exit 0 stays 0).
    pub notes: Vec<Finding>,
    /// Segments manifests name, per chain folder, listed or not: a chain's run includes them,
    /// so a missing one is reported once (missing), not again as a gap.
    named_segments: BTreeMap<String, Vec<SegmentRef>>,
    /// The chain start a manifest records, per chain folder (used when the head is unreadable).
    named_starts: BTreeMap<String, u64>,
    /// Chain heads already reported missing.
    missing_heads: BTreeSet<String>,
}

impl Plan {
    fn claim(&mut self, key: String, kind: Kind, claim: Option<Claim>) {
        let t = self.targets.entry(key).or_insert(Target {
            kind,
            claims: Vec::new(),
        });
        if t.kind == Kind::Base(None) {
            t.kind = kind;
        }
        if let Some(c) = claim {
            if !t.claims.iter().any(|o| o.by == c.by) {
                t.claims.push(c);
            }
        }
    }

    fn missing_head(&mut self, chain: &Chain, why: String) {
        let key = chain.head_key();
        if self.missing_heads.insert(key.clone()) {
            self.findings.push(finding(key, why));
        }
    }

    /// The head's claims on its base parts.
    fn head_claims(&mut self, chain: &Chain) {
        if let Head::Good(h) = &chain.head {
            for part in &h.base {
                let c = Claim {
                    by: chain.head_key(),
                    crc: part.crc32c,
                    size: part.size,
                };
                let key = format!("{}{}", chain.dir, part.object);
                self.claim(key, Kind::Base(Some(part.format)), Some(c));
            }
        }
    }

    /// Every object of a listed chain (verify of the whole instance).
    pub fn add_chain(&mut self, chain: &Chain) {
        self.head_claims(chain);
        for b in &chain.bases {
            let key = format!("{}{b}", chain.dir);
            if let Head::Good(h) = &chain.head {
                if !h.base.iter().any(|p| &p.object == b) {
                    self.notes.push(finding(
                        &key,
                        "not named by its chain head: restore never reads it",
                    ));
                }
            }
            self.claim(key, Kind::Base(None), None);
        }
        for s in &chain.segments {
            let key = format!("{}{}", chain.dir, s.object);
            let c = Claim {
                by: key.clone(),
                crc: s.crc32c,
                size: s.end - s.start,
            };
            self.claim(key, Kind::of_range(s), Some(c));
        }
        for o in &chain.others {
            self.notes.push(finding(
                format!("{}{o}", chain.dir),
                "not an aofvault object name: not checked",
            ));
        }
    }

    /// A readable manifest (stored at `key`): what it says is checked against the chains it
    /// names, and becomes claims on their objects.
    pub fn add_manifest(&mut self, m: &SnapshotManifest, key: &str, chains: &Chains) {
        for cut in &m.shards {
            let shard = ShardId(cut.shard);
            let Some(chain) = chains
                .get(&(shard, cut.chain.clone()))
                .filter(|c| !c.is_empty())
            else {
                self.findings.push(finding(
                    key,
                    format!(
                        "names chain {:?} for shard {shard}, but the repository holds no object of it",
                        cut.chain
                    ),
                ));
                continue;
            };
            self.cut_against_head(m, key, cut, chain);
            for part in &cut.base {
                let c = Claim {
                    by: key.to_string(),
                    crc: part.crc32c,
                    size: part.size,
                };
                let object = format!("{}{}", chain.dir, part.object);
                self.claim(object, Kind::Base(Some(part.format)), Some(c));
            }
            self.named_starts
                .entry(chain.dir.clone())
                .or_insert(cut.stream_start);
            for s in &cut.segments {
                let Some(named) = keys::parse_segment(&s.object) else {
                    self.findings.push(finding(
                        key,
                        format!(
                            "names segment {:?}, which is not a segment's name",
                            s.object
                        ),
                    ));
                    continue;
                };
                if (named.start, named.end, named.crc32c) != (s.start, s.end, s.crc32c) {
                    self.findings.push(finding(
                        key,
                        format!(
                            "segment {}: [{}, {}) with CRC-32C {:08x} were recorded here, but its name says [{}, {}) with {:08x}",
                            s.object, s.start, s.end, s.crc32c, named.start, named.end, named.crc32c
                        ),
                    ));
                }
                let object = format!("{}{}", chain.dir, s.object);
                let c = Claim {
                    by: object.clone(),
                    crc: named.crc32c,
                    size: named.end - named.start,
                };
                self.claim(object, Kind::of_range(&named), Some(c));
                self.named_segments
                    .entry(chain.dir.clone())
                    .or_default()
                    .push(named);
            }
        }
    }

    /// The head of a chain a manifest uses must exist and agree about where the chain starts
    /// and which base parts it has (their contents are weighed when downloaded).
    fn cut_against_head(&mut self, m: &SnapshotManifest, key: &str, cut: &ShardCut, chain: &Chain) {
        let h = match &chain.head {
            Head::Good(h) => h,
            Head::Missing => {
                let why = format!(
                    "missing: snapshot {} uses this chain, but a chain without its head counts as abandoned",
                    m.id
                );
                return self.missing_head(chain, why);
            }
            Head::Damaged => return,
        };
        self.head_claims(chain);
        if h.stream_start != cut.stream_start {
            // The chain's first stored segment says which of the two is right.
            let first = chain.segments.first().map(|s| s.start);
            let (object, problem) = if first == Some(cut.stream_start) {
                (
                    chain.head_key(),
                    format!(
                        "records the chain's start as {}, but snapshot {} and the first segment say {}",
                        h.stream_start, m.id, cut.stream_start
                    ),
                )
            } else {
                (
                    key.to_string(),
                    format!(
                        "records shard {}'s chain as starting at {}, but its head says {}",
                        cut.shard, cut.stream_start, h.stream_start
                    ),
                )
            };
            self.findings.push(finding(object, problem));
        }
        let names = |parts: &[aofvault_formats::vault::BasePart]| -> Vec<String> {
            parts.iter().map(|p| p.object.clone()).collect()
        };
        if names(&h.base) != names(&cut.base) {
            self.findings.push(finding(
                key,
                format!(
                    "names base parts {:?} for shard {}, but the chain head names {:?}",
                    names(&cut.base),
                    cut.shard,
                    names(&h.base)
                ),
            ));
        }
    }

    /// A whole chain's run (verify of the whole instance): from the chain's start over every
    /// stored or named segment. A hole (once the segment after it is `grace_ms` old) is a
    /// finding; a segment off the run inside its range is a note.
    pub fn chain_run(&mut self, chain: &Chain, grace_ms: i64, now_ms: i64) {
        if matches!(chain.head, Head::Missing) && !self.named_starts.contains_key(&chain.dir) {
            // Not a chain for any reader: a writer that stopped before its head, or a prune
            // that stopped half way (it deletes the head first). Holes are expected there.
            self.notes.push(finding(
                &chain.dir,
                "abandoned chain (no chain.json, and no readable snapshot names it): restore never reads it and prune removes it; its objects are checked one by one, its segments not followed",
            ));
            return;
        }
        let mut all = chain.segments.clone();
        for s in self.named_segments.get(&chain.dir).into_iter().flatten() {
            if !all.iter().any(|x| x.object == s.object) {
                all.push(s.clone());
            }
        }
        let Some(first) = all.iter().map(|s| s.start).min() else {
            return;
        };
        let start = match &chain.head {
            Head::Good(h) => h.stream_start,
            _ => match self.named_starts.get(&chain.dir) {
                Some(s) => *s,
                None => {
                    self.notes.push(finding(
                        &chain.dir,
                        format!("no readable head or manifest records where the chain starts: its segments are followed from the first one stored ({first})"),
                    ));
                    first
                }
            },
        };
        let run = longest_run(start, &all);
        self.gap(chain, run.gap, grace_ms, now_ms);
        let on: BTreeSet<&str> = run.segments.iter().map(|s| s.object.as_str()).collect();
        for s in &chain.segments {
            if on.contains(s.object.as_str()) || s.start >= run.end {
                continue;
            }
            let why = if s.start < start {
                format!("starts before the chain's start ({start}): restore never reads it")
            } else {
                "off the chain's longest run (segments overlapping it go further, as after a retry): restore does not need it".to_string()
            };
            self.notes
                .push(finding(format!("{}{}", chain.dir, s.object), why));
        }
    }

    /// The segments a latest restore adds after `cut` (the scheduled drill), and the first gap
    /// after them.
    pub fn after_cut(&mut self, chain: &Chain, cut: &ShardCut, grace_ms: i64, now_ms: i64) {
        let run = longest_run(cut.end, &chain.segments);
        self.gap(chain, run.gap, grace_ms, now_ms);
        for s in run.segments {
            let key = format!("{}{}", chain.dir, s.object);
            let c = Claim {
                by: key.clone(),
                crc: s.crc32c,
                size: s.end - s.start,
            };
            self.claim(key, Kind::of_range(&s), Some(c));
        }
    }

    fn gap(
        &mut self,
        chain: &Chain,
        gap: Option<crate::repo::run::Gap>,
        grace_ms: i64,
        now_ms: i64,
    ) {
        if let Some(g) = gap.filter(|g| now_ms - g.next_seen_ms >= grace_ms) {
            self.findings.push(finding(
                format!("{}seg-{:016x}-{:016x}", chain.dir, g.start, g.end),
                format!(
                    "missing: the chain's segments stop at offset {} and go on at {}; a restore stops at the gap",
                    g.start, g.end
                ),
            ));
        }
    }
}
