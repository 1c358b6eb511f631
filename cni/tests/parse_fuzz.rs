//! The CNI plugin's input parsers under arbitrary and near-valid input: the network config on
//! stdin, the `CNI_*` variables and `CNI_ARGS` (with `ROMANA_LABELS`). Never a panic, always
//! `Ok` or a typed error with a bounded message; and whatever labels are accepted are ones
//! ipam-service accepts too, so an ADD is never refused later for its labels.

use proptest::prelude::*;
use romana_cni::env::{CniArgs, Env};
use romana_cni::NetConf;

fn conf_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,40}".prop_map(|s| format!(r#", "tenant": {}"#, serde_json::Value::from(s))),
        "\\PC{0,40}".prop_map(|s| format!(r#", "host": {}"#, serde_json::Value::from(s))),
        "\\PC{0,40}".prop_map(|s| format!(r#", "segment": {}"#, serde_json::Value::from(s))),
        "\\PC{0,40}".prop_map(|s| format!(r#", "name": {}"#, serde_json::Value::from(s))),
        "\\PC{0,40}".prop_map(|s| format!(r#", "root": {}"#, serde_json::Value::from(s))),
        Just(r#", "prevResult": [1]"#.to_string()),
        Just(r#", "cni.dev/valid-attachments": [{"containerID": 1}]"#.to_string()),
        Just(r#", "tenant": 7"#.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_a_network_config(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = NetConf::parse(&bytes) {
            prop_assert!(e.to_string().len() < 400, "{}", e);
        }
    }

    #[test]
    fn near_valid_network_configs(
        version in prop::sample::select(vec!["1.0.0", "1.1.0", "0.4.0", "0.2.0", "", "x"]),
        fields in proptest::collection::vec(conf_field(), 0..4),
    ) {
        let text = format!(
            r#"{{"cniVersion": "{version}", "name": "romana", "root": "http://127.0.0.1:9600"{}}}"#,
            fields.concat()
        );
        match NetConf::parse(text.as_bytes()) {
            Ok(conf) => {
                // Accepted names are names the services accept.
                let p = conf.placement(&CniArgs::default(), || Ok("h1".into()));
                if let Ok(p) = p {
                    prop_assert!(romana_core::names::validate_host_name(&p.host).is_ok());
                    prop_assert!(romana_core::names::validate_tenant_name(&p.tenant).is_ok());
                }
            }
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
        }
    }

    #[test]
    fn arbitrary_cni_environment(
        vars in proptest::collection::vec(
            (prop::sample::select(vec!["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH", "OTHER"]),
             "\\PC{0,300}"),
            0..6,
        )
    ) {
        match Env::parse(vars) {
            Ok(env) => {
                if let (Ok(_), Ok(_)) = (env.container_id(), env.ifname()) {
                    let id = env.endpoint_id().unwrap();
                    prop_assert!(romana_core::model::validate_name("endpoint", &id).is_ok(), "{}", id);
                }
                let _ = env.args.labels();
            }
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
        }
    }

    #[test]
    fn accepted_romana_labels_are_labels_ipam_accepts(
        pairs in proptest::collection::vec(("[-a-zA-Z0-9_./=,;\\x00\\x1b ]{0,20}", "[-a-zA-Z0-9_.=,;\\x07 ]{0,20}"), 0..8)
    ) {
        let value: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let args = format!("ROMANA_LABELS={}", value.join(","));
        let Ok(args) = CniArgs::parse(&args) else { return Ok(()); };
        match args.labels() {
            Ok(labels) => {
                prop_assert!(romana_core::validate_labels(&labels).is_ok());
                for (k, v) in &labels {
                    prop_assert!(!k.contains(['=', ',', ';']) && !v.contains(['=', ',', ';']));
                }
            }
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
        }
    }
}

#[test]
fn label_values_that_cannot_round_trip_are_refused_clearly() {
    let args = CniArgs::parse("ROMANA_LABELS=app=a=b").unwrap();
    let err = args.labels().unwrap_err().to_string();
    assert!(err.contains("cannot round-trip through CNI_ARGS"), "{err}");
    let args = CniArgs::parse("ROMANA_LABELS=app=web,app=db").unwrap();
    assert!(args.labels().unwrap_err().to_string().contains("twice"));
    let many: Vec<String> = (0..64).map(|i| format!("k{i}=v")).collect();
    let args = CniArgs::parse(&format!("ROMANA_LABELS={}", many.join(","))).unwrap();
    assert!(args
        .labels()
        .unwrap_err()
        .to_string()
        .contains("more than 63"));
    let big = format!("ROMANA_LABELS=k={}", "v".repeat(1 << 20));
    let err = CniArgs::parse(&big)
        .unwrap()
        .labels()
        .unwrap_err()
        .to_string();
    assert!(err.len() < 400, "{} bytes", err.len());
}

#[test]
fn upper_case_and_oversized_names_in_the_config_are_refused() {
    for (field, value, needle) in [
        ("tenant", "T1", "lowercase"),
        ("host", "H1", "lowercase"),
        ("segment", "a_b", "contains '_'"),
        ("name", "my net", "label value"),
    ] {
        let mut conf =
            serde_json::json!({"cniVersion": "1.0.0", "name": "romana", "root": "http://r:1"});
        conf[field] = value.into();
        let text = conf.to_string();
        let err = NetConf::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(needle), "{field}={value}: {err}");
    }
    let huge = format!(
        r#"{{"cniVersion": "1.0.0", "name": "romana", "root": "http://r:1", "tenant": 7, "x": "{}"}}"#,
        "x".repeat(1 << 20)
    );
    assert!(
        NetConf::parse(huge.as_bytes())
            .unwrap_err()
            .to_string()
            .len()
            < 400
    );
    let id = "c".repeat(300);
    let err = Env::parse([("CNI_CONTAINERID", id.as_str())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 237"), "{err}");
}
