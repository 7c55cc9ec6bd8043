//! Generates the gRPC services from `proto/`. The log record types are not
//! generated again: they are ledger-core's (`extern_path`), so a record read
//! from the store and one sent on the wire are the same Rust type.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let services = [
        "../proto/pointsledger/v1/audit.proto",
        "../proto/pointsledger/v1/ledger.proto",
        "../proto/pointsledger/v1/admin.proto",
        "../proto/pointsledger/v1/reports.proto",
    ];
    for file in services
        .iter()
        .chain(&["../proto/pointsledger/v1/record.proto"])
    {
        println!("cargo:rerun-if-changed={file}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("pointsledger_descriptor.bin"))
        // The record messages are ledger-core's: one Rust type per message.
        .extern_path(".pointsledger.v1.Event", "::ledger_core::pb::Event")
        .extern_path(".pointsledger.v1.Money", "::ledger_core::pb::Money")
        .extern_path(
            ".pointsledger.v1.ProgramRules",
            "::ledger_core::pb::ProgramRules",
        )
        .compile_protos(&services, &["../proto"])?;
    Ok(())
}
