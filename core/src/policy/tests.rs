//! Parsing, defaulting and validation: table tests and the golden files in
//! `core/testdata/policy/`.

use super::k8s::IntOrString;
use super::*;

fn mk_one(text: &str) -> Policy {
    let mut all = parse_documents(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn mk_k8s(text: &str) -> NetworkPolicy {
    match mk_one(text) {
        Policy::Kubernetes(p) => p,
        other => panic!("not Kubernetes: {other:?}"),
    }
}

fn error_of(text: &str) -> String {
    parse_documents(text)
        .map(|p| panic!("accepted: {p:?}"))
        .unwrap_err()
        .to_string()
}

const HEAD: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\n";

#[test]
fn policy_types_default_to_ingress_plus_egress_only_with_egress_rules() {
    let cases = [
        ("spec: {podSelector: {}}", vec!["Ingress"]),
        ("spec: {podSelector: {}, egress: []}", vec!["Ingress"]),
        (
            "spec: {podSelector: {}, egress: [{}]}",
            vec!["Ingress", "Egress"],
        ),
        ("spec: {podSelector: {}, ingress: [{}]}", vec!["Ingress"]),
        (
            "spec: {podSelector: {}, policyTypes: [Egress], ingress: [{}]}",
            vec!["Egress"],
        ),
    ];
    for (spec, want) in cases {
        let p = mk_k8s(&format!("{HEAD}{spec}"));
        assert_eq!(p.spec.policy_types.unwrap(), want, "{spec}");
    }
}

#[test]
fn protocol_defaults_to_tcp_and_namespace_to_default() {
    let p = mk_k8s(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n\
         spec: {podSelector: {}, ingress: [{ports: [{port: 80}, {protocol: UDP, port: 53}]}]}",
    );
    assert_eq!(p.namespace(), "default");
    let ports = p.spec.ingress.unwrap()[0].ports.clone().unwrap();
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(ports[0].port, Some(IntOrString::Int(80)));
    assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
}

#[test]
fn empty_and_absent_lists_are_kept_as_written() {
    // Semantics are tested in eval; here: the stored object says what the operator wrote.
    let p = mk_k8s(&format!(
        "{HEAD}spec: {{podSelector: {{}}, ingress: [{{from: []}}, {{}}]}}"
    ));
    let rules = p.spec.ingress.unwrap();
    assert_eq!(rules[0].from, Some(vec![]));
    assert_eq!(rules[1].from, None);
}

#[test]
fn forms_are_detected_per_document() {
    let text = format!(
        "{HEAD}spec: {{podSelector: {{}}}}\n---\nname: r1\ndirection: egress\n\
         applied_to: [{{tenant: shop}}]\npeers: [{{peer: any}}]\nrules: [{{protocol: any}}]\n"
    );
    let all = parse_documents(&text).unwrap();
    let ids: Vec<String> = all.iter().map(|p| p.id().to_string()).collect();
    assert_eq!(ids, ["shop/p", "r1"]);
    assert_eq!(all[0].form(), "kubernetes");
    assert_eq!(all[1].form(), "romana");
}

#[test]
fn romana_json_array_and_protocol_case_are_accepted() {
    let all = parse_documents(
        r#"[{"name":"a","direction":"ingress","applied_to":[{"cidr":"10.1.0.0/16"}],
             "peers":[{"tenant":"t","segment":"s"}],"rules":[{"protocol":"UDP","ports":[53]}]},
            {"name":"b","direction":"egress","applied_to":[{"endpoint":"c1:eth0"}],
             "peers":[{"peer":"host"}],"rules":[{"protocol":"icmp","icmp_type":8}]}]"#,
    )
    .unwrap();
    let Policy::Romana(a) = &all[0] else {
        panic!("not romana")
    };
    assert_eq!(
        a.rules[0].protocol, "udp",
        "protocols are stored lower-case"
    );
    assert_eq!(all[1].id(), PolicyId::Romana { name: "b".into() });
}

#[test]
fn invalid_objects_name_the_field_as_the_api_server_does() {
    let cases = [
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, namespaceSelector: {}}]}]}",
            "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer",
        ),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: nonsense}}]}]}",
            "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"nonsense\": not a valid CIDR",
        ),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {except: [10.0.0.0/8]}}]}]}",
            "spec.ingress[0].from[0].ipBlock.cidr: Required value",
        ),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]}",
            "except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
        ),
        (
            "spec: {podSelector: {}, egress: [{ports: [{port: 0}]}]}",
            "spec.egress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
        (
            "spec: {podSelector: {}, egress: [{ports: [{port: 70000}]}]}",
            "Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            "spec: {podSelector: {}, egress: [{ports: [{endPort: 90}]}]}",
            "spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified",
        ),
        (
            "spec: {podSelector: {}, ingress: [{ports: [{port: \"80\"}]}]}",
            "spec.ingress[0].ports[0].port: Invalid value: \"80\": must contain at least one letter (a-z)",
        ),
        (
            "spec: {podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}",
            "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
        ),
        (
            "spec: {podSelector: {matchExpressions: [{key: app, operator: Exists, values: [x]}]}}",
            "spec.podSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        (
            "spec: {podSelector: {matchExpressions: [{key: app, operator: Equals, values: [x]}]}}",
            "spec.podSelector.matchExpressions[0].operator: Invalid value: \"Equals\": not a valid selector operator",
        ),
        (
            "spec: {podSelector: {matchLabels: {app: \"a b\"}}}",
            "spec.podSelector.matchLabels: Invalid value: \"a b\"",
        ),
        (
            "spec: {podSelector: {}, policyTypes: [Ingress, Egress, Ingress]}",
            "spec.policyTypes: Invalid value",
        ),
    ];
    for (spec, want) in cases {
        let err = error_of(&format!("{HEAD}{spec}"));
        assert!(
            err.starts_with("NetworkPolicy \"shop/p\" is invalid: "),
            "{err}"
        );
        assert!(err.contains(want), "{spec}\n got: {err}\nwant: {want}");
    }
}

#[test]
fn missing_name_and_bad_namespace_are_refused() {
    let err = error_of(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: shop}\nspec: {}",
    );
    assert!(
        err.contains("metadata.name: Required value: name or generateName is required"),
        "{err}"
    );
    let err = error_of(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: Shop}\nspec: {}",
    );
    assert!(
        err.contains("metadata.namespace: Invalid value: \"Shop\""),
        "{err}"
    );
}

#[test]
fn every_error_of_an_object_is_reported_at_once() {
    let err = error_of(&format!(
        "{HEAD}spec: {{podSelector: {{}}, ingress: [{{from: [{{}}], ports: [{{port: 0}}]}}]}}"
    ));
    assert!(err.contains("spec.ingress[0].ports[0].port"), "{err}");
    assert!(
        err.contains("spec.ingress[0].from[0]: Required value"),
        "{err}"
    );
}

#[test]
fn romana_rules_are_checked_field_by_field() {
    let base = "name: r\ndirection: ingress\napplied_to: [{tenant: shop}]\npeers: [{peer: any}]\n";
    let cases = [
        (
            "rules: [{protocol: gre}]",
            "rules[0].protocol: Unsupported value: \"gre\"",
        ),
        (
            "rules: [{protocol: tcp, ports: [0]}]",
            "rules[0].ports[0]: Invalid value: 0",
        ),
        (
            "rules: [{protocol: tcp, port_ranges: [[90, 80]]}]",
            "rules[0].port_ranges[0]: Invalid value: 80: the end must not be below the start 90",
        ),
        (
            "rules: [{protocol: tcp, icmp_type: 8}]",
            "rules[0].icmp_type: Forbidden",
        ),
        (
            "rules: [{protocol: icmp, icmp_code: 0}]",
            "rules[0].icmp_type: Required value",
        ),
        (
            "rules: [{protocol: any, ports: [1]}]",
            "rules[0].ports: Forbidden",
        ),
    ];
    for (rules, want) in cases {
        let err = error_of(&format!("{base}{rules}"));
        assert!(err.starts_with("policy \"r\" is invalid: "), "{err}");
        assert!(err.contains(want), "{rules}\n got: {err}\nwant: {want}");
    }
    let targets = [
        (
            "applied_to: [{peer: any}]\npeers: [{peer: any}]",
            "applied_to[0].peer: Forbidden",
        ),
        (
            "applied_to: [{tenant: shop, cidr: 10.0.0.0/8}]\npeers: [{peer: any}]",
            "applied_to[0]: Forbidden: exactly one of",
        ),
        (
            "applied_to: [{}]\npeers: [{peer: any}]",
            "applied_to[0]: Required value",
        ),
        (
            "applied_to: [{tenant: shop}]\npeers: [{endpoint: x}]",
            "peers[0].endpoint: Forbidden",
        ),
        (
            "applied_to: [{tenant: shop}]\npeers: [{peer: local}]",
            "peers[0].peer: Unsupported value: \"local\": supported values: \"any\", \"host\"",
        ),
        (
            "applied_to: []\npeers: [{peer: any}]",
            "applied_to: Required value",
        ),
        (
            "applied_to: [{tenant: \"a/b\"}]\npeers: [{peer: any}]",
            "applied_to[0].tenant: Invalid value: \"a/b\"",
        ),
    ];
    for (t, want) in targets {
        let err = error_of(&format!(
            "name: r\ndirection: egress\n{t}\nrules: [{{protocol: any}}]"
        ));
        assert!(err.contains(want), "{t}\n got: {err}\nwant: {want}");
    }
}

#[test]
fn input_that_is_no_policy_is_refused() {
    assert_eq!(parse_documents("").unwrap_err(), ParseError::Empty);
    assert_eq!(
        parse_documents("---\n---\n").unwrap_err(),
        ParseError::Empty
    );
    assert!(error_of("{not json").starts_with("document 1: not valid JSON"));
    assert!(error_of("a: [").starts_with("document 1: not valid YAML"));
    let err = error_of("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n");
    assert!(
        err.contains("no matches for kind \"Pod\" in version \"v1\""),
        "{err}"
    );
    assert!(error_of("42").contains("expected a policy object"));
}

#[test]
fn policy_ids_print_and_parse_as_kubectl_names() {
    let k: PolicyId = "shop/allow-web".parse().unwrap();
    assert_eq!(
        k,
        PolicyId::Kubernetes {
            tenant: "shop".into(),
            name: "allow-web".into()
        }
    );
    assert_eq!(k.to_string(), "shop/allow-web");
    let r: PolicyId = "ssh".parse().unwrap();
    assert_eq!(r, PolicyId::Romana { name: "ssh".into() });
    for bad in ["", "/x", "x/", "a/b/c"] {
        assert!(bad.parse::<PolicyId>().is_err(), "{bad}");
    }
}

#[test]
fn stored_json_round_trips_to_the_same_policy() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/policy/valid/mixed-forms.yaml"
    ))
    .unwrap();
    for p in parse_documents(&text).unwrap() {
        let json = serde_json::to_string(&p).unwrap();
        let back: Policy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p, "{json}");
        // Parsing the stored JSON again (as Apply of a stored object does) is a no-op.
        assert_eq!(parse_documents(&json).unwrap(), vec![p]);
    }
}

#[test]
fn golden_files_parse_or_fail_as_their_header_says() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/policy");
    let mut seen = 0;
    for sub in ["valid", "invalid"] {
        let mut entries: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let header = text.lines().next().unwrap_or_default();
            let result = parse_documents(&text);
            if sub == "valid" {
                let want: usize = header
                    .strip_prefix("# policies: ")
                    .map(str::to_string)
                    .or_else(|| name.rsplit('.').nth(1).map(str::to_string))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{name}: no policy count"));
                let got = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(got.len(), want, "{name}");
            } else {
                let want = header
                    .strip_prefix("# error: ")
                    .unwrap_or_else(|| panic!("{name}: no `# error:` header"));
                let err = result
                    .map(|p| panic!("{name}: accepted {p:?}"))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(want), "{name}\n got: {err}\nwant: {want}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 15, "only {seen} golden files");
}

#[test]
fn documents_run_together_without_separator_are_refused_not_merged() {
    let err = error_of(&format!(
        "{HEAD}spec: {{podSelector: {{}}}}\nname: r\ndirection: ingress\n"
    ));
    assert!(
        err.contains("NetworkPolicy \"p\": unknown field `"),
        "{err}"
    );
}
