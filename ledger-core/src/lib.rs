//! Points Ledger core: the pure domain of loyalty points ([`domain`]), the
//! log of events and its record form ([`record`]), its hash chain and the
//! group-commit writer that is the only way the log grows.
//!
//! ```no_run
//! use ledger_core::ids::{IdempotencyKey, ProgramId, StreamName};
//! use ledger_core::pb;
//! use ledger_core::store::Store;
//! use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig};
//! use ledger_core::clock::SystemClock;
//! use std::sync::Arc;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open(std::path::Path::new("/tmp/ledger-example"))?;
//! let config = WriterConfig::with_clock(Arc::new(SystemClock));
//! let writer = Writer::start(store.clone(), PassThrough, config)?;
//! let program = ProgramId::parse("program_id", "coffee")?;
//! let event = pb::Event { kind: Some(pb::event::Kind::MemberEnrolled(pb::MemberEnrolled { implicit: false })) };
//! let appended = writer
//!     .handle()
//!     .submit(Envelope {
//!         program_id: program.clone(),
//!         idempotency_key: IdempotencyKey::parse("idempotency_key", "enroll-1")?,
//!         occurred_at_us: 0,
//!         principal: "example".into(),
//!         metadata: vec![],
//!         expected_version: Some(0),
//!         command: Append::new([(StreamName::program(&program), event)]),
//!     })
//!     .await?;
//! assert_eq!(appended.first_position, 1);
//! writer.shutdown();
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod chain;
pub mod clock;
pub mod domain;
pub mod engine;
pub mod error;
pub mod ids;
pub mod limits;
pub mod reader;
pub mod record;
pub mod store;
pub mod writer;

/// Protobuf messages of the log record format (`proto/pointsledger/v1/record.proto`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/pointsledger.v1.rs"));
}
