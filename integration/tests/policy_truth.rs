//! The policy truth table (`testdata/policy/*.yaml`, see `romana_integration::truth`): every
//! hand-written case against the evaluator, and the cases the agent enforces against real
//! packets on a namespaced cluster.
//!
//! Environment:
//! - `ROMANA_TRUTH_CASES=a,b`: only cases whose name or file contains one of these.
//! - `ROMANA_TRUTH_ALL=1`: run every case on the cluster, whatever the agent enforces.

use std::collections::BTreeSet;
use std::time::Instant;

use romana_integration::truth::{self, Case, Feature};
use romana_integration::{cluster, require_netns};

/// What the agent's nftables program enforces today; a case runs on the cluster only when
/// all it `needs` is here. Widen as the agent's policy compiler lands.
const AGENT_ENFORCES: &[Feature] = &[
    Feature::IngressBaseline,
    Feature::EgressBaseline,
    Feature::RomanaPolicy,
    Feature::NetworkPolicy,
];

fn mk_cases() -> Vec<Case> {
    let all = truth::load_all(&truth::testdata_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let Ok(filter) = std::env::var("ROMANA_TRUTH_CASES") else {
        return all;
    };
    let wanted: Vec<&str> = filter.split(',').map(str::trim).collect();
    all.into_iter()
        .filter(|c| {
            let file = c.file.display().to_string();
            wanted
                .iter()
                .any(|w| c.name.contains(w) || file.contains(w))
        })
        .collect()
}

#[test]
fn cases_are_well_formed_and_uniquely_named() {
    let cases = truth::load_all(&truth::testdata_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "two cases share a name");
    for c in &cases {
        assert!(!c.source.trim().is_empty(), "{}: no source", c.name);
        let has_policies = !c.policies.trim().is_empty();
        let needs_policy =
            c.needs.contains(&Feature::NetworkPolicy) || c.needs.contains(&Feature::RomanaPolicy);
        assert!(
            !has_policies || needs_policy,
            "{}: has policies but needs no policy enforcement",
            c.name
        );
    }
    let k8s = cases
        .iter()
        .filter(|c| c.needs.contains(&Feature::NetworkPolicy))
        .count();
    assert!(
        k8s >= 25,
        "{k8s} Kubernetes NetworkPolicy cases, want at least 25"
    );
}

#[test]
fn every_case_holds_in_the_evaluator() {
    let cases = mk_cases();
    let mut failures = Vec::new();
    for case in &cases {
        match truth::run_model(case) {
            Ok(Ok(())) => {}
            Ok(Err(diff)) => failures.push(diff),
            Err(e) => failures.push(format!("case {}: {e:#}\n", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree with the evaluator:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn cases_the_agent_enforces_hold_on_the_cluster() {
    require_netns!("nft", "ping");
    let all = std::env::var_os("ROMANA_TRUTH_ALL").is_some();
    let (cases, waiting): (Vec<Case>, Vec<Case>) = mk_cases()
        .into_iter()
        .partition(|c| all || c.needs.iter().all(|f| AGENT_ENFORCES.contains(f)));
    for c in &waiting {
        eprintln!(
            "not on the cluster yet: {} (needs {:?})",
            c.name,
            c.needs
                .iter()
                .filter(|f| !AGENT_ENFORCES.contains(f))
                .collect::<Vec<_>>()
        );
    }
    if cases.is_empty() {
        return;
    }
    let failures = cluster()
        .racks(1)
        .hosts(2)
        .run(|mut c| async move {
            let mut failures = Vec::new();
            for case in &cases {
                let started = Instant::now();
                let outcome = truth::run_cluster(&mut c, case).await;
                eprintln!("{}: {:.1?}", case.name, started.elapsed());
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(diff)) => failures.push(diff),
                    // The shared cluster may be left dirty: stop here.
                    Err(e) => {
                        failures.push(format!("case {}: {e:#}\n", case.name));
                        break;
                    }
                }
            }
            Ok(failures)
        })
        .unwrap();
    assert!(
        failures.is_empty(),
        "{} case(s) disagree with the cluster:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
