//! Unit tests of the hash field TTL translation.

#![allow(clippy::unwrap_used)]

use super::*;

const NOW: i64 = 1_800_000_000_000;

fn run(t: &mut FieldTtls, line: &str) -> Vec<String> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    match t.command(&args) {
        None => vec![line.to_string()],
        Some(cmds) => cmds
            .iter()
            .map(|c| {
                c.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect(),
    }
}

fn lost(t: FieldTtls) -> Vec<(String, String, Option<i64>)> {
    t.finish()
        .into_iter()
        .map(|l| (l.key, l.field, l.expire_at_ms))
        .collect()
}

#[test]
fn without_field_ttls_each_ttl_is_translated_or_reported_and_forgotten_when_it_ends() {
    let mut t = FieldTtls::new(Support::None, NOW).unwrap();
    let future = NOW + 60_000;
    let past = NOW - 1;
    assert_eq!(
        run(&mut t, &format!("HPEXPIREAT h {future} FIELDS 2 a b")),
        Vec::<String>::new()
    );
    assert_eq!(
        run(&mut t, &format!("hpexpireat h {past} NX FIELDS 1 c")),
        vec!["HDEL h c"]
    );
    assert_eq!(
        run(
            &mut t,
            &format!("HSETEX g FNX PXAT {future} FIELDS 2 x 1 y 2")
        ),
        vec!["HSET g x 1 y 2"]
    );
    assert_eq!(
        run(&mut t, "HSETEX g KEEPTTL FIELDS 1 z 3"),
        vec!["HSET g z 3"]
    );
    assert_eq!(run(&mut t, "HPERSIST g FIELDS 1 y"), Vec::<String>::new());
    assert_eq!(run(&mut t, "HGETDEL q FIELDS 1 f"), vec!["HDEL q f"]);
    // An overwrite clears b's TTL on the source too; a renamed key keeps its lost field.
    assert_eq!(run(&mut t, "HSET h b 9"), vec!["HSET h b 9"]);
    run(&mut t, "RENAME g g2");
    run(&mut t, "COPY g2 g3 DB 5");
    run(&mut t, "SELECT 2");
    run(&mut t, &format!("HPEXPIREAT d {future} FIELDS 1 f"));
    run(&mut t, "DEL d");
    assert_eq!(
        lost(t),
        vec![
            ("g2".into(), "x".into(), Some(future)),
            ("h".into(), "a".into(), Some(future)),
            ("g3".into(), "x".into(), Some(future)),
        ]
    );
}

#[test]
fn redis_7_4_gets_hset_and_hpexpireat_for_hsetex() {
    let mut t = FieldTtls::new(Support::NoHsetex, NOW).unwrap();
    assert_eq!(
        run(&mut t, "HSETEX k PXAT 5 FIELDS 1 f v"),
        vec!["HSET k f v", "HPEXPIREAT k 5 FIELDS 1 f"]
    );
    assert_eq!(
        run(&mut t, "HGETEX k PERSIST FIELDS 1 f"),
        vec!["HPERSIST k FIELDS 1 f"]
    );
    assert_eq!(
        run(&mut t, "HPEXPIREAT k 5 FIELDS 1 f"),
        vec!["HPEXPIREAT k 5 FIELDS 1 f"]
    );
    assert!(FieldTtls::new(Support::Full, NOW).is_none());
}

#[test]
fn malformed_commands_pass_unchanged() {
    let mut t = FieldTtls::new(Support::None, NOW).unwrap();
    assert_eq!(
        run(&mut t, "HPEXPIREAT h x FIELDS 1 a"),
        vec!["HPEXPIREAT h x FIELDS 1 a"]
    );
    assert_eq!(
        run(&mut t, "HSETEX h FIELDS 2 a"),
        vec!["HSETEX h FIELDS 2 a"]
    );
}
