//! The Redis multi-part AOF manifest: the manifests observed on redis-server 7.0.15
//! (FORMATS.md §1.2) round-trip byte for byte; quoted names; errors name the line.
#![allow(clippy::unwrap_used)]

use aofvault_formats::aof_manifest::{AofFileType, AofManifest, ManifestError};

const OBSERVED: &[&str] = &[
    "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    "file myapp.aof.1.base.rdb seq 1 type b\nfile myapp.aof.1.incr.aof seq 1 type i\n\
     file myapp.aof.2.incr.aof seq 2 type i\n",
    "file appendonly.aof.3.base.aof seq 3 type b\nfile appendonly.aof.2.incr.aof seq 2 type h\n\
     file appendonly.aof.2.base.rdb seq 2 type h\nfile appendonly.aof.3.incr.aof seq 3 type i\n",
    "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
];

fn line_of(err: ManifestError) -> usize {
    match err {
        ManifestError::Line { line, .. } => line,
        ManifestError::Empty => 0,
    }
}

#[test]
fn observed_manifests_round_trip() {
    for text in OBSERVED {
        let m = AofManifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.render(), *text);
    }
}

#[test]
fn roles_are_read_in_file_order() {
    let m = AofManifest::parse(OBSERVED[2].as_bytes()).unwrap();
    assert_eq!(m.base().unwrap().name, "appendonly.aof.3.base.aof");
    let history: Vec<_> = m.history().map(|e| e.name.as_str()).collect();
    assert_eq!(
        history,
        ["appendonly.aof.2.incr.aof", "appendonly.aof.2.base.rdb"]
    );
    let incrs: Vec<_> = m.incrs().map(|e| (e.name.as_str(), e.seq)).collect();
    assert_eq!(incrs, [("appendonly.aof.3.incr.aof", 3)]);
    let m = AofManifest::parse(OBSERVED[1].as_bytes()).unwrap();
    assert_eq!(m.incrs().last().unwrap().name, "myapp.aof.2.incr.aof");
}

#[test]
fn quoted_names_are_unescaped_and_requoted() {
    let text = "file \"my app\\x41\\\"q\\\".aof\" seq 1 type b\n";
    let m = AofManifest::parse(text.as_bytes()).unwrap();
    assert_eq!(m.entries[0].name, "my appA\"q\".aof");
    // Rendering quotes it again (a space and quotes need it); reading that back is the same.
    let again = AofManifest::parse(m.render().as_bytes()).unwrap();
    assert_eq!(again, m);
    assert_eq!(m.render(), "file \"my appA\\\"q\\\".aof\" seq 1 type b\n");

    let single = AofManifest::parse(b"file 'it\\'s.aof' seq 2 type i\n").unwrap();
    assert_eq!(single.entries[0].name, "it's.aof");
    let utf8 = AofManifest::parse("file \"\\xc3\\xa9.aof\" seq 1 type i\n".as_bytes()).unwrap();
    assert_eq!(utf8.entries[0].name, "é.aof");
    assert_eq!(utf8.render(), "file \"\\xc3\\xa9.aof\" seq 1 type i\n");
}

#[test]
fn comments_case_unknown_keys_and_crlf_follow_redis() {
    let text = "# written by hand\r\nFILE a.rdb SEQ 7 TYPE base future yes\r\n";
    let m = AofManifest::parse(text.as_bytes()).unwrap();
    let e = &m.entries[0];
    assert_eq!(
        (e.name.as_str(), e.seq, e.file_type),
        ("a.rdb", 7, AofFileType::Base)
    );
    assert_eq!(e.extra, vec![("future".to_owned(), "yes".to_owned())]);
    assert_eq!(m.render(), "file a.rdb seq 7 type b future yes\n");
    // seq is read like atoll: digits up to the first non-digit.
    let m = AofManifest::parse(b"file a seq 12abc type i\n").unwrap();
    assert_eq!(m.entries[0].seq, 12);
}

#[test]
fn errors_name_the_line() {
    let ok = "file a.rdb seq 1 type b\n";
    let cases: &[(String, usize)] = &[
        (format!("{ok}file b seq 1 type\n"), 2),   // odd token count
        (format!("{ok}file b seq 1 type x\n"), 2), // unknown type
        (format!("{ok}file dir/b seq 1 type i\n"), 2), // a path
        (format!("{ok}file b seq 0 type i\n"), 2), // zero seq
        (format!("{ok}file b seq x type i\n"), 2), // seq not a number → 0
        (format!("{ok}file b.rdb seq 2 type b\n"), 2), // second base
        (format!("{ok}\n"), 2),                    // empty line
        (format!("# c\n{ok}file \"b seq 1 type i\n"), 3), // unbalanced quotes
        (format!("{ok}file \"b\"x seq 1 type i\n"), 2), // junk after closing quote
        (format!("{ok}file b seq 1 type i"), 2),   // no final newline
        (
            format!("{ok}file i1 seq 5 type i\nfile i2 seq 5 type i\n"),
            3,
        ), // non-monotonic
        (format!("{ok}file {} seq 1 type i\n", "x".repeat(1020)), 2), // too long
        (format!("{ok}seq 1 type i foo bar\n"), 2), // no file key
    ];
    for (text, line) in cases {
        let err = AofManifest::parse(text.as_bytes()).unwrap_err();
        assert_eq!(line_of(err.clone()), *line, "{text:?}: {err}");
        assert!(err.to_string().contains(&format!("line {line}")));
    }
    assert_eq!(AofManifest::parse(b"").unwrap_err(), ManifestError::Empty);
    // History lines have no ordering rule.
    let hist = "file h1 seq 5 type h\nfile h2 seq 2 type h\n";
    assert_eq!(
        AofManifest::parse(hist.as_bytes())
            .unwrap()
            .history()
            .count(),
        2
    );
}

/// Newer Redis lines carry optional replication offsets; `#` lines are comments anywhere.
#[test]
fn offsets_and_comments() {
    let text = "# written by redis 8\n\
                file appendonly.aof.2.base.rdb seq 2 type b\n\
                file appendonly.aof.2.incr.aof seq 2 type i startoffset 1000 endoffset 5000\n\
                # a comment between entries\n\
                file appendonly.aof.3.incr.aof seq 3 type i startoffset 5000\n";
    let m = AofManifest::parse(text.as_bytes()).unwrap();
    let offsets: Vec<_> = m
        .entries
        .iter()
        .map(|e| (e.start_offset(), e.end_offset()))
        .collect();
    assert_eq!(
        offsets,
        [(None, None), (Some(1000), Some(5000)), (Some(5000), None)]
    );
    // Written back in line order, comments dropped (Redis never writes any).
    let rendered = m.render();
    assert!(rendered.contains("seq 2 type i startoffset 1000 endoffset 5000\n"));
    assert_eq!(AofManifest::parse(rendered.as_bytes()).unwrap(), m);
}

#[test]
fn bad_offsets_name_their_line() {
    let base = "file a.1.base.rdb seq 1 type b\n";
    for bad in [
        "file a.1.incr.aof seq 1 type i startoffset -5\n",
        "file a.1.incr.aof seq 1 type i startoffset 12x\n",
        "file a.1.incr.aof seq 1 type i endoffset 10\n",
        "file a.1.incr.aof seq 1 type i startoffset 10 endoffset 9\n",
        "file a.1.incr.aof seq 1 type i startoffset 1 startoffset 2\n",
    ] {
        let text = format!("{base}{bad}");
        let err = AofManifest::parse(text.as_bytes()).unwrap_err();
        assert_eq!(line_of(err), 2, "{bad}");
    }
}
