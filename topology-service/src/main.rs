use clap::Parser;

/// romana-topology: hosts, host prefixes and the fabric view.
#[derive(Parser)]
#[command(name = "romana-topology", version)]
struct Args {
    #[command(flatten)]
    service: romana_runtime::ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    romana_runtime::exit_code(
        romana_runtime::process::main(args.service, 9601, romana_topology::SERVING).await,
    )
}
