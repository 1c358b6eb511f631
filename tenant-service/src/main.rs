use clap::Parser;

/// romana-tenant: tenants and their segments.
#[derive(Parser)]
#[command(name = "romana-tenant", version)]
struct Args {
    #[command(flatten)]
    service: romana_runtime::ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    romana_runtime::exit_code(
        romana_runtime::process::main(args.service, 9602, romana_tenant::SERVING).await,
    )
}
