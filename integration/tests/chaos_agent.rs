//! Chaos on the agents of a namespaced datacenter: an agent killed during policy updates,
//! a host cut off from etcd while policies and endpoints change, etcd compacted while an
//! agent is down or disconnected. After each, every agent's nft table and routes must be
//! exactly what a fresh agent makes of the same etcd state (`chaos::converge`), and traffic
//! must flow where policy allows. Each test prints one `chaos ...` summary line.

use std::time::{Duration, Instant};

use romana_integration::chaos::{self, converge};
use romana_integration::{cluster, require_netns, Cluster};
use romana_proto::pb;

const CONVERGE: Duration = Duration::from_secs(20);

async fn mk_tenants(c: &Cluster) -> anyhow::Result<()> {
    c.add_tenants(&["t1", "t2"]).await
}

async fn label(c: &Cluster, endpoint: &str, role: &str) -> anyhow::Result<()> {
    c.ipam()
        .await?
        .update_endpoint(pb::UpdateEndpointRequest {
            endpoint: c.endpoint(endpoint).id.clone(),
            set_labels: [("role".to_string(), role.to_string())].into(),
            remove_labels: vec![],
        })
        .await?;
    Ok(())
}

/// The NetworkPolicy `gate` in t1 selecting role=db pods, with `ingress` as its rules.
fn gate(ingress: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: gate, namespace: t1}}\nspec:\n  podSelector: {{matchLabels: {{role: db}}}}\n  ingress: {ingress}\n"
    )
}

/// The policy variants the loops go through; the last is where they end.
const GATES: [&str; 4] = [
    "[]",
    "[{}]",
    "[{from: [{podSelector: {matchLabels: {role: ops}}}]}]",
    "[{from: [{podSelector: {matchLabels: {role: web}}}]}]",
];

async fn apply(c: &Cluster, document: String) -> anyhow::Result<i64> {
    Ok(c.policies()
        .await?
        .apply_policies(pb::ApplyPoliciesRequest {
            document,
            ..Default::default()
        })
        .await?
        .into_inner()
        .revision)
}

/// With the final gate (db pods accept only web pods): a(web) -> b(db) passes, d (t1, no
/// role) -> b does not, a <-> d (same segment, unselected) passes, e (t2) -> a does not.
fn assert_final_policy_enforced(c: &Cluster) -> anyhow::Result<()> {
    assert!(c.tcp("a", "b")?, "web -> db is allowed by the gate");
    assert!(!c.tcp("d", "b")?, "an unlabelled pod -> db is not");
    assert!(
        c.ping("d", c.endpoint("a").address),
        "same segment, unselected"
    );
    assert!(!c.ping("e", c.endpoint("a").address), "another tenant");
    Ok(())
}

/// a (web) and d on r0h0, b (db) and e (t2) on r0h1.
async fn mk_endpoints(c: &mut Cluster) -> anyhow::Result<()> {
    mk_tenants(c).await?;
    c.add_endpoint("a", "r0h0", "t1", "default").await?;
    c.add_endpoint("d", "r0h0", "t1", "default").await?;
    c.add_endpoint("b", "r0h1", "t1", "default").await?;
    c.add_endpoint("e", "r0h1", "t2", "default").await?;
    label(c, "a", "web").await?;
    label(c, "b", "db").await?;
    Ok(())
}

#[test]
fn an_agent_killed_during_policy_updates_restarts_into_exactly_the_fresh_agent_state() {
    require_netns!("nft", "ping");
    cluster()
        .racks(1)
        .hosts(2)
        .run(|mut c| async move {
            mk_endpoints(&mut c).await?;
            converge::all_converged(&c, Instant::now(), CONVERGE).await?;
            // Policies change every 100 ms; the agent of the db pod's host is killed 0, 40
            // and 80 ms after an apply (before, during or just after its debounced nft
            // transaction) and restarted at once, while the updates go on.
            let mut kills = Vec::new();
            let mut last_restart = Instant::now();
            let mut rounds = 0;
            for round in 0..15 {
                apply(&c, gate(GATES[round % GATES.len()])).await?;
                rounds += 1;
                if let Some(delay) = [(4, 0), (8, 40), (12, 80)]
                    .iter()
                    .find(|(r, _)| *r == round)
                    .map(|(_, d)| *d)
                {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    c.kill_agent("r0h1");
                    kills.push(format!("kill -9 agent {delay}ms after apply"));
                    c.restart_agent("r0h1")?;
                    last_restart = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let before = converge::read(c.host("r0h1").ns.name())?;
            let recorder = converge::Recorder::start(&c, "r0h1");
            let final_apply = Instant::now();
            apply(&c, gate(GATES[GATES.len() - 1])).await?;
            let want = converge::fresh(&c, "r0h1").await?;
            assert!(before.diff(&want).is_some(), "the final apply changes r0h1");
            let took = recorder.converged(&want, final_apply, CONVERGE).await?;
            let others = converge::all_converged(&c, final_apply, CONVERGE).await?;
            assert_final_policy_enforced(&c)?;
            chaos::Summary::new("agent-kill-during-policy-updates")
                .field("policy_applies", rounds + 1)
                .field("faults", format!("[{}]", kills.join(", ")))
                .field(
                    "restart_to_final_apply",
                    chaos::secs(final_apply - last_restart),
                )
                .field("reconverge_after_final_apply", chaos::secs(took))
                .field("all_hosts_equal_fresh_agent_after", chaos::secs(others))
                .field("traffic", "as policy says (4 checks)")
                .print();
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_host_cut_off_from_etcd_reconverges_within_2s_of_its_uplink_returning() {
    require_netns!("nft", "ping");
    const BOUND: Duration = Duration::from_secs(2);
    cluster()
        .racks(1)
        .hosts(3)
        .run(|mut c| async move {
            mk_endpoints(&mut c).await?;
            c.add_endpoint("g", "r0h2", "t1", "default").await?;
            c.add_endpoint("x", "r0h1", "t1", "default").await?;
            converge::all_converged(&c, Instant::now(), CONVERGE).await?;

            // r0h1 holds the db pod: the gate is enforced there.
            c.cut_uplink("r0h1")?;
            let cut = Instant::now();
            // Meanwhile: the gate changes, a web pod comes on another host, one pod goes on
            // another, and one of the cut host's own endpoints is released behind its back.
            for ingress in GATES {
                apply(&c, gate(ingress)).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            c.add_endpoint("f", "r0h2", "t1", "default").await?;
            label(&c, "f", "web").await?;
            c.remove_endpoint("g")?;
            c.ipam()
                .await?
                .release(pb::ReleaseRequest::endpoint(c.endpoint("x").id.clone()))
                .await?;
            let want = converge::fresh(&c, "r0h1").await?;
            // Hold the cut past several of TCP's retransmission backoffs.
            let left = Duration::from_secs(6).saturating_sub(cut.elapsed());
            tokio::time::sleep(left).await;
            let before = converge::read(c.host("r0h1").ns.name())?;
            assert!(
                before.diff(&want).is_some(),
                "the cut host cannot have seen the changes"
            );

            let recorder = converge::Recorder::start(&c, "r0h1");
            c.restore_uplink("r0h1")?;
            let restored = Instant::now();
            let took = recorder.converged(&want, restored, CONVERGE).await?;
            let all = converge::all_converged(&c, restored, CONVERGE).await?;
            assert_final_policy_enforced(&c)?;
            assert!(
                c.tcp("f", "b")?,
                "the endpoint added during the cut, as web -> db"
            );
            chaos::Summary::new("agent-uplink-cut")
                .field("faults", "[uplink of r0h1 down (mgmt and leaf ports)]")
                .field("cut_for", chaos::secs(restored - cut))
                .field(
                    "changes_during_cut",
                    "4 policy applies, 1 endpoint added, 2 removed",
                )
                .field("reconverge_after_restore", chaos::secs(took))
                .field("all_hosts_equal_fresh_agent_after", chaos::secs(all))
                .field("bound", chaos::secs(BOUND))
                .print();
            assert!(
                took <= BOUND,
                "r0h0 took {took:?} after its uplink returned"
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn etcd_compacted_while_an_agent_is_down_or_cut_off_the_agent_relists_and_converges() {
    require_netns!("nft", "ping");
    cluster()
        .racks(1)
        .hosts(2)
        .run(|mut c| async move {
            mk_endpoints(&mut c).await?;
            c.add_endpoint("g", "r0h1", "t1", "default").await?;
            c.add_endpoint("x", "r0h0", "t1", "default").await?;
            converge::all_converged(&c, Instant::now(), CONVERGE).await?;

            // 1. r0h0's agent is dead while records change (its own endpoints among them)
            // and history is compacted.
            c.kill_agent("r0h0");
            apply(&c, gate(GATES[0])).await?;
            c.remove_endpoint("g")?;
            c.add_endpoint("h", "r0h1", "t1", "default").await?;
            c.add_endpoint("k", "r0h0", "t1", "default").await?;
            c.ipam()
                .await?
                .release(pb::ReleaseRequest::endpoint(c.endpoint("x").id.clone()))
                .await?;
            let revision = c.plane.store().revision().await?;
            c.plane.store().compact(revision).await?;
            let before = converge::read(c.host("r0h0").ns.name())?;
            let recorder = converge::Recorder::start(&c, "r0h0");
            c.restart_agent("r0h0")?;
            let restarted = Instant::now();
            let want = converge::fresh(&c, "r0h0").await?;
            assert!(before.diff(&want).is_some(), "r0h0 missed changes while down");
            let after_restart = recorder.converged(&want, restarted, CONVERGE).await?;

            // 2. r0h1's agent lives but is cut off; etcd restarts (its watch is gone), records
            // change (a delete among them) and the history is compacted: when it is back, its
            // watch cannot resume and it must list again.
            let relists_before = c.agent_log("r0h1").matches("in sync with etcd").count();
            c.cut_uplink("r0h1")?;
            tokio::task::block_in_place(|| -> anyhow::Result<()> {
                let etcd = c.plane.etcd_mut().member(0);
                etcd.stop()?;
                etcd.start_again()
            })?;
            romana_integration::eventually("services back on etcd", CONVERGE, || async {
                apply(&c, gate(GATES[3])).await.ok()
            })
            .await?;
            c.ipam()
                .await?
                .release(pb::ReleaseRequest::endpoint(c.endpoint("h").id.clone()))
                .await?;
            let revision = c.plane.store().revision().await?;
            c.plane.store().compact(revision).await?;
            let want = converge::fresh(&c, "r0h1").await?;
            let before = converge::read(c.host("r0h1").ns.name())?;
            assert!(before.diff(&want).is_some(), "r0h1 missed changes while cut off");
            let recorder = converge::Recorder::start(&c, "r0h1");
            c.restore_uplink("r0h1")?;
            let restored = Instant::now();
            let after_resume = recorder.converged(&want, restored, CONVERGE).await?;
            let relists = c.agent_log("r0h1").matches("in sync with etcd").count() - relists_before;
            let all = converge::all_converged(&c, restored, CONVERGE).await?;
            assert_final_policy_enforced(&c)?;
            chaos::Summary::new("agent-etcd-compaction")
                .field(
                    "faults",
                    "[kill -9 agent r0h0 + compact + restart, cut r0h1 + etcd restart + compact + restore]",
                )
                .field("reconverge_after_restart", chaos::secs(after_restart))
                .field("reconverge_after_restore", chaos::secs(after_resume))
                .field("relists_after_restore", relists)
                .field("all_hosts_equal_fresh_agent_after", chaos::secs(all))
                .print();
            assert!(relists >= 1, "r0h1 listed again after its watch was compacted away");
            Ok(())
        })
        .unwrap();
}
