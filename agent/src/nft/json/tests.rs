use super::*;
use crate::nft::SetElement;

fn mk_listing(items: Value) -> Value {
    serde_json::json!({ "nftables": items })
}

#[test]
fn text_and_parsed_json_read_the_same() {
    let text = include_str!("../../../testdata/table_v4.json");
    let json: Value = serde_json::from_str(text).unwrap();
    assert_eq!(parse_table_text(text), parse_table(&json));
}

#[test]
fn not_json_is_an_error_that_says_so() {
    let err = parse_table_text("{\"nftables\": [").unwrap_err();
    assert!(err.to_string().starts_with("nft -j output: "), "{err}");
}

#[test]
fn a_listing_without_an_array_has_no_array() {
    for json in [
        serde_json::json!({}),
        serde_json::json!({"nftables": {}}),
        serde_json::json!({"nftables": 3}),
        serde_json::json!([]),
        serde_json::json!("nftables"),
    ] {
        assert_eq!(parse_table(&json), Err(ParseError::NoArray), "{json}");
    }
}

#[test]
fn items_that_are_not_objects_are_skipped_and_unknown_kinds_are_foreign() {
    let json = mk_listing(serde_json::json!([
        1, "x", null, [], {},
        {"counter": {"name": "c"}},
        {"chain": {"name": "forward", "type": 7, "prio": "high"}},
    ]));
    let view = parse_table(&json).unwrap();
    assert_eq!(view.other, ["counter"]);
    assert_eq!(view.chains[0].kind, None);
    assert_eq!(view.chains[0].prio, None);
}

#[test]
fn a_chain_or_rule_without_its_name_fails_the_read() {
    let chain = mk_listing(serde_json::json!([{"chain": {"name": 3}}]));
    assert_eq!(
        parse_table(&chain),
        Err(ParseError::Field {
            what: "chain",
            field: "name"
        })
    );
    let rule = mk_listing(serde_json::json!([{"rule": {"comment": "romana:0"}}]));
    assert_eq!(
        parse_table(&rule),
        Err(ParseError::Field {
            what: "rule",
            field: "chain"
        })
    );
}

#[test]
fn a_rule_of_a_chain_not_listed_is_foreign() {
    let json = mk_listing(serde_json::json!([{"rule": {"chain": "gone"}}]));
    assert_eq!(
        parse_table(&json).unwrap().other,
        ["rule of unknown chain gone"]
    );
}

#[test]
fn every_element_shape_we_write_reads_back() {
    let json = mk_listing(serde_json::json!([
        {"set": {"name": "a", "type": "ipv4_addr", "elem": "10.0.0.1"}},
        {"set": {"name": "p", "type": ["ipv4_addr", "ipv4_addr"],
                 "elem": [{"concat": ["10.0.1.0", "10.0.1.0"]}]}},
        {"set": {"name": "i", "type": ["ifname", "ipv4_addr"],
                 "elem": [{"concat": ["rmn1", "10.0.0.2"]}]}},
        {"set": {"name": "n", "type": ["ipv4_addr", "inet_proto", "inet_service"],
                 "elem": [{"concat": ["10.0.0.3", "tcp", 80]}, {"concat": ["10.0.0.3", 17, 53]}]}},
        {"map": {"name": "m", "type": "ipv4_addr", "map": "verdict",
                 "elem": [["10.0.0.4", {"goto": {"target": "np_in_0"}}]]}},
    ]));
    let view = parse_table(&json).unwrap();
    let ip = |s: &str| s.parse().unwrap();
    let one = |name: &str| view.sets[name].elements.iter().cloned().collect::<Vec<_>>();
    assert_eq!(one("a"), [SetElement::Addr(ip("10.0.0.1"))]);
    assert_eq!(one("p"), [SetElement::Pair(ip("10.0.1.0"), ip("10.0.1.0"))]);
    assert_eq!(
        one("i"),
        [SetElement::IfAddr("rmn1".into(), ip("10.0.0.2"))]
    );
    assert_eq!(
        one("n"),
        [
            SetElement::AddrProtoPort(ip("10.0.0.3"), 6, 80),
            SetElement::AddrProtoPort(ip("10.0.0.3"), 17, 53)
        ]
    );
    assert_eq!(
        one("m"),
        [SetElement::Goto(ip("10.0.0.4"), "np_in_0".into())]
    );
    assert_eq!(view.sets["m"].key, "ipv4_addr : verdict");
    assert_eq!(view.sets["n"].key, "ipv4_addr . inet_proto . inet_service");
}

#[test]
fn element_shapes_we_never_write_fail_the_read() {
    for elem in [
        serde_json::json!(null),
        serde_json::json!([["10.0.0.1", "10.0.0.2"]]),
        serde_json::json!([["10.0.0.1", [{"target": "x"}]]]),
        serde_json::json!([["10.0.0.1", {"goto": {"target": 1}}]]),
        serde_json::json!([{"concat": [["10.0.0.1", "10.0.0.2"]]}]),
        serde_json::json!([{"concat": ["10.0.0.1", "tcp", "80"]}]),
        serde_json::json!([{"concat": ["10.0.0.1", -6, 80]}]),
        serde_json::json!([{"range": ["10.0.0.1", "10.0.0.9"]}]),
        serde_json::json!(["not an address"]),
    ] {
        let json = mk_listing(
            serde_json::json!([{"set": {"name": "s", "type": "ipv4_addr", "elem": elem}}]),
        );
        assert!(
            matches!(parse_table(&json), Err(ParseError::Element { .. })),
            "{elem}"
        );
    }
}

#[test]
fn an_unreadable_element_is_named_in_the_error() {
    let json = mk_listing(serde_json::json!([
        {"set": {"name": "s", "type": "ipv4_addr", "elem": [{"concat": ["10.0.0.1", "tcp", "http"]}]}}
    ]));
    assert_eq!(
        parse_table(&json),
        Err(ParseError::Element {
            set: "s".into(),
            element: r#"{"concat": ["10.0.0.1", "tcp", "http"]}"#.into()
        })
    );
}
