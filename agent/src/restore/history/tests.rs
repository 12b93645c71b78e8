//! The in-process model against what a server would hold after the same commands.

use aofvault_formats::model::{Entry, Value};

use super::apply::{apply, At};
use super::glob::Patterns;
use super::model::{Model, State};

const REDIS: At = At {
    shard: 0,
    db: 0,
    now_ms: 1_000_000,
    kevy: false,
};

fn run(m: &mut Model, at: At, cmds: &[&str]) {
    for c in cmds {
        let args: Vec<&[u8]> = c.split(' ').map(str::as_bytes).collect();
        apply(m, at, &args);
    }
}

fn value(m: &Model, db: u32, key: &str) -> Option<Value> {
    match &m.keys.get(&(db, key.as_bytes().to_vec()))?.state {
        State::Value(v) => Some(v.clone()),
        other => panic!("{key}: {other:?}"),
    }
}

fn s(v: &str) -> Value {
    Value::String(v.as_bytes().to_vec())
}

#[test]
fn only_matching_keys_are_held_and_writes_evaluate() {
    let mut m = Model::new(Patterns::new(&["user:*"]), None);
    run(
        &mut m,
        REDIS,
        &[
            "SET user:1 a",
            "SET other:1 b",
            "APPEND user:1 bc",
            "INCRBY user:n 5",
            "MSET user:2 x other:2 y",
            "HSET user:h f 1 g 2",
            "HDEL user:h g",
            "HINCRBY user:h f 4",
            "RPUSH user:l a b c",
            "LPOP user:l",
            "SADD user:s a b",
            "SREM user:s a",
            "DEL user:2",
        ],
    );
    assert_eq!(value(&m, 0, "user:1"), Some(s("abc")));
    assert_eq!(value(&m, 0, "user:n"), Some(s("5")));
    assert!(!m.keys.contains_key(&(0, b"other:1".to_vec())));
    assert!(!m.keys.contains_key(&(0, b"user:2".to_vec())));
    let Some(Value::Hash(h)) = value(&m, 0, "user:h") else {
        panic!()
    };
    assert_eq!((h.len(), h[0].value.as_slice()), (1, &b"5"[..]));
    assert_eq!(
        value(&m, 0, "user:l"),
        Some(Value::List(vec![b"b".to_vec(), b"c".to_vec()]))
    );
    assert_eq!(
        value(&m, 0, "user:s"),
        Some(Value::Set(vec![b"b".to_vec()]))
    );
}

#[test]
fn ttls_renames_and_unknown_sources() {
    let mut m = Model::new(Patterns::new(&["user:*"]), None);
    run(
        &mut m,
        REDIS,
        &[
            "SET user:t v PXAT 1000500",
            "SET user:p v EX 10",
            "PERSIST user:p",
            "SET user:a 1",
            "RENAME user:a user:b",
            "RENAME other:x user:c",
            "SETRANGE user:r 0 xyz",
            "APPEND user:r !",
        ],
    );
    let t = &m.keys[&(0, b"user:t".to_vec())];
    assert_eq!(t.expire_at_ms, Some(1_000_500));
    assert_eq!(m.keys[&(0, b"user:p".to_vec())].expire_at_ms, None);
    assert!(!m.keys.contains_key(&(0, b"user:a".to_vec())));
    assert_eq!(value(&m, 0, "user:b"), Some(s("1")));
    assert!(matches!(
        m.keys[&(0, b"user:c".to_vec())].state,
        State::Unknown { .. }
    ));
    // SETRANGE is kept as a command; what follows on the key is appended to it.
    let State::Replay {
        commands,
        type_name,
    } = &m.keys[&(0, b"user:r".to_vec())].state
    else {
        panic!()
    };
    assert_eq!((commands.len(), *type_name), (2, "string"));
    // At a later moment the key with a TTL has expired.
    let alive = m.into_sorted(1_000_600);
    assert!(alive.iter().all(|((_, k), _)| k != b"user:t"));
}

#[test]
fn a_kevy_flush_empties_its_own_shard_and_rejected_sets_do_nothing() {
    let mut m = Model::new(Patterns::default(), None);
    let kevy = |shard| At {
        shard,
        kevy: true,
        ..REDIS
    };
    m.put_entry(
        1,
        Entry {
            db: 0,
            key: b"b".to_vec(),
            value: s("base"),
            expire_at_ms: None,
        },
    );
    run(&mut m, kevy(0), &["SET a 1", "SET a 2 PXAT 5", "FLUSHALL"]);
    assert!(!m.keys.contains_key(&(0, b"a".to_vec())));
    assert_eq!(value(&m, 0, "b"), Some(s("base")));
    let mut m = Model::new(Patterns::default(), None);
    run(&mut m, kevy(0), &["SET a 1", "SET a 2 PXAT 5"]);
    assert_eq!(value(&m, 0, "a"), Some(s("1")), "kevy 1.19 rejected it");
}

#[test]
fn databases_are_apart_and_db_filters() {
    let mut m = Model::new(Patterns::new(&["k"]), Some(1));
    run(&mut m, REDIS, &["SET k 0"]);
    run(&mut m, At { db: 1, ..REDIS }, &["SET k 1", "SWAPDB 0 1"]);
    // SWAPDB moved db 1's key to db 0, outside the filter.
    assert!(m.keys.is_empty());
}

#[test]
fn digests_ignore_set_order_and_see_values() {
    let mut a = Model::new(Patterns::default(), None);
    let mut b = Model::new(Patterns::default(), None);
    run(&mut a, REDIS, &["SADD s x y", "SET k 1"]);
    run(&mut b, REDIS, &["SADD s y x", "SET k 2"]);
    let d = |m: &Model, k: &str| m.keys[&(0, k.as_bytes().to_vec())].value_digest();
    assert_eq!(d(&a, "s"), d(&b, "s"));
    assert_ne!(d(&a, "k"), d(&b, "k"));
}
