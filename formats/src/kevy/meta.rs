//! `shards.meta`: how many shards a kevy data directory has and how keys are routed to them.
//!
//! v1 is the bare count; v2 adds a second line with the routing tag. An unknown tag is an error,
//! not a guess: kevy itself treats such a directory as unreadable rather than misroute keys.

use super::KevyError;

/// The key → shard scheme of a kevy data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// kevy's own byte hash (the default).
    KevyHash,
    /// Redis-cluster hash slots (`kevy --cluster`).
    Slots,
}

impl Routing {
    fn tag(self) -> &'static str {
        match self {
            Routing::KevyHash => "kevyhash",
            Routing::Slots => "slots",
        }
    }
}

/// The content of `shards.meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardsMeta {
    /// Number of shards, at least 1: files `dump-{0..shards}.rdb` and `aof-{0..shards}.aof`.
    pub shards: u32,
    pub routing: Routing,
}

impl ShardsMeta {
    /// Parse v1 (`"4"`) or v2 (`"4\nkevyhash\n"`). Offsets in errors are byte offsets in `text`.
    pub fn parse(text: &str) -> Result<Self, KevyError> {
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or_default();
        let shards = first
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| KevyError::Invalid {
                offset: 0,
                reason: format!(
                    "shards.meta: shard count {:?} is not a number >= 1",
                    first.trim()
                ),
            })?;
        let routing = match lines.next().map(str::trim) {
            None | Some("" | "kevyhash") => Routing::KevyHash,
            Some("slots") => Routing::Slots,
            Some(other) => {
                return Err(KevyError::Invalid {
                    offset: first.len() as u64 + 1,
                    reason: format!("shards.meta: unknown routing {other:?}"),
                })
            }
        };
        Ok(ShardsMeta { shards, routing })
    }

    /// The v2 text kevy 1.19 writes.
    pub fn render(&self) -> String {
        format!("{}\n{}\n", self.shards, self.routing.tag())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_parse_and_v2_renders() {
        let v1 = ShardsMeta::parse("4").unwrap();
        assert_eq!(
            v1,
            ShardsMeta {
                shards: 4,
                routing: Routing::KevyHash
            }
        );
        let v2 = ShardsMeta::parse("8\nslots\n").unwrap();
        assert_eq!(v2.routing, Routing::Slots);
        assert_eq!(v2.render(), "8\nslots\n");
        assert_eq!(ShardsMeta::parse(&v1.render()).unwrap(), v1);
    }

    #[test]
    fn bad_counts_and_unknown_routings_are_errors() {
        assert!(ShardsMeta::parse("").is_err());
        assert!(ShardsMeta::parse("0\n").is_err());
        let err = ShardsMeta::parse("4\nfuture-scheme\n").unwrap_err();
        assert!(
            matches!(err, KevyError::Invalid { offset: 2, .. }),
            "{err:?}"
        );
    }
}
