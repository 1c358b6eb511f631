//! ListEndpoints against real etcd: filters by host, tenant, segment and labels, read from
//! the narrowest index, and pages that together give every match exactly once.

mod common;

use std::collections::BTreeMap;

use common::*;
use romana_proto::pb;
use tonic::Code;

fn ids(r: &pb::ListEndpointsResponse) -> Vec<&str> {
    r.endpoints.iter().map(|e| e.id.as_str()).collect()
}

fn filter(host: &str, tenant: &str, segment: &str) -> pb::ListEndpointsRequest {
    pb::ListEndpointsRequest {
        host: host.into(),
        tenant: tenant.into(),
        segment: segment.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_by_host_tenant_segment_and_labels_in_id_order() {
    let (_plane, mut c) = mk_ipam_cluster().await;
    for (id, host, seg, app) in [
        ("e3", "h2", "web", "shop"),
        ("e1", "h1", "web", "shop"),
        ("e2", "h1", "default", "db"),
    ] {
        let mut req = mk_alloc(id, host, "t", seg);
        req.labels = [("app".to_string(), app.to_string())].into();
        c.ipam.allocate(req).await.unwrap();
    }
    let list = |req: pb::ListEndpointsRequest| {
        let mut ipam = c.ipam.clone();
        async move { ipam.list_endpoints(req).await.unwrap().into_inner() }
    };
    assert_eq!(ids(&list(filter("", "", "")).await), ["e1", "e2", "e3"]);
    assert_eq!(ids(&list(filter("h1", "", "")).await), ["e1", "e2"]);
    // A segment name alone matches it in every tenant.
    assert_eq!(ids(&list(filter("", "", "web")).await), ["e1", "e3"]);
    assert_eq!(ids(&list(filter("", "t", "web")).await), ["e1", "e3"]);
    assert_eq!(ids(&list(filter("h2", "t", "web")).await), ["e3"]);
    // By tenant only: segment, then id.
    assert_eq!(ids(&list(filter("", "t", "")).await), ["e2", "e1", "e3"]);
    assert!(list(filter("", "other", "")).await.endpoints.is_empty());
    let by_label = pb::ListEndpointsRequest {
        labels: BTreeMap::from([("app".to_string(), "shop".to_string())])
            .into_iter()
            .collect(),
        ..Default::default()
    };
    assert_eq!(ids(&list(by_label).await), ["e1", "e3"]);

    let one = c
        .ipam
        .get_endpoint(pb::GetEndpointRequest {
            endpoint: "e3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.address, "10.1.1.2");
    assert_status(
        c.ipam
            .get_endpoint(pb::GetEndpointRequest {
                endpoint: "nope".into(),
            })
            .await,
        Code::NotFound,
        "endpoint nope",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_give_every_match_once_with_any_filter() {
    let (_plane, mut c) = mk_ipam_cluster().await;
    // 11 endpoints: odd ones on h1, even ones on h2, every third in segment web.
    let mut expected: Vec<(String, String, String)> = Vec::new();
    for i in 0..11 {
        let id = format!("e{i:02}");
        let host = if i % 2 == 1 { "h1" } else { "h2" };
        let seg = if i % 3 == 0 { "web" } else { "default" };
        c.ipam
            .allocate(mk_alloc(&id, host, "t", seg))
            .await
            .unwrap();
        expected.push((id, host.into(), seg.into()));
    }
    for (host, tenant, segment) in [
        ("", "", ""),
        ("h1", "", ""),
        ("", "t", ""),
        ("", "t", "web"),
        ("h2", "t", "default"),
    ] {
        let mut want: Vec<&str> = expected
            .iter()
            .filter(|(_, h, s)| {
                (host.is_empty() || h == host) && (segment.is_empty() || s == segment)
            })
            .map(|(id, _, _)| id.as_str())
            .collect();
        let mut got = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = c
                .ipam
                .list_endpoints(pb::ListEndpointsRequest {
                    page_size: 3,
                    page_token: token,
                    ..filter(host, tenant, segment)
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.endpoints.len() <= 3, "a page holds at most page_size");
            got.extend(page.endpoints.into_iter().map(|e| e.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
            assert!(pages < 20, "the listing must end");
        }
        want.sort();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, want, "filter {host:?} {tenant:?} {segment:?}");
        assert_eq!(got.len(), want.len(), "no endpoint twice");
        assert!(
            pages >= want.len().div_ceil(3),
            "{} matches came in {pages} pages of 3",
            want.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_page_size_or_token_is_invalid_argument() {
    let (_plane, mut c) = mk_ipam_cluster().await;
    assert_status(
        c.ipam
            .list_endpoints(pb::ListEndpointsRequest {
                page_size: 5001,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "page_size 5001",
    );
    for token in ["a/b/c", "x\0", "x y", "/x"] {
        assert_status(
            c.ipam
                .list_endpoints(pb::ListEndpointsRequest {
                    page_token: token.into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "page_token",
        );
    }
}
