fn main() -> std::process::ExitCode {
    romana_runtime::process::run_binary(
        "romana-root",
        "romana-root: serves the cluster layout and the service registry",
        9600,
        romana_root::SERVING,
    )
}
