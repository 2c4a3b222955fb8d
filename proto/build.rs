//! Compiles the `.proto` files with protox (pure Rust), so no system protoc is needed, and
//! writes the descriptor set of the public protocol for gRPC reflection.
//!
//! The public protocol is Rookery's `rookery.v1` and the actor part of Dapr's gRPC API
//! (`dapr.proto.*`, written for Rookery with daprd's names and numbers); its descriptor set
//! also holds the files they import (Google's well-known types), so reflection clients can
//! resolve every type. The well-known types are generated into this crate
//! (`google::protobuf`) instead of coming from `prost-types`.

use std::collections::BTreeSet;

use prost::Message;

const PUBLIC: &[&str] = &[
    "rookery/v1/runtime.proto",
    "dapr/proto/runtime/v1/dapr.proto",
    "dapr/proto/common/v1/common.proto",
];
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
    // The public files and, transitively, what they import.
    let mut public_names: BTreeSet<String> = PUBLIC.iter().map(|p| p.to_string()).collect();
    loop {
        let imported: Vec<String> = descriptors
            .file
            .iter()
            .filter(|file| public_names.contains(file.name()))
            .flat_map(|file| file.dependency.iter().cloned())
            .filter(|name| !public_names.contains(name))
            .collect();
        if imported.is_empty() {
            break;
        }
        public_names.extend(imported);
    }
    let mut public = descriptors.clone();
    public
        .file
        .retain(|file| public_names.contains(file.name()));
    std::fs::write(
        out_dir.join("rookery_public_descriptor.bin"),
        public.encode_to_vec(),
    )?;
    let mut config = tonic_build::Config::new();
    // Google's comments hold code samples in other languages, which rustdoc would run as
    // doctests (and clippy would lint).
    config.disable_comments([".google"]);
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_well_known_types(true)
        .compile_fds_with_config(config, descriptors)?;
    Ok(())
}
