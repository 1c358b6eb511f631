fn main() -> std::process::ExitCode {
    romana_runtime::process::run_binary(
        "romana-topology",
        "romana-topology: hosts, host prefixes and the fabric view",
        9601,
        romana_topology::SERVING,
    )
}
