//! What a server says of its place in replication (`INFO replication`, `INFO server`).

use std::collections::HashMap;

use crate::repo::lease::ServerReport;
use crate::server::Server;

/// A server's replication role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica {
        /// `host:port` of its primary.
        primary: String,
        /// `master_link_status:up`.
        link_up: bool,
    },
}

/// Reads the role from `INFO replication` fields. A server that does not say (kevy without
/// replication) is a primary.
pub fn parse(info: &HashMap<String, String>) -> Role {
    match info.get("role").map(String::as_str) {
        Some("slave") | Some("replica") => {
            let host = info.get("master_host").cloned().unwrap_or_default();
            let port = info.get("master_port").cloned().unwrap_or_default();
            Role::Replica {
                primary: format!("{host}:{port}"),
                link_up: info.get("master_link_status").map(String::as_str) == Some("up"),
            }
        }
        _ => Role::Primary,
    }
}

/// Asks the server; `None` when it does not answer.
pub async fn probe(server: &mut Server) -> Option<(Role, Option<String>)> {
    let repl = server.info("replication").await.ok()?;
    let run_id = server
        .info("server")
        .await
        .ok()
        .and_then(|i| i.get("run_id").cloned());
    Some((parse(&repl), run_id))
}

/// What the lease document and member records carry.
pub fn report(address: &str, seen: Option<&(Role, Option<String>)>, now_ms: i64) -> ServerReport {
    match seen {
        None => ServerReport {
            address: address.to_string(),
            role: "unknown".into(),
            reachable: false,
            ..Default::default()
        },
        Some((role, run_id)) => ServerReport {
            address: address.to_string(),
            role: match role {
                Role::Primary => "master".into(),
                Role::Replica { .. } => "slave".into(),
            },
            primary: match role {
                Role::Primary => None,
                Role::Replica { primary, .. } => Some(primary.clone()),
            },
            run_id: run_id.clone(),
            reachable: true,
            contact_ms: Some(now_ms),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::server::parse_info;

    #[test]
    fn reads_primary_replica_and_silence() {
        let p = parse(&parse_info(
            "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n",
        ));
        assert_eq!(p, Role::Primary);
        let r = parse(&parse_info(
            "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7001\r\nmaster_link_status:down\r\n",
        ));
        assert_eq!(
            r,
            Role::Replica {
                primary: "127.0.0.1:7001".into(),
                link_up: false
            }
        );
        assert_eq!(parse(&parse_info("# nothing\r\n")), Role::Primary);
    }
}
