//! Goal: the real `ledgerd serve` process, stopped with SIGTERM while
//! clients write, answers every call it accepted, loses no acknowledged
//! command, lets the views fold the last events, and exits 0.
//!
//! Method: start the binary on 127.0.0.1 port 0 and read the address it
//! bound from its log; wait for its "views caught up" line; four clients
//! award points as fast as they can; after 200 acknowledgements send
//! SIGTERM; let every client call finish; then open the data directory and
//! check each acknowledged command at the position it was told, and both
//! views' checkpoints at the head. The server logs JSON (`--log-format
//! json`): every line must parse, and commands carry their call span with
//! program, member and position.

use ledger_core::store::Store;
use ledger_server::ledger::timestamp;
use ledger_server::pb;
use ledger_server::pb::ledger_client::LedgerClient;
use projections::rows::{self, Space};
use projections::runtime::ViewKind;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;

/// Reads the child's log until it has seen a line containing each of
/// `needles`, in any order; returns those lines in the order of `needles`.
fn wait_for_lines(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    needles: &[&str],
) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; needles.len()];
    for line in lines.by_ref() {
        let line = line.expect("child log");
        for (needle, slot) in needles.iter().zip(found.iter_mut()) {
            if slot.is_none() && line.contains(needle) {
                *slot = Some(line.clone());
            }
        }
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().collect();
        }
    }
    panic!("ledgerd exited before logging all of {needles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_caller_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerd"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info,ledger_server=debug")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ledgerd");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    // The two lines come in either order: the views may catch up before the
    // listener is announced.
    let seen = wait_for_lines(&mut lines, &["serving plaintext", "views caught up"]);
    let serving: serde_json::Value = serde_json::from_str(&seen[0]).expect("a JSON log line");
    let addr = serving["fields"]["addr"]
        .as_str()
        .expect("the log names the address")
        .to_owned();
    // Keep draining the log so the child never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let client = LedgerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let acked = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let count = Arc::new(AtomicU64::new(0));
    let (enough_tx, enough_rx) = tokio::sync::oneshot::channel::<()>();
    let enough_tx = Arc::new(std::sync::Mutex::new(Some(enough_tx)));
    let mut tasks = Vec::new();
    for task in 0..4 {
        let mut client = client.clone();
        let acked = acked.clone();
        let count = count.clone();
        let enough_tx = enough_tx.clone();
        tasks.push(tokio::spawn(async move {
            for index in 0u64.. {
                let key = format!("t{task}-{index}");
                let request = pb::AwardPointsRequest {
                    program_id: "default".into(),
                    member_id: format!("m{}", index % 10),
                    idempotency_key: key.clone(),
                    occurred_at: Some(timestamp(now_us())),
                    reason: "shutdown test".into(),
                    points: 1,
                    ..Default::default()
                };
                match client.award_points(request).await {
                    Ok(answer) => {
                        acked.lock().await.push((key, answer.into_inner().position));
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == 200 {
                            let sender = enough_tx.lock().map(|mut slot| slot.take());
                            if let Ok(Some(sender)) = sender {
                                let _ = sender.send(());
                            }
                        }
                    }
                    // Refused once stopping, or the connection closed: the
                    // command may or may not be in the log, but it was
                    // never acknowledged.
                    Err(_) => return,
                }
            }
        }));
    }
    enough_rx.await.expect("200 acknowledgements");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    for task in tasks {
        task.await.expect("client task");
    }
    let exit = child.wait().expect("ledgerd exits");
    let log = log.join().expect("log reader");
    assert!(exit.success(), "ledgerd exit {exit}: {}", log.join("\n"));
    assert!(
        log.iter().any(|line| line.contains("view flushed")),
        "{}",
        log.join("\n")
    );
    // Every log line is JSON, and a command's line carries its call span
    // with the program, member and position.
    let lines: Vec<serde_json::Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines.iter().any(|line| {
            let span = &line["span"];
            span["name"] == "call"
                && span["program"] == "default"
                && span["member"].as_str().is_some_and(|m| m.starts_with('m'))
                && span["position"].as_u64().is_some()
        }),
        "no command line with its span: {}",
        log.join("\n")
    );

    let store = Store::open(dir.path()).expect("reopen");
    let head = store.head().expect("head").position;
    let acked = acked.lock().await;
    assert!(acked.len() >= 200);
    for (key, position) in acked.iter() {
        let record = store
            .read_range(*position, *position, 1)
            .expect("read")
            .pop()
            .unwrap_or_else(|| panic!("acknowledged {key} at {position} is in the log"))
            .decode()
            .expect("decodes");
        assert_eq!(&record.idempotency_key, key, "position {position}");
    }
    for kind in ViewKind::ALL {
        let generation = rows::active_generation(&store, kind.tag())
            .expect("active")
            .expect("the server created the views");
        let checkpoint = rows::checkpoint(
            &store,
            Space {
                tag: kind.tag(),
                generation,
            },
        )
        .expect("checkpoint");
        assert_eq!(
            checkpoint.position,
            head,
            "{} flushed to the head",
            kind.name()
        );
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as i64
}
