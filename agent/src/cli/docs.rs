//! What the CLI definition says about itself: shell completions and the man page, generated
//! from the clap definitions in this module's parent, so they never drift from the real flags.

use std::io::Write;

use clap::CommandFactory;

use super::Cli;
use crate::exit;

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
