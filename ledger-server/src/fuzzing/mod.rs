//! The bodies of the fuzz targets in `fuzz/`, as plain functions, so that the
//! normal test suite (`tests/fuzz_smoke.rs`) replays the checked-in corpus
//! and generated inputs through exactly what libFuzzer runs.
//!
//! Each target is `check(&[u8]) -> Result<Outcome, Violation>`: any bytes
//! go in; `Err` means a property broke, and a panic inside the code under
//! test is a crash as well. The fuzz binaries turn `Err` into a panic.
//! - [`record`]: the stored-record decode path and its round trip;
//! - [`requests`]: every gRPC request message, decoded by prost and then
//!   checked field by field as the services check it;
//! - [`domain`]: program rules and a member's command sequence through the
//!   pure domain, with its invariants after every event.
//!
//! [`seeds`] builds the corpus checked in under `fuzz/corpus/`.

mod bytes;
pub mod domain;
pub mod record;
pub mod requests;
pub mod seeds;

use std::fmt;

/// A property that did not hold, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(String);

impl Violation {
    /// A violation described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Violation(message.into())
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

/// Runs `data` through the body of fuzz target `target` (one of
/// [`seeds::TARGETS`]); the outcome is dropped, only the properties count.
pub fn check(target: &str, data: &[u8]) -> Result<(), Violation> {
    match target {
        "record" => record::check(data).map(drop),
        "requests" => requests::check(data).map(drop),
        "domain" => domain::check(data).map(drop),
        other => Err(Violation::new(format!("no fuzz target {other}"))),
    }
}
