//! Putting a captured configuration back: files beside a restored data directory, or ACL users
//! created on a live server.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

use super::ServerConfigDoc;

/// The ACL file a `--to-dir` restore writes (start the server with `--aclfile DIR/users.acl`,
/// or point the restored config's `aclfile` at it).
pub const ACL_FILE: &str = "users.acl";

/// Writes `users.acl` (unless `with_acl` is false or there are no users) and the config file
/// (under its own name, `redis.conf` by default) into `dir`; returns the names written. An
/// existing file of the same name is left alone (noted in the returned list as skipped).
pub fn write_to_dir(
    doc: &ServerConfigDoc,
    dir: &Path,
    with_acl: bool,
) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> anyhow::Result<()> {
        let path = dir.join(name);
        if path.exists() {
            tracing::warn!(path = %path.display(), "not overwritten: the restored data directory already has it");
            return Ok(());
        }
        // Private, like every file a restore writes: it holds password hashes.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(name.to_string());
        Ok(())
    };
    if with_acl && !doc.acl.is_empty() {
        put(ACL_FILE, &(doc.acl.join("\n") + "\n"))?;
    }
    if let Some(text) = &doc.config {
        let name = doc
            .config_file
            .as_deref()
            .and_then(|p| Path::new(p).file_name())
            .and_then(|n| n.to_str())
            .filter(|n| *n != ACL_FILE)
            .unwrap_or("redis.conf");
        put(name, text)?;
    }
    Ok(written)
}

/// Splits an ACL rule line into its words, keeping a Redis 7 selector `( ... )` whole.
pub fn acl_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in line.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Creates (or resets) every captured user on the server at `url` with `ACL SETUSER name reset
/// rules...`; returns how many.
pub async fn apply_acl(doc: &ServerConfigDoc, url: &str) -> anyhow::Result<usize> {
    let client = redis::Client::open(url).context("invalid --to URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("cannot connect to the restore target to create the ACL users")?;
    let mut n = 0;
    for line in &doc.acl {
        let words = acl_words(line);
        let [kw, name, rules @ ..] = words.as_slice() else {
            continue;
        };
        if kw != "user" {
            continue;
        }
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(name).arg("reset");
        for r in rules {
            cmd.arg(r);
        }
        cmd.query_async::<()>(&mut conn)
            .await
            .with_context(|| format!("ACL SETUSER {name} was refused"))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_stay_one_word() {
        let w = acl_words("user bob on #ab ~a* (~b* +get) +@read");
        assert_eq!(
            w,
            ["user", "bob", "on", "#ab", "~a*", "(~b* +get)", "+@read"]
        );
    }
}
