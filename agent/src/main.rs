use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
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
    /// rack whose address is not on a connected subnet.
    #[arg(long, env = "ROMANA_GATEWAY")]
    gateway: Option<IpAddr>,

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

    /// CA (PEM) that signed etcd's certificate; talks TLS to `https://` etcd endpoints.
    /// (`--tls-ca`, the older name, keeps working.)
    #[arg(long, visible_alias = "tls-ca", env = "ROMANA_ETCD_CA")]
    etcd_ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM) for an etcd that requires client certificates.
    #[arg(
        long,
        visible_alias = "tls-cert",
        env = "ROMANA_ETCD_CERT",
        requires = "etcd_key"
    )]
    etcd_cert: Option<std::path::PathBuf>,

    /// Key (PEM) of --etcd-cert.
    #[arg(
        long,
        visible_alias = "tls-key",
        env = "ROMANA_ETCD_KEY",
        requires = "etcd_cert"
    )]
    etcd_key: Option<std::path::PathBuf>,

    /// Export `tracing` spans as OpenTelemetry traces over OTLP/gRPC to this collector URL
    /// (e.g. http://127.0.0.1:4317). Without it nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
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
    let tls = romana_store::EtcdTls::from_files(
        args.etcd_ca.as_deref(),
        args.etcd_cert.as_deref(),
        args.etcd_key.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let store = Store::connect_with_tls(
        &args.etcd_endpoints,
        Keys::new(&args.etcd_prefix),
        tls.as_ref(),
    )
    .await?;
    let status = StatusWriter::new(store.clone());
    let config = AgentConfig {
        gateway: args.gateway,
        netns: args.netns,
        once: args.once,
        resync_interval: Duration::from_secs(args.resync_secs.max(1)),
        status: Some(status),
        ..AgentConfig::new(host)
    };
    romana_agent::run(store, config, romana_runtime::shutdown_signal()).await?;
    Ok(())
}
