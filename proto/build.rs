//! Compiles the `.proto` files with protox (pure Rust), so no system protoc is needed, and
//! writes the descriptor set of the public protocol for gRPC reflection.

use prost::Message;

const PUBLIC: &[&str] = &["rookery/v1/runtime.proto"];
const INTERNAL: &[&str] = &[
    "rookery/internal/v1/placement.proto",
    "rookery/internal/v1/host.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos: Vec<&str> = PUBLIC.iter().chain(INTERNAL).copied().collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(&protos, ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut public = descriptors.clone();
    public
        .file
        .retain(|file| PUBLIC.contains(&file.name.as_deref().unwrap_or_default()));
    std::fs::write(
        out_dir.join("rookery_public_descriptor.bin"),
        public.encode_to_vec(),
    )?;
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
