//! Goal: a crash at any moment loses no acknowledged append, duplicates none,
//! and leaves no part of an unacknowledged batch behind.
//!
//! Method: this binary runs itself as a child process (`LEDGER_CRASH_CHILD`
//! set) that appends under concurrent load and prints a line for every
//! acknowledged command, only after the writer answered (after the fsync).
//! The parent kills the child with SIGKILL after a pseudo-random number of
//! acknowledgements, 24 rounds on one data directory, and after each kill
//! reopens the store and checks: the chain verifies; every acknowledged key
//! is in the log exactly once, at the positions it was told; every command in
//! the log is whole (all its events, contiguous). Each child also retries
//! keys of the previous round, which must be answered from the log, never
//! appended twice. Uses `harness = false`; prints libtest's summary line.

mod common;

use common::{T0_US, award, envelope, member_stream, next_random, start_writer};
use ledger_core::clock::ManualClock;
use ledger_core::error::CommandError;
use ledger_core::store::{Store, VerifyOutcome};
use ledger_core::writer::{Append, Envelope};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const ROUNDS: u64 = 24;
const TASKS: u64 = 4;

fn main() {
    if let Ok(dir) = std::env::var("LEDGER_CRASH_CHILD") {
        let round: u64 = std::env::var("LEDGER_CRASH_ROUND")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        child(std::path::Path::new(&dir), round);
        return;
    }
    parent();
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

/// The request for a key is a pure function of it, so a retry in a later
/// round sends exactly the same request.
fn request(round: u64, task: u64, index: u64) -> Envelope<Append> {
    let key = format!("r{round}-t{task}-{index}");
    let events = (0..=(index % 3))
        .map(|n| {
            (
                member_stream(&format!("m{}", (task + index + n) % 6)),
                award((index + n + 1) as i64, "crash"),
            )
        })
        .collect();
    envelope(&key, None, events)
}

fn child(dir: &std::path::Path, round: u64) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = Store::open(dir).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let handle = writer.handle();
            tasks.push(tokio::spawn(async move {
                for index in 0.. {
                    // Every fourth submission retries a key of the previous round.
                    let envelope = if round > 0 && index % 4 == 3 {
                        request(round - 1, task, index / 4)
                    } else {
                        request(round, task, index)
                    };
                    let key = envelope.idempotency_key.to_string();
                    match handle.submit(envelope).await {
                        Ok(appended) => {
                            let mut out = std::io::stdout().lock();
                            // One write per line: a kill cannot interleave two acks.
                            let line = format!(
                                "ack {key} {} {}\n",
                                appended.first_position, appended.event_count
                            );
                            if out
                                .write_all(line.as_bytes())
                                .and_then(|()| out.flush())
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(CommandError::Overloaded) => tokio::task::yield_now().await,
                        Err(other) => panic!("child append failed: {other}"),
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
    let mut acknowledged: HashMap<String, (u64, u32)> = HashMap::new();
    let mut random = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..ROUNDS {
        let kill_after = 1 + next_random(&mut random) % 300;
        let mut child = Command::new(&exe)
            .env("LEDGER_CRASH_CHILD", dir.path())
            .env("LEDGER_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout);
        let mut seen = 0u64;
        let mut killed = false;
        let mut line = String::new();
        loop {
            line.clear();
            let read = lines.read_line(&mut line).expect("read child output");
            if read == 0 {
                break;
            }
            // A line cut short by the kill was never fully acknowledged.
            if !line.ends_with('\n') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some("ack"), Some(key), Some(first), Some(count)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                panic!("unexpected child output {line:?}");
            };
            let answer: (u64, u32) = (
                first.parse().expect("position"),
                count.parse().expect("count"),
            );
            if let Some(previous) = acknowledged.insert(key.to_owned(), answer) {
                assert_eq!(previous, answer, "a retry of {key} got a different answer");
            }
            seen += 1;
            if seen == kill_after && !killed {
                child.kill().expect("SIGKILL the child");
                killed = true;
            }
        }
        let status = child.wait().expect("reap child");
        assert!(
            killed,
            "round {round}: the child exited by itself: {status}"
        );
        check_store(dir.path(), &acknowledged, round);
    }
    let head = Store::open(dir.path())
        .expect("reopen")
        .head()
        .expect("head");
    eprintln!(
        "log_crash: {ROUNDS} SIGKILLs, {} acknowledged commands all present once, head {}",
        acknowledged.len(),
        head.position
    );
}

fn check_store(dir: &std::path::Path, acknowledged: &HashMap<String, (u64, u32)>, round: u64) {
    let store = Store::open(dir).expect("reopen after kill");
    let head = store.head().expect("head");
    assert_eq!(
        store.verify(|_| {}).expect("verify runs"),
        VerifyOutcome::Verified { head },
        "round {round}: the chain verifies"
    );
    let records = store
        .read_range(1, head.position, usize::MAX)
        .expect("read all");
    let mut commands: HashMap<String, (u64, u32)> = HashMap::new();
    let mut index = 0usize;
    while let Some(stored) = records.get(index) {
        let first = stored.decode().expect("decodes");
        assert_eq!(
            first.command_event_index, 0,
            "round {round}: a command starts at {}",
            first.position
        );
        let count = first.command_event_count;
        for offset in 1..count as usize {
            let next = records
                .get(index + offset)
                .expect("the rest of the command is there")
                .decode()
                .expect("decodes");
            assert_eq!(
                next.idempotency_key, first.idempotency_key,
                "round {round}: commands are whole"
            );
            assert_eq!(next.command_event_index as usize, offset);
        }
        let duplicate = commands.insert(first.idempotency_key.clone(), (first.position, count));
        assert!(
            duplicate.is_none(),
            "round {round}: {} appended twice",
            first.idempotency_key
        );
        index += count as usize;
    }
    for (key, answer) in acknowledged {
        assert_eq!(
            commands.get(key),
            Some(answer),
            "round {round}: acknowledged {key} is in the log where it was told"
        );
    }
}
