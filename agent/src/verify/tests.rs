//! `verify`'s checks against an in-memory repository, on real objects written through [`Repo`]:
//! damaged documents hide nothing, the right document is blamed when records disagree, and
//! overlapping segments (a retry after a lost reply) are no gap.

#![allow(clippy::unwrap_used)]

use aofvault_formats::vault::{
    BaseFormat, BasePart, ChainHead, SegmentRef, ServerLayout, ShardCut, SnapshotManifest,
    FORMAT_VERSION,
};
use bytes::Bytes;

use super::check::{check, Report, Scope};
use crate::repo::{keys, Repo, RepoSpec, ShardId};

const INSTANCE: &str = "db";
const CHAIN: &str = "0000000000001-00000001";
/// One whole command: every segment below holds a number of them.
const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
const BASE: &[u8] = b"*1\r\n$4\r\nPING\r\n";

fn repo(name: &str) -> Repo {
    let name = format!("verify-{name}-{}", rand::random::<u64>());
    Repo::open(&RepoSpec::Memory(name), 0).unwrap()
}

fn dir() -> String {
    keys::chain_dir(INSTANCE, ShardId(0), CHAIN)
}

fn base_part(crc: u32) -> BasePart {
    BasePart {
        format: BaseFormat::Resp,
        object: "base-0.raw".into(),
        file_name: "appendonly.aof.1.base.aof".into(),
        size: BASE.len() as u64,
        crc32c: crc,
    }
}

/// A chain with a RESP base and a head recording the base as `head_crc`.
async fn chain(repo: &Repo, head_crc: u32) {
    repo.put_new(&format!("{}base-0.raw", dir()), Bytes::from_static(BASE))
        .await
        .unwrap();
    let head = ChainHead {
        format_version: FORMAT_VERSION,
        instance: INSTANCE.into(),
        shard: 0,
        chain: CHAIN.into(),
        created_ms: 1,
        layout: layout(),
        server_version: None,
        base: vec![base_part(head_crc)],
        stream_start: 0,
        reason: "start".into(),
        source_identity: String::new(),
        node: None,
    };
    repo.put_chain_head(&head).await.unwrap();
}

/// A segment of `n` SET commands at `start`.
async fn segment(repo: &Repo, start: u64, n: usize) -> SegmentRef {
    repo.put_segment(INSTANCE, ShardId(0), CHAIN, start, &SET.repeat(n), (1, 2))
        .await
        .unwrap()
}

fn layout() -> ServerLayout {
    ServerLayout::RedisSingle {
        aof_name: "appendonly.aof".into(),
    }
}

async fn snapshot(repo: &Repo, id: &str, base_crc: u32, segments: Vec<SegmentRef>) -> String {
    let end = segments.last().map_or(0, |s| s.end);
    let m = SnapshotManifest {
        format_version: FORMAT_VERSION,
        id: id.into(),
        instance: INSTANCE.into(),
        created_ms: 1,
        layout: layout(),
        server_version: None,
        reason: "test".into(),
        shards: vec![ShardCut {
            shard: 0,
            chain: CHAIN.into(),
            base: vec![base_part(base_crc)],
            stream_start: 0,
            segments,
            end,
        }],
    };
    repo.put_snapshot(&m).await.unwrap();
    keys::snapshot(INSTANCE, id)
}

fn named(report: &Report) -> Vec<String> {
    report.findings.iter().map(|f| f.object.clone()).collect()
}

const S: u64 = SET.len() as u64;

#[tokio::test]
async fn a_damaged_manifest_hides_no_chain() {
    let repo = repo("manifest");
    let crc = crc32c::crc32c(BASE);
    chain(&repo, crc).await;
    let a = segment(&repo, 0, 1).await;
    segment(&repo, S, 2).await;
    segment(&repo, 3 * S, 1).await;
    snapshot(&repo, "a", crc, vec![a]).await;
    let broken = keys::snapshot(INSTANCE, "b");
    repo.put_new(
        &broken,
        Bytes::from_static(b"{\"format_version\": 1, \"id\""),
    )
    .await
    .unwrap();
    let report = check(&repo, INSTANCE, &Scope::All, 0).await.unwrap();
    assert_eq!(named(&report), vec![broken], "{report:?}");
    assert_eq!((report.objects, report.chains), (4, 1), "{report:?}");
    assert_eq!(report.commands, 1 + 4, "the base and every segment decoded");
}

#[tokio::test]
async fn a_damaged_head_hides_no_object_and_its_start_comes_from_a_manifest() {
    let repo = repo("head");
    let crc = crc32c::crc32c(BASE);
    chain(&repo, crc).await;
    let a = segment(&repo, 0, 1).await;
    segment(&repo, S, 1).await;
    snapshot(&repo, "a", crc, vec![a]).await;
    let head = keys::chain_head(INSTANCE, ShardId(0), CHAIN);
    repo.put_overwrite(&head, Bytes::from_static(b"{ damaged"))
        .await
        .unwrap();
    let report = check(&repo, INSTANCE, &Scope::All, 0).await.unwrap();
    assert_eq!(named(&report), vec![head], "{report:?}");
    assert_eq!(report.objects, 3);
    assert_eq!(report.commands, 1 + 2);
}

#[tokio::test]
async fn a_record_that_disagrees_with_the_object_blames_the_record() {
    let repo = repo("records");
    let crc = crc32c::crc32c(BASE);
    // The head records a wrong checksum for the base; the manifest the right one.
    chain(&repo, crc ^ 1).await;
    let mut a = segment(&repo, 0, 2).await;
    // The manifest also misrecords its segment (the segment's name holds the truth).
    a.crc32c ^= 1;
    let manifest = snapshot(&repo, "a", crc, vec![a]).await;
    let report = check(&repo, INSTANCE, &Scope::All, 0).await.unwrap();
    let head = keys::chain_head(INSTANCE, ShardId(0), CHAIN);
    let mut want = vec![head, manifest];
    want.sort();
    assert_eq!(named(&report), want, "{report:?}");
    // The base itself is sound: nothing names it.
    assert!(report
        .findings
        .iter()
        .all(|f| !f.object.ends_with("base-0.raw")));
}

#[tokio::test]
async fn overlapping_segments_after_a_retry_are_a_note_not_a_gap() {
    let repo = repo("overlap");
    let crc = crc32c::crc32c(BASE);
    chain(&repo, crc).await;
    // The first attempt stored [0, S); its reply was lost; the retry read on and stored [0, 3S).
    let short = segment(&repo, 0, 1).await;
    let long = segment(&repo, 0, 3).await;
    segment(&repo, 3 * S, 1).await;
    snapshot(&repo, "a", crc, vec![long]).await;
    for scope in [Scope::All, Scope::Latest, Scope::One("a".into())] {
        let report = check(&repo, INSTANCE, &scope, 0).await.unwrap();
        assert!(report.findings.is_empty(), "{scope:?}: {report:?}");
    }
    let report = check(&repo, INSTANCE, &Scope::All, 0).await.unwrap();
    let notes: Vec<&str> = report.notes.iter().map(|n| n.object.as_str()).collect();
    assert_eq!(notes, vec![keys::object(&dir(), &short.object)]);
    assert_eq!(report.objects, 4, "the shorter one is checked too");
}

#[tokio::test]
async fn a_hole_is_a_gap_and_a_lost_head_a_finding() {
    let repo = repo("hole");
    let crc = crc32c::crc32c(BASE);
    chain(&repo, crc).await;
    let a = segment(&repo, 0, 1).await;
    segment(&repo, 2 * S, 1).await;
    snapshot(&repo, "a", crc, vec![a]).await;
    let head = keys::chain_head(INSTANCE, ShardId(0), CHAIN);
    repo.delete(&head).await.unwrap();
    let report = check(&repo, INSTANCE, &Scope::All, 0).await.unwrap();
    let gap = format!("{}seg-{S:016x}-{:016x}", dir(), 2 * S);
    assert_eq!(named(&report), vec![head, gap], "{report:?}");
    assert_eq!(report.objects, 3, "the chain is checked without its head");
}

#[tokio::test]
async fn a_headless_chain_no_snapshot_names_is_abandoned_not_damaged() {
    let repo = repo("abandoned");
    let crc = crc32c::crc32c(BASE);
    chain(&repo, crc).await;
    snapshot(&repo, "a", crc, vec![]).await;
    // An older chain a prune stopped in: head gone first, then one of its segments.
    let old = "0000000000000-00000000";
    let old_dir = keys::chain_dir(INSTANCE, ShardId(0), old);
    for start in [0, 2 * S] {
        repo.put_segment(INSTANCE, ShardId(0), old, start, SET, (1, 2))
            .await
            .unwrap();
    }
    let report = check(&repo, INSTANCE, &Scope::All, 0).await.unwrap();
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(report.objects, 3, "its objects are still checked");
    let notes: Vec<&str> = report.notes.iter().map(|n| n.object.as_str()).collect();
    assert_eq!(notes, vec![old_dir.as_str()]);
}
