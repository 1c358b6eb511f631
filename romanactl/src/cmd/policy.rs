//! `romanactl policy apply|list|get|delete|explain`: network policies, kept by
//! policy-service. Romana-form policies are named `NAME`, Kubernetes NetworkPolicies
//! `TENANT/NAME` (the namespace is the tenant).
//!
//! `explain` asks policy-service, which evaluates with `romana_core::policy::evaluate` on
//! etcd's current state: the same evaluator the agents' programs are tested against, so the
//! answer is never a second opinion computed here.

use std::io::Read;

use clap::{Args, Subcommand, ValueEnum};
use romana_proto::pb;

use super::Ctx;
use crate::output;
use crate::view::{AppliedView, ApplyView, ExplainView, PolicyDeleted, PolicyView};
use crate::Error;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Applies policies from a file or stdin: Romana JSON/YAML or networking.k8s.io/v1
    /// NetworkPolicy YAML (several documents or a List), detected per object. All or
    /// nothing: one invalid object refuses the whole input.
    Apply(Apply),
    /// Lists policies: Romana form first, then Kubernetes, each ordered by name.
    List(List),
    /// Shows one policy, NAME (Romana form) or TENANT/NAME (Kubernetes).
    Get(Name),
    /// Deletes one policy, NAME (Romana form) or TENANT/NAME (Kubernetes).
    Delete(Name),
    /// Tells whether a connection is allowed, and which tier, policy and rule decided.
    Explain(Explain),
}

#[derive(Debug, Args)]
pub struct Apply {
    /// The file to read, or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    pub file: String,
    /// Validate and show what would change; store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct List {
    /// Only the Kubernetes policies of this tenant (namespace).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print the listing, then again each time it changes, until interrupted.
    #[arg(long, short = 'w')]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct Name {
    /// NAME (Romana form) or TENANT/NAME (Kubernetes NetworkPolicy).
    pub name: String,
}

/// `--proto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtoArg {
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

#[derive(Debug, Args)]
pub struct Explain {
    /// The source: an endpoint id or an IP address.
    #[arg(long, value_name = "ENDPOINT|IP")]
    pub from: String,
    /// The destination: an endpoint id or an IP address.
    #[arg(long, value_name = "ENDPOINT|IP")]
    pub to: String,
    /// The protocol.
    #[arg(long = "proto", value_enum)]
    pub proto: ProtoArg,
    /// The destination port (tcp, udp, sctp).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// The ICMP type (icmp).
    #[arg(long)]
    pub icmp_type: Option<u8>,
    /// The ICMP code (icmp, with --icmp-type).
    #[arg(long, requires = "icmp_type")]
    pub icmp_code: Option<u8>,
}

fn kind_word(form: &str) -> &'static str {
    if form == "kubernetes" {
        "networkpolicy"
    } else {
        "policy"
    }
}

// === impl PolicyCommand ===

impl PolicyCommand {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        // Input and flags are checked before connecting.
        let request = Request::parse(self, &mut std::io::stdin())?;
        let mut client = pb::policies_client::PoliciesClient::new(ctx.channel("policy").await?);
        match request {
            Request::Apply(req) => {
                let resp = client.apply_policies(req).await?.into_inner();
                let applied: Vec<AppliedView> = resp
                    .applied
                    .into_iter()
                    .map(|a| {
                        let p = a.policy.unwrap_or_default();
                        AppliedView {
                            id: p.id,
                            form: p.form,
                            action: a.action,
                        }
                    })
                    .collect();
                let suffix = if resp.dry_run { " (dry run)" } else { "" };
                let text = applied
                    .iter()
                    .map(|a| format!("{} {} {}{suffix}", kind_word(&a.form), a.id, a.action))
                    .collect::<Vec<_>>()
                    .join("\n");
                let view = ApplyView {
                    applied,
                    dry_run: resp.dry_run,
                };
                output::message(&text, &view, ctx.format)
            }
            Request::List(req) => {
                let list: Vec<PolicyView> = client
                    .list_policies(req)
                    .await?
                    .into_inner()
                    .policies
                    .into_iter()
                    .map(Into::into)
                    .collect();
                output::list(&list, ctx.format)
            }
            Request::Get(req) => {
                let p = client.get_policy(req).await?.into_inner();
                output::one(&PolicyView::from(p), ctx.format)
            }
            Request::Delete(req) => {
                let p = client.delete_policy(req).await?.into_inner().policy.ok_or(
                    Error::Incomplete {
                        service: "policy-service",
                        call: "DeletePolicy",
                        field: "policy",
                    },
                )?;
                let text = format!("{} {} deleted", kind_word(&p.form), p.id);
                let deleted = PolicyDeleted {
                    deleted: p.id,
                    form: p.form,
                };
                output::message(&text, &deleted, ctx.format)
            }
            Request::Explain(req) => {
                let (from, to) = (req.from.clone(), req.to.clone());
                let r = client.explain(req).await?.into_inner();
                let some = |s: String| (!s.is_empty()).then_some(s);
                let view = ExplainView {
                    verdict: r.verdict,
                    reason: r.reason,
                    tier: r.tier,
                    direction: some(r.direction),
                    policy: some(r.policy),
                    rule: r.rule,
                    from: describe(&from, &r.from_address),
                    to: describe(&to, &r.to_address),
                    decision: serde_json::from_str(&r.decision_json)
                        .unwrap_or(serde_json::Value::Null),
                };
                output::one(&view, ctx.format)
            }
        }
    }
}

/// `web1 (10.1.17.10)` for an endpoint, the address alone for an address.
fn describe(given: &str, address: &str) -> String {
    if given == address || address.is_empty() {
        given.to_string()
    } else {
        format!("{given} ({address})")
    }
}

/// A policy command as the call it makes.
#[derive(Debug, PartialEq)]
enum Request {
    Apply(pb::ApplyPoliciesRequest),
    List(pb::ListPoliciesRequest),
    Get(pb::GetPolicyRequest),
    Delete(pb::DeletePolicyRequest),
    Explain(pb::ExplainRequest),
}

impl Request {
    fn parse(cmd: PolicyCommand, stdin: &mut dyn Read) -> Result<Request, Error> {
        Ok(match cmd {
            PolicyCommand::Apply(Apply { file, dry_run }) => {
                let document = read_input(&file, stdin)?;
                if document.trim().is_empty() {
                    return Err(Error::Usage(format!("{} holds no policy", source(&file))));
                }
                // The service's own bounds, checked here too so that a 100 MB file is not
                // uploaded only to be refused.
                romana_core::policy::bounds::check_bounds(&document)
                    .map_err(|e| Error::Usage(format!("{}: {e}", source(&file))))?;
                Request::Apply(pb::ApplyPoliciesRequest {
                    document,
                    policies: Vec::new(),
                    dry_run,
                })
            }
            PolicyCommand::List(List { tenant, .. }) => Request::List(pb::ListPoliciesRequest {
                tenant: tenant.unwrap_or_default(),
            }),
            PolicyCommand::Get(Name { name }) => Request::Get(pb::GetPolicyRequest { id: name }),
            PolicyCommand::Delete(Name { name }) => {
                Request::Delete(pb::DeletePolicyRequest { id: name })
            }
            PolicyCommand::Explain(e) => {
                if e.proto == ProtoArg::Icmp && e.port.is_some() {
                    return Err(Error::Usage("--port: icmp has no ports".into()));
                }
                if e.proto != ProtoArg::Icmp && e.icmp_type.is_some() {
                    return Err(Error::Usage("--icmp-type: only with --proto icmp".into()));
                }
                Request::Explain(pb::ExplainRequest {
                    from: e.from,
                    to: e.to,
                    protocol: match e.proto {
                        ProtoArg::Tcp => "tcp",
                        ProtoArg::Udp => "udp",
                        ProtoArg::Sctp => "sctp",
                        ProtoArg::Icmp => "icmp",
                    }
                    .into(),
                    port: e.port.map(u32::from),
                    icmp_type: e.icmp_type.map(u32::from),
                    icmp_code: e.icmp_code.map(u32::from),
                })
            }
        })
    }
}

fn source(file: &str) -> String {
    if file == "-" {
        "stdin".into()
    } else {
        file.to_string()
    }
}

fn read_input(file: &str, stdin: &mut dyn Read) -> Result<String, Error> {
    let mut text = String::new();
    let result = if file == "-" {
        stdin.read_to_string(&mut text).map(drop)
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    result.map_err(|e| Error::Usage(format!("cannot read {}: {e}", source(file))))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cmd::{Cli, Command};

    fn mk_request(args: &[&str], stdin: &str) -> Result<Request, String> {
        let cli = Cli::try_parse_from(["romanactl", "policy"].iter().chain(args))
            .map_err(|e| e.kind().to_string())?;
        match cli.command {
            Command::Policy(cmd) => {
                Request::parse(cmd, &mut stdin.as_bytes()).map_err(|e| e.line())
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn apply_reads_stdin_for_dash() {
        let req = mk_request(&["apply", "-f", "-", "--dry-run"], "name: x\n").unwrap();
        assert_eq!(
            req,
            Request::Apply(pb::ApplyPoliciesRequest {
                document: "name: x\n".into(),
                policies: vec![],
                dry_run: true,
            })
        );
    }

    #[test]
    fn apply_of_a_too_large_or_too_deep_document_is_a_usage_error() {
        let deep = format!("a: {}", "[".repeat(100_000));
        let err = mk_request(&["apply", "-f", "-"], &deep).unwrap_err();
        assert!(err.contains("stdin: line 1 nests"), "{err}");
        let big = "#".repeat((1 << 20) + 1);
        let err = mk_request(&["apply", "-f", "-"], &big).unwrap_err();
        assert!(err.contains("at most 1048576 bytes"), "{err}");
    }

    #[test]
    fn apply_of_nothing_or_a_missing_file_is_a_usage_error() {
        assert_eq!(
            mk_request(&["apply", "-f", "-"], "  \n").unwrap_err(),
            "stdin holds no policy"
        );
        let err = mk_request(&["apply", "-f", "/nonexistent/p.yaml"], "").unwrap_err();
        assert!(
            err.starts_with("cannot read /nonexistent/p.yaml: "),
            "{err}"
        );
        assert!(mk_request(&["apply"], "").is_err(), "-f is required");
    }

    #[test]
    fn explain_carries_the_packet() {
        let req = mk_request(
            &[
                "explain", "--from", "web1", "--to", "10.1.2.3", "--proto", "tcp", "--port", "80",
            ],
            "",
        )
        .unwrap();
        assert_eq!(
            req,
            Request::Explain(pb::ExplainRequest {
                from: "web1".into(),
                to: "10.1.2.3".into(),
                protocol: "tcp".into(),
                port: Some(80),
                icmp_type: None,
                icmp_code: None,
            })
        );
    }

    #[test]
    fn explain_flags_are_checked_before_any_call() {
        let base = ["explain", "--from", "a", "--to", "b", "--proto"];
        let with = |rest: &[&str]| {
            let mut args = base.to_vec();
            args.extend(rest);
            mk_request(&args, "")
        };
        assert_eq!(
            with(&["icmp", "--port", "1"]).unwrap_err(),
            "--port: icmp has no ports"
        );
        assert!(with(&["gre"]).is_err());
        assert!(with(&["tcp", "--port", "0"]).is_err());
        assert!(
            with(&["icmp", "--icmp-code", "0"]).is_err(),
            "code needs a type"
        );
        assert!(with(&["tcp", "--icmp-type", "8"]).is_err());
        assert!(with(&["icmp", "--icmp-type", "8", "--icmp-code", "0"]).is_ok());
    }
}
