//! Generates the log record types from `proto/pointsledger/v1/record.proto`.
//!
//! protoc comes from `protoc-bin-vendored`, so a build needs no protoc
//! installed by hand.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let proto_dir = "../proto";
    let record = "../proto/pointsledger/v1/record.proto";
    println!("cargo:rerun-if-changed={record}");
    prost_build::Config::new().compile_protos(&[record], &[proto_dir])?;
    Ok(())
}
