//! Test harness shared by the real-server tests: a server process on a free 127.0.0.1 port in
//! its own temporary directory, killed on drop (its log is printed when the test failed), and a
//! minimal blocking RESP2 client built on the crate's own encoder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use aofvault_formats::resp::encode_command;

pub mod holds;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("aofvault-formats-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
    what: String,
}

pub fn kevy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("KEVY_BIN") {
        return bin.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let installed = home.join(".cargo/bin/kevy");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("kevy")
    }
}

impl Server {
    /// `kevy --port P --dir DIR --threads N`; the log goes next to `dir`.
    pub fn kevy(dir: &Path, threads: u32) -> Server {
        let port = free_port();
        let mut cmd = Command::new(kevy_bin());
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--threads", &threads.to_string()]);
        Server::spawn(cmd, port, dir, &format!("kevy --threads {threads}"))
    }

    /// `redis-server` with AOF on and no RDB saves, in `dir`.
    pub fn redis(dir: &Path) -> Server {
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"]);
        Server::spawn(cmd, port, dir, "redis-server")
    }

    fn spawn(mut cmd: Command, port: u16, dir: &Path, what: &str) -> Server {
        let log = dir.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let mut server = Server {
            child,
            port,
            log,
            what: what.to_owned(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        for _ in 0..400 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.what, self.log_text());
            }
            if answers_ping(self.port) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("{} never answered PING:\n{}", self.what, self.log_text());
    }

    pub fn client(&self) -> Client {
        Client::new(TcpStream::connect(("127.0.0.1", self.port)).unwrap())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.what, self.log_text());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b.clone(),
            Reply::Status(s) => s.clone().into_bytes(),
            Reply::Int(n) => n.to_string().into_bytes(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    pub fn array(&self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(items)) => items.clone(),
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    /// A flat array of strings.
    pub fn byte_list(&self) -> Vec<Vec<u8>> {
        self.array().iter().map(Reply::bytes).collect()
    }

    /// A flat `[k, v, k, v…]` array as a map keyed by the text of `k`.
    pub fn field_map(&self) -> std::collections::BTreeMap<String, Reply> {
        let items = self.array();
        items
            .chunks(2)
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv[0].bytes()).into_owned(),
                    kv[1].clone(),
                )
            })
            .collect()
    }
}

/// Whether a server on `port` answers `PING` with `+PONG`. Any I/O error is a "not yet": a
/// server still starting may accept a connection and reset it.
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let timeout = Some(std::time::Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err()
        || stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err()
    {
        return false;
    }
    let mut line = Vec::new();
    BufReader::new(stream).read_until(b'\n', &mut line).is_ok() && line == b"+PONG\r\n"
}

pub struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        Client {
            r: BufReader::new(stream),
        }
    }

    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let mut buf = Vec::new();
        encode_command(args, &mut buf);
        self.r.get_mut().write_all(&buf).unwrap();
        self.read_reply()
    }

    /// Send a command and require a non-error reply.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let reply = self.cmd(args);
        if let Reply::Error(e) = &reply {
            let shown: Vec<_> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                .collect();
            panic!("{shown:?} failed: {e}");
        }
        reply
    }

    /// Send every command in one write, then read every reply; panics on the first error reply.
    pub fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) {
        for batch in commands.chunks(256) {
            let mut buf = Vec::new();
            for c in batch {
                encode_command(c, &mut buf);
            }
            self.r.get_mut().write_all(&buf).unwrap();
            for c in batch {
                if let Reply::Error(e) = self.read_reply() {
                    let shown: Vec<_> = c
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    panic!("{shown:?} failed: {e}");
                }
            }
        }
    }

    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).unwrap();
        assert!(
            line.ends_with(b"\r\n"),
            "connection closed or bad reply {line:?}"
        );
        line.truncate(line.len() - 2);
        String::from_utf8(line).unwrap()
    }

    pub fn read_reply(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let len: i64 = rest.parse().unwrap();
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut data = vec![0u8; len as usize + 2];
                self.r.read_exact(&mut data).unwrap();
                data.truncate(len as usize);
                Reply::Bulk(Some(data))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..n).map(|_| self.read_reply()).collect()))
            }
            other => panic!("unexpected reply type {other:?} in {line:?}"),
        }
    }
}
