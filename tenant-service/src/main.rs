fn main() -> std::process::ExitCode {
    romana_runtime::process::run_binary(
        "romana-tenant",
        "romana-tenant: tenants and their segments",
        9602,
        romana_tenant::SERVING,
    )
}
