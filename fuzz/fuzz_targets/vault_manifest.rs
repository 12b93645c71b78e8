//! Fuzz the repository documents a reader trusts least: snapshot manifests and chain heads
//! (`SnapshotManifest::from_json`, `ChainHead::from_json`). No panic on any bytes; whatever is
//! accepted names only plain objects (no `/`, no `..`), has contiguous segments ending at the
//! cut, and survives a round trip through JSON unchanged.
#![no_main]
use aofvault_formats::vault::{ChainHead, SnapshotManifest};
use libfuzzer_sys::fuzz_target;

fn plain(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains("..") && !name.contains('\\')
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SnapshotManifest::from_json(data) {
        assert!(plain(&m.id) && plain(&m.instance));
        assert_eq!(m.shards.len() as u64, u64::from(m.layout.shards()));
        for cut in &m.shards {
            assert!(plain(&cut.chain));
            assert!(cut
                .base
                .iter()
                .all(|b| plain(&b.object) && plain(&b.file_name)));
            let mut at = cut.stream_start;
            for seg in &cut.segments {
                assert!(plain(&seg.object));
                assert!(seg.start == at && seg.end > seg.start);
                at = seg.end;
            }
            assert_eq!(at, cut.end);
        }
        let json = serde_json::to_vec(&m).expect("a parsed manifest serializes");
        assert_eq!(SnapshotManifest::from_json(&json).as_ref(), Ok(&m));
    }
    if let Ok(head) = ChainHead::from_json(data) {
        assert!(plain(&head.chain) && plain(&head.instance));
        assert!(head
            .base
            .iter()
            .all(|b| plain(&b.object) && plain(&b.file_name)));
        let json = serde_json::to_vec(&head).expect("a parsed head serializes");
        assert_eq!(ChainHead::from_json(&json).as_ref(), Ok(&head));
    }
});
