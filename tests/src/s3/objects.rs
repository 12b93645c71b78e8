//! Object requests for tests and for the readiness check, signed by `curl --aws-sigv4`.
//!
//! The payload is sent unsigned (`x-amz-content-sha256: UNSIGNED-PAYLOAD`), which SeaweedFS
//! accepts, so no hashing is needed here; listing parses just the `<Key>` elements of
//! ListObjectsV2 answers.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::{S3Server, ACCESS_KEY, BUCKET, PROBE_BODY, PROBE_KEY, REGION, SECRET_KEY};

impl S3Server {
    /// PUT an object (`key` without the bucket).
    pub fn put_object(&self, key: &str, body: &[u8]) -> Result<()> {
        let (code, out) = curl(&self.endpoint(), "PUT", &object_path(key), Some(body))?;
        if code != 200 {
            bail!("PUT {key}: HTTP {code}: {}", String::from_utf8_lossy(&out));
        }
        Ok(())
    }

    /// GET an object: `None` when it does not exist.
    pub fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let (code, out) = curl(&self.endpoint(), "GET", &object_path(key), None)?;
        match code {
            200 => Ok(Some(out)),
            404 => Ok(None),
            _ => bail!("GET {key}: HTTP {code}: {}", String::from_utf8_lossy(&out)),
        }
    }

    /// DELETE an object (no error if it is missing).
    pub fn delete_object(&self, key: &str) -> Result<()> {
        let (code, out) = curl(&self.endpoint(), "DELETE", &object_path(key), None)?;
        if code != 204 && code != 200 {
            bail!(
                "DELETE {key}: HTTP {code}: {}",
                String::from_utf8_lossy(&out)
            );
        }
        Ok(())
    }

    /// Every key under `prefix`, sorted (ListObjectsV2, following continuation tokens).
    pub fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = format!(
                "/{BUCKET}?list-type=2&max-keys=1000&prefix={}",
                encode(prefix)
            );
            if let Some(t) = &token {
                query.push_str(&format!("&continuation-token={}", encode(t)));
            }
            let (code, out) = curl(&self.endpoint(), "GET", &query, None)?;
            let xml = String::from_utf8_lossy(&out).into_owned();
            if code != 200 {
                bail!("LIST {prefix}: HTTP {code}: {xml}");
            }
            keys.extend(
                xml_values(&xml, "Key")
                    .into_iter()
                    .map(|k| unescape_xml(&k)),
            );
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if token.is_none() || !xml.contains("<IsTruncated>true</IsTruncated>") {
                break;
            }
        }
        keys.sort();
        Ok(keys)
    }
}

fn object_path(key: &str) -> String {
    let encoded: Vec<String> = key.trim_start_matches('/').split('/').map(encode).collect();
    format!("/{BUCKET}/{}", encoded.join("/"))
}

/// Percent-encodes everything but unreserved characters (RFC 3986), as SigV4 expects.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].to_string());
        rest = &after[end + close.len()..];
    }
    out
}

fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// One signed request with curl: returns (HTTP status, body). `path_and_query` starts with `/`.
pub fn curl(
    endpoint: &str,
    method: &str,
    path_and_query: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Vec<u8>)> {
    let dir = tempfile::tempdir().context("temp dir for curl")?;
    let out_path = dir.path().join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "20", "-o"])
        .arg(&out_path)
        .args(["-w", "%{http_code}", "-X", method])
        .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
        .args(["--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    if let Some(body) = body {
        let in_path = dir.path().join("upload");
        write_file(&in_path, body)?;
        cmd.arg("--data-binary")
            .arg(format!("@{}", in_path.display()));
        cmd.args(["-H", "Content-Type: application/octet-stream"]);
    }
    cmd.arg(format!("{endpoint}{path_and_query}"));
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .context("running curl (installed by scripts/install-deps.sh)")?;
    let code_text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let code: u16 = code_text.parse().unwrap_or(0);
    if code == 0 {
        bail!(
            "curl {method} {endpoint}{path_and_query}: no HTTP answer: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let body = std::fs::read(&out_path).unwrap_or_default();
    Ok((code, body))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Readiness beyond the bucket: after a restart the filer answers before the volume server has
/// registered its volumes, and reads fail with 500 for seconds. So: the probe object written
/// at an earlier start must read back, and a new one must write and read back.
pub(super) fn probe(endpoint: &str) -> Result<bool> {
    let path = format!("/{BUCKET}/{PROBE_KEY}");
    let (code, body) = curl(endpoint, "GET", &path, None)?;
    if code == 200 && body != PROBE_BODY {
        bail!(
            "probe object reads back wrong: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    if code != 200 && code != 404 {
        return Ok(false);
    }
    let (code, _) = curl(endpoint, "PUT", &path, Some(PROBE_BODY))?;
    if code != 200 {
        return Ok(false);
    }
    let (code, body) = curl(endpoint, "GET", &path, None)?;
    Ok(code == 200 && body == PROBE_BODY)
}
