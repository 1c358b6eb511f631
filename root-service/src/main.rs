use clap::Parser;

/// romana-root: serves the cluster layout and the service registry.
#[derive(Parser)]
#[command(name = "romana-root", version)]
struct Args {
    #[command(flatten)]
    service: romana_runtime::ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    romana_runtime::exit_code(
        romana_runtime::process::main(args.service, 9600, romana_root::SERVING).await,
    )
}
