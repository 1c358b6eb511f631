use clap::Parser;

/// romana-policy: network policies, validated and stored in etcd.
#[derive(Parser)]
#[command(name = "romana-policy", version)]
struct Args {
    #[command(flatten)]
    service: romana_runtime::ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    romana_runtime::serve::main(args.service, 9604, romana_policy::run).await?;
    Ok(())
}
