//! The self-describing commands: `config check`, `config example`, `completions`, `man`.
//!
//! `config check` loads the configuration exactly as `run` would (file, flags, validation)
//! and prints either a short summary or every error, one per line; it returns the exit code
//! rather than failing, because a bad configuration is its normal output. Completions and the
//! man page are generated from the clap definitions in [`crate::cli`], so they never drift
//! from the real flags.

use std::io::Write;

use aofvault_config::{Config, Schedule, EXAMPLE};
use clap::CommandFactory;

use crate::cli::{Cli, ConfigCheckArgs, GlobalArgs};
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

/// `aofvault completions SHELL`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<()> {
    clap_complete::generate(shell, &mut Cli::command(), "aofvault", out);
    Ok(())
}

/// `aofvault man`: the man page, in roff (`aofvault man | man -l -`): clap_mangen's name,
/// synopsis and options, then every subcommand with its flags, exit status, environment,
/// files and examples.
pub fn man(out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut roff_text = Vec::new();
    let buf = &mut roff_text;
    page.render_title(buf)?;
    page.render_name_section(buf)?;
    page.render_synopsis_section(buf)?;
    page.render_description_section(buf)?;
    page.render_options_section(buf)?;
    writeln!(buf, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        render_command(&format!("aofvault {}", sub.get_name()), sub, buf)?;
        for nested in sub.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = format!("aofvault {} {}", sub.get_name(), nested.get_name());
            render_command(&name, nested, buf)?;
        }
    }
    writeln!(buf, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in exit::TABLE {
        writeln!(buf, ".TP\n\\fB{code}\\fR\n{}", roff(meaning))?;
    }
    buf.write_all(MAN_TAIL.as_bytes())?;
    page.render_version_section(buf)?;
    // Each clap_mangen section starts with the same two-line preamble; keep the first.
    let text = String::from_utf8_lossy(&roff_text);
    let mut preamble_lines = 0;
    for line in text.lines() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            preamble_lines += 1;
            if preamble_lines > 2 {
                continue;
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// One subcommand: `.SS` heading, its description, and its own (non-global) arguments.
fn render_command(name: &str, cmd: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    if cmd.has_subcommands()
        && cmd
            .get_arguments()
            .all(|a| a.is_global_set() || is_builtin(a))
    {
        return Ok(()); // a group such as `config`: its members follow
    }
    writeln!(out, ".SS \"{}\"", roff(name))?;
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        writeln!(out, "{}", roff(&about.to_string()))?;
    }
    for arg in cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set() && !is_builtin(a))
    {
        let value = arg
            .get_value_names()
            .filter(|_| arg.get_action().takes_values())
            .map(|names| {
                names
                    .iter()
                    .map(|n| format!(" \\fI{}\\fR", roff(n)))
                    .collect::<String>()
            })
            .unwrap_or_default();
        let flag = match arg.get_long() {
            Some(long) => format!("\\fB\\-\\-{}\\fR{value}", roff(long)),
            None => format!("\\fI{}\\fR", roff(&arg.get_id().as_str().to_uppercase())),
        };
        writeln!(out, ".TP\n{flag}")?;
        if let Some(help) = arg.get_long_help().or(arg.get_help()) {
            writeln!(out, "{}", roff(&help.to_string()))?;
        }
    }
    Ok(())
}

fn is_builtin(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would read as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| match line.chars().next() {
            Some('.') | Some('\'') => format!("\\&{line}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const MAN_TAIL: &str = r#".SH ENVIRONMENT
.TP
\fBAOFVAULT_CONFIG\fR
Config file, as \fB\-\-config\fR.
.TP
\fBAOFVAULT_SOURCE_PASSWORD\fR
Password of the server, when the config file gives none.
.TP
\fBAWS_ENDPOINT_URL\fR, \fBAWS_REGION\fR, \fBAWS_ACCESS_KEY_ID\fR, \fBAWS_SECRET_ACCESS_KEY\fR, \fBAWS_SESSION_TOKEN\fR, \fBAWS_ALLOW_HTTP\fR
S3 settings the config file leaves unset.
.TP
\fBRUST_LOG\fR
Log filter; overrides [log] level.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd for Type=notify services: readiness, status and watchdog.
.SH FILES
.TP
\fI/etc/aofvault/aofvault.toml\fR
The configuration (see \fBaofvault config example\fR and docs/CONFIGURATION.md).
.TP
\fI/var/lib/aofvault\fR
Local state: cursors and status (systemd's StateDirectory).
.SH EXAMPLES
.nf
aofvault config example > /etc/aofvault/aofvault.toml
aofvault config check
aofvault \-\-source /var/lib/redis \-\-repo s3://backups/redis run
aofvault list
aofvault restore \-\-at 2024\-05\-01T12:00:00Z \-\-to\-dir /var/lib/redis\-restored
aofvault verify \-\-deep
.fi
.SH "SEE ALSO"
systemd.service(5), redis\-server(1)
"#;

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

    #[test]
    fn man_page_and_completions_come_from_the_cli() {
        let mut page = Vec::new();
        man(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains("\n.TH aofvault 1 "), "{}", &page[..200]);
        assert_eq!(page.matches(".el .ds Aq").count(), 1, "one preamble");
        for section in [
            ".SH COMMANDS",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(section), "{section} missing");
        }
        for command in [
            "aofvault restore",
            "aofvault config check",
            "aofvault completions",
        ] {
            assert!(
                page.contains(&format!(".SS \"{}\"", command.replace('-', "\\-"))),
                "{command}"
            );
        }
        assert!(
            page.contains("\\fB\\-\\-to\\-dir\\fR \\fIDIR\\fR"),
            "restore's flags are listed"
        );
        assert!(page.contains(".TP\n\\fB7\\fR\n"), "exit code 7 is listed");

        let mut script = Vec::new();
        completions(clap_complete::Shell::Bash, &mut script).unwrap();
        let script = String::from_utf8(script).unwrap();
        assert!(
            script.contains("--to-dir") && script.contains("aofvault"),
            "bash completions"
        );
    }
}
