//! The oracle's side of the server: a tiny keyspace ([`Model`]) that applies the few commands
//! the simulation writes (and the ones a restore renders a base into), the workload that picks
//! those commands, and each shard's [`History`] of every state the server ever held.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use rand::rngs::StdRng;
use rand::Rng;

/// One command as RESP arguments.
pub type Cmd = Vec<Vec<u8>>;

/// A value the simulated servers hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Val {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
}

/// A keyspace: what the server holds (or what a restore replays into).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub keys: BTreeMap<Vec<u8>, Val>,
}

impl Model {
    /// Applies one command; an error names a command the simulation never writes (so a restore
    /// that produces it replayed bytes the server never held).
    pub fn apply(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let Some(name) = args.first() else {
            return Ok(());
        };
        let name = name.to_ascii_uppercase();
        match (name.as_slice(), args.len()) {
            (b"SET", 3) => {
                self.keys
                    .insert(args[1].to_vec(), Val::Str(args[2].to_vec()));
            }
            (b"INCR", 2) => {
                let now = match self.keys.get(args[1]) {
                    None => 0,
                    Some(Val::Str(v)) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| format!("INCR of a non-integer {:?}", show(v)))?,
                    Some(Val::List(_)) => return Err("INCR of a list".into()),
                };
                self.keys.insert(
                    args[1].to_vec(),
                    Val::Str((now + 1).to_string().into_bytes()),
                );
            }
            (b"RPUSH", n) if n >= 3 => {
                let entry = self
                    .keys
                    .entry(args[1].to_vec())
                    .or_insert_with(|| Val::List(Vec::new()));
                let Val::List(items) = entry else {
                    return Err("RPUSH to a string".into());
                };
                items.extend(args[2..].iter().map(|a| a.to_vec()));
            }
            (b"DEL", n) if n >= 2 => {
                for k in &args[1..] {
                    self.keys.remove(*k);
                }
            }
            // Harmless framing a restore may add.
            (b"SELECT", 2) => {}
            _ => return Err(format!("unexpected command {}", render(args))),
        }
        Ok(())
    }

    /// A digest of the whole keyspace (a fixed-key hasher: the same on every run).
    pub fn digest(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.keys.hash(&mut h);
        h.finish()
    }

    /// The commands that rebuild this keyspace (a rewrite image, a RESP base).
    pub fn image(&self) -> Vec<Cmd> {
        let mut out = Vec::new();
        for (k, v) in &self.keys {
            match v {
                Val::Str(s) => out.push(vec![b"SET".to_vec(), k.clone(), s.clone()]),
                Val::List(items) => {
                    let mut c = vec![b"RPUSH".to_vec(), k.clone()];
                    c.extend(items.iter().cloned());
                    out.push(c);
                }
            }
        }
        out
    }

    /// A short description of how `self` differs from `other` (for failure messages).
    pub fn diff(&self, other: &Model) -> String {
        let mut out = Vec::new();
        for (k, v) in &self.keys {
            match other.keys.get(k) {
                None => out.push(format!("{} only in restore = {}", show(k), val(v))),
                Some(o) if o != v => out.push(format!(
                    "{}: restore {} vs server {}",
                    show(k),
                    val(v),
                    val(o)
                )),
                _ => {}
            }
        }
        for (k, v) in &other.keys {
            if !self.keys.contains_key(k) {
                out.push(format!(
                    "{} missing from restore (server {})",
                    show(k),
                    val(v)
                ));
            }
        }
        let n = out.len();
        out.truncate(6);
        if n > 6 {
            out.push(format!("… {} more", n - 6));
        }
        out.join("; ")
    }
}

/// Bytes as the trace prints them: torn frames glued to the next one hold `\r\n`.
fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

fn val(v: &Val) -> String {
    match v {
        Val::Str(s) => format!("{:?}", show(s)),
        Val::List(items) if items.len() <= 4 => {
            format!("{:?}", items.iter().map(|i| show(i)).collect::<Vec<_>>())
        }
        Val::List(items) => format!(
            "list of {} (last {})",
            items.len(),
            show(&items[items.len() - 1])
        ),
    }
}

/// `SET k1 v` — a command as the trace prints it.
pub fn render(args: &[&[u8]]) -> String {
    args.iter().map(|a| show(a)).collect::<Vec<_>>().join(" ")
}

/// RESP multibulk encoding of one command.
pub fn resp(cmd: &Cmd) -> Vec<u8> {
    let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
    for a in cmd {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Every state a shard's server held, by digest, with the step that first produced it, and
/// every value each key ever had. A restore taken while the agent is behind is usually one of
/// those states (a prefix of history); while a kevy rewrite's image is only partly stored it
/// is a mix of keys as they were at the rewrite and keys not yet restored — but never a value
/// a key did not have.
#[derive(Debug, Default)]
pub struct History {
    seen: HashMap<u64, usize>,
    values: HashSet<(Vec<u8>, u64)>,
}

fn val_digest(v: &Val) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl History {
    /// Records the state after a command that wrote `key` (`None`: the initial state).
    pub fn record(&mut self, m: &Model, step: usize, key: Option<&[u8]>) {
        self.seen.entry(m.digest()).or_insert(step);
        if let Some(v) = key.and_then(|k| m.keys.get(k).map(|v| (k, v))) {
            self.values.insert((v.0.to_vec(), val_digest(v.1)));
        }
    }

    /// The step at which the server first held `m`, if it ever did.
    pub fn when(&self, m: &Model) -> Option<usize> {
        self.seen.get(&m.digest()).copied()
    }

    /// A key of `m` whose value the server never held, if any.
    pub fn never_held(&self, m: &Model) -> Option<String> {
        m.keys.iter().find_map(|(k, v)| {
            (!self.values.contains(&(k.clone(), val_digest(v))))
                .then(|| format!("{} = {}", show(k), val(v)))
        })
    }
}

/// How a stretch of the workload picks commands. `Counter` writes only `INCR counter`: every
/// frame is identical, so a file refilled after a reset holds the same bytes at the same
/// offsets as before — what a check of the last bytes read cannot tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Mixed,
    Counter,
}

/// The next command of the workload.
pub fn next_command(rng: &mut StdRng, mode: Mode, serial: &mut u64) -> Cmd {
    *serial += 1;
    let n = *serial;
    let pick = if mode == Mode::Counter {
        0
    } else {
        rng.gen_range(0..10)
    };
    match pick {
        0..=2 => vec![b"INCR".to_vec(), b"counter".to_vec()],
        3..=5 => vec![
            b"SET".to_vec(),
            format!("k{}", rng.gen_range(0..12)).into_bytes(),
            format!("v{n}").into_bytes(),
        ],
        6..=8 => vec![
            b"RPUSH".to_vec(),
            b"log".to_vec(),
            n.to_string().into_bytes(),
        ],
        _ => vec![
            b"DEL".to_vec(),
            format!("k{}", rng.gen_range(0..12)).into_bytes(),
        ],
    }
}

/// Applies a command the simulation generated itself (it always applies).
pub fn apply_own(m: &mut Model, cmd: &Cmd) {
    let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
    // The workload only writes commands the model knows.
    let _ = m.apply(&refs);
}
