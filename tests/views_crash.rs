//! Goal: a view worker killed at any moment (mid-chunk, mid-write) resumes
//! from its checkpoint without applying any event twice or missing one.
//!
//! Method: this binary runs itself as a child process (`VIEWS_CRASH_CHILD`
//! set) that runs the engine and both views while four tasks submit
//! purchases, awards and redeems for eight members, printing a line per
//! acknowledged command. The parent kills it with SIGKILL after a
//! pseudo-random number of acknowledgements, 12 rounds on one data
//! directory. After each kill it starts the views again, lets them catch up
//! and checks: every member's balance and pending points in the view equal
//! the write model loaded from the log; and the view's rows are byte-equal
//! to a rebuild from position 0 (a double-applied event would show in the
//! lifetime totals and statement lines). Uses `harness = false`.

mod common;

use common::ledger::{self, Client, award, member, program_id, purchase, redeem};
use common::{T0_US, next_random};
use ledger_core::clock::ManualClock;
use ledger_core::domain::ProgramRules;
use ledger_core::engine::load_member;
use ledger_core::store::Store;
use projections::runtime::{ViewKind, rebuild_offline, view_digest};
use projections::{Runtime, balance, rows};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const ROUNDS: u64 = 12;
const MEMBERS: u64 = 8;

fn main() {
    if let Ok(dir) = std::env::var("VIEWS_CRASH_CHILD") {
        let round = std::env::var("VIEWS_CRASH_ROUND")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        child(std::path::Path::new(&dir), round);
        return;
    }
    parent();
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

fn rules() -> ProgramRules {
    let mut rules = ProgramRules::basic("USD");
    rules.pending_days = 0;
    rules
}

fn child(dir: &std::path::Path, round: u64) {
    let tokio = tokio::runtime::Runtime::new().expect("runtime");
    let clock = ManualClock::new(T0_US);
    let (store, writer) = ledger::open(dir, &clock);
    tokio.block_on(async {
        let client = Client::new(writer.handle(), clock.clone(), &format!("r{round}"));
        if round == 0 {
            client.define(rules()).await;
        }
        let _views = Runtime::start(
            store.clone(),
            writer.handle().head(),
            Arc::new(clock),
            &ViewKind::ALL,
        )
        .expect("views");
        let mut tasks = Vec::new();
        for task in 0..4u64 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                for index in 0u64.. {
                    let id = format!("m{}", (task + index) % MEMBERS);
                    let command = match index % 3 {
                        0 => purchase(&format!("o{round}-{task}-{index}"), 1_000 + index as i64),
                        1 => award(1 + (index % 50) as i64),
                        _ => redeem(&format!("r{round}-{task}-{index}"), 1 + (index % 7) as i64),
                    };
                    // Redeems may be refused (not enough points): fine.
                    let _ = client.member(&id, command).await;
                    let mut out = std::io::stdout().lock();
                    if out.write_all(b"ack\n").and_then(|()| out.flush()).is_err() {
                        return;
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("child task");
        }
    });
}

fn parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("own executable");
    let mut random = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..ROUNDS {
        let kill_after = 20 + next_random(&mut random) % 400;
        let mut child = Command::new(&exe)
            .env("VIEWS_CRASH_CHILD", dir.path())
            .env("VIEWS_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut seen = 0u64;
        for line in BufReader::new(stdout).lines() {
            if line.is_err() {
                break;
            }
            seen += 1;
            if seen == kill_after {
                child.kill().expect("SIGKILL the child");
            }
        }
        let status = child.wait().expect("reap child");
        assert!(
            seen >= kill_after,
            "round {round}: the child exited by itself: {status}"
        );
        check_views(dir.path(), round);
    }
}

fn check_views(dir: &std::path::Path, round: u64) {
    let tokio = tokio::runtime::Runtime::new().expect("runtime");
    let store = Store::open(dir).expect("reopen after kill");
    let head = store.head().expect("head");
    let (_head_tx, head_rx) = tokio::sync::watch::channel(head);
    let clock = ManualClock::new(T0_US);
    let behind: Vec<u64> = ViewKind::ALL
        .iter()
        .map(|kind| {
            let generation = rows::active_generation(&store, kind.tag())
                .expect("active")
                .unwrap_or(1);
            let space = rows::Space {
                tag: kind.tag(),
                generation,
            };
            head.position
                - rows::checkpoint(&store, space)
                    .expect("checkpoint")
                    .position
        })
        .collect();
    tokio.block_on(async {
        let views = Runtime::start(store.clone(), head_rx, Arc::new(clock), &ViewKind::ALL)
            .expect("views resume");
        for kind in ViewKind::ALL {
            let reached = views
                .wait_for(kind, head.position, Duration::from_secs(120))
                .await
                .expect("wait");
            assert_eq!(
                reached,
                head.position,
                "round {round}: {} resumes",
                kind.name()
            );
        }
        views.stop().await;
    });
    for index in 0..MEMBERS {
        let id = member(&format!("m{index}"));
        let Ok(view) = balance::get_balance(&store, &program_id(), &id) else {
            continue;
        };
        let written = load_member(&store, &program_id(), &id).expect("write model");
        assert_eq!(
            (view.value.balance(), view.value.pending),
            (
                written.balance_points().get(),
                written.pending_points().get()
            ),
            "round {round}: m{index} in the view equals the write model"
        );
    }
    for kind in ViewKind::ALL {
        let resumed = view_digest(&store, kind).expect("digest");
        rebuild_offline(&store, kind, |_, _| {}).expect("rebuild");
        assert_eq!(
            view_digest(&store, kind).expect("digest"),
            resumed,
            "round {round}: {} after a kill equals a rebuild",
            kind.name()
        );
    }
    eprintln!(
        "views_crash: round {round}: head {}, views resumed {behind:?} events behind: ok",
        head.position
    );
}
