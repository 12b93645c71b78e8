//! [`S3Server`]: SeaweedFS (`weed server`) as a throwaway S3-compatible object store.
//!
//! Everything follows the facts in TESTING.md: every one of its eight ports is given and bound
//! to 127.0.0.1, the data dir is fresh, `TMPDIR` is a folder of its own (its logs and
//! `seaweedfs-*.sock` files go there), `GOMEMLIMIT=512MiB`, one identity with the credentials
//! K/S, and readiness is "creating the bucket answers 200 or 409". It ignores SIGTERM for
//! a long time, so it is SIGKILLed. Starting one takes seconds, so a test binary shares one
//! through [`shared_s3`] and its tests use distinct prefixes.
//!
//! Requests from the harness itself (readiness, [`S3Server::put_object`], ...) go through
//! `curl --aws-sigv4` with an unsigned payload (see `objects`): no S3 client library needed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::ports::{free_port, log_says_port_taken};
use crate::process::{self, Spawned};

mod objects;
pub use objects::curl;
use objects::probe;

pub const ACCESS_KEY: &str = "K";
pub const SECRET_KEY: &str = "S";
/// A second credential of the same identity, whose secret is long and unique enough to be
/// searched for in logs and objects (the secrets test); `S` would match everywhere.
pub const LONG_ACCESS_KEY: &str = "AKIAAOFVAULTTESTLONG";
pub const LONG_SECRET_KEY: &str = "s3secret-7f3c9a1e5b2d4f6a8c0e1b3d5f7a9c2e-aofvault";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "aofvault-test";
/// An object the readiness check writes and reads (outside any test's prefix).
pub const PROBE_KEY: &str = ".harness/probe";
const PROBE_BODY: &[u8] = b"aofvault harness probe";

/// First start on a fresh dir takes ~3 s; a restart on old data ~19 s (TESTING.md).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const PORT_ATTEMPTS: usize = 3;

/// The `weed` binary: `$WEED_BIN`, else `$AOFVAULT_VENV/bin/weed` (default venv
/// `/opt/aofvault-venv`, where scripts/install-deps.sh puts it) if present, else `weed`.
pub fn weed_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("WEED_BIN") {
        return PathBuf::from(bin);
    }
    let venv_dir = std::env::var("AOFVAULT_VENV").unwrap_or_else(|_| "/opt/aofvault-venv".into());
    let venv = PathBuf::from(venv_dir).join("bin").join("weed");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("weed")
    }
}

/// The eight ports of one `weed server`.
#[derive(Debug, Clone, Copy)]
struct Ports {
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    s3: u16,
    s3_grpc: u16,
}

impl Ports {
    fn draw() -> Self {
        Self {
            master: free_port(),
            master_grpc: free_port(),
            volume: free_port(),
            volume_grpc: free_port(),
            filer: free_port(),
            filer_grpc: free_port(),
            s3: free_port(),
            s3_grpc: free_port(),
        }
    }

    fn all(&self) -> [u16; 8] {
        [
            self.master,
            self.master_grpc,
            self.volume,
            self.volume_grpc,
            self.filer,
            self.filer_grpc,
            self.s3,
            self.s3_grpc,
        ]
    }
}

/// A running SeaweedFS with one bucket; SIGKILLed on drop. See the module docs.
#[derive(Debug)]
pub struct S3Server {
    proc: Option<Spawned>,
    ports: Ports,
    log_path: PathBuf,
    root: TempDir,
}

impl S3Server {
    /// Starts SeaweedFS on a fresh directory and creates the bucket.
    pub fn start() -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("aofvault-s3-")
            .tempdir()
            .context("creating a temp dir for SeaweedFS")?;
        for sub in ["data", "tmp"] {
            let dir = root.path().join(sub);
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let identities = format!(
            r#"{{"identities":[{{"name":"ci","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}},{{"accessKey":"{LONG_ACCESS_KEY}","secretKey":"{LONG_SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        let config = root.path().join("s3.json");
        std::fs::write(&config, identities)
            .with_context(|| format!("writing {}", config.display()))?;
        let log_path = root.path().join("weed.log");
        process::touch(&log_path)?;
        let mut server = Self {
            proc: None,
            ports: Ports::draw(),
            log_path,
            root,
        };
        let mut last = None;
        for attempt in 0..PORT_ATTEMPTS {
            if attempt > 0 {
                server.ports = Ports::draw();
            }
            match server.launch() {
                Ok(()) => return Ok(server),
                Err((e, true)) => last = Some(e),
                Err((e, false)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
            .context("SeaweedFS: every set of ports tried was taken")
    }

    /// Starts the process and waits for the bucket; the flag says "a port was taken".
    fn launch(&mut self) -> Result<(), (anyhow::Error, bool)> {
        let root = self.root.path();
        let p = self.ports;
        let mut cmd = Command::new(weed_bin());
        cmd.current_dir(root)
            .env("TMPDIR", root.join("tmp"))
            .env("GOMEMLIMIT", "512MiB")
            .arg("server")
            .arg(format!("-dir={}", root.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master_grpc))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume_grpc))
            .arg("-filer")
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer_grpc))
            .arg("-s3")
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3_grpc))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args([
                "-master.telemetry=false",
                "-volume.max=0",
                "-master.volumeSizeLimitMB=1024",
            ])
            .arg(format!("-s3.config={}", root.join("s3.json").display()));
        let mut cleanup = vec![root.to_path_buf()];
        cleanup.extend(self.sock_files());
        let proc = Spawned::spawn("weed", cmd, &self.log_path, &cleanup).map_err(|e| (e, false))?;
        self.proc = Some(proc);
        let endpoint = self.endpoint();
        let mut died = None;
        let waited = {
            let proc = self
                .proc
                .as_mut()
                .ok_or_else(|| (anyhow::anyhow!("not started"), false))?;
            let mut bucket_ok = false;
            process::wait_until(
                READY_TIMEOUT,
                "SeaweedFS to store and serve objects",
                || {
                    if let Some(e) = proc.exited_error() {
                        died = Some(e);
                        return Ok(true);
                    }
                    if !bucket_ok {
                        let (code, _) = curl(&endpoint, "PUT", &format!("/{BUCKET}"), None)?;
                        bucket_ok = code == 200 || code == 409;
                        if !bucket_ok {
                            return Ok(false);
                        }
                    }
                    probe(&endpoint)
                },
            )
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
                    .map(|p| log_says_port_taken(&p.own_log()))
                    .unwrap_or(false);
                self.stop();
                Err((e, taken))
            }
        }
    }

    /// `seaweedfs-*-PORT.sock` paths it may leave in the system temp dir.
    fn sock_files(&self) -> Vec<PathBuf> {
        let tmp = std::env::temp_dir();
        let p = self.ports;
        [
            format!("seaweedfs-master-grpc-{}.sock", p.master_grpc),
            format!("seaweedfs-volume-grpc-{}.sock", p.volume_grpc),
            format!("seaweedfs-filer-{}.sock", p.filer),
            format!("seaweedfs-filer-grpc-{}.sock", p.filer_grpc),
            format!("seaweedfs-s3-{}.sock", p.s3),
            format!("seaweedfs-s3-grpc-{}.sock", p.s3_grpc),
        ]
        .into_iter()
        .map(|name| tmp.join(name))
        .collect()
    }

    /// `http://127.0.0.1:PORT` (the S3 gateway).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// The S3 gateway's address (to put a [`crate::proxy::FaultProxy`] in front of it).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.s3))
    }

    pub fn port(&self) -> u16 {
        self.ports.s3
    }

    /// Every port it listens on.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.all().to_vec()
    }

    pub fn bucket(&self) -> &str {
        BUCKET
    }

    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// `s3://BUCKET/PREFIX`
    pub fn repo_url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{}", prefix.trim_matches('/'))
    }

    /// Env vars for the agent: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP=true.
    pub fn env(&self) -> Vec<(String, String)> {
        env_for(&self.endpoint())
    }

    /// Like [`S3Server::env`] but with another endpoint (a proxy in front of this server).
    pub fn env_via(&self, endpoint: &str) -> Vec<(String, String)> {
        env_for(endpoint)
    }

    /// Everything SeaweedFS printed.
    pub fn log(&self) -> String {
        process::read_log(&self.log_path)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// SIGKILL (an outage). Idempotent; [`S3Server::start_again`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            process::note(&self.log_path, "stopping (SIGKILL)");
            p.kill();
        }
    }

    /// Starts again on the same ports and data dir (the objects are still there).
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
            .context("SeaweedFS restart: ports stayed taken")
    }

    pub fn is_running(&mut self) -> bool {
        self.proc
            .as_mut()
            .map(|p| p.exited().is_none())
            .unwrap_or(false)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        for sock in self.sock_files() {
            let _ = std::fs::remove_file(sock);
        }
    }
}

fn env_for(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The one SeaweedFS of this test binary, started on first use. It lives until the binary
/// exits; its watchdog then kills it and removes its files. Panics (in every test that asks)
/// if it cannot start, with the reason.
pub fn shared_s3() -> &'static S3Server {
    static SHARED: OnceLock<std::result::Result<S3Server, String>> = OnceLock::new();
    match SHARED.get_or_init(|| S3Server::start().map_err(|e| format!("{e:#}"))) {
        Ok(server) => server,
        Err(e) => panic!("the shared S3 server did not start: {e}"),
    }
}
