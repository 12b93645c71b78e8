//! `aofvault config check` and `aofvault config example`.
//!
//! `config check` loads the configuration exactly as `run` would (file, flags, validation)
//! and prints either a short summary or every error, one per line; it returns the exit code
//! rather than failing, because a bad configuration is its normal output.

use std::io::Write;

use aofvault_config::{Config, Schedule, EXAMPLE};

use crate::cli::{ConfigCheckArgs, GlobalArgs};
use crate::exit;
use crate::settings::{self, Loaded, SettingsError};

/// `aofvault config check`: 0 and a summary when the configuration is valid; 2 and every
/// error otherwise. Secrets are never printed (they are `***` in the JSON).
pub fn check(
    global: &GlobalArgs,
    args: &ConfigCheckArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let loaded = match settings::resolve(global, true) {
        Ok(loaded) => loaded,
        Err(e) => return report_failure(e, args.json, out),
    };
    if args.json {
        let doc = serde_json::json!({
            "ok": true,
            "origin": loaded.origin.to_string(),
            "config": loaded.config,
        });
        print_json(&doc, out)?;
    } else {
        summarize(&loaded, out)?;
    }
    Ok(exit::OK)
}

fn report_failure(error: anyhow::Error, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let Some(failure) = error.downcast_ref::<SettingsError>() else {
        return Err(error);
    };
    if json {
        let doc = match failure {
            SettingsError::Invalid { origin, errors } => {
                serde_json::json!({ "ok": false, "origin": origin.to_string(), "errors": errors.0 })
            }
            SettingsError::Read { .. } => {
                serde_json::json!({ "ok": false, "error": failure.to_string() })
            }
        };
        print_json(&doc, out)?;
    } else if let SettingsError::Invalid { origin, errors } = failure {
        let count = errors.0.len();
        let noun = if count == 1 { "error" } else { "errors" };
        writeln!(out, "config invalid: {origin} ({count} {noun})")?;
        for error in &errors.0 {
            writeln!(out, "  {error}")?;
        }
    } else {
        writeln!(out, "config invalid: {failure}")?;
    }
    Ok(exit::USAGE)
}

fn print_json(doc: &serde_json::Value, out: &mut dyn Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)?;
    Ok(())
}

fn summarize(loaded: &Loaded, out: &mut dyn Write) -> std::io::Result<()> {
    let config: &Config = &loaded.config;
    writeln!(out, "config OK: {}", loaded.origin)?;
    let source = &config.source;
    let dir = source
        .dir
        .as_ref()
        .map_or("(none)".into(), |d| d.display().to_string());
    let server = source
        .url
        .as_ref()
        .map_or("no server URL (no compaction)".into(), |u| {
            format!("server {u}")
        });
    writeln!(
        out,
        "  source      {dir} ({}), {server}",
        kind_name(source.kind)
    )?;
    let repo = &config.repository;
    let compression = match repo.compression_level {
        0 => "no compression".to_string(),
        level => format!("zstd level {level}"),
    };
    writeln!(
        out,
        "  repository  {}, instance {}, {compression}",
        repo.url, repo.instance
    )?;
    writeln!(out, "  state       {}", config.state.dir.display())?;
    let schedule = &config.schedule;
    writeln!(
        out,
        "  schedule    snapshot {}, prune {}, verify {}, drift check {}",
        schedule_text(&schedule.snapshot),
        schedule_text(&schedule.prune),
        schedule_text(&schedule.verify),
        schedule_text(&schedule.drift_check)
    )?;
    writeln!(out, "  retention   {}", retention_text(config))?;
    if let Some(listen) = config.metrics.listen {
        writeln!(out, "  metrics     http://{listen}/metrics")?;
    }
    Ok(())
}

fn kind_name(kind: aofvault_config::SourceKind) -> &'static str {
    match kind {
        aofvault_config::SourceKind::Auto => "kind detected",
        aofvault_config::SourceKind::Kevy => "kevy",
        aofvault_config::SourceKind::Redis => "redis",
    }
}

fn schedule_text(schedule: &Option<Schedule>) -> String {
    schedule.as_ref().map_or("off".into(), |s| s.to_string())
}

fn retention_text(config: &Config) -> String {
    let r = &config.retention;
    let mut rules = Vec::new();
    if let Some(n) = r.keep_last {
        rules.push(format!("last {n}"));
    }
    if let Some(d) = r.keep_within {
        rules.push(format!(
            "within {}",
            aofvault_config::units::format_duration(d)
        ));
    }
    for (name, value) in [
        ("daily", r.keep_daily),
        ("weekly", r.keep_weekly),
        ("monthly", r.keep_monthly),
    ] {
        if let Some(n) = value {
            rules.push(format!("{name} {n}"));
        }
    }
    if rules.is_empty() {
        "keep everything (no rule set)".into()
    } else {
        format!("keep {}", rules.join(", "))
    }
}

/// `aofvault config example`: the commented example configuration.
pub fn example(out: &mut dyn Write) -> anyhow::Result<()> {
    out.write_all(EXAMPLE.as_bytes())?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Runs `config check` on `text`, with the state directory pinned.
    fn run_check(text: &str, json: bool) -> (u8, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("aofvault.toml");
        std::fs::write(&file, text).unwrap();
        let global = GlobalArgs {
            config: Some(file),
            state_dir: Some(dir.path().join("state")),
            ..GlobalArgs::default()
        };
        let mut out = Vec::new();
        let code = check(&global, &ConfigCheckArgs { json }, &mut out).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_printed_example_passes_check() {
        let mut printed = Vec::new();
        example(&mut printed).unwrap();
        let (code, out) = run_check(std::str::from_utf8(&printed).unwrap(), false);
        assert_eq!(code, exit::OK, "{out}");
        assert!(out.starts_with("config OK: "), "{out}");
        assert!(
            out.contains("retention   keep last 4, within 2days"),
            "{out}"
        );
    }

    #[test]
    fn five_mistakes_are_reported_in_one_run_with_exit_code_2() {
        let text = r#"
            [source]
            dir = "/var/lib/redis"
            colour = "blue"
            [repository]
            url = "ftp://backups.example/x"
            [ship]
            interval = "soonish"
            [compact]
            rewrite_percentage = 0
            [schedule]
            snapshot = "at dawn"
        "#;
        let (code, out) = run_check(text, false);
        assert_eq!(code, exit::USAGE);
        assert!(out.starts_with("config invalid: "), "{out}");
        assert!(out.contains("(5 errors)"), "{out}");
        for line in [
            "  source.colour: unknown key `colour`",
            "  repository.url: unsupported scheme `ftp`",
            "  ship.interval: not a duration",
            "  compact.rewrite_percentage: must be between 1 and 10000 (got 0)",
            "  schedule.snapshot: not a schedule",
        ] {
            assert!(out.contains(line), "missing {line:?} in:\n{out}");
        }
    }

    #[test]
    fn json_output_is_the_effective_config_with_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "correct-horse-battery\n").unwrap();
        let text = format!(
            "[source]\ndir = \"/data\"\nurl = \"redis://app@127.0.0.1:6380\"\npassword_file = {:?}\n",
            secret.display().to_string()
        );
        let (code, out) = run_check(&text, true);
        assert_eq!(code, exit::OK, "{out}");
        assert!(!out.contains("correct-horse-battery"), "{out}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["ok"], true);
        assert_eq!(doc["config"]["source"]["password"], "***");
        assert_eq!(doc["config"]["source"]["url"], "redis://127.0.0.1:6380");
        assert_eq!(doc["config"]["ship"]["interval"], "1s");
        assert_eq!(doc["config"]["compact"]["enabled"], true);

        let (code, out) = run_check("[ship]\ninterval = 5\n", true);
        assert_eq!(code, exit::USAGE);
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let paths: Vec<&str> = doc["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, vec!["ship.interval", "source.dir"]);
    }
}
