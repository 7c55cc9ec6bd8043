//! Goal: `ledgerd reconcile` ties a clean log to its views and, when a view
//! row was altered, exits 1 naming each figure that differs, where and by
//! how much; bad input names the flag.
//!
//! Method: the engine writes a program's traffic (purchases, redemptions, a
//! return, an award, a transfer) into a temporary directory; the real binary
//! reconciles it; then a liability row and a member's balance row are
//! altered in the store, and it runs again.

use ledger_core::clock::{Clock, SystemClock};
use ledger_core::domain::{
    Command, Currency, Money, Points, ProgramCommand, ProgramRules, TransferPoints,
};
use ledger_core::engine::{LedgerCommand, LedgerDecider};
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId};
use ledger_core::store::{CF_VIEWS, Store};
use ledger_core::writer::{Envelope, Writer, WriterConfig};
use projections::balance::MemberBalance;
use projections::liability::Flows;
use projections::rows::{decode, encode};
use std::process::{Command as Process, Output};
use std::sync::Arc;

const DAY_US: i64 = 86_400_000_000;

fn member(id: &str) -> MemberId {
    MemberId::parse("member_id", id).expect("member")
}

fn write_traffic(dir: &std::path::Path) {
    let store = Store::open(dir).expect("open");
    let writer = Writer::start(
        store,
        LedgerDecider::new(),
        WriterConfig::with_clock(Arc::new(SystemClock)),
    )
    .expect("writer");
    let program = ProgramId::parse("program_id", "cafe").expect("program");
    let usd = |cents| Money::new(cents, Currency::from_code("USD", "currency").expect("USD"));
    // Noon, ten days ago: every command below falls on a known day.
    let start = (SystemClock.now_us().div_euclid(DAY_US) - 10) * DAY_US + DAY_US / 2;
    let mut commands = vec![(
        start,
        LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules: ProgramRules::basic("USD"),
        }),
    )];
    for day in 0..6 {
        for who in ["ann", "bob", "cyd"] {
            let command = Command::RecordPurchase {
                order_id: format!("o{day}"),
                spend: usd(1_000 + 250 * day),
                tags: vec![],
            };
            commands.push((
                start + day * DAY_US + 1,
                LedgerCommand::Member {
                    member_id: member(who),
                    command,
                },
            ));
        }
    }
    let at = start + 7 * DAY_US;
    let member_command = |who: &str, command| LedgerCommand::Member {
        member_id: member(who),
        command,
    };
    commands.extend([
        (
            at,
            member_command(
                "ann",
                Command::Redeem {
                    redemption_id: "r1".into(),
                    points: Points::new(25),
                },
            ),
        ),
        (
            at,
            member_command(
                "bob",
                Command::RecordReturn {
                    order_id: "o2".into(),
                    refund: usd(1_500),
                },
            ),
        ),
        (
            at,
            member_command(
                "cyd",
                Command::AwardPoints {
                    reason: "birthday".into(),
                    points: Points::new(50),
                },
            ),
        ),
        (
            at,
            LedgerCommand::Transfer(TransferPoints {
                transfer_id: "t1".into(),
                from_member_id: member("cyd"),
                to_member_id: member("ann"),
                points: Points::new(30),
            }),
        ),
    ]);
    let envelopes: Vec<Envelope<LedgerCommand>> = commands
        .into_iter()
        .enumerate()
        .map(|(i, (occurred_at_us, command))| Envelope {
            program_id: program.clone(),
            idempotency_key: IdempotencyKey::parse("idempotency_key", &format!("k{i}"))
                .expect("key"),
            occurred_at_us,
            principal: "reconcile-test".into(),
            metadata: vec![],
            expected_version: None,
            command,
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for envelope in envelopes {
        let result = runtime.block_on(writer.handle().submit(envelope));
        assert!(result.is_ok(), "{result:?}");
    }
    writer.shutdown();
}

fn ledgerd(dir: &std::path::Path, args: &[&str]) -> Output {
    Process::new(env!("CARGO_BIN_EXE_ledgerd"))
        .arg("reconcile")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run ledgerd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Rewrites the first row of the active generation of view `tag` whose key
/// (after the generation) starts with `start`.
fn alter_row<T: serde::de::DeserializeOwned + serde::Serialize>(
    dir: &std::path::Path,
    tag: u8,
    start: &[u8],
    alter: impl FnOnce(&mut T),
) {
    let store = Store::open(dir).expect("open");
    let cf = store.cf(CF_VIEWS);
    let generation = store
        .db()
        .get_cf(cf, [b'a', tag])
        .expect("read")
        .expect("an active generation");
    let mut prefix = vec![b'r', tag];
    prefix.extend_from_slice(&generation);
    prefix.extend_from_slice(start);
    let (key, value) = store
        .db()
        .prefix_iterator_cf(cf, &prefix)
        .next()
        .expect("a row")
        .expect("read");
    assert!(key.starts_with(&prefix), "a row under the prefix");
    let mut row: T = decode(&value, "row").expect("decodes");
    alter(&mut row);
    store.db().put_cf(cf, &key, encode(&row)).expect("write");
}

#[test]
fn reconcile_ties_a_clean_log_and_names_every_altered_figure() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_traffic(dir.path());

    let clean = ledgerd(dir.path(), &[]);
    let stdout = text(&clean.stdout);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{stdout}{}",
        text(&clean.stderr)
    );
    assert!(stdout.contains("program cafe (USD), 3 members"), "{stdout}");
    assert!(stdout.contains("reconciled: every figure ties"), "{stdout}");

    let json = ledgerd(dir.path(), &["--format", "json", "--program", "cafe"]);
    assert_eq!(json.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(report["ties"], true);
    let program = &report["programs"][0];
    let closing = program["closing_all_days"].as_i64().expect("closing");
    // 18 purchases of 10.00 + 2.50 x day: 3 x (10+12+15+17+20+22) points,
    // less the redemption, the return's 15 points, plus the award.
    assert_eq!(closing, 3 * (10 + 12 + 15 + 17 + 20 + 22) - 25 - 15 + 50);
    assert_eq!(program["member_points"].as_i64(), Some(closing));
    assert_eq!(program["totals"]["transferred_in"], 30);
    assert_eq!(program["totals"]["transferred_out"], 30);

    let csv = ledgerd(dir.path(), &["--format", "csv"]);
    assert_eq!(csv.status.code(), Some(0));
    let csv_text = text(&csv.stdout);
    let mut lines = csv_text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|header| header.starts_with("program_id,date,opening,earned")),
        "{csv_text}"
    );
    assert_eq!(
        lines.count(),
        8,
        "one row per day from the first to the last active day"
    );

    // A liability day that says 7 more points were redeemed.
    alter_row::<Flows>(dir.path(), b'l', b"d", |flows| flows.redeemed += 7);
    let tampered = ledgerd(dir.path(), &[]);
    let stdout = text(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("NOT reconciled: 1 difference(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("redeemed: log says 0, liability view says 7"),
        "{stdout}"
    );

    // A member whose balance row holds 5 points too many.
    alter_row::<MemberBalance>(dir.path(), b'b', b"m", |row| row.available += 5);
    let both = ledgerd(dir.path(), &["--format", "csv"]);
    let stderr = text(&both.stderr);
    assert_eq!(both.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "all days outstanding (closing over all days vs available + pending - debt): \
             log says {closing}, balance view member rows says {}",
            closing + 5
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("program totals: available"),
        "the totals row no longer matches the rows: {stderr}"
    );
}

#[test]
fn reconcile_names_bad_flags_and_unknown_programs() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_traffic(dir.path());
    for (args, needle) in [
        (&["--from", "2026-02-30"][..], "--from"),
        (&["--to", "yesterday"][..], "--to"),
        (&["--from", "2026-03-02", "--to", "2026-03-01"][..], "--to"),
        (&["--program", "no such"][..], "--program"),
        (&["--program", "nowhere"][..], "program nowhere not found"),
    ] {
        let output = ledgerd(dir.path(), args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
