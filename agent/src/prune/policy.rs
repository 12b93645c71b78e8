//! The retention policy: which snapshots are kept, and why — a pure function of the snapshots'
//! times, the rules and the clock, so it can be property-tested over arbitrary histories.
//!
//! The rules add up, as in restic: a snapshot is kept when any rule keeps it, and it carries
//! every reason that applies.
//!
//! - `keep_last N`: the N newest snapshots.
//! - `keep_within D`: every snapshot created at or after `now − D` (and any from the future): the
//!   point-in-time window.
//! - `keep_daily/weekly/monthly N`: walking from the newest snapshot back, the newest snapshot of
//!   each of the first N UTC days / ISO weeks / calendar months that have a snapshot. Empty
//!   periods do not count, so a repository that was idle for a month still keeps N buckets.
//! - The newest snapshot is always kept, whatever the rules say.
//! - With no rule at all, everything is kept: deleting history needs an explicit policy.

use std::time::Duration;

use aofvault_config::Retention;
use chrono::{DateTime, Datelike, Utc};

/// Reason: the newest snapshot, always kept.
pub const NEWEST: &str = "newest";
/// Reason: one of the `keep_last` newest.
pub const LAST: &str = "last";
/// Reason: inside the `keep_within` window.
pub const WITHIN: &str = "within";
/// Reason: the newest of its UTC day, for one of the `keep_daily` newest days.
pub const DAILY: &str = "daily";
/// Reason: the newest of its ISO week, for one of the `keep_weekly` newest weeks.
pub const WEEKLY: &str = "weekly";
/// Reason: the newest of its month, for one of the `keep_monthly` newest months.
pub const MONTHLY: &str = "monthly";
/// Reason: no rule is configured, so nothing is dropped.
pub const NO_RULES: &str = "no rules";

/// The keep rules of `[retention]`, in the units the selection works with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: Option<u32>,
    /// The point-in-time window, in milliseconds.
    pub keep_within_ms: Option<i64>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
}

impl Policy {
    pub fn from_retention(r: &Retention) -> Policy {
        Policy {
            keep_last: r.keep_last,
            keep_within_ms: r.keep_within.map(duration_ms),
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
        }
    }

    /// Whether any keep rule is set; without one nothing is ever deleted.
    pub fn has_rules(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_within_ms.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
    }

    /// `keep_last=3 keep_within=2d …`, for logs and reports.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.keep_last {
            parts.push(format!("keep_last={n}"));
        }
        if let Some(ms) = self.keep_within_ms {
            parts.push(format!("keep_within={}s", ms / 1000));
        }
        for (name, n) in [
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
        ] {
            if let Some(n) = n {
                parts.push(format!("{name}={n}"));
            }
        }
        if parts.is_empty() {
            "no rules".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// A duration in whole milliseconds, saturating (config durations are far below the limit).
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The calendar bucket a snapshot falls in, for one of the periodic rules. A time chrono cannot
/// represent gets a bucket of its own (it never shares one with a real date).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Day(i32, u32),
    Week(i32, u32),
    Month(i32, u32),
    Unrepresentable(i64),
}

fn bucket(period: &str, ms: i64) -> Bucket {
    let Some(t) = DateTime::<Utc>::from_timestamp_millis(ms) else {
        return Bucket::Unrepresentable(ms);
    };
    match period {
        DAILY => Bucket::Day(t.year(), t.ordinal()),
        WEEKLY => {
            let w = t.iso_week();
            Bucket::Week(w.year(), w.week())
        }
        _ => Bucket::Month(t.year(), t.month()),
    }
}

/// Decides, for every snapshot `(id, created_ms)`, the reasons it is kept. One entry per input
/// snapshot, newest first (by time, then id); an empty reason list means the policy does not
/// keep it. Whether a dropped snapshot may be deleted yet (`gc_grace`) is the caller's business.
pub fn select(
    snapshots: &[(String, i64)],
    policy: &Policy,
    now_ms: i64,
) -> Vec<(String, Vec<&'static str>)> {
    let mut order: Vec<&(String, i64)> = snapshots.iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let mut out: Vec<(String, Vec<&'static str>)> = order
        .iter()
        .map(|(id, _)| (id.clone(), Vec::new()))
        .collect();
    if !policy.has_rules() {
        for (_, reasons) in &mut out {
            reasons.push(NO_RULES);
        }
        return out;
    }
    if let Some((_, reasons)) = out.first_mut() {
        reasons.push(NEWEST);
    }
    if let Some(n) = policy.keep_last {
        for (_, reasons) in out.iter_mut().take(n as usize) {
            reasons.push(LAST);
        }
    }
    if let Some(window) = policy.keep_within_ms {
        let since = now_ms.saturating_sub(window);
        for (i, (_, created)) in order.iter().enumerate() {
            if *created >= since {
                out[i].1.push(WITHIN);
            }
        }
    }
    for (period, n) in [
        (DAILY, policy.keep_daily),
        (WEEKLY, policy.keep_weekly),
        (MONTHLY, policy.keep_monthly),
    ] {
        let Some(n) = n else { continue };
        let mut last: Option<Bucket> = None;
        let mut taken = 0u32;
        for (i, (_, created)) in order.iter().enumerate() {
            if taken >= n {
                break;
            }
            let b = bucket(period, *created);
            // Newest first: the first snapshot met in a bucket is its newest.
            if last != Some(b) {
                out[i].1.push(period);
                last = Some(b);
                taken += 1;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    const DAY_MS: i64 = 86_400_000;
    /// 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600_000;

    fn snaps(times: &[i64]) -> Vec<(String, i64)> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("s{i:04}"), *t))
            .collect()
    }

    fn kept(sel: &[(String, Vec<&'static str>)]) -> BTreeSet<String> {
        sel.iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn with(sel: &[(String, Vec<&'static str>)], reason: &str) -> Vec<String> {
        sel.iter()
            .filter(|(_, r)| r.contains(&reason))
            .map(|(id, _)| id.clone())
            .collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_and_skips_empty_days() {
        // Three on day 0, none on day 1, two on day 2, one on day 5.
        let s = snaps(&[
            T0 + 1000,
            T0 + 5000,
            T0 + 9000,
            T0 + 2 * DAY_MS + 10,
            T0 + 2 * DAY_MS + 20,
            T0 + 5 * DAY_MS,
        ]);
        let p = Policy {
            keep_daily: Some(3),
            ..Policy::default()
        };
        let sel = select(&s, &p, T0 + 6 * DAY_MS);
        assert_eq!(with(&sel, DAILY), vec!["s0005", "s0004", "s0002"]);
        assert_eq!(kept(&sel).len(), 3, "{sel:?}");
        let p = Policy {
            keep_daily: Some(1),
            ..Policy::default()
        };
        assert_eq!(
            kept(&select(&s, &p, T0)),
            BTreeSet::from(["s0005".to_string()])
        );
    }

    #[test]
    fn weekly_uses_iso_weeks_and_monthly_calendar_months() {
        // 2026-01-04 is a Sunday (ISO week 1), 2026-01-05 a Monday (week 2).
        let sunday = T0 + 3 * DAY_MS + 3_600_000;
        let monday = T0 + 4 * DAY_MS + 3_600_000;
        let s = snaps(&[T0 - DAY_MS, T0 + 1, sunday, monday]);
        let weekly = select(
            &s,
            &Policy {
                keep_weekly: Some(10),
                ..Policy::default()
            },
            monday,
        );
        // 2025-12-31 and 2026-01-01 share ISO week 2026-W01 with the Sunday.
        assert_eq!(with(&weekly, WEEKLY), vec!["s0003", "s0002"]);
        let monthly = select(
            &s,
            &Policy {
                keep_monthly: Some(10),
                ..Policy::default()
            },
            monday,
        );
        assert_eq!(with(&monthly, MONTHLY), vec!["s0003", "s0000"]);
    }

    #[test]
    fn within_is_inclusive_and_keeps_the_future() {
        let now = T0 + 10 * DAY_MS;
        let s = snaps(&[now - DAY_MS - 1, now - DAY_MS, now + 5]);
        let sel = select(
            &s,
            &Policy {
                keep_within_ms: Some(DAY_MS),
                ..Policy::default()
            },
            now,
        );
        assert_eq!(
            kept(&sel),
            BTreeSet::from(["s0001".to_string(), "s0002".to_string()])
        );
    }

    #[test]
    fn no_rules_keeps_everything_and_empty_is_empty() {
        let s = snaps(&[T0, T0 + 1]);
        let sel = select(&s, &Policy::default(), T0);
        assert!(sel.iter().all(|(_, r)| r == &vec![NO_RULES]));
        assert!(select(
            &[],
            &Policy {
                keep_last: Some(3),
                ..Policy::default()
            },
            T0
        )
        .is_empty());
    }

    #[test]
    fn the_newest_is_kept_even_when_no_rule_reaches_it() {
        let s = snaps(&[T0, T0 + DAY_MS]);
        let sel = select(
            &s,
            &Policy {
                keep_within_ms: Some(1000),
                ..Policy::default()
            },
            T0 + 30 * DAY_MS,
        );
        assert_eq!(sel[0], ("s0001".to_string(), vec![NEWEST]));
        assert!(sel[1].1.is_empty());
    }

    fn policy() -> impl Strategy<Value = Policy> {
        (
            proptest::option::of(1u32..12),
            proptest::option::of(1i64..40 * DAY_MS),
            proptest::option::of(1u32..12),
            proptest::option::of(1u32..8),
            proptest::option::of(1u32..6),
        )
            .prop_map(
                |(keep_last, keep_within_ms, keep_daily, keep_weekly, keep_monthly)| Policy {
                    keep_last,
                    keep_within_ms,
                    keep_daily,
                    keep_weekly,
                    keep_monthly,
                },
            )
    }

    /// Snapshot times over about six months, with bursts (several per day) and gaps.
    fn history() -> impl Strategy<Value = Vec<i64>> {
        prop::collection::vec(
            prop_oneof![0i64..180 * DAY_MS, (0i64..6).prop_map(|d| d * DAY_MS + 1)],
            0..60,
        )
        .prop_map(|v| v.into_iter().map(|t| T0 + t).collect())
    }

    fn check_periodic(
        s: &[(String, i64)],
        sel: &[(String, Vec<&'static str>)],
        period: &'static str,
        n: Option<u32>,
    ) {
        let ids: Vec<String> = with(sel, period);
        let Some(n) = n else {
            assert!(ids.is_empty(), "{period} without a rule");
            return;
        };
        let time: BTreeMap<&str, i64> = s.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        // Newest snapshot per bucket, over all snapshots.
        let mut newest: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for (id, t) in s {
            let key = format!("{:?}", bucket(period, *t));
            let cand = (*t, id.clone());
            if newest.get(&key).is_none_or(|cur| cand > *cur) {
                newest.insert(key, cand);
            }
        }
        let mut buckets: Vec<(i64, String)> = newest.into_values().collect();
        buckets.sort_by(|a, b| b.cmp(a));
        let expected: BTreeSet<String> = buckets
            .iter()
            .take(n as usize)
            .map(|(_, id)| id.clone())
            .collect();
        let got: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(got, expected, "{period} n={n}");
        // Exactly one per bucket.
        let distinct: BTreeSet<String> = ids
            .iter()
            .map(|id| format!("{:?}", bucket(period, time[id.as_str()])))
            .collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "{period}: two kept in one bucket"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn selection_properties(times in history(), policy in policy(), now_off in 0i64..200 * DAY_MS) {
            let s = snaps(&times);
            let now = T0 + now_off;
            let sel = select(&s, &policy, now);
            // Every snapshot appears exactly once: kept (reasons) xor dropped (none).
            prop_assert_eq!(sel.len(), s.len());
            let ids: BTreeSet<&String> = sel.iter().map(|(id, _)| id).collect();
            prop_assert_eq!(ids.len(), s.len());
            let kept = kept(&sel);
            if !policy.has_rules() {
                prop_assert_eq!(kept.len(), s.len());
                return Ok(());
            }
            // The newest is kept.
            if let Some(newest) = s.iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0))) {
                prop_assert!(kept.contains(&newest.0));
            }
            if let Some(n) = policy.keep_last {
                prop_assert!(kept.len() >= (n as usize).min(s.len()));
                prop_assert_eq!(with(&sel, LAST).len(), (n as usize).min(s.len()));
                let mut by_time = s.clone();
                by_time.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
                for (id, _) in by_time.iter().take(n as usize) {
                    prop_assert!(kept.contains(id));
                }
            }
            if let Some(w) = policy.keep_within_ms {
                for (id, t) in &s {
                    if *t >= now - w {
                        prop_assert!(kept.contains(id), "{} at {} is within {}", id, t, w);
                    }
                }
            }
            check_periodic(&s, &sel, DAILY, policy.keep_daily);
            check_periodic(&s, &sel, WEEKLY, policy.keep_weekly);
            check_periodic(&s, &sel, MONTHLY, policy.keep_monthly);
            // Only the newest is kept for being the newest, and no rule that is off gives a reason.
            prop_assert_eq!(with(&sel, NEWEST).len(), usize::from(!s.is_empty()));
            prop_assert!(with(&sel, NO_RULES).is_empty());
            if policy.keep_last.is_none() {
                prop_assert!(with(&sel, LAST).is_empty());
            }
            if policy.keep_within_ms.is_none() {
                prop_assert!(with(&sel, WITHIN).is_empty());
            }
        }
    }
}
