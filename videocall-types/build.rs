//! Compiles `../protobuf/*.proto` with protox (pure Rust, no `protoc`) and generates prost types.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../protobuf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&proto_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let fds = protox::compile(&files, [&proto_dir])?;
    prost_build::Config::new()
        // `bytes::Bytes` for every bytes field: decoding from a `Bytes` buffer then slices it
        // instead of copying media payloads.
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
