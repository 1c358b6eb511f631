//! The policy text entry point under arbitrary and near-valid input: never a panic, always
//! `Ok` or a typed error, in bounded time; and the pre-parse nesting bound is sound (never
//! lets through nesting the YAML parser would see as deeper than the bound) on generated
//! YAML full of the lexical traps a naive bracket counter falls into.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use romana_core::policy::bounds::{check_bounds, BoundsError, MAX_DEPTH};
use romana_core::policy::parse_documents;

/// Scalars that hold brackets, quotes and `#` a naive scan would miscount, valid inside a
/// flow collection.
const FLOW_SCALARS: &[&str] = &[
    "'a]]'",
    "'it''s ]'",
    "\"b]]\\\"]\"",
    "\"[[\"",
    "it's",
    "say\"hi",
    "x # ]]] '\n",
    "\"multi\n ]] line\"",
    "'multi\n  ]] line'",
    "&anc v",
    "!tag v",
    "1",
];

/// A flow document of known nesting depth, built from `choices`.
fn flow_doc(choices: &[u8]) -> (String, usize) {
    let mut out = String::from("a: [");
    let mut open: Vec<char> = vec![']'];
    let mut deepest = 1;
    let mut first = true;
    for (n, &c) in choices.iter().enumerate() {
        let sep = if first { "" } else { ", " };
        match c % 8 {
            0..=2 => {
                if open.last() == Some(&'}') {
                    out.push_str(sep);
                    out.push_str(&format!("k{n}: ["));
                } else {
                    out.push_str(sep);
                    out.push('[');
                }
                open.push(']');
                first = true;
            }
            3 => {
                out.push_str(sep);
                if open.last() == Some(&'}') {
                    out.push_str(&format!("k{n}: "));
                }
                out.push('{');
                open.push('}');
                first = true;
            }
            4 | 5 => {
                let s = FLOW_SCALARS[(c as usize / 8) % FLOW_SCALARS.len()];
                out.push_str(sep);
                if open.last() == Some(&'}') {
                    out.push_str(&format!("k{n}: "));
                }
                out.push_str(s);
                if s.ends_with('\n') {
                    // A comment ended the line; the next entry still needs its comma.
                    first = false;
                    continue;
                }
                first = false;
            }
            _ => {
                if open.len() > 1 {
                    out.push(open.pop().unwrap_or(']'));
                    first = false;
                }
            }
        }
        deepest = deepest.max(open.len());
    }
    while let Some(close) = open.pop() {
        out.push(close);
    }
    out.push('\n');
    (out, deepest)
}

/// Block text whose block scalars and plain continuations hold brackets and quotes: none of
/// it nests, so it must pass however many brackets it holds.
fn block_doc(choices: &[u8]) -> String {
    let mut out = String::new();
    for (i, &c) in choices.iter().enumerate() {
        match c % 5 {
            0 => out.push_str(&format!("k{i}: |\n  [[[[ '\" {{{{\n\n    ]]\n")),
            1 => out.push_str(&format!("k{i}: plain ' [[[[\n  \"continued [[[[\n")),
            2 => out.push_str(&format!(
                "k{i}:\n  - >-\n    [[[[ \"\n  - x: |2\n      ]] [[\n"
            )),
            3 => out.push_str(&format!("k{i}: \"quoted [[[[\n  still\" # [[[[\n")),
            _ => out.push_str(&format!("k{i}: 'single [[[[ '' ]]'\n")),
        }
    }
    out
}

fn bounded<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_ok_or_an_error(s in any::<String>()) {
        let _ = bounded(|| parse_documents(&s));
    }

    #[test]
    fn yaml_like_soup_is_ok_or_an_error(
        s in proptest::collection::vec(
            prop::sample::select(vec![
                "[", "]", "{", "}", "\"", "'", ":", ": ", "- ", "#", " #", "\n", "  ", "|", ">",
                "a", "!t ", "&a ", "*a", ",", "''", "\\", "---\n", "apiVersion: ", "kind: ",
                "networking.k8s.io/v1", "NetworkPolicy", "name: ", "rules: ", "?", "\t",
            ]),
            0..400,
        )
    ) {
        let text: String = s.concat();
        let result = bounded(|| parse_documents(&text));
        if let Err(e) = result {
            prop_assert!(e.to_string().len() < 1000, "{}", e);
        }
    }

    #[test]
    fn flow_nesting_is_never_undercounted(choices in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (text, depth) = flow_doc(&choices);
        let bounds = check_bounds(&text);
        // One level for the mapping `a:` the flow value sits in.
        if depth + 1 > MAX_DEPTH {
            prop_assert!(matches!(bounds, Err(BoundsError::TooDeep { .. })), "depth {} passed:\n{}", depth, text);
        } else {
            prop_assert_eq!(&bounds, &Ok(()), "depth {} refused:\n{}", depth, text);
            // The generator writes valid YAML: the parser agrees on it.
            let parsed: Result<serde_norway::Value, _> = serde_norway::from_str(&text);
            prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed, text);
        }
    }

    #[test]
    fn brackets_in_block_text_do_not_count(choices in proptest::collection::vec(any::<u8>(), 0..200)) {
        let text = block_doc(&choices);
        prop_assert_eq!(check_bounds(&text), Ok(()), "{}", text);
        let parsed: Result<serde_norway::Value, _> = serde_norway::from_str(&text);
        prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed, text);
    }
}

#[test]
fn the_measured_attacks_are_refused_in_milliseconds() {
    for text in [
        "a: ".to_string() + &"[".repeat(200_000),
        "a: ".to_string() + &"{a: ".repeat(200_000),
        "- ".repeat(500_000),
        "[".repeat(1 << 20),
        "x".repeat((1 << 20) + 1),
    ] {
        let start = Instant::now();
        let err = parse_documents(&text).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}: {err}",
            start.elapsed()
        );
        assert!(err.to_string().len() < 200, "{err}");
    }
}
