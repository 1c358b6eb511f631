//! romana-cni against a real control plane (etcd and the services in a lab's management
//! namespace) and real namespaces: the plugin runs inside a host namespace exactly as a
//! runtime runs it, and wires container namespaces.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use romana_core::datapath::endpoint_ifname;
use romana_integration::{eventually, require_netns, Lab, Netns};
use romana_proto::pb;
use serde_json::{json, Value};
use tokio::task::block_in_place;

/// A lab with host namespace `h1` attached, forwarding on.
fn mk_lab() -> (Lab, Netns, IpAddr) {
    let mut lab = Lab::new().unwrap();
    let host = Netns::create("h1").unwrap();
    let host_ip = lab.attach(&host).unwrap();
    host.sysctl("net.ipv4.ip_forward=1").unwrap();
    host.sysctl("net.ipv6.conf.all.forwarding=1").unwrap();
    (lab, host, host_ip)
}

fn mk_add(id: &str, ns: &Netns) -> Vec<(String, String)> {
    mk_vars("ADD", id, Some(&ns.path()), "")
}

fn ip(ns: &Netns, args: &[&str]) -> String {
    ns.ip(args).unwrap()
}

/// Routes `address` to endpoint `id`'s host link, as the host's agent does once it has
/// programmed the endpoint: the plugin leaves that route to the agent, and these tests
/// run without one.
fn route_as_the_agent(host: &Netns, address: &str, id: &str) {
    let dev = endpoint_ifname(id);
    let mut args = vec!["route", "replace", address, "dev", &dev, "proto", "124"];
    if !address.contains(':') {
        args.extend(["scope", "link"]);
    }
    ip(host, &args);
}

fn link_exists(ns: &Netns, name: &str) -> bool {
    ns.ip(&["link", "show", "dev", name]).is_ok()
}

#[test]
fn add_gives_a_routed_endpoint_that_reaches_another_through_the_host() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let (c1, c2) = (Netns::create("c1").unwrap(), Netns::create("c2").unwrap());
    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        let conf = mk_conf(&plane.root_url(), json!({"tenant": "t1", "segment": "s1"}));

        let result = cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok().json();
        println!(
            "ADD result:\n{}",
            serde_json::to_string_pretty(&result).unwrap()
        );
        let host_if = endpoint_ifname("ctr1:eth0");
        assert_eq!(result["cniVersion"], "1.0.0");
        assert_eq!(result["interfaces"][0]["name"], host_if.as_str());
        assert!(result["interfaces"][0].get("sandbox").is_none());
        assert_eq!(result["interfaces"][1]["name"], "eth0");
        assert_eq!(
            result["interfaces"][1]["sandbox"],
            c1.path().display().to_string()
        );
        for i in 0..2 {
            let mac = result["interfaces"][i]["mac"].as_str().unwrap();
            assert_eq!(mac.len(), 17, "{mac}");
        }
        assert_eq!(
            result["ips"],
            json!([{"address": "10.0.1.2/32", "gateway": "10.0.1.1", "interface": 1}])
        );
        assert_eq!(
            result["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "10.0.1.1"}])
        );

        // The container: its address, the gateway on-link, the default route via it.
        let addr = ip(&c1, &["-4", "-o", "addr", "show", "dev", "eth0"]);
        assert!(addr.contains("inet 10.0.1.2/32"), "{addr}");
        let routes = ip(&c1, &["-4", "route", "show"]);
        assert!(routes.contains("default via 10.0.1.1 dev eth0"), "{routes}");
        assert!(
            routes.contains("10.0.1.1 dev eth0 proto static scope link"),
            "{routes}"
        );
        let mac = ip(&c1, &["-o", "link", "show", "dev", "eth0"]);
        assert!(
            mac.contains(result["interfaces"][1]["mac"].as_str().unwrap()),
            "{mac}"
        );
        // The host: the gateway on the endpoint's link; no route to the endpoint yet, which
        // is the agent's to add once it has programmed the endpoint (fail closed).
        let haddr = ip(&host, &["-4", "-o", "addr", "show", "dev", &host_if]);
        assert!(haddr.contains("inet 10.0.1.1/32"), "{haddr}");
        let hroutes = ip(&host, &["-4", "route", "show", "proto", "124"]);
        assert!(!hroutes.contains("10.0.1.2"), "{hroutes}");

        let second = cni(&host, &conf, &mk_add("ctr2", &c2)).await.ok().json();
        assert_eq!(second["ips"][0]["address"], "10.0.1.3/32");
        route_as_the_agent(&host, "10.0.1.2", "ctr1:eth0");
        route_as_the_agent(&host, "10.0.1.3", "ctr2:eth0");

        // Routed through the host, no NAT: each side sees the other's own address.
        let seen = block_in_place(|| tcp_echo(&c1, &c2, "10.0.1.3".parse().unwrap())).unwrap();
        assert_eq!(seen, "10.0.1.2".parse::<IpAddr>().unwrap());
        let seen = block_in_place(|| tcp_echo(&c2, &c1, "10.0.1.2".parse().unwrap())).unwrap();
        assert_eq!(seen, "10.0.1.3".parse::<IpAddr>().unwrap());
        // The host itself reaches an endpoint, from the gateway address.
        let seen = block_in_place(|| tcp_echo(&host, &c1, "10.0.1.2".parse().unwrap())).unwrap();
        assert_eq!(seen, "10.0.1.1".parse::<IpAddr>().unwrap());

        let held = clients.endpoints().await;
        assert_eq!(held.len(), 2);
        assert_eq!(held[0].labels["cni.romana.io/network"], "romana");
    })
    .unwrap();
}

#[test]
fn retried_add_returns_the_same_address_and_check_passes() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let c1 = Netns::create("c1").unwrap();
    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        let conf = mk_conf(&plane.root_url(), json!({"tenant": "t1", "segment": "s1"}));

        let first = cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok().json();
        let again = cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok().json();
        assert_eq!(first, again, "a retried ADD reuses address and links");
        assert_eq!(clients.endpoint_ids().await, vec!["ctr1:eth0"]);

        let check_conf = mk_conf(
            &plane.root_url(),
            json!({"tenant": "t1", "segment": "s1", "prevResult": first}),
        );
        let check = mk_vars("CHECK", "ctr1", Some(&c1.path()), "");
        let ok = cni(&host, &check_conf, &check).await.ok();
        assert_eq!(ok.stdout, "", "CHECK prints nothing on success");

        // Break the container's default route: CHECK says so; ADD repairs it.
        ip(&c1, &["route", "del", "default"]);
        let err = cni(&host, &check_conf, &check).await.fails_with(120);
        println!("CHECK error: {err}");
        assert!(
            err["msg"]
                .as_str()
                .unwrap()
                .contains("no default route via 10.0.1.1 dev eth0"),
            "{err}"
        );
        let repaired = cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok().json();
        assert_eq!(repaired["ips"], first["ips"]);
        cni(&host, &check_conf, &check).await.ok();

        // A prevResult that does not list the address fails CHECK.
        let mut wrong = first.clone();
        wrong["ips"][0]["address"] = Value::from("10.0.1.99/32");
        let wrong_conf = mk_conf(
            &plane.root_url(),
            json!({"tenant": "t1", "segment": "s1", "prevResult": wrong}),
        );
        let err = cni(&host, &wrong_conf, &check).await.fails_with(120);
        assert!(err["msg"].as_str().unwrap().contains("prevResult"), "{err}");
    })
    .unwrap();
}

#[test]
fn del_removes_the_links_releases_the_address_and_is_idempotent() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let c1 = Netns::create("c1").unwrap();
    let c2 = Netns::create("c2").unwrap();
    let c2_path = c2.path();
    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        let conf = mk_conf(&plane.root_url(), json!({"tenant": "t1", "segment": "s1"}));
        cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok();
        cni(&host, &conf, &mk_add("ctr2", &c2)).await.ok();
        route_as_the_agent(&host, "10.0.1.2", "ctr1:eth0");
        route_as_the_agent(&host, "10.0.1.3", "ctr2:eth0");
        let (if1, if2) = (endpoint_ifname("ctr1:eth0"), endpoint_ifname("ctr2:eth0"));

        let del1 = mk_vars("DEL", "ctr1", Some(&c1.path()), "");
        let out = cni(&host, &conf, &del1).await.ok();
        assert_eq!(out.stdout, "");
        assert!(!link_exists(&host, &if1), "host link of ctr1 removed");
        assert!(!link_exists(&c1, "eth0"), "its peer went with it");
        assert_eq!(clients.endpoint_ids().await, vec!["ctr2:eth0"]);
        let hroutes = ip(&host, &["-4", "route", "show", "proto", "124"]);
        assert!(!hroutes.contains("10.0.1.2 "), "{hroutes}");
        // The gateway address is shared by endpoint links: removing one keeps the other's.
        let seen = block_in_place(|| tcp_echo(&host, &c2, "10.0.1.3".parse().unwrap())).unwrap();
        assert_eq!(seen, "10.0.1.1".parse::<IpAddr>().unwrap());

        cni(&host, &conf, &del1).await.ok();

        // The container is gone (its namespace too): DEL without CNI_NETNS still releases.
        // The kernel destroys the pair asynchronously, so DEL may or may not find the link.
        drop(c2);
        let del2 = mk_vars("DEL", "ctr2", None, "");
        cni(&host, &conf, &del2).await.ok();
        cni(&host, &conf, &del2).await.ok();
        assert!(clients.endpoint_ids().await.is_empty());
        eventually(
            "the host link of ctr2 to go",
            Duration::from_secs(10),
            || async { (!link_exists(&host, &if2)).then_some(()) },
        )
        .await
        .unwrap();
        assert!(!c2_path.exists());
    })
    .unwrap();
}

#[test]
fn errors_are_cni_json_with_spec_codes_and_leak_nothing() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let c1 = Netns::create("c1").unwrap();
    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        let root = plane.root_url();
        let add = mk_add("ctr1", &c1);

        let no_root = cni(&host, &mk_conf(&root, json!({"root": null})), &add)
            .await
            .fails_with(4);
        println!("bad config: {no_root}");
        assert!(no_root["msg"].as_str().unwrap().contains("\"root\""));
        let garbage = cni(&host, "{\"cniVersion\": \"1.0.0\",", &add)
            .await
            .fails_with(6);
        println!("undecodable config: {garbage}");
        let old = cni(&host, &mk_conf(&root, json!({"cniVersion": "0.2.0"})), &add)
            .await
            .fails_with(1);
        println!("unsupported version: {old}");

        let unknown = cni(&host, &mk_conf(&root, json!({"tenant": "nosuch"})), &add)
            .await
            .fails_with(101);
        println!("unknown tenant: {unknown}");
        assert!(
            unknown["msg"].as_str().unwrap().contains("nosuch"),
            "{unknown}"
        );

        let no_tenant = cni(&host, &mk_conf(&root, json!({})), &add)
            .await
            .fails_with(4);
        println!("no tenant: {no_tenant}");

        let missing_ns = mk_vars(
            "ADD",
            "ctr1",
            Some("/var/run/netns/rmn-no-such".as_ref()),
            "",
        );
        let gone = cni(&host, &mk_conf(&root, json!({"tenant": "t1"})), &missing_ns)
            .await
            .fails_with(3);
        println!("missing netns: {gone}");

        let mut no_ifname = add.clone();
        no_ifname.retain(|(k, _)| k != "CNI_IFNAME");
        let env = cni(&host, &mk_conf(&root, json!({"tenant": "t1"})), &no_ifname)
            .await
            .fails_with(7);
        println!("missing CNI_IFNAME: {env}");

        let half_a_pod = mk_vars("ADD", "ctr1", Some(&c1.path()), "K8S_POD_NAME=web-0");
        let pod = cni(&host, &mk_conf(&root, json!({"tenant": "t1"})), &half_a_pod)
            .await
            .fails_with(7);
        println!("pod name without namespace: {pod}");
        assert!(
            pod["msg"].as_str().unwrap().contains("K8S_POD_NAMESPACE"),
            "{pod}"
        );

        // Nothing of the above allocated an address or made a link.
        assert!(clients.endpoint_ids().await.is_empty());

        // The container already has an eth0 that is not ours: refused, and undone.
        c1.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
        ])
        .unwrap();
        let taken = cni(&host, &mk_conf(&root, json!({"tenant": "t1"})), &add)
            .await
            .fails_with(111);
        println!("interface taken: {taken}");
        assert!(clients.endpoint_ids().await.is_empty(), "address released");
        assert!(!link_exists(&host, &endpoint_ifname("ctr1:eth0")));

        // Root unreachable: try again later, on ADD and on DEL (which must not leak).
        let dead = "http://172.31.0.1:1";
        let unreachable = cni(&host, &mk_conf(dead, json!({"tenant": "t1"})), &add)
            .await
            .fails_with(11);
        println!("root unreachable: {unreachable}");
        let del = mk_vars("DEL", "ctr1", Some(&c1.path()), "");
        cni(&host, &mk_conf(dead, json!({})), &del)
            .await
            .fails_with(11);
    })
    .unwrap();
}

#[test]
fn tenant_segment_and_labels_come_from_cni_args() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let (c1, c2) = (Netns::create("c1").unwrap(), Netns::create("c2").unwrap());
    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        let conf = mk_conf(&plane.root_url(), json!({}));

        let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=t1;K8S_POD_NAME=web-0;\
                    K8S_POD_UID=5c3e0f6a-8d1b-4c2e-9a7f-0b1c2d3e4f50;\
                    K8S_POD_INFRA_CONTAINER_ID=ctr1;\
                    ROMANA_SEGMENT=s1;ROMANA_LABELS=app=web,tier=front";
        let r1 = cni(
            &host,
            &conf,
            &mk_vars("ADD", "ctr1", Some(&c1.path()), args),
        )
        .await
        .ok()
        .json();
        assert_eq!(r1["ips"][0]["address"], "10.0.1.2/32", "segment s1");
        let r2 = cni(
            &host,
            &conf,
            &mk_vars("ADD", "ctr2", Some(&c2.path()), "K8S_POD_NAMESPACE=t1"),
        )
        .await
        .ok()
        .json();
        assert_eq!(
            r2["ips"][0]["address"], "10.0.0.2/32",
            "the default segment"
        );

        let e = clients
            .ipam
            .get_endpoint(pb::GetEndpointRequest {
                endpoint: "ctr1:eth0".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (e.host.as_str(), e.tenant.as_str(), e.segment.as_str()),
            ("h1", "t1", "s1")
        );
        assert_eq!(e.labels["app"], "web");
        assert_eq!(e.labels["tier"], "front");
        assert_eq!(e.labels["cni.romana.io/network"], "romana");
        let pod = e.pod.expect("the runtime's pod is recorded");
        assert_eq!(
            (pod.namespace.as_str(), pod.name.as_str(), pod.uid.as_str()),
            ("t1", "web-0", "5c3e0f6a-8d1b-4c2e-9a7f-0b1c2d3e4f50")
        );
        assert_eq!(pod.infra_container_id, "ctr1");
        let e2 = clients
            .ipam
            .get_endpoint(pb::GetEndpointRequest {
                endpoint: "ctr2:eth0".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            e2.pod, None,
            "a namespace alone names the tenant, not a pod"
        );
    })
    .unwrap();
}

#[test]
fn status_is_ok_while_ipam_answers_and_the_agent_is_up_and_code_50_otherwise() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    lab.run(|| async {
        let (plane, _) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        let status = vec![("CNI_COMMAND".to_string(), "STATUS".to_string())];
        let conf = mk_conf(&plane.root_url(), json!({"cniVersion": "1.1.0"}));
        // No agent has reported for h1: an endpoint added now would stay closed.
        let err = cni(&host, &conf, &status).await.fails_with(50);
        assert!(
            err["msg"]
                .as_str()
                .unwrap()
                .contains("agent of host h1 has not reported"),
            "{err}"
        );
        // The agent's status record, as a running agent writes it (the real agent's
        // heartbeat is covered by the integration tests).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let write = |converged: bool, alive_at: u64| {
            let store = plane.store().clone();
            async move {
                let record = romana_core::AgentStatus {
                    host: "h1".into(),
                    converged,
                    alive_at,
                    applied_at: alive_at,
                    ..Default::default()
                };
                store
                    .put(&store.keys().agent_status("h1"), &record)
                    .await
                    .unwrap();
            }
        };
        write(true, now).await;
        let out = cni(&host, &conf, &status).await.ok();
        assert_eq!(out.stdout, "");
        write(false, now).await;
        let err = cni(&host, &conf, &status).await.fails_with(50);
        assert!(
            err["msg"].as_str().unwrap().contains("not converged"),
            "{err}"
        );
        write(true, now - 600).await;
        let err = cni(&host, &conf, &status).await.fails_with(50);
        assert!(
            err["msg"]
                .as_str()
                .unwrap()
                .contains("is romana-agent running"),
            "{err}"
        );

        let dead = mk_conf("http://172.31.0.1:1", json!({"cniVersion": "1.1.0"}));
        let err = cni(&host, &dead, &status).await.fails_with(50);
        println!("STATUS unavailable: {err}");
        assert_eq!(err["cniVersion"], "1.1.0");

        let version = vec![("CNI_COMMAND".to_string(), "VERSION".to_string())];
        let info = cni(&host, r#"{"cniVersion": "1.0.0"}"#, &version)
            .await
            .ok()
            .json();
        assert_eq!(
            info,
            json!({"cniVersion": "1.0.0",
                   "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
    })
    .unwrap();
}

#[test]
fn gc_collects_this_networks_endpoints_that_are_not_valid_attachments() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let (c1, c2) = (Netns::create("c1").unwrap(), Netns::create("c2").unwrap());
    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        let conf = mk_conf(
            &plane.root_url(),
            json!({"cniVersion": "1.1.0", "tenant": "t1"}),
        );
        cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok();
        cni(&host, &conf, &mk_add("ctr2", &c2)).await.ok();
        // Endpoints GC must leave alone: another network's, and one not made by CNI.
        for (id, labels) in [
            ("ctr9:eth0", [("cni.romana.io/network", "other")].as_slice()),
            ("neutron-port-1", [].as_slice()),
        ] {
            clients
                .ipam
                .allocate(pb::AllocateRequest {
                    endpoint: id.into(),
                    host: "h1".into(),
                    tenant: "t1".into(),
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }

        let gc_conf = mk_conf(
            &plane.root_url(),
            json!({"cniVersion": "1.1.0", "tenant": "t1",
                   "cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "eth0"}]}),
        );
        let gc = vec![("CNI_COMMAND".to_string(), "GC".to_string())];
        let out = cni(&host, &gc_conf, &gc).await.ok();
        assert_eq!(out.stdout, "");
        assert_eq!(
            clients.endpoint_ids().await,
            vec!["ctr1:eth0", "ctr9:eth0", "neutron-port-1"]
        );
        assert!(link_exists(&host, &endpoint_ifname("ctr1:eth0")));
        assert!(!link_exists(&host, &endpoint_ifname("ctr2:eth0")));
        assert!(!link_exists(&c2, "eth0"));
        cni(&host, &gc_conf, &gc).await.ok();

        // Without the list GC refuses rather than collecting everything.
        let err = cni(&host, &conf, &gc).await.fails_with(4);
        assert!(err["msg"].as_str().unwrap().contains("valid-attachments"));
        assert_eq!(clients.endpoint_ids().await.len(), 3);
    })
    .unwrap();
}

#[test]
fn ipv6_endpoints_get_128s_and_reach_each_other_through_the_host() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let (c1, c2) = (Netns::create("c1").unwrap(), Netns::create("c2").unwrap());
    lab.run(|| async {
        let (plane, _) = mk_plane(&lab, "fd00:10::/48", host_ip).await;
        let conf = mk_conf(
            &plane.root_url(),
            json!({"cniVersion": "0.4.0", "tenant": "t1"}),
        );
        let r1 = cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok().json();
        println!(
            "ADD result (0.4.0, IPv6):\n{}",
            serde_json::to_string_pretty(&r1).unwrap()
        );
        assert_eq!(r1["cniVersion"], "0.4.0");
        assert_eq!(
            r1["ips"],
            json!([{"version": "6", "address": "fd00:10::2/128",
                    "gateway": "fd00:10::1", "interface": 1}])
        );
        assert_eq!(r1["routes"], json!([{"dst": "::/0", "gw": "fd00:10::1"}]));
        cni(&host, &conf, &mk_add("ctr2", &c2)).await.ok();
        route_as_the_agent(&host, "fd00:10::2", "ctr1:eth0");
        route_as_the_agent(&host, "fd00:10::3", "ctr2:eth0");

        let routes = ip(&c1, &["-6", "route", "show"]);
        assert!(
            routes.contains("default via fd00:10::1 dev eth0"),
            "{routes}"
        );
        let seen = block_in_place(|| tcp_echo(&c1, &c2, "fd00:10::3".parse().unwrap())).unwrap();
        assert_eq!(seen, "fd00:10::2".parse::<IpAddr>().unwrap());

        let check_conf = mk_conf(
            &plane.root_url(),
            json!({"cniVersion": "0.4.0", "tenant": "t1", "prevResult": r1}),
        );
        cni(
            &host,
            &check_conf,
            &mk_vars("CHECK", "ctr1", Some(&c1.path()), ""),
        )
        .await
        .ok();
    })
    .unwrap();
}

#[test]
fn dual_stack_endpoints_get_an_address_of_each_family_and_reach_each_other_over_both() {
    require_netns!();
    let (lab, host, host_ip) = mk_lab();
    let (c1, c2) = (Netns::create("c1").unwrap(), Netns::create("c2").unwrap());
    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8,fd00:10::/48", host_ip).await;
        let conf = mk_conf(&plane.root_url(), json!({"tenant": "t1"}));
        let r1 = cni(&host, &conf, &mk_add("ctr1", &c1)).await.ok().json();
        println!(
            "ADD result (dual-stack):\n{}",
            serde_json::to_string_pretty(&r1).unwrap()
        );
        assert_eq!(
            r1["ips"],
            json!([{"address": "10.0.0.2/32", "gateway": "10.0.0.1", "interface": 1},
                   {"address": "fd00:10::2/128", "gateway": "fd00:10::1", "interface": 1}])
        );
        assert_eq!(
            r1["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "::/0", "gw": "fd00:10::1"}])
        );
        cni(&host, &conf, &mk_add("ctr2", &c2)).await.ok();
        for (address, id) in [
            ("10.0.0.2", "ctr1:eth0"),
            ("10.0.0.3", "ctr2:eth0"),
            ("fd00:10::2", "ctr1:eth0"),
            ("fd00:10::3", "ctr2:eth0"),
        ] {
            route_as_the_agent(&host, address, id);
        }
        let host_side = ip(
            &host,
            &["addr", "show", "dev", &endpoint_ifname("ctr1:eth0")],
        );
        assert!(
            host_side.contains("10.0.0.1/32") && host_side.contains("fd00:10::1/128"),
            "both gateways on the host side: {host_side}"
        );
        for (to, from) in [("10.0.0.3", "10.0.0.2"), ("fd00:10::3", "fd00:10::2")] {
            let seen = block_in_place(|| tcp_echo(&c1, &c2, to.parse().unwrap())).unwrap();
            assert_eq!(seen, from.parse::<IpAddr>().unwrap(), "over {to}");
        }

        let check_conf = mk_conf(&plane.root_url(), json!({"tenant": "t1", "prevResult": r1}));
        let check = mk_vars("CHECK", "ctr1", Some(&c1.path()), "");
        cni(&host, &check_conf, &check).await.ok();
        // The IPv6 default route gone: CHECK names it.
        ip(&c1, &["-6", "route", "del", "default"]);
        let broken = cni(&host, &check_conf, &check).await.fails_with(120);
        assert!(
            broken["details"]
                .as_str()
                .unwrap_or_default()
                .contains("via fd00:10::1")
                || broken["msg"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("via fd00:10::1"),
            "{broken}"
        );

        let del = mk_vars("DEL", "ctr1", Some(&c1.path()), "");
        cni(&host, &conf, &del).await.ok();
        assert_eq!(clients.endpoint_ids().await, vec!["ctr2:eth0"]);
    })
    .unwrap();
}
