//! Compiles proto/doorstep/v1 without a system protoc: protox parses the files, tonic-prost-build
//! generates the code, and the encoded descriptor set is kept for server reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "doorstep/v1/ticket.proto",
        "doorstep/v1/admin.proto",
        "doorstep/v1/report.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("doorstep_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // google.rpc's error details (the BadRequest an INVALID_ARGUMENT carries), copied unchanged from
    // googleapis: served by reflection only, so that grpcurl and other reflective clients decode them.
    // Rust code uses tonic-types' own.
    let details = "google/rpc/error_details.proto";
    println!("cargo:rerun-if-changed={}", root.join(details).display());
    std::fs::write(
        out.join("rpc_details_descriptor.bin"),
        protox::compile([details], [&root])?.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
