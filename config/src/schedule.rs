//! [`Schedule`]: when a periodic job (snapshot, verify, prune, drift check) runs.
//!
//! Written as `"every 6h"` (or just `"6h"`), or as a 5-field cron expression
//! (`"0 */6 * * *"`: minute hour day-of-month month day-of-week), evaluated in UTC unless a
//! fixed offset is given with a `TZ=` suffix: `"30 2 * * * TZ=+02:00"`. Named zones
//! (`Europe/Paris`) are refused rather than silently misread: their offset changes with
//! daylight saving time, which a fixed offset cannot follow.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Timelike, Utc};
use croner::Cron;
use serde::{Serialize, Serializer};

use crate::units::{format_duration, parse_duration};

/// The shortest allowed `every` interval.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Runs `d` after the previous run: `next_after(t) = t + d`.
    Every(Duration),
    /// Runs at the times a cron expression matches, read in a fixed UTC offset.
    Cron {
        /// The five cron fields as written.
        expr: String,
        /// The offset the fields are read in (UTC when no `TZ=` is given).
        tz: FixedOffset,
        /// The compiled expression (boxed: it is much larger than the other variant).
        cron: Box<Cron>,
    },
}

impl Schedule {
    /// Parses the schedule syntax described in the module docs.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let trimmed = text.trim();
        if let Some(rest) = trimmed.strip_prefix("every ") {
            return every(rest);
        }
        if let Ok(duration) = parse_duration(trimmed) {
            return every_duration(duration);
        }
        cron(trimmed)
    }

    /// The first run strictly after `t`; `None` only if the cron expression never matches
    /// again (which [`Schedule::parse`] already refuses for sane inputs).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => chrono::Duration::from_std(*d)
                .ok()
                .and_then(|d| t.checked_add_signed(d)),
            Schedule::Cron { tz, cron, .. } => {
                // croner works in whole seconds; start from the second containing `t` so the
                // result is strictly later than `t`.
                let whole = t.with_nanosecond(0)?;
                let local = tz.from_utc_datetime(&whole.naive_utc());
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|next| next.with_timezone(&Utc))
            }
        }
    }
}

fn every(text: &str) -> Result<Schedule, String> {
    every_duration(parse_duration(text)?)
}

fn every_duration(duration: Duration) -> Result<Schedule, String> {
    if duration < MIN_EVERY {
        return Err(format!(
            "interval {} is too short; the minimum is 1s",
            format_duration(duration)
        ));
    }
    Ok(Schedule::Every(duration))
}

fn cron(text: &str) -> Result<Schedule, String> {
    let mut fields: Vec<&str> = text.split_whitespace().collect();
    let mut tz = FixedOffset::east_opt(0).ok_or("invalid UTC offset")?;
    let zone_at = fields
        .iter()
        .position(|f| f.starts_with("TZ=") || f.starts_with("CRON_TZ="));
    if let Some(at) = zone_at {
        let zone = fields.remove(at);
        let name = zone.split_once('=').map_or("", |(_, name)| name);
        tz = parse_offset(name)?;
    }
    if fields.len() != 5 {
        return Err(format!(
            "not a schedule: write \"every 6h\", or a cron expression of 5 fields \
             (minute hour day-of-month month day-of-week) such as \"0 */6 * * *\" \
             (this has {})",
            fields.len()
        ));
    }
    let expr = fields.join(" ");
    let cron = Cron::new(&expr)
        .parse()
        .map_err(|e| format!("invalid cron expression: {e}"))?;
    // A pattern like "0 0 31 2 *" parses but never fires; say so now, not at run time.
    let probe = tz.from_utc_datetime(&DateTime::<Utc>::UNIX_EPOCH.naive_utc());
    if cron.find_next_occurrence(&probe, false).is_err() {
        return Err("cron expression never matches a real date".into());
    }
    Ok(Schedule::Cron {
        expr,
        tz,
        cron: Box::new(cron),
    })
}

/// `UTC`, `Z`, or a fixed offset `+HH:MM` / `-HH:MM` / `+HH`.
fn parse_offset(name: &str) -> Result<FixedOffset, String> {
    let invalid = || {
        format!(
            "time zone `{name}` is not supported: use TZ=UTC or a fixed offset like TZ=+02:00 \
             (named zones change with daylight saving time)"
        )
    };
    if matches!(name, "UTC" | "utc" | "Z" | "GMT") {
        return FixedOffset::east_opt(0).ok_or_else(invalid);
    }
    let (sign, rest) = match name.as_bytes().first() {
        Some(b'+') => (1, &name[1..]),
        Some(b'-') => (-1, &name[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let hours: i32 = hours.parse().map_err(|_| invalid())?;
    let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
    if hours > 14 || minutes > 59 {
        return Err(invalid());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(invalid)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", format_duration(*d)),
            Schedule::Cron { expr, tz, .. } if tz.local_minus_utc() == 0 => f.write_str(expr),
            Schedule::Cron { expr, tz, .. } => write!(f, "{expr} TZ={tz}"),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_adds_the_interval() {
        let schedule = Schedule::parse("every 6h").unwrap();
        let t = at("2024-03-01T10:17:42.5Z");
        assert_eq!(schedule.next_after(t), Some(at("2024-03-01T16:17:42.5Z")));
        assert!(
            matches!(Schedule::parse("90m").unwrap(), Schedule::Every(d) if d.as_secs() == 5400)
        );
    }

    #[test]
    fn cron_finds_the_next_match_strictly_after() {
        let schedule = Schedule::parse("0 */6 * * *").unwrap();
        assert_eq!(
            schedule.next_after(at("2024-03-01T10:17:42Z")),
            Some(at("2024-03-01T12:00:00Z"))
        );
        // Exactly on a match: the next one, not the same instant.
        assert_eq!(
            schedule.next_after(at("2024-03-01T12:00:00Z")),
            Some(at("2024-03-01T18:00:00Z"))
        );
        assert_eq!(
            schedule.next_after(at("2024-03-01T11:59:59.900Z")),
            Some(at("2024-03-01T12:00:00Z"))
        );
    }

    #[test]
    fn cron_with_an_offset_reads_fields_in_that_offset() {
        let schedule = Schedule::parse("30 2 * * * TZ=+02:00").unwrap();
        // 02:30 at +02:00 is 00:30 UTC.
        assert_eq!(
            schedule.next_after(at("2024-03-01T01:00:00Z")),
            Some(at("2024-03-02T00:30:00Z"))
        );
        assert_eq!(schedule.to_string(), "30 2 * * * TZ=+02:00");
        let weekly = Schedule::parse("0 3 * * 0").unwrap(); // Sundays
        assert_eq!(
            weekly.next_after(at("2024-03-01T00:00:00Z")), // a Friday
            Some(at("2024-03-03T03:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        for (text, fragment) in [
            ("every fortnight", "not a duration"),
            ("0 */6 * *", "5 fields"),
            ("0 25 * * *", "invalid cron"),
            ("0 0 31 2 *", "never matches"),
            ("0 3 * * * TZ=Europe/Paris", "not supported"),
            ("every 100ms", "too short"),
        ] {
            let error = Schedule::parse(text).unwrap_err();
            assert!(error.contains(fragment), "{text}: {error}");
        }
    }
}
