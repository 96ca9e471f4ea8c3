//! Compiles `../protobuf/*.proto` with protox (pure Rust, no `protoc`) and generates prost types.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it was compiled: a build script binary cached in a
    // shared target dir may have been compiled for a checkout elsewhere (a CI clone since
    // deleted), and `env!` would point it there.
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../protobuf");
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
