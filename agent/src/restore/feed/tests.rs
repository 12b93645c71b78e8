//! Unit tests of the stream replay's raw passthrough: a command that passes unchanged reaches
//! the sink as its stored bytes, a translated one through [`Sink::command`].

use super::*;
use aofvault_formats::resp::encode_command;

/// What a sink was handed, in order.
#[derive(Debug, PartialEq)]
enum Got {
    Raw(Vec<u8>),
    Command(Vec<Vec<u8>>),
}

#[derive(Default)]
struct Record(Vec<Got>);

impl Sink for Record {
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        self.0
            .push(Got::Command(args.iter().map(|a| a.to_vec()).collect()));
        Ok(())
    }
    fn raw(&mut self, _args: &[&[u8]], frame: &[u8]) -> anyhow::Result<()> {
        self.0.push(Got::Raw(frame.to_vec()));
        Ok(())
    }
}

fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_command(args, &mut out);
    out
}

fn owned(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

#[test]
fn unchanged_commands_are_sent_as_stored_and_translated_ones_are_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let set = frame(&[b"SET", b"k", b"v"]);
    let hset = frame(&[b"HSET", b"h", b"f", b"1"]);
    let mset = frame(&[b"MSET", b"a", b"1", b"b", b"2"]);
    let mut stream = b"#TS:1700000000\r\n".to_vec();
    for f in [&set, &mset, &hset] {
        stream.extend_from_slice(f);
    }
    let path = dir.path().join("stream");
    std::fs::write(&path, &stream).unwrap();
    let shard = StagedShard {
        shard: 0,
        base: Vec::new(),
        stream: path,
        prefix: 0,
        stream_start: 0,
        stream_end: stream.len() as u64,
        ready: None,
    };
    let mut sink = Record::default();
    let opts = FeedOptions::new(Kind::Kevy, Kind::Kevy, false, 0);
    let stats = feed_shard(&shard, &opts, &mut sink).unwrap();
    assert_eq!(
        sink.0,
        vec![
            Got::Raw(set),
            // A kevy target routes keys one by one: MSET is split, so encoded afresh.
            Got::Command(owned(&[b"SET", b"a", b"1"])),
            Got::Command(owned(&[b"SET", b"b", b"2"])),
            Got::Raw(hset),
        ]
    );
    assert_eq!(stats.commands, 4);

    // Into Redis, a kevy `SET` is rewritten (its options differ): it is not sent as stored.
    let mut sink = Record::default();
    let opts = FeedOptions::new(Kind::Kevy, Kind::Redis, false, 0);
    feed_shard(&shard, &opts, &mut sink).unwrap();
    assert!(
        matches!(&sink.0[0], Got::Command(args) if args[0] == b"SET"),
        "{:?}",
        sink.0[0]
    );
}
