//! Which stored segments a reader follows: the longest contiguous run from an offset.
//!
//! Segments are written once and never replaced, so a chain may hold overlapping ones: a retry
//! after a lost reply that read more bytes stores `[a,c)` beside the first attempt's `[a,b)`.
//! Both hold the same stream bytes where they overlap (one stream, read twice), so any
//! contiguous path is correct; the reader must take the path that goes furthest, not the first
//! segment it sorts to (which would stop at `b` and see a gap that does not exist). Every reader
//! — restore, verify, the snapshot cut, the agent resuming after a restart — uses [`longest_run`].

use std::collections::HashMap;

use aofvault_formats::vault::SegmentRef;

/// A run of segments, in stream order, and what lies after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Contiguous segments from the run's start.
    pub segments: Vec<SegmentRef>,
    /// Where the run ends (the start when it is empty).
    pub end: u64,
    /// A stored segment that starts past `end`: the stream goes on after a hole.
    pub gap: Option<Gap>,
}

/// A hole in a chain: bytes `[start, end)` are in no stored segment, yet later ones exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub start: u64,
    pub end: u64,
    /// When the agent saw the first segment after the hole (unix ms).
    pub next_seen_ms: i64,
}

/// The longest contiguous run of `segments` (in any order) starting at `start`. Among runs that
/// reach the same end, the one found first in `(start, end)` order is kept; segments before
/// `start` or off the run are ignored.
pub fn longest_run(start: u64, segments: &[SegmentRef]) -> Run {
    let mut order: Vec<&SegmentRef> = segments.iter().filter(|s| s.end > s.start).collect();
    order.sort_by_key(|s| (s.start, s.end));
    // Offset reached → the segment that reached it (None: the run's start).
    let mut reached: HashMap<u64, Option<usize>> = HashMap::new();
    reached.insert(start, None);
    let mut end = start;
    for (i, seg) in order.iter().enumerate() {
        if reached.contains_key(&seg.start) && !reached.contains_key(&seg.end) {
            reached.insert(seg.end, Some(i));
            end = end.max(seg.end);
        }
    }
    let mut path = Vec::new();
    let mut at = end;
    while let Some(Some(i)) = reached.get(&at) {
        let seg = order[*i];
        path.push(seg.clone());
        at = seg.start;
    }
    path.reverse();
    let gap = order
        .iter()
        .filter(|s| s.start > end)
        .min_by_key(|s| (s.start, s.end))
        .map(|s| Gap {
            start: end,
            end: s.start,
            next_seen_ms: s.last_seen_ms,
        });
    Run {
        segments: path,
        end,
        gap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: u64, end: u64) -> SegmentRef {
        SegmentRef {
            start,
            end,
            object: format!("seg-{start}-{end}"),
            crc32c: 0,
            first_seen_ms: start as i64,
            last_seen_ms: end as i64,
        }
    }

    fn ranges(run: &Run) -> Vec<(u64, u64)> {
        run.segments.iter().map(|s| (s.start, s.end)).collect()
    }

    #[test]
    fn a_retry_that_read_more_does_not_hide_the_rest_of_the_chain() {
        // The first attempt stored [10,20); its reply was lost; the retry stored [10,35).
        let run = longest_run(10, &[seg(10, 20), seg(10, 35), seg(35, 50)]);
        assert_eq!(ranges(&run), vec![(10, 35), (35, 50)]);
        assert_eq!(run.end, 50);
        assert_eq!(run.gap, None);
    }

    #[test]
    fn the_shorter_overlap_is_taken_when_only_it_continues() {
        let run = longest_run(0, &[seg(0, 5), seg(0, 9), seg(5, 30)]);
        assert_eq!(ranges(&run), vec![(0, 5), (5, 30)]);
    }

    #[test]
    fn a_real_hole_is_reported_with_the_segment_after_it() {
        let run = longest_run(0, &[seg(0, 5), seg(8, 12), seg(5, 6)]);
        assert_eq!(ranges(&run), vec![(0, 5), (5, 6)]);
        assert_eq!(
            run.gap,
            Some(Gap {
                start: 6,
                end: 8,
                next_seen_ms: 12
            })
        );
    }

    #[test]
    fn segments_before_the_start_are_ignored() {
        let run = longest_run(20, &[seg(0, 20), seg(10, 30), seg(20, 25)]);
        assert_eq!(ranges(&run), vec![(20, 25)]);
        assert_eq!(run.gap, None);
    }

    #[test]
    fn an_empty_chain_ends_where_it_starts() {
        let run = longest_run(9, &[]);
        assert!(run.segments.is_empty());
        assert_eq!(run.end, 9);
    }

    #[test]
    fn identical_ranges_stored_twice_are_read_once() {
        let mut again = seg(0, 10);
        again.object = "seg-0-10-retry".into();
        let run = longest_run(0, &[seg(0, 10), again, seg(10, 11)]);
        assert_eq!(ranges(&run), vec![(0, 10), (10, 11)]);
    }
}
