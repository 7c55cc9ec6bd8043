//! Goal: `ledgerd verify` tells an operator, by exit code and message,
//! whether the chain holds and where it first breaks.
//!
//! Method: build a log with the core's writer in a temporary directory, run
//! the real `ledgerd` binary on it, tamper one record, run it again.

use ledger_core::clock::SystemClock;
use ledger_core::ids::{IdempotencyKey, ProgramId, StreamName};
use ledger_core::pb;
use ledger_core::store::{CF_LOG, Store, keys};
use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig};
use std::process::Command;
use std::sync::Arc;

fn write_log(dir: &std::path::Path, count: usize) {
    let store = Store::open(dir).expect("open");
    let writer = Writer::start(
        store,
        PassThrough,
        WriterConfig::with_clock(Arc::new(SystemClock)),
    )
    .expect("writer");
    let program = ProgramId::parse("program_id", "cli").expect("program");
    let envelopes: Vec<Envelope<Append>> = (0..count)
        .map(|i| Envelope {
            program_id: program.clone(),
            idempotency_key: IdempotencyKey::parse("idempotency_key", &format!("k{i}"))
                .expect("key"),
            occurred_at_us: 0,
            principal: "cli-test".into(),
            metadata: vec![],
            expected_version: None,
            command: Append::new([(
                StreamName::program(&program),
                pb::Event {
                    kind: Some(pb::event::Kind::MemberEnrolled(pb::MemberEnrolled {
                        implicit: true,
                    })),
                },
            )]),
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let results = runtime
        .block_on(writer.handle().submit_many(envelopes))
        .expect("submitted");
    assert!(results.iter().all(Result::is_ok));
    writer.shutdown();
}

#[test]
fn verify_exits_zero_on_a_good_chain_and_one_naming_the_tampered_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 40);
    let ledgerd = env!("CARGO_BIN_EXE_ledgerd");
    let good = Command::new(ledgerd)
        .args(["verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("verified: 40 records"));

    {
        let store = Store::open(dir.path()).expect("open");
        let key = keys::position_key(31);
        let mut bytes = store
            .db()
            .get_cf(store.cf(CF_LOG), key)
            .expect("read")
            .expect("present");
        bytes[2] ^= 0x20;
        store
            .db()
            .put_cf(store.cf(CF_LOG), key, &bytes)
            .expect("tamper");
    }
    let bad = Command::new(ledgerd)
        .args(["verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.contains("FAILED at position 31"), "{stdout}");
}

#[test]
fn verify_of_a_missing_directory_exits_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_ledgerd"))
        .args(["verify", "--data-dir"])
        .arg(dir.path().join("absent"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent"));
}
