//! Helpers shared by the end-to-end tests: a store in a temporary directory,
//! a pass-through writer over it, and envelopes for appends.
#![allow(dead_code)]

use ledger_core::clock::ManualClock;
use ledger_core::ids::{IdempotencyKey, ProgramId, StreamName};
use ledger_core::pb;
use ledger_core::store::Store;
use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig};
use std::sync::Arc;

pub mod faults;
pub mod ledger;
pub mod server;

/// Runs `test` on a two-worker runtime over a new temporary directory, and
/// drops the runtime before the directory. Tasks that outlive the test's
/// body (a subscriber waiting for the next position, a connection that the
/// server's stop did not wait for) hold clones of the store; under
/// `#[tokio::test]` they end only after the body's locals, the directory
/// among them, so RocksDB wrote its last files into a removed directory.
pub fn in_temp_dir<F: std::future::Future<Output = ()>>(
    test: impl FnOnce(std::path::PathBuf) -> F,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(test(dir.path().to_path_buf()));
    drop(runtime);
    drop(dir);
}

/// xorshift64*: a seeded, dependency-free source of kill moments for the
/// crash tests.
pub fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The real time when first asked, fixed for the rest of the process. Tests
/// of the server (whose scheduler runs on the real clock) date commands
/// now, so their due work (pending points, expiry) lies a month or more
/// ahead and nothing scheduled changes a member while a test looks at it.
pub fn wall_clock_us() -> i64 {
    static NOW_US: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_micros() as i64
    });
    *NOW_US
}

/// 2026-01-01T00:00:00Z, where test clocks start.
pub const T0_US: i64 = 1_767_225_600_000_000;

pub fn program() -> ProgramId {
    ProgramId::parse("program_id", "test").expect("valid program id")
}

pub fn member_stream(member: &str) -> StreamName {
    let member = ledger_core::ids::MemberId::parse("member_id", member).expect("valid member id");
    StreamName::member(&program(), &member)
}

/// A small event whose encoding is about `size` bytes in a record.
pub fn award(points: i64, reason: &str) -> pb::Event {
    pb::Event {
        kind: Some(pb::event::Kind::PointsAwarded(pb::PointsAwarded {
            reason: reason.to_owned(),
            points,
            lot: None,
            debt_repaid: 0,
        })),
    }
}

pub fn envelope(
    key: &str,
    expected_version: Option<u64>,
    events: Vec<(StreamName, pb::Event)>,
) -> Envelope<Append> {
    Envelope {
        program_id: program(),
        idempotency_key: IdempotencyKey::parse("idempotency_key", key).expect("valid key"),
        occurred_at_us: T0_US,
        principal: "test".into(),
        metadata: vec![],
        expected_version,
        command: Append::new(events),
    }
}

pub fn start_writer(store: &Store, clock: &ManualClock) -> Writer<Append> {
    let config = WriterConfig::with_clock(Arc::new(clock.clone()));
    Writer::start(store.clone(), PassThrough, config).expect("writer starts")
}
