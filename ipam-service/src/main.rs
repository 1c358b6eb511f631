use clap::Parser;

/// romana-ipam: endpoint address allocation and release.
#[derive(Parser)]
#[command(name = "romana-ipam", version)]
struct Args {
    #[command(flatten)]
    service: romana_runtime::ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    romana_runtime::exit_code(
        romana_runtime::process::main(args.service, 9603, romana_ipam::SERVING).await,
    )
}
