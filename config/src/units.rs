//! Human units in the config file: durations (`"1s"`, `"500ms"`, `"1h30m"`, `"7d"`) and byte
//! sizes (`"64MiB"`, `"64MB"`, `"1k"`, or a plain number of bytes).
//!
//! Sizes follow one rule: a unit with an `i` is binary (KiB = 1024), a unit without one is
//! decimal (KB = k = 1000). Units are case-insensitive.

use std::time::Duration;

/// Parses a duration such as `"1s"`, `"500ms"`, `"6h"`, `"1h30m"` or `"7d"`.
///
/// A bare number is refused: `interval = "5"` could mean seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration; write e.g. \"1s\", \"500ms\" or \"1h30m\"".into());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "a duration needs a unit: \"{trimmed}s\" or \"{trimmed}ms\"?"
        ));
    }
    humantime::parse_duration(trimmed)
        .map_err(|e| format!("not a duration ({e}); write e.g. \"1s\", \"500ms\" or \"1h30m\""))
}

/// Formats a duration the way [`parse_duration`] reads it (`"1h 30m"`, `"500ms"`).
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Parses a byte size: `"64MiB"`, `"64 MB"`, `"1k"`, `"1.5GiB"` or `"4096"`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err("not a size; write e.g. \"64MiB\", \"16MB\" or a number of bytes".into());
    }
    let multiplier = unit_multiplier(unit.trim()).ok_or_else(|| {
        format!(
            "unknown size unit `{}`; use B, KB, MB, GB, TB (x1000) or KiB, MiB, GiB, TiB (x1024)",
            unit.trim()
        )
    })?;
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| "size too large".to_string());
    }
    let fraction: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    let bytes = fraction * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("size too large".into());
    }
    Ok(bytes.round() as u64)
}

fn unit_multiplier(unit: &str) -> Option<u64> {
    const K: u64 = 1000;
    const KI: u64 = 1024;
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => K,
        "kib" => KI,
        "m" | "mb" => K.pow(2),
        "mib" => KI.pow(2),
        "g" | "gb" => K.pow(3),
        "gib" => KI.pow(3),
        "t" | "tb" => K.pow(4),
        "tib" => KI.pow(4),
        _ => return None,
    };
    Some(multiplier)
}

/// Formats a size with the largest binary unit that divides it (`"64MiB"`), else in bytes.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{name}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_documented_forms() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
    }

    #[test]
    fn durations_refuse_garbage_and_bare_numbers() {
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        let bare = parse_duration("5").unwrap_err();
        assert!(bare.contains("needs a unit"), "{bare}");
    }

    #[test]
    fn format_duration_round_trips() {
        for text in ["1s", "500ms", "1h 30m", "7days"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }

    #[test]
    fn sizes_binary_with_i_decimal_without() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("64MB").unwrap(), 64_000_000);
        assert_eq!(parse_size("64 mib").unwrap(), 64 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1000);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
    }

    #[test]
    fn sizes_refuse_garbage() {
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("1.2.3MB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn format_size_picks_the_largest_exact_unit() {
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(3 << 30), "3GiB");
    }
}
