//! Compiles the API with protox (pure Rust), so no protoc binary is needed for our own protos.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/romana/v1/common.proto",
        "proto/romana/v1/root.proto",
        "proto/romana/v1/topology.proto",
        "proto/romana/v1/tenant.proto",
        "proto/romana/v1/ipam.proto",
        "proto/romana/v1/policy.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("romana_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
