use std::net::IpAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use romana_agent::{AgentConfig, StatusWriter};
use romana_store::{Keys, Store};

/// romana-agent: makes this host's routes and nftables match the cluster in etcd.
#[derive(Parser)]
#[command(name = "romana-agent", version)]
struct Args {
    /// This host's name as registered with topology (default: the machine's hostname).
    #[arg(long, env = "ROMANA_HOST")]
    host: Option<String>,

    /// etcd client URLs, comma separated.
    #[arg(
        long,
        env = "ROMANA_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_endpoints: Vec<String>,

    /// Key prefix of all romana state in etcd.
    #[arg(long, env = "ROMANA_ETCD_PREFIX", default_value = romana_store::DEFAULT_PREFIX)]
    etcd_prefix: String,

    /// The leaf router of this host's rack: next hop for other racks, and for hosts of this
    /// rack whose address is not on a connected subnet. Dual-stack: given once per IP
    /// family (`--gateway 192.168.0.1 --gateway fd00:ff::1`).
    #[arg(long, env = "ROMANA_GATEWAY", value_delimiter = ',')]
    gateway: Vec<IpAddr>,

    /// Apply once after reading etcd, then exit (non-zero if the kernel did not converge).
    #[arg(long)]
    once: bool,

    /// Program the kernel of this named network namespace (`ip netns add NAME`) instead of
    /// the agent's own, while etcd is reached from the agent's namespace. For tests and labs
    /// that run several hosts on one machine.
    #[arg(long)]
    netns: Option<String>,

    /// Seconds between re-reads of the kernel that repair drift.
    #[arg(long, default_value_t = 30)]
    resync_secs: u64,

    /// Allow plaintext `http://` etcd endpoints; without it the agent refuses them, as the
    /// services do.
    #[arg(long)]
    insecure: bool,

    #[command(flatten)]
    etcd_tls: romana_store::EtcdTlsArgs,

    /// Export `tracing` spans as OpenTelemetry traces over OTLP/gRPC to this collector URL
    /// (e.g. http://127.0.0.1:4317). Without it nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
}

/// The agent's older names of the etcd TLS flags, from before they were `--etcd-*` as on the
/// services; kept as visible aliases.
const OLD_NAMES: [(&str, &str); 3] = [
    ("etcd_ca", "tls-ca"),
    ("etcd_cert", "tls-cert"),
    ("etcd_key", "tls-key"),
];

impl Args {
    /// The command line, with [`OLD_NAMES`] accepted beside the shared flags.
    fn parse_with_old_names<I, T>(args: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = OLD_NAMES.iter().fold(Args::command(), |c, &(id, old)| {
            c.mut_arg(id, |a| a.visible_alias(old))
        });
        Args::from_arg_matches(&command.try_get_matches_from(args)?)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse_with_old_names(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let telemetry = romana_runtime::telemetry::init("romana-agent", args.otlp_endpoint.as_deref());
    let result = run(args).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // One line, as the services: no backtrace, whatever RUST_BACKTRACE says.
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let host = match args.host {
        Some(h) => h,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")?
            .trim()
            .to_string(),
    };
    romana_runtime::tls::check_etcd_endpoints(&args.etcd_endpoints, args.insecure)?;
    let tls = args.etcd_tls.read().map_err(anyhow::Error::msg)?;
    let store = Store::connect_with_tls(
        &args.etcd_endpoints,
        Keys::new(&args.etcd_prefix),
        tls.as_ref(),
    )
    .await?;
    let status = StatusWriter::new(store.clone());
    let config = AgentConfig {
        gateways: args.gateway,
        netns: args.netns,
        once: args.once,
        resync_interval: Duration::from_secs(args.resync_secs.max(1)),
        status: Some(status),
        ..AgentConfig::new(host)
    };
    romana_agent::run(store, config, romana_runtime::shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_etcd_tls_flag_names_read_as_the_new_ones() {
        let files = ["/pki/ca.pem", "/pki/h1.pem", "/pki/h1-key.pem"];
        let parse = |names: [&str; 3]| {
            let mut line = vec!["romana-agent".to_string()];
            for (name, file) in names.iter().zip(files) {
                line.extend([format!("--{name}"), file.to_string()]);
            }
            Args::parse_with_old_names(line).unwrap().etcd_tls
        };
        let new = parse(["etcd-ca", "etcd-cert", "etcd-key"]);
        assert_eq!(new.etcd_ca.as_deref(), Some(std::path::Path::new(files[0])));
        assert_eq!(
            new.etcd_key.as_deref(),
            Some(std::path::Path::new(files[2]))
        );
        assert_eq!(parse(["tls-ca", "tls-cert", "tls-key"]), new);
        let half = Args::parse_with_old_names(["romana-agent", "--tls-cert", files[1]]);
        assert!(
            half.is_err(),
            "a certificate needs its key under either name"
        );
    }
}
