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

/// The README's verification script, exactly as the README shows it.
fn readme_script(dir: &std::path::Path) -> std::path::PathBuf {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let start = readme.find("```python\n").expect("a python block") + "```python\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    let path = dir.join("verify.py");
    std::fs::write(&path, &readme[start..end]).expect("write script");
    path
}

#[test]
fn an_export_verifies_with_the_readme_script_and_names_a_tampered_position() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    write_log(&data, 30);
    let export = dir.path().join("log.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_ledgerd"))
        .args(["export", "--format", "jsonl", "--data-dir"])
        .arg(&data)
        .arg("--output")
        .arg(&export)
        .output()
        .expect("run export");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("exported 30 records"));
    let script = readme_script(dir.path());
    let run = |path: &std::path::Path| {
        Command::new("python3")
            .arg(&script)
            .arg(path)
            .output()
            .expect("python3 runs")
    };
    let good = run(&export);
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert_eq!(
        good.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(stdout.contains("verified: 30 records"), "{stdout}");

    // One flipped byte in the stored record at position 5.
    let text = std::fs::read_to_string(&export).expect("read export");
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = engine
        .decode(lines[4]["record"].as_str().expect("record"))
        .expect("base64");
    bytes[3] ^= 0x01;
    lines[4]["record"] = serde_json::Value::String(engine.encode(bytes));
    let tampered = dir.path().join("tampered.jsonl");
    let body: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
    std::fs::write(&tampered, body.join("\n") + "\n").expect("write");
    let bad = run(&tampered);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAILED at position 5"));
}

#[test]
fn csv_export_selects_by_position_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 12);
    let csv = ledgerd(
        &[
            "export",
            "--format",
            "csv",
            "--from-position",
            "3",
            "--to-position",
            "7",
        ],
        dir.path(),
    );
    assert_eq!(csv.status.code(), Some(0));
    let text = String::from_utf8_lossy(&csv.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "position,hash,stream,stream_version,program_id,occurred_at,recorded_at,idempotency_key,principal,event,record"
        )
    );
    let positions: Vec<&str> = lines
        .map(|line| line.split(',').next().unwrap_or(""))
        .collect();
    assert_eq!(positions, vec!["3", "4", "5", "6", "7"]);
    // Every record of write_log is dated at the epoch.
    let none = ledgerd(
        &[
            "export",
            "--format",
            "jsonl",
            "--from",
            "1970-01-01T00:00:01Z",
        ],
        dir.path(),
    );
    assert_eq!(none.status.code(), Some(0));
    assert!(none.stdout.is_empty());
    let all = ledgerd(
        &[
            "export",
            "--format",
            "jsonl",
            "--to",
            "1970-01-01T00:00:01Z",
        ],
        dir.path(),
    );
    assert_eq!(String::from_utf8_lossy(&all.stdout).lines().count(), 12);
    let bad = ledgerd(
        &["export", "--format", "jsonl", "--from", "yesterday"],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from"));
}
