//! `prune` against an in-memory repository: the rules around the policy (grace for dropped
//! manifests, the newest restorable snapshot, unreadable manifests, dry run, no rules) and the
//! order of deletions, on real objects written through [`Repo`].

#![allow(clippy::unwrap_used)]

use aofvault_formats::vault::{
    BaseFormat, BasePart, ChainHead, ServerLayout, ShardCut, SnapshotManifest, FORMAT_VERSION,
};
use bytes::Bytes;

use super::*;
use crate::repo::{RepoSpec, ShardId};

const INSTANCE: &str = "db";
const MINUTE: i64 = 60_000;

fn repo(name: &str) -> Repo {
    Repo::open(
        &RepoSpec::Memory(format!("prune-{name}-{}", rand::random::<u64>())),
        1,
    )
    .unwrap()
}

fn layout() -> ServerLayout {
    ServerLayout::RedisMultiPart {
        aof_name: "appendonly.aof".into(),
        aof_dir: "appendonlydir".into(),
    }
}

/// Stores a chain with a base and `segs` segments of 10 bytes; returns its head.
async fn chain(
    repo: &Repo,
    id: &str,
    segs: u64,
) -> (ChainHead, Vec<aofvault_formats::vault::SegmentRef>) {
    let dir = keys::chain_dir(INSTANCE, ShardId(0), id);
    repo.put_new(
        &keys::object(&dir, "base-0.raw"),
        Bytes::from_static(b"base"),
    )
    .await
    .unwrap();
    let head = ChainHead {
        format_version: FORMAT_VERSION,
        instance: INSTANCE.into(),
        shard: 0,
        chain: id.into(),
        created_ms: 1,
        layout: layout(),
        server_version: None,
        base: vec![BasePart {
            format: BaseFormat::Rdb,
            object: "base-0.raw".into(),
            file_name: "b.rdb".into(),
            size: 4,
            crc32c: 0,
        }],
        stream_start: 0,
        reason: "start".into(),
        source_identity: String::new(),
        node: None,
    };
    repo.put_chain_head(&head).await.unwrap();
    let mut out = Vec::new();
    for i in 0..segs {
        out.push(
            repo.put_segment(INSTANCE, ShardId(0), id, i * 10, b"0123456789", (1, 2))
                .await
                .unwrap(),
        );
    }
    (head, out)
}

/// Publishes a snapshot of the chain up to its `n` first segments, created at `created_ms`.
async fn snapshot(
    repo: &Repo,
    id: &str,
    created_ms: i64,
    c: &(ChainHead, Vec<aofvault_formats::vault::SegmentRef>),
    n: usize,
) {
    let segments = c.1[..n].to_vec();
    let end = segments.last().map_or(0, |s| s.end);
    let m = SnapshotManifest {
        format_version: FORMAT_VERSION,
        id: id.into(),
        instance: INSTANCE.into(),
        created_ms,
        layout: layout(),
        server_version: None,
        reason: "test".into(),
        shards: vec![ShardCut {
            shard: 0,
            chain: c.0.chain.clone(),
            base: c.0.base.clone(),
            stream_start: 0,
            segments,
            end,
        }],
    };
    repo.put_snapshot(&m).await.unwrap();
}

async fn keys_in(repo: &Repo) -> Vec<String> {
    repo.list(&keys::instance_prefix(INSTANCE))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect()
}

fn keep_last(n: u32) -> Policy {
    Policy {
        keep_last: Some(n),
        ..Policy::default()
    }
}

/// Three chains, one snapshot on each (s1 oldest); the objects were all stored "now".
async fn three_generations(repo: &Repo, now: i64) {
    for (i, c) in [
        "1000000000001-aaaaaaaa",
        "1000000000002-bbbbbbbb",
        "1000000000003-cccccccc",
    ]
    .iter()
    .enumerate()
    {
        let c = chain(repo, c, 2).await;
        snapshot(
            repo,
            &format!("s{}", i + 1),
            now - (3 - i as i64) * 60 * MINUTE,
            &c,
            2,
        )
        .await;
    }
}

#[tokio::test]
async fn old_generations_go_head_first_and_the_newest_stays() {
    let repo = repo("gen");
    let now = crate::context::now_ms();
    three_generations(&repo, now).await;
    let before = keys_in(&repo).await;
    // Objects are a few ms old: with a 0 grace and "now" a minute ahead, they are all old.
    let dry = prune(&repo, INSTANCE, &keep_last(1), 0, true, now + MINUTE)
        .await
        .unwrap();
    assert_eq!(keys_in(&repo).await, before, "a dry run deleted something");
    assert_eq!(dry.summary.snapshots_deleted, 2);
    assert!(dry.deletions.iter().all(|d| !d.deleted));
    let r = prune(&repo, INSTANCE, &keep_last(1), 0, false, now + MINUTE)
        .await
        .unwrap();
    assert!(r.clean(), "{r:?}");
    assert_eq!(dry.deletions.len(), r.deletions.len());
    assert_eq!(
        (r.summary.snapshots_kept, r.summary.snapshots_deleted),
        (1, 2)
    );
    assert_eq!((r.summary.chains_kept, r.summary.chains_deleted), (1, 2));
    // Manifests first, then per chain its head first.
    assert!(
        r.deletions[0].key.ends_with("snapshots/s1.json")
            || r.deletions[0].key.ends_with("snapshots/s2.json")
    );
    assert!(
        r.deletions[2].key.ends_with("aaaaaaaa/chain.json"),
        "{:?}",
        r.deletions
    );
    assert_eq!(r.deletions.len(), 2 + 2 * 4);
    let left = keys_in(&repo).await;
    assert!(
        left.iter()
            .all(|k| !k.contains("aaaaaaaa") && !k.contains("bbbbbbbb")),
        "{left:?}"
    );
    assert_eq!(left.iter().filter(|k| k.contains("cccccccc")).count(), 4);
    assert_eq!(
        repo.snapshot_ids(INSTANCE).await.unwrap(),
        vec!["s3".to_string()]
    );
    assert_eq!(
        r.summary.bytes_freed,
        r.deletions.iter().map(|d| d.size).sum::<u64>()
    );
}

#[tokio::test]
async fn dropped_manifests_younger_than_the_grace_are_spared_with_their_chains() {
    let repo = repo("grace");
    let now = crate::context::now_ms();
    three_generations(&repo, now).await;
    let before = keys_in(&repo).await;
    // s1 and s2 were "created" 3h and 2h ago but stored just now: the store's time counts too.
    let r = prune(&repo, INSTANCE, &keep_last(1), 30 * MINUTE, false, now)
        .await
        .unwrap();
    assert_eq!(keys_in(&repo).await, before);
    assert_eq!(r.summary.snapshots_spared, 2, "{r:?}");
    assert!(r
        .snapshots
        .iter()
        .filter(|s| s.fate == SnapshotFate::Spare)
        .all(|s| s.reasons == vec![SPARED]));
    assert!(
        r.chains
            .iter()
            .all(|c| c.fate == Fate::Keep && c.reason == gc::NAMED),
        "{:?}",
        r.chains
    );
}

#[tokio::test]
async fn the_newest_restorable_snapshot_stays_when_the_newest_is_broken() {
    let repo = repo("broken");
    let now = crate::context::now_ms();
    three_generations(&repo, now).await;
    // s3's chain loses a segment it names.
    let seg = repo
        .segments(INSTANCE, ShardId(0), "1000000000003-cccccccc")
        .await
        .unwrap();
    repo.delete(&format!(
        "{}{}",
        keys::chain_dir(INSTANCE, ShardId(0), "1000000000003-cccccccc"),
        seg[0].0.object
    ))
    .await
    .unwrap();
    let r = prune(&repo, INSTANCE, &keep_last(1), 0, false, now + MINUTE)
        .await
        .unwrap();
    let kept: Vec<(&str, &[&str])> = r
        .snapshots
        .iter()
        .filter(|s| s.fate == SnapshotFate::Keep)
        .map(|s| (s.id.as_str(), s.reasons.as_slice()))
        .collect();
    assert_eq!(
        kept,
        vec![
            ("s3", &[policy::NEWEST, policy::LAST][..]),
            ("s2", &[NEWEST_RESTORABLE][..])
        ]
    );
    assert_eq!(
        repo.snapshot_ids(INSTANCE).await.unwrap(),
        vec!["s2".to_string(), "s3".to_string()]
    );
    assert!(keys_in(&repo)
        .await
        .iter()
        .any(|k| k.ends_with("bbbbbbbb/chain.json")));
}

#[tokio::test]
async fn an_unreadable_manifest_stops_chain_collection() {
    let repo = repo("corrupt");
    let now = crate::context::now_ms();
    three_generations(&repo, now).await;
    repo.put_new(
        &keys::snapshot(INSTANCE, "s0"),
        Bytes::from_static(b"{not json"),
    )
    .await
    .unwrap();
    let r = prune(&repo, INSTANCE, &keep_last(1), 0, false, now + MINUTE)
        .await
        .unwrap();
    assert!(!r.clean());
    assert!(
        r.warnings[0].contains("instances/db/snapshots/s0.json"),
        "{:?}",
        r.warnings
    );
    assert!(r.chains.is_empty());
    // The dropped manifests still go; the unreadable one and every chain stay.
    assert_eq!(
        repo.snapshot_ids(INSTANCE).await.unwrap(),
        vec!["s0".to_string(), "s3".to_string()]
    );
    assert_eq!(
        keys_in(&repo)
            .await
            .iter()
            .filter(|k| k.ends_with("chain.json"))
            .count(),
        3
    );
}

#[tokio::test]
async fn without_rules_nothing_is_read_or_deleted() {
    let repo = repo("norules");
    let now = crate::context::now_ms();
    three_generations(&repo, now).await;
    let before = keys_in(&repo).await;
    let r = prune(&repo, INSTANCE, &Policy::default(), 0, false, now + MINUTE)
        .await
        .unwrap();
    assert!(r.note.is_some() && r.deletions.is_empty() && r.clean());
    assert_eq!(keys_in(&repo).await, before);
    let mut text = Vec::new();
    report::text(&r, &mut text).unwrap();
    assert!(String::from_utf8(text)
        .unwrap()
        .contains("nothing is deleted"));
}

/// Stores a kevy chain of `shard` (a base, a head recording `shards` shards, one segment) and
/// returns its cut up to that segment.
async fn kevy_chain(repo: &Repo, shard: u32, id: &str, shards: u32) -> ShardCut {
    let dir = keys::chain_dir(INSTANCE, ShardId(shard), id);
    repo.put_new(
        &keys::object(&dir, "base-0.raw"),
        Bytes::from_static(b"base"),
    )
    .await
    .unwrap();
    let base = vec![BasePart {
        format: BaseFormat::KevySnap,
        object: "base-0.raw".into(),
        file_name: format!("dump-{shard}.rdb"),
        size: 4,
        crc32c: 0,
    }];
    repo.put_chain_head(&ChainHead {
        format_version: FORMAT_VERSION,
        instance: INSTANCE.into(),
        shard,
        chain: id.into(),
        created_ms: 1,
        layout: kevy(shards),
        server_version: None,
        base: base.clone(),
        stream_start: 0,
        reason: "start".into(),
        source_identity: String::new(),
        node: None,
    })
    .await
    .unwrap();
    let seg = repo
        .put_segment(INSTANCE, ShardId(shard), id, 0, b"0123456789", (1, 2))
        .await
        .unwrap();
    ShardCut {
        shard,
        chain: id.into(),
        base,
        stream_start: 0,
        end: seg.end,
        segments: vec![seg],
    }
}

fn kevy(shards: u32) -> ServerLayout {
    ServerLayout::Kevy {
        shards,
        shards_meta: None,
    }
}

async fn kevy_snapshot(repo: &Repo, id: &str, created_ms: i64, shards: Vec<ShardCut>) {
    repo.put_snapshot(&SnapshotManifest {
        format_version: FORMAT_VERSION,
        id: id.into(),
        instance: INSTANCE.into(),
        created_ms,
        layout: kevy(shards.len() as u32),
        server_version: None,
        reason: "test".into(),
        shards,
    })
    .await
    .unwrap();
}

/// kevy went from 4 shards to 2: every shard got a new chain... except shards 2 and 3, which
/// are gone. Their last chains are nobody's open chain: kept while a snapshot that stays names
/// them, collected once none does.
#[tokio::test]
async fn chains_of_shards_a_shrink_removed_are_not_open_forever() {
    let repo = repo("shrink");
    let now = crate::context::now_ms();
    let mut four = Vec::new();
    for shard in 0..4 {
        four.push(kevy_chain(&repo, shard, "1000000000001-aaaaaaaa", 4).await);
    }
    kevy_snapshot(&repo, "s1", now - 120 * MINUTE, four).await;
    let mut two = Vec::new();
    for shard in 0..2 {
        two.push(kevy_chain(&repo, shard, "1000000000002-bbbbbbbb", 2).await);
    }
    kevy_snapshot(&repo, "s2", now - 60 * MINUTE, two).await;

    // While s1 stays, it names the removed shards' chains.
    let r = prune(&repo, INSTANCE, &keep_last(2), 0, false, now + MINUTE)
        .await
        .unwrap();
    assert!(r.clean(), "{r:?}");
    assert!(
        r.chains
            .iter()
            .all(|c| c.fate == Fate::Keep && c.reason == gc::NAMED),
        "{:?}",
        r.chains
    );

    // Young objects are spared whatever their shard.
    let r = prune(&repo, INSTANCE, &keep_last(1), 0, true, now + MINUTE)
        .await
        .unwrap();
    let fates = |r: &Report| -> Vec<(u32, String, Fate, &'static str)> {
        r.chains
            .iter()
            .map(|c| (c.shard, c.chain.clone(), c.fate, c.reason))
            .collect()
    };
    let a = "1000000000001-aaaaaaaa".to_string();
    let b = "1000000000002-bbbbbbbb".to_string();
    assert_eq!(
        fates(&r),
        vec![
            (0, a.clone(), Fate::Delete, gc::UNNAMED),
            (0, b.clone(), Fate::Keep, gc::NAMED),
            (1, a.clone(), Fate::Delete, gc::UNNAMED),
            (1, b.clone(), Fate::Keep, gc::NAMED),
            (2, a.clone(), Fate::Delete, gc::REMOVED_SHARD),
            (3, a.clone(), Fate::Delete, gc::REMOVED_SHARD),
        ]
    );
    let r = prune(&repo, INSTANCE, &keep_last(1), 0, false, now + MINUTE)
        .await
        .unwrap();
    assert!(r.clean(), "{r:?}");
    let left = keys_in(&repo).await;
    assert!(
        left.iter().all(|k| !k.contains("aaaaaaaa")),
        "the removed shards' chains and the old ones are gone: {left:?}"
    );
    assert_eq!(left.iter().filter(|k| k.contains("bbbbbbbb")).count(), 6);
    // Within the grace, the removed shards' chains would have stayed (as recent, not open).
    let repo2 = crate::repo::Repo::open(
        &RepoSpec::Memory(format!("prune-shrink2-{}", rand::random::<u64>())),
        1,
    )
    .unwrap();
    for shard in 0..4 {
        kevy_chain(&repo2, shard, "1000000000001-aaaaaaaa", 4).await;
    }
    let mut two = Vec::new();
    for shard in 0..2 {
        two.push(kevy_chain(&repo2, shard, "1000000000002-bbbbbbbb", 2).await);
    }
    kevy_snapshot(&repo2, "s2", now, two).await;
    let r = prune(&repo2, INSTANCE, &keep_last(1), 60 * MINUTE, true, now)
        .await
        .unwrap();
    assert!(
        r.chains
            .iter()
            .filter(|c| c.shard >= 2)
            .all(|c| c.fate == Fate::Keep && c.reason == gc::RECENT),
        "{:?}",
        r.chains
    );
}

#[tokio::test]
async fn captures_go_with_the_snapshots_that_used_them_and_the_newest_stays() {
    let repo = repo("captures");
    let now = crate::context::now_ms();
    three_generations(&repo, now).await;
    // A capture before each snapshot (s1 at now-3h, s2 at now-2h, s3 at now-1h), one more after.
    let hour = 60 * MINUTE;
    let mut capture_keys = Vec::new();
    for h in [4, 3, 2, 0] {
        let at = now - h * hour + if h == 0 { 0 } else { -MINUTE };
        let key = keys::server_config(INSTANCE, at, &format!("{:08x}", h), false);
        repo.put_new(&key, Bytes::from_static(b"{}")).await.unwrap();
        capture_keys.push(key);
    }
    let r = prune(&repo, INSTANCE, &keep_last(1), 0, false, now + MINUTE)
        .await
        .unwrap();
    assert!(r.clean(), "{r:?}");
    let gone: Vec<&str> = r
        .deletions
        .iter()
        .filter(|d| d.reason == captures::UNUSED_CAPTURE)
        .map(|d| d.key.as_str())
        .collect();
    // s3 (now-1h) restores with the capture of now-2h-1min; the newest (now) stays; the two
    // older ones, used only by the deleted s1 and s2, go.
    assert_eq!(
        gone,
        vec![capture_keys[1].as_str(), capture_keys[0].as_str()]
    );
    let left = keys_in(&repo).await;
    assert!(left.contains(&capture_keys[2]) && left.contains(&capture_keys[3]));
    assert!(!left.contains(&capture_keys[0]) && !left.contains(&capture_keys[1]));
}
