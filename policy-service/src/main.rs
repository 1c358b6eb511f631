fn main() -> std::process::ExitCode {
    romana_runtime::process::run_binary(
        "romana-policy",
        "romana-policy: network policies, validated and stored in etcd",
        9604,
        romana_policy::SERVING,
    )
}
