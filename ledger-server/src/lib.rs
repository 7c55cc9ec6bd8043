//! The Points Ledger server: gRPC services over the ledger core, and the
//! pieces of the `ledgerd` command line.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod demo;
pub mod export;
pub mod fuzzing;
pub mod ledger;
pub mod load;
pub mod metrics;
pub mod reconcile;
pub mod reports;
pub mod server;
pub mod status;

/// gRPC messages and services of package `pointsledger.v1`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/pointsledger.v1.rs"));

    /// Encoded file descriptors of every service, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/pointsledger_descriptor.bin"));
}
