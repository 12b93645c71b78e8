//! [`AzuriteServer`]: Azurite's blob service (`azurite-blob`, the Azure Storage emulator from
//! npm) as a throwaway Azure Blob store.
//!
//! It listens on one free 127.0.0.1 port with a fresh `--location`; objects survive
//! [`AzuriteServer::stop`] + [`AzuriteServer::start_again`], as a real outage would leave them. Azurite's well-known account `devstoreaccount1` and key are used; the
//! agent reaches it through object_store's emulator mode (`AZURE_STORAGE_USE_EMULATOR=true`
//! with `AZURITE_BLOB_STORAGE_URL`). Readiness is "creating the container answers 201 or
//! 409", sent by `container` (a Shared Key-signed request, so no Azure SDK is needed).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::ports::{free_port, log_says_port_taken};
use crate::process::{self, Spawned};

mod container;
pub use container::create_container;

/// The emulator's account and its published key (not a secret: Azurite documents it).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const CONTAINER: &str = "aofvault-test";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 3;

/// The `azurite-blob` program: `$AZURITE_BIN`, else `azurite-blob` on the PATH (npm installs
/// it globally; scripts/deps/30-azurite.sh).
pub fn azurite_bin() -> PathBuf {
    std::env::var("AZURITE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("azurite-blob"))
}

/// A running Azurite blob service with one container; killed on drop.
#[derive(Debug)]
pub struct AzuriteServer {
    proc: Option<Spawned>,
    port: u16,
    log_path: PathBuf,
    root: TempDir,
}

impl AzuriteServer {
    /// Starts Azurite on a fresh directory and creates the container.
    pub fn start() -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("aofvault-azurite-")
            .tempdir()
            .context("creating a temp dir for Azurite")?;
        std::fs::create_dir(root.path().join("data")).context("creating Azurite's data dir")?;
        let log_path = root.path().join("azurite.log");
        process::touch(&log_path)?;
        let mut server = Self {
            proc: None,
            port: free_port(),
            log_path,
            root,
        };
        let mut last = None;
        for attempt in 0..PORT_ATTEMPTS {
            if attempt > 0 {
                server.port = free_port();
            }
            match server.launch() {
                Ok(()) => return Ok(server),
                Err((e, true)) => last = Some(e),
                Err((e, false)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
            .context("Azurite: every port tried was taken")
    }

    /// Starts the process and waits for the container; the flag says "the port was taken".
    fn launch(&mut self) -> Result<(), (anyhow::Error, bool)> {
        let root = self.root.path();
        let mut cmd = Command::new(azurite_bin());
        cmd.current_dir(root)
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string())
            .arg("--location")
            .arg(root.join("data"))
            // Its access log goes to our log file; the debug log stays off (it is large).
            .args(["--skipApiVersionCheck", "--disableTelemetry"]);
        let cleanup = vec![root.to_path_buf()];
        let proc =
            Spawned::spawn("azurite", cmd, &self.log_path, &cleanup).map_err(|e| (e, false))?;
        self.proc = Some(proc);
        let endpoint = self.endpoint();
        let mut died = None;
        let waited = {
            let proc = self
                .proc
                .as_mut()
                .ok_or_else(|| (anyhow::anyhow!("not started"), false))?;
            process::wait_until(READY_TIMEOUT, "Azurite to create the container", || {
                if let Some(e) = proc.exited_error() {
                    died = Some(e);
                    return Ok(true);
                }
                Ok(matches!(
                    create_container(&endpoint, CONTAINER),
                    Ok(201 | 409)
                ))
            })
        };
        let failure = match (died, waited) {
            (Some(e), _) => Some(e),
            (None, Err(e)) => Some(anyhow::anyhow!(
                "{e:#}; log {}:\n{}",
                self.log_path.display(),
                process::log_tail(&self.log_path, process::LOG_TAIL_LINES)
            )),
            (None, Ok(())) => None,
        };
        match failure {
            None => Ok(()),
            Some(e) => {
                let taken = self
                    .proc
                    .as_ref()
                    .map(|p| {
                        log_says_port_taken(&p.own_log()) || p.own_log().contains("EADDRINUSE")
                    })
                    .unwrap_or(false);
                self.stop();
                Err((e, taken))
            }
        }
    }

    /// `http://127.0.0.1:PORT` (the blob service, without the account).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `az://CONTAINER/PREFIX`
    pub fn repo_url(&self, prefix: &str) -> String {
        format!("az://{CONTAINER}/{}", prefix.trim_matches('/'))
    }

    /// Env vars for the agent: emulator mode at this server's URL.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_via(&self.endpoint())
    }

    /// Like [`AzuriteServer::env`] but with another URL (a proxy in front of this server).
    pub fn env_via(&self, endpoint: &str) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
            ("AZURITE_BLOB_STORAGE_URL", endpoint),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Everything Azurite printed.
    pub fn log(&self) -> String {
        process::read_log(&self.log_path)
    }

    /// SIGTERM (an outage). Idempotent; [`AzuriteServer::start_again`] brings it back.
    ///
    /// Not SIGKILL: Azurite keeps its blob index in memory and saves it every few seconds, so
    /// a killed Azurite forgets the newest blobs — an emulator artefact no real store has.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            process::note(&self.log_path, "stopping (SIGTERM)");
            p.terminate(Duration::from_secs(10));
        }
    }

    /// Starts again on the same port and data dir (the blobs are still there).
    pub fn start_again(&mut self) -> Result<()> {
        self.stop();
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err((e, true)) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err((e, false)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
            .context("Azurite restart: the port stayed taken")
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        self.stop();
    }
}
