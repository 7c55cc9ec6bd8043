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

fn enrolled() -> pb::Event {
    pb::Event {
        kind: Some(pb::event::Kind::MemberEnrolled(pb::MemberEnrolled {
            implicit: true,
        })),
    }
}

fn write_log(dir: &std::path::Path, count: usize) {
    let program = ProgramId::parse("program_id", "cli").expect("program");
    append(
        dir,
        (0..count)
            .map(|_| (StreamName::program(&program), enrolled()))
            .collect(),
    );
}

/// Appends each event as its own command.
fn append(dir: &std::path::Path, events: Vec<(StreamName, pb::Event)>) {
    let store = Store::open(dir).expect("open");
    let start = store.head().expect("head").position;
    let writer = Writer::start(
        store,
        PassThrough,
        WriterConfig::with_clock(Arc::new(SystemClock)),
    )
    .expect("writer");
    let program = ProgramId::parse("program_id", "cli").expect("program");
    let envelopes: Vec<Envelope<Append>> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Envelope {
            program_id: program.clone(),
            idempotency_key: IdempotencyKey::parse(
                "idempotency_key",
                &format!("k{}", start + i as u64),
            )
            .expect("key"),
            occurred_at_us: 0,
            principal: "cli-test".into(),
            metadata: vec![],
            expected_version: None,
            command: Append::new([event]),
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

fn ledgerd(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerd"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run ledgerd")
}

#[test]
fn rebuild_reports_each_view_and_names_an_event_it_cannot_fold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = ProgramId::parse("program_id", "cli").expect("program");
    let ann = ledger_core::ids::MemberId::parse("member_id", "ann").expect("member");
    let member = StreamName::member(&program, &ann);
    append(dir.path(), vec![(member.clone(), enrolled()); 3]);
    let good = ledgerd(&["rebuild"], dir.path());
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("rebuilt balance: 3 events"), "{stdout}");
    assert!(stdout.contains("rebuilt tier: 3 events"), "{stdout}");

    let one = ledgerd(&["rebuild", "--projection", "tier"], dir.path());
    let stdout = String::from_utf8_lossy(&one.stdout);
    assert!(stdout.contains("rebuilt tier: 3 events"), "{stdout}");
    assert!(!stdout.contains("balance"), "{stdout}");

    // A redemption from a lot the member never had: position 4.
    let bogus = pb::Event {
        kind: Some(pb::event::Kind::PointsRedeemed(pb::PointsRedeemed {
            redemption_id: "r".into(),
            points: 5,
            draws: vec![pb::LotDraw {
                lot_id: 9,
                points: 5,
            }],
        })),
    };
    append(dir.path(), vec![(member, bogus)]);
    let bad = ledgerd(&["rebuild", "--projection", "balance"], dir.path());
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("position 4"), "{stdout}");
    assert!(stdout.contains("lot 9"), "{stdout}");
}

#[test]
fn rebuild_refuses_an_unknown_view_and_a_directory_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 2);
    let unknown = ledgerd(&["rebuild", "--projection", "nope"], dir.path());
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("--projection") && stderr.contains("balance, tier"),
        "{stderr}"
    );

    let _held = Store::open(dir.path()).expect("hold the directory as a server would");
    let busy = ledgerd(&["rebuild"], dir.path());
    assert_eq!(busy.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("stop it first"), "{stderr}");
}
