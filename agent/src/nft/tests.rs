use romana_core::{Isolation, Layout};

use super::*;
use crate::compile::compile;
use crate::fixtures::*;
use crate::state::ClusterState;

fn layout(s: &ClusterState) -> Layout {
    s.config.as_ref().unwrap().layout().unwrap()
}

fn program(s: &ClusterState) -> NftProgram {
    compile(s, Some(&layout(s)), "h1")
}

/// Compares with `testdata/NAME`, or rewrites it when `UPDATE_GOLDEN=1`.
fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(got, want, "golden file {name} differs");
}

/// Tenants a (segment mode, segments 0 and 1), b (tenant mode, 0 and 1), c (none, 0).
fn mk_three_tenants() -> ClusterState {
    let mut s = mk_state();
    s.tenants.clear();
    s.segments.clear();
    for (t, id, iso, segs) in [
        ("a", 1, Isolation::Segment, 2),
        ("b", 2, Isolation::Tenant, 2),
        ("c", 3, Isolation::None, 1),
    ] {
        s.tenants.insert(t.into(), mk_tenant(t, id, iso));
        for seg in 0..segs {
            let name = format!("s{seg}");
            s.segments
                .insert((t.into(), name.clone()), mk_segment(t, &name, seg));
        }
    }
    s
}

#[test]
fn mission_layout_program_is_golden() {
    golden("program_v4.nft", &program(&mk_state()).render_table());
}

#[test]
fn ipv6_program_is_golden() {
    let mut s = ClusterState::default();
    s.config = Some(mk_config_v6());
    s.tenants
        .insert("t".into(), mk_tenant("t", 5, Isolation::Segment));
    s.segments.insert(
        ("t".into(), "default".into()),
        mk_segment("t", "default", 2),
    );
    s.tenants
        .insert("o".into(), mk_tenant("o", 6, Isolation::None));
    golden("program_v6.nft", &program(&s).render_table());
}

#[test]
fn rule_count_is_the_same_for_2_and_40_endpoints() {
    let mut two = mk_state();
    let mut forty = mk_state();
    for i in 0..40u32 {
        let host = ["h1", "h2", "h3"][i as usize % 3];
        let prefix = i % 3;
        let e = mk_endpoint(
            &format!("e{i}"),
            &format!("10.{prefix}.{}.{}", 16 + i % 2, 2 + i),
            host,
            "t",
            if i % 2 == 0 { "default" } else { "web" },
        );
        if i < 2 {
            add_endpoint(&mut two, e.clone());
        }
        add_endpoint(&mut forty, e);
    }
    let (a, b) = (program(&two), program(&forty));
    assert_eq!(a.rule_count(), b.rule_count());
    // Endpoints are elements only: of the anti-spoofing set, nowhere else.
    assert!(a.view().same_structure(&b.view()));
    let mut b_without = b.clone();
    b_without.sets.remove(SET_ENDPOINTS);
    let mut a_without = a.clone();
    a_without.sets.remove(SET_ENDPOINTS);
    assert_eq!(
        a_without, b_without,
        "endpoints change nothing else in the program"
    );
}

#[test]
fn tenants_and_segments_change_only_set_elements() {
    let one = program(&mk_state());
    let three = program(&mk_three_tenants());
    assert_eq!(one.chains, three.chains);
    assert_eq!(one.view().chains, three.view().chains);
    assert!(one.view().same_structure(&three.view()));
    assert_eq!(one.element_count(), 2);
    assert_eq!(three.element_count(), 2 + 1 + 1);
}

#[test]
fn hosts_change_nothing_in_the_program() {
    let mut s = mk_state();
    let before = program(&s);
    for i in 3..100 {
        s.hosts
            .insert(format!("x{i}"), mk_host(&format!("x{i}"), "192.168.5.5", i));
    }
    assert_eq!(program(&s), before);
}

#[test]
fn render_replace_adds_before_deleting_so_it_works_without_a_table() {
    let text = program(&mk_state()).render_replace();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("add table inet romana"));
    assert_eq!(lines.next(), Some("delete table inet romana"));
    assert_eq!(lines.next(), Some("table inet romana {"));
}

#[test]
fn empty_sets_have_no_elements_line() {
    let text = program(&mk_state()).render_table();
    assert!(!text.contains("elements = {  }"));
    assert!(!text.contains("elements = { }"));
}

#[test]
fn element_changes_and_their_script() {
    let from = program(&mk_state()).view();
    let mut s = mk_state();
    s.segments.remove(&("t".to_string(), "web".to_string()));
    s.tenants
        .insert("o".into(), mk_tenant("o", 3, Isolation::None));
    let to = program(&s).view();
    let (add, delete) = element_changes(&from, &to);
    assert_eq!(
        add,
        [(
            SET_OPEN_TENANT.to_string(),
            SetElement::Addr(ip("10.0.48.0"))
        )]
    );
    assert_eq!(
        delete,
        [(
            SET_SAME_SEGMENT.to_string(),
            SetElement::Pair(ip("10.0.17.0"), ip("10.0.17.0"))
        )]
    );
    assert_eq!(
        render_elements(&add, &delete),
        "delete element inet romana same_segment { 10.0.17.0 . 10.0.17.0 }\n\
         add element inet romana open_tenant { 10.0.48.0 }\n"
    );
}

#[test]
fn parse_table_reads_real_nft_output_as_the_view_of_the_program() {
    // testdata/table_v4.json is `nft -j list table inet romana` from nft 1.0.6 after
    // applying the golden program_v4.nft (captured by the kernel tests).
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../../testdata/table_v4.json")).unwrap();
    let view = parse_table(&json).unwrap();
    assert_eq!(view, program(&mk_state()).view());
}

#[test]
fn parse_table_reads_real_ipv6_nft_output() {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../../testdata/table_v6.json")).unwrap();
    let view = parse_table(&json).unwrap();
    assert_eq!(view.sets[SET_OPEN_TENANT].elements.len(), 1);
    assert_eq!(
        view.sets[SET_SAME_SEGMENT].elements.iter().next(),
        Some(&SetElement::Pair(
            ip("fd00:10::502:0:0:0"),
            ip("fd00:10::502:0:0:0")
        ))
    );
    let forward = view.chains.iter().find(|c| c.name == CHAIN_NAME).unwrap();
    // to_endpoint, established, egress, ingress: no quarantine rules while none is.
    assert_eq!(forward.rules.len(), 4);
}

#[test]
fn parse_table_sees_foreign_rules_maps_and_flags() {
    let json = serde_json::json!({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "romana"}},
        {"map": {"family": "inet", "name": "m", "table": "romana", "type": "ipv4_addr", "map": "verdict"}},
        {"set": {"family": "inet", "name": "s", "table": "romana", "type": "ipv4_addr", "flags": ["interval"], "elem": ["10.0.0.1"]}},
        {"chain": {"family": "inet", "table": "romana", "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "romana", "chain": "forward", "expr": []}},
    ]});
    let view = parse_table(&json).unwrap();
    assert_eq!(view.other, ["set s with flags"]);
    assert_eq!(view.sets["m"].key, "ipv4_addr : verdict");
    assert_eq!(view.chains[0].rules, [None]);
    assert!(!view.same_structure(&view.clone()));
}

#[test]
fn parse_table_refuses_elements_it_cannot_read() {
    let json = serde_json::json!({"nftables": [
        {"set": {"name": "s", "type": "ipv4_addr", "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}]}},
    ]});
    assert!(matches!(
        parse_table(&json),
        Err(ParseError::Element { .. })
    ));
}

#[test]
fn rule_comments_differ_when_the_text_differs() {
    assert_ne!(rule_comment("a"), rule_comment("b"));
    assert_eq!(rule_comment("a"), rule_comment("a"));
    assert!(rule_comment("a").starts_with("romana:"));
    assert_eq!(rule_comment("a").len(), "romana:".len() + 8);
}
