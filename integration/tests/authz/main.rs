//! Authorization end to end: the real services over mutual TLS on a real etcd, called with
//! certificates made by `romanactl certs`. For each role a table of calls: what it may do
//! succeeds, lists show only what it may read, and every refusal is PERMISSION_DENIED with a
//! message naming the role and the object, and leaves etcd's revision where it was.

mod calls;
mod no_identity;
mod plane;
mod watch;

use calls::Call;
use plane::MtlsPlane;
use tonic::Code;

/// What a call must answer.
enum Want {
    Ok,
    /// A list showing exactly these names.
    Names(&'static [&'static str]),
    /// PERMISSION_DENIED with exactly this message.
    Denied(&'static str),
}
use Want::{Denied, Names, Ok};

const IDENTITIES: [&str; 6] = [
    "admin",
    "reader",
    "tenant:t1",
    "tenant:t2",
    "host:h1",
    "host:h2",
];

/// Hosts h1 (index 0) and h2 (index 1); tenants t1 (0) and t2 (1) with segments `default`
/// and s1; endpoints e1 (t1 on h1), e2 (t2 on h2), e3 (t1 on h2); policies t1/np1, t2/np2
/// and the Romana-form p1. Addresses follow: 10.<host>.<tenant*16+segment>.<n>.
async fn seeded() -> MtlsPlane {
    let plane = MtlsPlane::start(&IDENTITIES).await;
    let admin = plane.clients("admin").await;
    for call in [
        Call::InitConfig,
        Call::AddHost("h1", "192.168.0.1"),
        Call::AddHost("h2", "192.168.0.2"),
        Call::AddTenant("t1"),
        Call::AddTenant("t2"),
        Call::AddSegment("t1", "s1"),
        Call::AddSegment("t2", "s1"),
        Call::Allocate("e1", "h1", "t1"),
        Call::Allocate("e2", "h2", "t2"),
        Call::Allocate("e3", "h2", "t1"),
        Call::ApplyK8s(vec![("t1", "np1"), ("t2", "np2")]),
        Call::ApplyRomana("p1"),
    ] {
        call.run(&admin)
            .await
            .unwrap_or_else(|e| panic!("seeding {call:?}: {e}"));
    }
    let keys = plane.store.keys();
    for (id, address) in [("e1", "10.0.0.2"), ("e2", "10.1.16.2"), ("e3", "10.1.0.2")] {
        let e = plane.store.get(&keys.endpoint(id)).await.unwrap().unwrap();
        assert_eq!(e.value.address.to_string(), address, "{id}");
    }
    plane
}

/// Runs `table` as `cn`, in order.
async fn check(plane: &MtlsPlane, cn: &str, table: Vec<(Call, Want)>) {
    let clients = plane.clients(cn).await;
    for (call, want) in table {
        let before = plane.revision().await;
        let result = call.run(&clients).await;
        match want {
            Ok => {
                result.unwrap_or_else(|e| panic!("{cn} {call:?}: expected success, got {e:?}"));
            }
            Names(names) => {
                let got = result.unwrap_or_else(|e| panic!("{cn} {call:?}: {e:?}"));
                assert_eq!(got, names, "{cn} {call:?}: what the list shows");
            }
            Denied(message) => {
                let err = match result {
                    Err(e) => e,
                    Result::Ok(v) => panic!("{cn} {call:?}: expected a refusal, got {v:?}"),
                };
                assert_eq!(err.code(), Code::PermissionDenied, "{cn} {call:?}: {err:?}");
                assert_eq!(err.message(), message, "{cn} {call:?}");
                assert!(message.starts_with(&format!("{cn} may not ")), "{message}");
                assert_eq!(
                    plane.revision().await,
                    before,
                    "{cn} {call:?}: a refusal changed etcd (is_change: {})",
                    call.is_change()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_may_do_everything() {
    let plane = seeded().await;
    let table = vec![
        (Call::InitConfig, Ok),
        (Call::AddHost("h9", "192.168.0.9"), Ok),
        (Call::RemoveHost("h9"), Ok),
        (Call::AddTenant("t9"), Ok),
        (Call::UpdateTenantIsolation("t9"), Ok),
        (Call::RemoveTenant("t9"), Ok),
        (Call::AllocateAt("e10", "10.0.0.50"), Ok),
        (Call::ListEndpoints, Names(&["e1", "e10", "e2", "e3"])),
        (Call::ReleaseAddress("10.0.0.50"), Ok),
        (Call::ApplyRomana("p9"), Ok),
        (Call::DeletePolicy("p9"), Ok),
        (Call::ListTenants, Names(&["t1", "t2"])),
        (Call::ListPolicies, Names(&["p1", "t1/np1", "t2/np2"])),
        (Call::Explain("e1", "e2"), Ok),
        (Call::ListHostStatus, Names(&["h1", "h2"])),
    ];
    check(&plane, "admin", table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reader_reads_everything_and_changes_nothing() {
    let plane = seeded().await;
    let table = vec![
        (Call::GetConfig, Ok),
        (
            Call::ListServices,
            Names(&["ipam", "policy", "root", "tenant", "topology"]),
        ),
        (Call::GetHost("h1"), Ok),
        (Call::ListHosts, Names(&["h1", "h2"])),
        (Call::GetFabric, Ok),
        (Call::GetHostStatus("h2"), Ok),
        (Call::GetTenant("t2"), Ok),
        (Call::ListTenants, Names(&["t1", "t2"])),
        (
            Call::ListSegments(""),
            Names(&["t1/default", "t1/s1", "t2/default", "t2/s1"]),
        ),
        (Call::GetEndpoint("e2"), Ok),
        (Call::ListEndpoints, Names(&["e1", "e2", "e3"])),
        (Call::GetPolicy("p1"), Ok),
        (Call::GetPolicy("t2/np2"), Ok),
        (Call::Explain("e1", "e2"), Ok),
        (
            Call::InitConfig,
            Denied("reader may not update the cluster config"),
        ),
        (
            Call::AddHost("h9", "192.168.0.9"),
            Denied("reader may not create host h9"),
        ),
        (
            Call::RemoveHost("h1"),
            Denied("reader may not delete host h1"),
        ),
        (
            Call::AddTenant("t9"),
            Denied("reader may not create tenant t9"),
        ),
        (
            Call::UpdateTenantLabels("t1"),
            Denied("reader may not update tenant t1"),
        ),
        (
            Call::RemoveTenant("t2"),
            Denied("reader may not delete tenant t2"),
        ),
        (
            Call::AddSegment("t1", "s9"),
            Denied("reader may not create segment t1/s9"),
        ),
        (
            Call::RemoveSegment("t1", "s1"),
            Denied("reader may not delete segment t1/s1"),
        ),
        (
            Call::Allocate("e9", "h1", "t1"),
            Denied("reader may not allocate endpoint e9 (tenant t1, host h1)"),
        ),
        (
            Call::Release("e1"),
            Denied("reader may not release endpoint e1 (tenant t1, host h1)"),
        ),
        (
            Call::UpdateEndpoint("e1"),
            Denied("reader may not update endpoint e1 (tenant t1, host h1)"),
        ),
        (
            Call::ApplyK8s(vec![("t1", "np9")]),
            Denied("reader may not apply policy t1/np9"),
        ),
        (
            Call::ApplyRomana("p9"),
            Denied("reader may not apply Romana-form policy p9"),
        ),
        (
            Call::DeletePolicy("p1"),
            Denied("reader may not delete Romana-form policy p1"),
        ),
    ];
    check(&plane, "reader", table).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_works_on_its_own_objects_only() {
    let plane = seeded().await;
    let table = vec![
        (Call::GetConfig, Ok),
        (Call::GetTenant("t1"), Ok),
        (Call::UpdateTenantLabels("t1"), Ok),
        (Call::ListTenants, Names(&["t1"])),
        (Call::AddSegment("t1", "s9"), Ok),
        (
            Call::ListSegments("t1"),
            Names(&["t1/default", "t1/s1", "t1/s9"]),
        ),
        (
            Call::ListSegments(""),
            Names(&["t1/default", "t1/s1", "t1/s9"]),
        ),
        (Call::RemoveSegment("t1", "s9"), Ok),
        // A tenant's endpoints may live on any host.
        (Call::Allocate("e9", "h2", "t1"), Ok),
        (Call::GetEndpoint("e9"), Ok),
        (Call::UpdateEndpoint("e9"), Ok),
        (Call::ListEndpoints, Names(&["e1", "e3", "e9"])),
        (Call::Release("e9"), Ok),
        (Call::ApplyK8s(vec![("t1", "np9")]), Ok),
        (Call::GetPolicy("t1/np9"), Ok),
        (Call::ListPolicies, Names(&["t1/np1", "t1/np9"])),
        (Call::DeletePolicy("t1/np9"), Ok),
        (Call::Explain("e1", "e3"), Ok),
        (Call::ListHosts, Names(&[])),
        (Call::ListHostStatus, Names(&[])),
        (
            Call::GetTenant("t2"),
            Denied("tenant:t1 may not read tenant t2"),
        ),
        (
            Call::UpdateTenantLabels("t2"),
            Denied("tenant:t1 may not update tenant t2"),
        ),
        (
            Call::UpdateTenantIsolation("t1"),
            Denied("tenant:t1 may not update the isolation of tenant t1"),
        ),
        (
            Call::AddTenant("t9"),
            Denied("tenant:t1 may not create tenant t9"),
        ),
        (
            Call::RemoveTenant("t1"),
            Denied("tenant:t1 may not delete tenant t1"),
        ),
        (
            Call::AddSegment("t2", "s9"),
            Denied("tenant:t1 may not create segment t2/s9"),
        ),
        (
            Call::RemoveSegment("t2", "s1"),
            Denied("tenant:t1 may not delete segment t2/s1"),
        ),
        (
            Call::ListSegments("t2"),
            Denied("tenant:t1 may not read tenant t2"),
        ),
        (
            Call::Allocate("e8", "h1", "t2"),
            Denied("tenant:t1 may not allocate endpoint e8 (tenant t2, host h1)"),
        ),
        (
            Call::Release("e2"),
            Denied("tenant:t1 may not release endpoint e2 (tenant t2, host h2)"),
        ),
        (
            Call::ReleaseAddress("10.1.16.2"),
            Denied("tenant:t1 may not release endpoint e2 (tenant t2, host h2)"),
        ),
        (
            Call::UpdateEndpoint("e2"),
            Denied("tenant:t1 may not update endpoint e2 (tenant t2, host h2)"),
        ),
        (
            Call::GetEndpoint("e2"),
            Denied("tenant:t1 may not read endpoint e2 (tenant t2, host h2)"),
        ),
        (
            Call::ApplyK8s(vec![("t2", "np9")]),
            Denied("tenant:t1 may not apply policy t2/np9"),
        ),
        // All or nothing: its own policy in the same apply is not written either.
        (
            Call::ApplyK8s(vec![("t1", "np8"), ("t2", "np8")]),
            Denied("tenant:t1 may not apply policy t2/np8"),
        ),
        (
            Call::ApplyRomana("p9"),
            Denied("tenant:t1 may not apply Romana-form policy p9"),
        ),
        (
            Call::GetPolicy("p1"),
            Denied("tenant:t1 may not read Romana-form policy p1"),
        ),
        (
            Call::DeletePolicy("t2/np2"),
            Denied("tenant:t1 may not delete policy t2/np2"),
        ),
        (
            Call::Explain("e1", "e2"),
            Denied(
                "tenant:t1 may not read a verdict from an endpoint of tenant t1 \
                 to an endpoint of tenant t2",
            ),
        ),
        (
            Call::Explain("e1", "192.0.2.1"),
            Denied(
                "tenant:t1 may not read a verdict from an endpoint of tenant t1 \
                 to an address outside any endpoint",
            ),
        ),
        (
            Call::GetHost("h1"),
            Denied("tenant:t1 may not read host h1"),
        ),
        (Call::GetFabric, Denied("tenant:t1 may not read the fabric")),
        (
            Call::GetHostStatus("h1"),
            Denied("tenant:t1 may not read the status of host h1"),
        ),
        (
            Call::AddHost("h9", "192.168.0.9"),
            Denied("tenant:t1 may not create host h9"),
        ),
        (
            Call::InitConfig,
            Denied("tenant:t1 may not update the cluster config"),
        ),
    ];
    check(&plane, "tenant:t1", table).await;
    // The refused mixed apply left no trace of its allowed half.
    let admin = plane.clients("admin").await;
    let err = Call::GetPolicy("t1/np8").run(&admin).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_works_on_the_endpoints_it_holds() {
    let plane = seeded().await;
    let table = vec![
        (Call::GetConfig, Ok),
        (
            Call::ListServices,
            Names(&["ipam", "policy", "root", "tenant", "topology"]),
        ),
        (Call::GetHost("h2"), Ok),
        (Call::ListHosts, Names(&["h1", "h2"])),
        (Call::GetFabric, Ok),
        (Call::GetTenant("t2"), Ok),
        (Call::ListTenants, Names(&["t1", "t2"])),
        (
            Call::ListSegments(""),
            Names(&["t1/default", "t1/s1", "t2/default", "t2/s1"]),
        ),
        (Call::GetHostStatus("h1"), Ok),
        (Call::ListHostStatus, Names(&["h1"])),
        // Any tenant's endpoint, on this host: by names, and by address as Neutron asks.
        (Call::Allocate("e7", "h1", "t2"), Ok),
        (Call::AllocateAt("e6", "10.0.0.50"), Ok),
        (Call::UpdateEndpoint("e7"), Ok),
        (Call::GetEndpoint("e7"), Ok),
        (Call::ListEndpoints, Names(&["e1", "e6", "e7"])),
        (Call::Release("e7"), Ok),
        (Call::ReleaseAddress("10.0.0.50"), Ok),
        (
            Call::Allocate("e5", "h2", "t1"),
            Denied("host:h1 may not allocate endpoint e5 (tenant t1, host h2)"),
        ),
        (
            Call::AllocateAt("e5", "10.1.0.50"),
            Denied("host:h1 may not allocate endpoint e5 (tenant t1, host h2)"),
        ),
        (
            Call::Release("e2"),
            Denied("host:h1 may not release endpoint e2 (tenant t2, host h2)"),
        ),
        (
            Call::UpdateEndpoint("e3"),
            Denied("host:h1 may not update endpoint e3 (tenant t1, host h2)"),
        ),
        (
            Call::GetEndpoint("e2"),
            Denied("host:h1 may not read endpoint e2 (tenant t2, host h2)"),
        ),
        (
            Call::GetHostStatus("h2"),
            Denied("host:h1 may not read the status of host h2"),
        ),
        (
            Call::AddHost("h9", "192.168.0.9"),
            Denied("host:h1 may not create host h9"),
        ),
        (
            Call::RemoveHost("h1"),
            Denied("host:h1 may not delete host h1"),
        ),
        (
            Call::UpdateTenantLabels("t1"),
            Denied("host:h1 may not update tenant t1"),
        ),
        (
            Call::AddSegment("t1", "s9"),
            Denied("host:h1 may not create segment t1/s9"),
        ),
        (
            Call::AddTenant("t9"),
            Denied("host:h1 may not create tenant t9"),
        ),
        (
            Call::ApplyK8s(vec![("t1", "np9")]),
            Denied("host:h1 may not apply policy t1/np9"),
        ),
        (
            Call::GetPolicy("t1/np1"),
            Denied("host:h1 may not read policy t1/np1"),
        ),
        (
            Call::Explain("e1", "e3"),
            Denied(
                "host:h1 may not read a verdict from an endpoint of tenant t1 \
                 to an endpoint of tenant t1",
            ),
        ),
        (
            Call::InitConfig,
            Denied("host:h1 may not update the cluster config"),
        ),
    ];
    check(&plane, "host:h1", table).await;
}
