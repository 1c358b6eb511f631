use super::*;

fn mk_labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_req(key: &str, op: &str, values: &[&str]) -> Requirement {
    Requirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

#[test]
fn selector_operators_follow_kubernetes_including_missing_keys() {
    let web = mk_labels(&[("app", "web"), ("tier", "front")]);
    let bare = mk_labels(&[]);
    let cases = [
        (mk_req("app", "In", &["web", "api"]), true, false),
        (mk_req("app", "In", &["db"]), false, false),
        (mk_req("app", "NotIn", &["db"]), true, true),
        (mk_req("app", "NotIn", &["web"]), false, true),
        (mk_req("app", "Exists", &[]), true, false),
        (mk_req("app", "DoesNotExist", &[]), false, true),
    ];
    for (req, on_web, on_bare) in cases {
        assert_eq!(req.matches(&web), on_web, "{req:?} on web");
        assert_eq!(req.matches(&bare), on_bare, "{req:?} on bare");
    }
}

#[test]
fn empty_selector_matches_everything_and_parts_are_anded() {
    assert!(LabelSelector::default().matches(&mk_labels(&[])));
    let sel = LabelSelector {
        match_labels: Some(mk_labels(&[("app", "web")])),
        match_expressions: Some(vec![mk_req("tier", "In", &["front"])]),
    };
    assert!(sel.matches(&mk_labels(&[("app", "web"), ("tier", "front")])));
    assert!(!sel.matches(&mk_labels(&[("app", "web")])));
    assert!(!sel.matches(&mk_labels(&[("tier", "front")])));
}
