//! Chaos on the etcd members under the services: a 3-member cluster, every service
//! in-process with all three endpoints, 16 clients allocating and releasing through root
//! and ipam. Faults: kill -9 a follower, kill -9 the leader (found through etcd's status
//! API), SIGSTOP a follower for 5 s, and two members down (quorum lost) then back.
//!
//! Targets: with one member down, failed calls <= calls in flight at the fault; with two
//! down, calls fail fast (each within [`FAIL_FAST`]) and clearly (UNAVAILABLE, saying
//! etcd), and everything recovers once the quorum is back. Invariants hold in every case.
//! Each test prints its `chaos ...` summary line before asserting, so the numbers are
//! there whether it passes or not.

use std::time::{Duration, Instant};

use romana_integration::chaos::{self, invariants, placement, Load, LoadSpec, Outcome, Run};
use romana_integration::{ControlPlane, EtcdServer};
use romana_proto::pb;

/// How long a call may take to fail while etcd has no quorum.
const FAIL_FAST: Duration = Duration::from_secs(2);
/// How long the load runs with the fault in place.
const FAULT_WINDOW: Duration = Duration::from_secs(5);
/// How long it runs after the fault is healed.
const HEALED_WINDOW: Duration = Duration::from_secs(4);

async fn mk_plane() -> ControlPlane {
    let plane = ControlPlane::builder()
        .etcd_members(3)
        .start()
        .await
        .expect("control plane on 3 etcd members");
    let channel = |kind: &'static str| {
        let root = plane.root_url();
        async move { romana_proto::discover::channel(&root, kind).await.unwrap() }
    };
    pb::root_client::RootClient::new(channel("root").await)
        .init_config(pb::InitConfigRequest {
            config: Some(pb::ClusterConfig {
                address_space: "10.0.0.0/8".into(),
                host_bits: 8,
                tenant_bits: 4,
                segment_bits: 4,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut topology = pb::topology_client::TopologyClient::new(channel("topology").await);
    for (name, ip) in [("h1", "192.168.0.11"), ("h2", "192.168.0.12")] {
        topology
            .add_host(pb::AddHostRequest {
                name: name.into(),
                ip: ip.into(),
                rack: None,
                second_ip: String::new(),
            })
            .await
            .unwrap();
    }
    pb::tenants_client::TenantsClient::new(channel("tenant").await)
        .add_tenant(pb::AddTenantRequest {
            name: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    plane
}

fn mk_load(plane: &ControlPlane) -> Load {
    Load::start(LoadSpec::new(
        plane.root_url(),
        vec![
            placement("h1", "t1", "default"),
            placement("h2", "t1", "default"),
        ],
    ))
}

/// Runs the load, injects `fault` on the members (returning what it did and the members it
/// touched), waits [`FAULT_WINDOW`], heals them with `heal`, waits [`HEALED_WINDOW`],
/// settles, and checks the invariants. Prints the summary line.
async fn under_load(
    name: &str,
    fault: impl FnOnce(&mut ControlPlane) -> (String, Vec<usize>),
    heal: impl Fn(&mut EtcdServer),
) -> (
    Run,
    invariants::Invariants,
    std::ops::Range<Duration>,
    String,
) {
    let mut plane = mk_plane().await;
    let load = mk_load(&plane);
    load.progress(200, Duration::from_secs(20)).await.unwrap();
    // A kill waits for the process to exit; calls it breaks may end before it returns, so
    // the fault is the whole span from just before it.
    let began = load.elapsed();
    let (what, members) = tokio::task::block_in_place(|| fault(&mut plane));
    let at = load.fault(&what);
    tokio::time::sleep(FAULT_WINDOW).await;
    let healed_at = load.fault("healed");
    let healed = Instant::now();
    tokio::task::block_in_place(|| {
        for i in &members {
            heal(plane.etcd_mut().member(*i));
        }
    });
    let heal_took = healed.elapsed();
    tokio::time::sleep(HEALED_WINDOW).await;
    let run = load.finish().await.unwrap();
    let inv = invariants::check(plane.store(), &run).await.unwrap();
    let recovered = first_success_after(&run, healed_at);
    let line = chaos::Summary::new(name)
        .load(&run)
        .field(
            "succeeded_during_fault",
            run.succeeded_between(at, healed_at),
        )
        .field("heal_took", chaos::secs(heal_took))
        .field(
            "first_success_after_heal",
            recovered.map_or("none".into(), chaos::secs),
        )
        .invariants(&inv)
        .field("reconverge", chaos::secs(run.failing_for(at)))
        .print();
    (run, inv, began..at, line)
}

/// How long after `at` the first call that started after it succeeded.
fn first_success_after(run: &Run, at: Duration) -> Option<Duration> {
    run.calls
        .iter()
        .filter(|c| c.start >= at && !c.outcome.is_failure())
        .map(|c| c.end - at)
        .min()
}

fn start_again(member: &mut EtcdServer) {
    member.start_again().expect("the member starts again");
}

fn resume(member: &mut EtcdServer) {
    member.resume().expect("the member resumes");
}

/// The target with one member down, and the invariants.
fn assert_one_member_down_target(
    run: &Run,
    inv: &invariants::Invariants,
    fault: &std::ops::Range<Duration>,
    line: &str,
) {
    // From just before the kill to when it returned: a call that the kill broke may end
    // before the kill returns.
    let in_flight = run.in_flight_during(fault);
    let failed: Vec<_> = run.failed().collect();
    assert!(
        failed.len() <= in_flight,
        "{} calls failed, more than the {in_flight} in flight at the fault; first: {:#?}\n{line}",
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        inv.hold(),
        "{line}\nviolations: {:#?}\nunresolved: {:?}",
        inv.violations,
        inv.unresolved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_an_etcd_follower_fails_at_most_the_calls_in_flight() {
    let (run, inv, fault, line) = under_load(
        "etcd-kill-follower",
        |plane| {
            let follower = plane.etcd().followers().unwrap()[0];
            plane.etcd_mut().member(follower).kill();
            (format!("kill -9 etcd follower {follower}"), vec![follower])
        },
        start_again,
    )
    .await;
    assert_one_member_down_target(&run, &inv, &fault, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_etcd_leader_fails_at_most_the_calls_in_flight() {
    let (run, inv, fault, line) = under_load(
        "etcd-kill-leader",
        |plane| {
            let leader = plane.etcd().wait_leader(Duration::from_secs(10)).unwrap();
            plane.etcd_mut().member(leader).kill();
            (format!("kill -9 etcd leader {leader}"), vec![leader])
        },
        start_again,
    )
    .await;
    assert_one_member_down_target(&run, &inv, &fault, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn freezing_an_etcd_follower_for_5s_fails_at_most_the_calls_in_flight() {
    let (run, inv, fault, line) = under_load(
        "etcd-sigstop-follower",
        |plane| {
            let follower = plane.etcd().followers().unwrap()[0];
            plane.etcd_mut().member(follower).pause().unwrap();
            (format!("SIGSTOP etcd follower {follower}"), vec![follower])
        },
        resume,
    )
    .await;
    assert_one_member_down_target(&run, &inv, &fault, &line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_etcd_members_down_calls_fail_fast_and_clearly_and_recover_with_the_quorum() {
    let (run, inv, fault, line) = under_load(
        "etcd-quorum-loss",
        |plane| {
            let leader = plane.etcd().wait_leader(Duration::from_secs(10)).unwrap();
            let follower = plane.etcd().followers().unwrap()[0];
            plane.etcd_mut().member(follower).kill();
            plane.etcd_mut().member(leader).kill();
            (
                format!("kill -9 etcd leader {leader} and follower {follower}"),
                vec![leader, follower],
            )
        },
        start_again,
    )
    .await;
    let healed_at = run.faults[1].at;
    // Calls that started once the survivor could know it has no leader (an election
    // timeout after the kill) and before the members came back.
    let lost = fault.end + Duration::from_secs(2);
    let during: Vec<_> = run
        .calls
        .iter()
        .filter(|c| c.start >= lost && c.start < healed_at)
        .collect();
    let slow: Vec<_> = during
        .iter()
        .filter(|c| c.outcome.is_failure() && c.end - c.start > FAIL_FAST)
        .collect();
    let unclear: Vec<_> = during
        .iter()
        .filter(|c| match &c.outcome {
            Outcome::Failed { code, message, .. } => {
                *code != tonic::Code::Unavailable || !message.contains("etcd")
            }
            _ => false,
        })
        .collect();
    let slowest = run.slowest_failure_between(lost, healed_at);
    println!(
        "etcd-quorum-loss: {} calls started without quorum, {} slower than {FAIL_FAST:?}, {} not UNAVAILABLE naming etcd; slowest: {slowest:?}",
        during.len(),
        slow.len(),
        unclear.len()
    );
    assert!(!during.is_empty(), "clients kept calling: {line}");
    assert!(
        slow.is_empty(),
        "{} calls took longer than {FAIL_FAST:?} to fail: {:#?}\n{line}",
        slow.len(),
        slow.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        unclear.is_empty(),
        "failures that do not say etcd is unavailable: {:#?}\n{line}",
        unclear.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        first_success_after(&run, healed_at).is_some(),
        "nothing succeeded after the quorum came back: {line}"
    );
    assert!(
        inv.hold(),
        "{line}\nviolations: {:#?}\nunresolved: {:?}",
        inv.violations,
        inv.unresolved
    );
}

/// The namespaced datacenter on the same 3-member etcd: the leader is killed, a policy
/// change made during the election must still reach every agent, and once the member is
/// back the next change too; each time every agent ends exactly as a fresh agent would.
#[test]
fn agents_follow_policy_changes_while_the_etcd_leader_is_killed() {
    use romana_integration::chaos::converge;
    use romana_integration::{cluster, eventually, require_netns, Cluster};
    require_netns!("nft", "ping");
    const CONVERGE: Duration = Duration::from_secs(20);
    async fn gate(c: &Cluster, ingress: &str) -> Option<i64> {
        let document = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: gate, namespace: t1}}\nspec:\n  podSelector: {{matchLabels: {{role: db}}}}\n  ingress: {ingress}\n"
        );
        let mut policies = c.policies().await.ok()?;
        let applied = policies
            .apply_policies(pb::ApplyPoliciesRequest {
                document,
                ..Default::default()
            })
            .await;
        Some(applied.ok()?.into_inner().revision)
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
    cluster()
        .racks(1)
        .hosts(2)
        .etcd_members(3)
        .run(|mut c| async move {
            c.tenants()
                .await?
                .add_tenant(pb::AddTenantRequest {
                    name: "t1".into(),
                    ..Default::default()
                })
                .await?;
            c.add_endpoint("a", "r0h0", "t1", "default").await?;
            c.add_endpoint("b", "r0h1", "t1", "default").await?;
            label(&c, "a", "web").await?;
            label(&c, "b", "db").await?;
            converge::all_converged(&c, Instant::now(), CONVERGE).await?;
            assert!(c.tcp("a", "b")?, "no policy yet");

            let leader = tokio::task::block_in_place(|| {
                let leader = c.plane.etcd().wait_leader(Duration::from_secs(10))?;
                c.plane.etcd_mut().member(leader).kill();
                anyhow::Ok(leader)
            })?;
            let killed = Instant::now();
            eventually(
                "the deny gate applied during the election",
                CONVERGE,
                || gate(&c, "[]"),
            )
            .await?;
            let applied_after = killed.elapsed();
            let during = converge::all_converged(&c, killed, CONVERGE).await?;
            assert!(!c.tcp("a", "b")?, "the deny gate is enforced");

            let restarted = tokio::task::block_in_place(|| {
                let started = Instant::now();
                c.plane.etcd_mut().member(leader).start_again()?;
                anyhow::Ok(started)
            })?;
            eventually("the web gate applied", CONVERGE, || {
                gate(&c, "[{from: [{podSelector: {matchLabels: {role: web}}}]}]")
            })
            .await?;
            let after = converge::all_converged(&c, restarted, CONVERGE).await?;
            assert!(c.tcp("a", "b")?, "web -> db once the gate allows it");
            chaos::Summary::new("agents-etcd-leader-kill")
                .field("faults", format!("[kill -9 etcd leader {leader}, restart]"))
                .field("policy_applied_after_kill", chaos::secs(applied_after))
                .field("agents_equal_fresh_after_kill", chaos::secs(during))
                .field("agents_equal_fresh_after_restart", chaos::secs(after))
                .field("traffic", "as policy says (3 checks)")
                .print();
            Ok(())
        })
        .unwrap();
}
