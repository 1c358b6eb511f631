//! `romanactl status`: the layout, the registered services and how much the cluster holds.
//!
//! Status is what one runs when something is broken, so only a root that cannot be reached
//! or does not answer fails it (exit 1); anything else it cannot learn (a service not
//! registered, etcd down behind one) is listed under `problems`, the rest is still shown,
//! and it exits 0. Scripts that want health should test `problems` in `-o json`.

use clap::Args;
use romana_proto::pb;

use super::Ctx;
use crate::output;
use crate::{view, Error, Format};

#[derive(Debug, Args)]
pub struct Status {}

// === impl Status ===

impl Status {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        let mut root = ctx.root().await?;
        let mut problems = Vec::new();

        // Before `config init` root answers NOT_FOUND or FAILED_PRECONDITION with a message
        // that says what to run, and with etcd down UNAVAILABLE: problems to show. A root
        // that does not answer at all, or is not a root, leaves nothing to report.
        let config = match root.get_config(pb::GetConfigRequest {}).await {
            Ok(c) => Some(view::Config::from(c.into_inner())),
            Err(s) if is_fatal(&s) => return Err(s.into()),
            Err(s) => {
                problems.push(format!("layout: {}", Error::from(s).line()));
                None
            }
        };
        let services = match root.list_services(pb::ListServicesRequest::default()).await {
            Ok(list) => list
                .into_inner()
                .services
                .into_iter()
                .map(view::Service::from)
                .collect(),
            Err(s) => {
                problems.push(format!("services: {}", Error::from(s).line()));
                Vec::new()
            }
        };

        // Concurrently, so that three unreachable services cost one connect timeout.
        let (hosts, (tenants, segments), endpoints) =
            tokio::join!(count_hosts(ctx), count_tenants(ctx), count_endpoints(ctx));
        let mut counts = view::Counts::default();
        let mut failed: Vec<(&str, String)> = Vec::new();
        for (what, result, slot) in [
            ("hosts", hosts, &mut counts.hosts),
            ("tenants", tenants, &mut counts.tenants),
            ("segments", segments, &mut counts.segments),
            ("endpoints", endpoints, &mut counts.endpoints),
        ] {
            match result {
                Ok(n) => *slot = Some(n),
                Err(cause) => failed.push((what, cause)),
            }
        }
        problems.extend(merge_causes(failed));

        let status = view::Status {
            root: ctx.root.clone(),
            config,
            services,
            counts,
            problems,
        };
        match ctx.format {
            Format::Table => Ok(table(&status)),
            format => output::encode(&status, format),
        }
    }
}

fn is_fatal(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Cancelled | Code::DeadlineExceeded | Code::Unimplemented | Code::Unknown
    )
}

async fn count_hosts(ctx: &Ctx) -> Result<u64, String> {
    let hosts = async {
        let mut client = ctx.topology().await?;
        Ok::<_, Error>(client.list_hosts(pb::ListHostsRequest::default()).await?)
    };
    let hosts = hosts.await.map_err(|e| e.line())?;
    Ok(hosts.into_inner().hosts.len() as u64)
}

/// Tenants and segments, from one connection to tenant-service.
async fn count_tenants(ctx: &Ctx) -> (Result<u64, String>, Result<u64, String>) {
    let mut client = match ctx.tenants().await {
        Ok(c) => c,
        Err(e) => return (Err(e.line()), Err(e.line())),
    };
    let tenants = client
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .map(|r| r.into_inner().tenants.len() as u64)
        .map_err(|s| Error::from(s).line());
    let segments = client
        .list_segments(pb::ListSegmentsRequest::default())
        .await
        .map(|r| r.into_inner().segments.len() as u64)
        .map_err(|s| Error::from(s).line());
    (tenants, segments)
}

async fn count_endpoints(ctx: &Ctx) -> Result<u64, String> {
    let endpoints = async {
        let client = ctx.ipam().await?;
        let all = romana_proto::pages::all_endpoints(|page_token| {
            let mut client = client.clone();
            async move {
                let req = pb::ListEndpointsRequest {
                    page_token,
                    page_size: 5000,
                    ..Default::default()
                };
                Ok(client.list_endpoints(req).await?.into_inner())
            }
        })
        .await?;
        Ok::<_, Error>(all.len() as u64)
    };
    endpoints.await.map_err(|e| e.line())
}

/// One problem per cause: tenant-service being down fails two counts, and saying so twice
/// reads like two faults.
fn merge_causes(failed: Vec<(&str, String)>) -> Vec<String> {
    let mut merged: Vec<(Vec<&str>, String)> = Vec::new();
    for (what, cause) in failed {
        match merged.iter_mut().find(|(_, c)| *c == cause) {
            Some((whats, _)) => whats.push(what),
            None => merged.push((vec![what], cause)),
        }
    }
    merged
        .into_iter()
        .map(|(whats, cause)| format!("{}: {cause}", whats.join(", ")))
        .collect()
}

/// Sections as `kubectl get all` prints them: one table each, a blank line between.
fn table(status: &view::Status) -> String {
    let mut sections = Vec::new();
    sections.push(output::table(&["ROOT"], &[vec![status.root.clone()]]));
    if let Some(config) = &status.config {
        sections.push(output::rows(std::slice::from_ref(config)));
    }
    sections.push(output::rows(&status.services));
    sections.push(output::rows(std::slice::from_ref(&status.counts)));
    if !status.problems.is_empty() {
        sections.push(output::table(
            &["PROBLEM"],
            &status
                .problems
                .iter()
                .map(|p| vec![p.clone()])
                .collect::<Vec<_>>(),
        ));
    }
    sections.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cause_of_several_failed_counts_is_one_problem() {
        let merged = merge_causes(vec![
            ("tenants", "no tenant-service".into()),
            ("segments", "no tenant-service".into()),
            ("endpoints", "no ipam-service".into()),
        ]);
        assert_eq!(
            merged,
            [
                "tenants, segments: no tenant-service",
                "endpoints: no ipam-service"
            ]
        );
    }

    #[test]
    fn status_table_has_a_section_per_part_and_lists_problems() {
        let status = view::Status {
            root: "http://127.0.0.1:9600".into(),
            config: None,
            services: vec![view::Service {
                kind: "root".into(),
                instance: "root-1".into(),
                url: "http://127.0.0.1:9600".into(),
            }],
            counts: view::Counts {
                hosts: Some(2),
                ..Default::default()
            },
            problems: vec!["tenants: no tenant-service is registered".into()],
        };
        assert_eq!(
            table(&status),
            "ROOT\n\
             http://127.0.0.1:9600\n\
             \n\
             KIND   INSTANCE   URL\n\
             root   root-1     http://127.0.0.1:9600\n\
             \n\
             HOSTS   TENANTS   SEGMENTS   ENDPOINTS\n\
             2       ?         ?          ?\n\
             \n\
             PROBLEM\n\
             tenants: no tenant-service is registered\n"
        );
    }
}
