use clap::Parser;

/// romana-policy: network policies, validated and stored in etcd.
#[derive(Parser)]
#[command(name = "romana-policy", version)]
struct Args {
    #[command(flatten)]
    service: romana_runtime::ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    romana_runtime::exit_code(
        romana_runtime::process::main(args.service, 9604, romana_policy::SERVING).await,
    )
}
