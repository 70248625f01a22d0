//! Fuzzing for a bounded time, as ordinary tests: arbitrary bytes, and the checked-in
//! scenarios, suites and a fixture bundle with bytes flipped, inserted and deleted, go into
//! `Scenario::parse`, `Suite::parse`, `History::from_jsonl` and the bundle reader (and a
//! bundle that still loads is checked and rendered, as `chaos report` does). No input may
//! panic; every error carries a message. `CHAOS_FUZZ_CASES` sets the cases per property
//! (default 64, seconds in all); CI's nightly job sets more.

use std::path::{Path, PathBuf};

use chaos_model::{History, Scenario, Suite};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence};

use crate::report::bundle::{self, Bundle};
use crate::report::{RunFacts, result_lines};

fn cases() -> u32 {
    std::env::var("CHAOS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // Shrunk failures are printed; nothing is written into the source tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.toml` under `scenarios/`: (is a suite, text).
fn corpus() -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![repo().join("scenarios")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                let suite = p.parent() == Some(&repo().join("scenarios"));
                out.push((suite, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    assert!(
        out.iter().filter(|(s, _)| *s).count() >= 2 && out.len() >= 10,
        "the corpus is the checked-in suites and scenarios"
    );
    out
}

/// Pieces of TOML and JSON worth inserting: structure, and numbers at the edges.
const TOKENS: &[&str] = &[
    "\n",
    "\"",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    ":",
    "\n[[run]]\n",
    "\n[[faults]]\n",
    "-1",
    "0",
    "1e400",
    "18446744073709551616",
    "nan",
    "inf",
    "\"0s\"",
    "\"99999999h\"",
    "true",
    "null",
    "\\u0000",
];

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, u8),
    Token(Index, Index),
    Delete(Index, u8),
    /// Replace one run of digits with a number at an edge.
    Number(Index, Index),
}

const EDGES: &[&str] = &[
    "0",
    "1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Edit::Token(i, t)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, v)| Edit::Number(i, v)),
    ]
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::Flip(i, bit) if !b.is_empty() => {
                let k = i.index(b.len());
                b[k] ^= 1 << (bit % 8);
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, byte) => {
                let k = at(i, b.len());
                b.insert(k, *byte);
            }
            Edit::Token(i, t) => {
                let k = at(i, b.len());
                let tok = TOKENS[t.index(TOKENS.len())].as_bytes();
                b.splice(k..k, tok.iter().copied());
            }
            Edit::Delete(i, n) if !b.is_empty() => {
                let k = i.index(b.len());
                let end = (k + 1 + usize::from(*n % 32)).min(b.len());
                b.drain(k..end);
            }
            Edit::Delete(..) => {}
            Edit::Number(i, v) => {
                let runs = digit_runs(&b);
                if !runs.is_empty() {
                    let (start, end) = runs[i.index(runs.len())];
                    let edge = EDGES[v.index(EDGES.len())].as_bytes();
                    b.splice(start..end, edge.iter().copied());
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Where each run of ASCII digits is.
fn digit_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in b.iter().enumerate() {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, b.len()));
    }
    out
}

fn check_scenario(text: &str) {
    if let Err(e) = Scenario::parse("fuzz.toml", text) {
        assert!(!e.message.trim().is_empty(), "an error without a message");
        assert!(e.to_string().starts_with("fuzz.toml"), "{e}");
    }
}

fn check_suite(text: &str) {
    match Suite::parse("fuzz.toml", text) {
        Err(e) => assert!(!e.message.trim().is_empty(), "an error without a message"),
        // Expanding its rows must not panic either (over a made-up directory).
        Ok(s) => {
            if let Err(e) = s.rows("fuzz.toml", text, |_| {
                Ok(vec!["a.toml".into(), "b.toml".into()])
            }) {
                assert!(!e.message.trim().is_empty());
            }
        }
    }
}

fn check_history(text: &str) {
    match History::from_jsonl(text) {
        Err(e) => assert!(e.starts_with("line "), "errors name the line: {e}"),
        // A history that reads must fold into ops (which panics on a completion without
        // its invocation: from_jsonl refuses those).
        Ok(h) => {
            let _ = h.ops();
        }
    }
}

fn fixture_history() -> String {
    crate::snapshots::fixture()
        .1
        .records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

/// The files of a bundle worth breaking.
const BUNDLE_FILES: &[&str] = &[
    "scenario.toml",
    "history.jsonl",
    "evidence/evidence.json",
    "schedule.json",
    "verdicts.json",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_a_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        check_scenario(&text);
        check_suite(&text);
        check_history(&text);
    }

    #[test]
    fn mutated_scenarios_and_suites_never_panic(
        pick in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let corpus = corpus();
        let (_, text) = &corpus[pick.index(corpus.len())];
        let text = mutate(text, &edits);
        check_scenario(&text);
        check_suite(&text);
    }

    #[test]
    fn mutated_histories_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        check_history(&mutate(&fixture_history(), &edits));
    }

    #[test]
    fn a_mutated_bundle_is_an_error_naming_its_file_or_renders(
        file in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let dir = crate::snapshots::fixture_bundle("fuzz", "fixture");
        let name = BUNDLE_FILES[file.index(BUNDLE_FILES.len())];
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, mutate(&text, &edits)).unwrap();
        match Bundle::load_and_check(&dir) {
            Err(e) => prop_assert!(
                e.contains(&dir.display().to_string()),
                "the error names the bundle's file: {}", e
            ),
            Ok((b, report)) => {
                // What `chaos report DIR` does with a bundle that reads; judging the evidence
                // beside the history gives what checking the loaded bundle gives.
                prop_assert_eq!(&report.results, &b.recheck().results);
                let reproduce = b.reproduce();
                let facts = RunFacts {
                    scenario: &b.scenario.name,
                    profile: b.scenario.profile,
                    seed: b.seed,
                    reproduce: &reproduce,
                };
                let errors = bundle::write_reports(&facts, &report, &b.history, &b.evidence);
                prop_assert!(errors.is_empty(), "{:?}", errors);
                let _ = result_lines(&facts, &report);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
