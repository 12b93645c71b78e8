//! Creating an Azure Blob container on Azurite with one Shared Key-signed `PUT`, sent by
//! `python3` (always on the test machines) so the harness needs no Azure SDK or HMAC crate.

use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{ACCOUNT, ACCOUNT_KEY};

/// The signer: Shared Key over the canonical string of a "Create Container" request, in the
/// path-style form Azurite uses (`/account/account/container`).
const SCRIPT: &str = r#"
import base64, hashlib, hmac, http.client, sys, urllib.parse
from email.utils import formatdate
endpoint, account, key, container = sys.argv[1:5]
date = formatdate(usegmt=True)
version = "2021-08-06"
resource = f"/{account}/{account}/{container}\nrestype:container"
to_sign = "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n" + resource
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
url = urllib.parse.urlparse(endpoint)
try:
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("PUT", f"/{account}/{container}?restype=container", headers={
        "x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
        "Authorization": f"SharedKey {account}:{sig}"})
    print(conn.getresponse().status)
except OSError:
    print(0)
"#;

/// `PUT /account/container?restype=container`: 201 created, 409 already there, 0 no answer.
pub fn create_container(endpoint: &str, container: &str) -> Result<u16> {
    let out = Command::new("python3")
        .args(["-c", SCRIPT, endpoint, ACCOUNT, ACCOUNT_KEY, container])
        .output()
        .context("running python3 to create the Azurite container")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<u16>() {
        Ok(code) => Ok(code),
        Err(_) => bail!(
            "python3 printed {text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
