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
    romana_runtime::serve::exit_code(
        romana_runtime::serve::main(args.service, 9603, romana_ipam::run_tls).await,
    )
}
