//! [`Schedule`]: when a periodic job (snapshot, verify, prune, drift check) runs.
//!
//! Written as `"every 6h"` (or just `"6h"`), or as a 5-field cron expression
//! (`"0 */6 * * *"`: minute hour day-of-month month day-of-week), evaluated in UTC unless a
//! zone is given with a `TZ=` (or `CRON_TZ=`) suffix: a fixed offset (`"30 2 * * * TZ=+02:00"`)
//! or a named IANA zone (`"30 2 * * * TZ=Europe/Paris"`, from the tz database compiled in by
//! chrono-tz, so the host's /usr/share/zoneinfo does not matter).
//!
//! Daylight saving time in a named zone, as cron does: a time that does not exist on the day
//! clocks go forward (02:30 in Paris on the last Sunday of March) runs at the first valid time
//! after the gap (03:00); a time that happens twice on the day clocks go back runs once, at its
//! first occurrence. (One difference from Vixie cron: a job with a wildcard hour also runs once
//! in the repeated hour, not twice.)

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
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
    /// Runs at the times a cron expression matches, read in a time zone.
    Cron {
        /// The five cron fields as written.
        expr: String,
        /// The zone the fields are read in (UTC when no `TZ=` is given).
        tz: Zone,
        /// The compiled expression (boxed: it is much larger than the other variant).
        cron: Box<Cron>,
    },
}

/// The zone a cron schedule is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// A fixed offset from UTC (`UTC` itself is offset 0).
    Fixed(FixedOffset),
    /// A named IANA zone, daylight saving time included.
    Named(Tz),
}

impl Zone {
    fn is_utc(&self) -> bool {
        matches!(self, Zone::Fixed(o) if o.local_minus_utc() == 0)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Fixed(o) => write!(f, "{o}"),
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

/// The first match of `cron` strictly after `t`, read in `tz`.
fn next_in<Z: TimeZone>(cron: &Cron, tz: &Z, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = tz.from_utc_datetime(&t.naive_utc());
    cron.find_next_occurrence(&local, false)
        .ok()
        .map(|next| next.with_timezone(&Utc))
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
                match tz {
                    Zone::Fixed(offset) => next_in(cron, offset, whole),
                    Zone::Named(zone) => next_in(cron, zone, whole),
                }
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
    let mut tz = Zone::Fixed(FixedOffset::east_opt(0).ok_or("invalid UTC offset")?);
    let zone_at = fields
        .iter()
        .position(|f| f.starts_with("TZ=") || f.starts_with("CRON_TZ="));
    if let Some(at) = zone_at {
        let zone = fields.remove(at);
        let name = zone.split_once('=').map_or("", |(_, name)| name);
        tz = parse_zone(name)?;
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
    let probe = DateTime::<Utc>::UNIX_EPOCH;
    let matches = match &tz {
        Zone::Fixed(offset) => next_in(&cron, offset, probe),
        Zone::Named(zone) => next_in(&cron, zone, probe),
    };
    if matches.is_none() {
        return Err("cron expression never matches a real date".into());
    }
    Ok(Schedule::Cron {
        expr,
        tz,
        cron: Box::new(cron),
    })
}

/// `UTC`, `Z`, a fixed offset `+HH:MM` / `-HH:MM` / `+HH`, or an IANA zone name.
fn parse_zone(name: &str) -> Result<Zone, String> {
    let invalid = || {
        format!(
            "time zone `{name}` is not known: use TZ=UTC, a fixed offset like TZ=+02:00, or an \
             IANA zone name like TZ=Europe/Paris"
        )
    };
    if matches!(name, "UTC" | "utc" | "Z" | "GMT") {
        return FixedOffset::east_opt(0)
            .map(Zone::Fixed)
            .ok_or_else(invalid);
    }
    let (sign, rest) = match name.as_bytes().first() {
        Some(b'+') => (1, &name[1..]),
        Some(b'-') => (-1, &name[1..]),
        _ => return name.parse::<Tz>().map(Zone::Named).map_err(|_| invalid()),
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let hours: i32 = hours.parse().map_err(|_| invalid())?;
    let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
    if hours > 14 || minutes > 59 {
        return Err(invalid());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
        .map(Zone::Fixed)
        .ok_or_else(invalid)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", format_duration(*d)),
            Schedule::Cron { expr, tz, .. } if tz.is_utc() => f.write_str(expr),
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
    fn named_zones_follow_daylight_saving_time_as_cron_does() {
        let paris = Schedule::parse("30 2 * * * TZ=Europe/Paris").unwrap();
        assert_eq!(paris.to_string(), "30 2 * * * TZ=Europe/Paris");
        // Winter (CET, +01:00) and summer (CEST, +02:00).
        assert_eq!(
            paris.next_after(at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T01:30:00Z"))
        );
        assert_eq!(
            paris.next_after(at("2026-07-10T12:00:00Z")),
            Some(at("2026-07-11T00:30:00Z"))
        );
        // 2026-03-29: 02:00 jumps to 03:00, 02:30 does not exist: run at 03:00 CEST (01:00Z).
        let spring = paris.next_after(at("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(spring, at("2026-03-29T01:00:00Z"));
        assert_eq!(paris.next_after(spring), Some(at("2026-03-30T00:30:00Z")));
        // 2026-10-25: 03:00 goes back to 02:00, 02:30 happens twice: run once, the first time.
        let autumn = paris.next_after(at("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(autumn, at("2026-10-25T00:30:00Z"));
        assert_eq!(paris.next_after(autumn), Some(at("2026-10-26T01:30:00Z")));
        // An hourly job keeps its hours in real time across the gap.
        let hourly = Schedule::parse("0 * * * * CRON_TZ=America/New_York").unwrap();
        assert_eq!(
            hourly.next_after(at("2026-03-08T06:30:00Z")), // 01:30 EST
            Some(at("2026-03-08T07:00:00Z"))               // 03:00 EDT
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        for (text, fragment) in [
            ("every fortnight", "not a duration"),
            ("0 */6 * *", "5 fields"),
            ("0 25 * * *", "invalid cron"),
            ("0 0 31 2 *", "never matches"),
            ("0 3 * * * TZ=Europe/Pariss", "not known"),
            ("every 100ms", "too short"),
        ] {
            let error = Schedule::parse(text).unwrap_err();
            assert!(error.contains(fragment), "{text}: {error}");
        }
    }
}
