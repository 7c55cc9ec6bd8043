//! Goal: `ledgerd serve` killed with SIGKILL under `checkout` load, at any
//! moment, loses no acknowledged command and applies none twice; the chain
//! verifies; and the views, resumed after every kill, equal a rebuild from
//! position 0.
//!
//! Method: ten rounds on one data directory. Each round starts the real
//! binary, runs `ledgerd load`'s checkout scenario against it (16 workers
//! over 200 members, keeping every acknowledged command with its
//! positions), and kills the server with SIGKILL once an Audit
//! subscription has seen a pseudo-random number (100 to 899) of new
//! durable events, so the kill lands at a different point of the write
//! path each time. The load is then stopped: its calls in flight were
//! refused, and their outcome is unknown, so they are not checked. After
//! the rounds one more start recovers and catches the views up, and a
//! SIGTERM stops it (exit 0). Then every acknowledged command of every
//! round must be in the log exactly once, at the positions its answer
//! gave; the chain must verify; and each view's rows must be byte-equal to
//! a rebuild from position 0.

mod common;

use common::Ledgerd;
use ledger_core::store::Store;
use projections::runtime::{ViewKind, rebuild_offline, view_digest};
use std::time::Duration;

const ROUNDS: u64 = 10;

/// xorshift64: a fixed sequence of kill points, the same on every run.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_checkout_load_loses_no_acknowledged_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acks = Vec::new();
    let mut random = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..ROUNDS {
        let server = Ledgerd::start_on(dir.path(), &[]);
        let start = common::head_over_grpc(&server.addr).await;
        let kill_after = 100 + next_random(&mut random) % 800;
        // The load's own deadline is only a bound: the kill ends it.
        let options = common::checkout(
            &server.addr,
            &format!("kill{round}"),
            round,
            Duration::from_secs(120),
        );
        let (stop_load, load_stopped) = tokio::sync::oneshot::channel::<()>();
        let load = tokio::spawn(ledger_server::load::run(options, async {
            // A dropped sender also ends the run.
            let _ = load_stopped.await;
        }));
        common::events_durable(&server.addr, start, kill_after).await;
        tokio::task::spawn_blocking(move || server.kill())
            .await
            .expect("kill");
        let _ = stop_load.send(());
        let report = load.await.expect("load task").expect("load ran");
        assert!(
            !report.acks.is_empty(),
            "round {round}: some commands were acknowledged before the kill"
        );
        eprintln!(
            "fault_kill: round {round}: killed after {kill_after} new events; {} commands \
             acknowledged, {} calls refused after the kill",
            report.acks.len(),
            report.errors.values().sum::<u64>()
        );
        acks.extend(report.acks);
    }

    let server = Ledgerd::start_on(dir.path(), &[]);
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("stop");
    assert!(status.success(), "exit {status}: {}", log.join("\n"));

    let head = common::check_acknowledged(dir.path(), &acks);
    let store = Store::open(dir.path()).expect("open");
    for kind in ViewKind::ALL {
        let live = view_digest(&store, kind).expect("digest");
        rebuild_offline(&store, kind, |_, _| {}).expect("rebuild");
        assert_eq!(
            view_digest(&store, kind).expect("digest"),
            live,
            "{} after {ROUNDS} kills equals a rebuild from position 0",
            kind.name()
        );
    }
    eprintln!(
        "fault_kill: {} acknowledged commands over {ROUNDS} kills, all in the log once; head {head}",
        acks.len()
    );
}
