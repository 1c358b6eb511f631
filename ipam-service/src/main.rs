fn main() -> std::process::ExitCode {
    romana_runtime::process::run_binary(
        "romana-ipam",
        "romana-ipam: endpoint address allocation and release",
        9603,
        romana_ipam::SERVING,
    )
}
