//! The real `ledgerd` binary, driven over the network: a graceful stop
//! under load, metrics, the command-line client, a member's life to expiry,
//! and concurrent redemptions on one member.

use ledger_core::store::Store;
use ledger_server::ledger::timestamp;
use ledger_server::pb;
use ledger_server::pb::ledger_client::LedgerClient;
use projections::rows::{self, Space};
use projections::runtime::ViewKind;
use std::process::Command;
use std::time::Duration;

mod common;
use common::Ledgerd;

/// Goal: the real `ledgerd serve` process, stopped with SIGTERM under
/// `checkout` load, answers every call it accepted, loses no acknowledged
/// command, lets the views fold the last events, and exits 0.
///
/// Method: start the binary on 127.0.0.1 port 0 and read the address it
/// bound from its log; run `ledgerd load`'s checkout scenario against it
/// (16 workers, keeping every acknowledged command); once an Audit
/// subscription has seen 300 durable events, send SIGTERM; let the load run
/// end by itself as its calls are refused; then open the data directory and
/// check that the chain verifies, each acknowledged command is in the log
/// exactly once where its answer said, and every view's checkpoint is at
/// the head. The server logs JSON (`--log-format json`): every line must
/// parse, and commands carry their call span with program, member and
/// position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_caller_and_loses_nothing() {
    let server = Ledgerd::start(&[]);
    let start_head = common::head_over_grpc(&server.addr).await;
    // The load's own deadline is only a bound: the stop below ends it.
    let options = common::checkout(&server.addr, "term", 7, Duration::from_secs(120));
    let (stop_load, load_stopped) = tokio::sync::oneshot::channel::<()>();
    let load = tokio::spawn(ledger_server::load::run(options, async {
        // A dropped sender also ends the run.
        let _ = load_stopped.await;
    }));
    common::events_durable(&server.addr, start_head, 300).await;
    let (log, dir) = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    // The server has exited: calls in flight were answered or refused.
    let _ = stop_load.send(());
    let report = load.await.expect("load task").expect("load ran");
    assert!(report.acks.len() >= 100, "{} acks", report.acks.len());
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
                && span["program"] == "load"
                && span["member"].as_str().is_some_and(|m| m.starts_with('m'))
                && span["position"].as_u64().is_some()
        }),
        "no command line with its span: {}",
        log.join("\n")
    );

    let head = common::check_acknowledged(dir.path(), &report.acks);
    let store = Store::open(dir.path()).expect("reopen");
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

/// A free loopback port: bound, read, released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` over HTTP/1.0; returns the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to metrics");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

/// The value of the sample whose line starts with `name` and contains each of
/// `labels` (`key="value"`).
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split([' ', '{']).next() == Some(name)
                && labels.iter().all(|label| line.contains(label))
        })
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Goal: `--metrics` serves the documented metrics with the values the
/// server's work gives them. Method: two awards and one refused award, a
/// read that waits for the balance view to fold them, then one scrape:
/// counts by call and code, latency histograms, the writer's batch and
/// fsync histograms, the head and the view's checkpoint at the last
/// position, and the lag gauges present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_commits_and_views() {
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let server = Ledgerd::start(&["--metrics", &metrics_addr]);
    let mut client = LedgerClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect");
    let award = |key: &str, points: i64| pb::AwardPointsRequest {
        program_id: "default".into(),
        member_id: "ada".into(),
        idempotency_key: key.into(),
        occurred_at: Some(timestamp(now_us())),
        reason: "metrics test".into(),
        points,
        ..Default::default()
    };
    client.award_points(award("a1", 5)).await.expect("award");
    let last = client
        .award_points(award("a2", 7))
        .await
        .expect("award")
        .into_inner()
        .position;
    let refused = client.award_points(award("a3", 0)).await.expect_err("zero");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    client
        .get_balance(pb::GetBalanceRequest {
            program_id: "default".into(),
            member_id: "ada".into(),
            min_position: last,
        })
        .await
        .expect("balance");

    let metrics = http_get(&metrics_addr, "/metrics");
    let award_call = r#"call="/pointsledger.v1.Ledger/AwardPoints""#;
    let count = |labels: &[&str]| sample(&metrics, "ledger_requests_total", labels);
    assert_eq!(count(&[award_call, r#"code="Ok""#]), Some(2.0), "{metrics}");
    assert_eq!(
        count(&[award_call, r#"code="InvalidArgument""#]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "ledger_request_duration_seconds_count",
            &[award_call]
        ),
        Some(3.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("ledger_request_duration_seconds_bucket{"),
        "latency is a histogram: {metrics}"
    );
    // The default program's definition and the two awards: at least two
    // group commits, each fsynced.
    let commits = sample(&metrics, "ledger_writer_fsync_seconds_count", &[]).expect("fsyncs");
    assert!(commits >= 2.0, "{metrics}");
    assert_eq!(
        sample(&metrics, "ledger_writer_batch_events_sum", &[]),
        Some(last as f64),
        "every event in some batch: {metrics}"
    );
    assert_eq!(
        sample(&metrics, "ledger_head_position", &[]),
        Some(last as f64)
    );
    assert_eq!(
        sample(
            &metrics,
            "ledger_projection_checkpoint",
            &[r#"view="balance""#]
        ),
        Some(last as f64),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "ledger_projection_lag_events",
            &[r#"view="tier""#]
        )
        .is_some(),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "ledger_writer_queue_depth", &[]).is_some(),
        "{metrics}"
    );
    // The two awards' lots, in the cached members' state.
    let cached = |kind: &str| {
        sample(
            &metrics,
            "ledger_engine_cache_entries",
            &[&format!(r#"kind="{kind}""#)],
        )
    };
    assert!(cached("members").is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(cached("entries").is_some_and(|n| n >= 2.0), "{metrics}");
    assert_eq!(cached("records"), Some(0.0), "awards make no record");
    assert_eq!(cached("lots"), Some(2.0), "the two awards' lots");
    // The events above are in a memtable until RocksDB flushes it.
    assert!(
        sample(
            &metrics,
            "ledger_rocksdb_memory_bytes",
            &[r#"kind="memtables""#]
        )
        .is_some_and(|bytes| bytes > 0.0),
        "{metrics}"
    );
    // The allocator's counts: the server has a live heap, and what is
    // resident holds at least the pages in use.
    let heap = |kind: &str| {
        sample(
            &metrics,
            "ledger_heap_bytes",
            &[&format!(r#"kind="{kind}""#)],
        )
    };
    let (allocated, active, resident) = (heap("allocated"), heap("active"), heap("resident"));
    assert!(allocated.is_some_and(|bytes| bytes > 0.0), "{metrics}");
    assert!(
        allocated <= active && active <= resident && heap("retained").is_some(),
        "{metrics}"
    );
    server.stop();
}

/// Runs `ledgerd client --target <server> [--json] args...`; returns the
/// exit code and standard output (parsed as JSON with `--json`).
fn client(server: &Ledgerd, json: bool, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledgerd"));
    command.args(["client", "--target", &format!("http://{}", server.addr)]);
    if json {
        command.arg("--json");
    }
    let output = command.args(args).output().expect("run ledgerd client");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let code = output.status.code().expect("exit code");
    assert!(
        code != 2,
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (code, stdout)
}

fn client_json(server: &Ledgerd, args: &[&str]) -> (i32, serde_json::Value) {
    let (code, stdout) = client(server, true, args);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{args:?}: {stdout}"));
    (code, value)
}

/// Goal: `ledgerd client` drives every common call of a running server,
/// prints what the server answered, and exits 1 naming the code and field
/// when a call is refused. Method: one member's life through the binary,
/// with each answer's balance checked by hand arithmetic.
#[test]
fn the_client_drives_the_common_calls() {
    let server = Ledgerd::start(&[]);
    let ok = |args: &[&str]| {
        let (code, value) = client_json(&server, args);
        assert_eq!(code, 0, "{args:?}: {value}");
        value
    };
    let balance = |value: &serde_json::Value| {
        let balance = &value["balance"];
        (
            balance["available"].as_i64().expect("available"),
            balance["pending"].as_i64().expect("pending"),
        )
    };
    // A retry is the same request: the same business time too.
    let at = ledger_server::export::rfc3339(now_us());
    let enrolled = ok(&["enroll", "ada", "--key", "e1"]);
    assert_eq!(enrolled["events"][0], "MemberEnrolled");
    assert_eq!(enrolled["stream_version"], 1);
    let award = [
        "award", "ada", "--points", "100", "--reason", "welcome", "--key", "a1", "--at", &at,
    ];
    let awarded = ok(&award);
    assert_eq!(balance(&awarded), (100, 0));
    // The default program: 1 point per dollar, pending for 30 days.
    let bought = ok(&[
        "purchase",
        "ada",
        "--order",
        "o1",
        "--spend-minor",
        "2500",
        "--key",
        "p1",
        "--tag",
        "web",
    ]);
    assert_eq!(balance(&bought), (100, 25));
    assert_eq!(
        ok(&[
            "redeem",
            "ada",
            "--points",
            "30",
            "--redemption",
            "r1",
            "--key",
            "r1"
        ])["balance"]["available"],
        70
    );
    let returned = ok(&[
        "return",
        "ada",
        "--order",
        "o1",
        "--refund-minor",
        "1000",
        "--key",
        "t1",
    ]);
    assert_eq!(balance(&returned), (70, 15));
    let adjusted = ok(&[
        "adjust",
        "ada",
        "--points",
        "-5",
        "--reason",
        "correction",
        "--key",
        "j1",
        "--meta",
        "ticket=42",
    ]);
    assert_eq!(balance(&adjusted), (65, 15));
    ok(&["enroll", "bob", "--key", "e2"]);
    let sent = ok(&[
        "transfer",
        "ada",
        "--to",
        "bob",
        "--points",
        "20",
        "--transfer",
        "x1",
        "--key",
        "x1",
    ]);
    assert_eq!(balance(&sent), (45, 15));
    // A retry over the network is answered from memory.
    let again = ok(&award);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["position"], awarded["position"]);
    // A dry run appends nothing.
    let dry = ok(&[
        "award",
        "ada",
        "--points",
        "1",
        "--reason",
        "x",
        "--key",
        "d1",
        "--dry-run",
    ]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["events"][0], "PointsAwarded");

    let last = sent["position"].as_u64().expect("position");
    let head = ok(&["head"]);
    assert_eq!(head["position"], last);
    assert_eq!(head["hash"].as_str().map(str::len), Some(64));
    let min_position = last.to_string();
    let state = ok(&["balance", "ada", "--min-position", &min_position]);
    assert_eq!(state["position"], last);
    assert_eq!(balance(&state), (45, 15));
    assert_eq!(state["lifetime"]["awarded"], 100);
    assert_eq!(state["lifetime"]["redeemed"], 30);
    assert_eq!(state["lifetime"]["transferred_out"], 20);
    let page = ok(&["statement", "ada", "--page-size", "2"]);
    assert_eq!(page["lines"].as_array().map(Vec::len), Some(2));
    // Newest first: the transfer's debit, the first of its two events.
    assert_eq!(page["lines"][0]["position"], sent["first_position"]);
    assert_eq!(page["lines"][1]["position"], adjusted["position"]);
    let token = page["next_page_token"].as_str().expect("token").to_owned();
    let next = ok(&[
        "statement",
        "ada",
        "--page-size",
        "2",
        "--page-token",
        &token,
    ]);
    assert_eq!(next["lines"].as_array().map(Vec::len), Some(2));

    // Refusals: exit 1 with the code, and the field for bad input.
    let (code, refused) = client_json(
        &server,
        &[
            "redeem",
            "ada",
            "--points",
            "1000",
            "--redemption",
            "r2",
            "--key",
            "r2",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(refused["error"]["code"], "FailedPrecondition", "{refused}");
    let (code, refused) = client_json(
        &server,
        &[
            "award", "ada", "--points", "0", "--reason", "x", "--key", "z1",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(refused["error"]["code"], "InvalidArgument");
    assert_eq!(
        refused["error"]["fields"][0]["field"], "points",
        "{refused}"
    );
    // The text form names the figures.
    let (code, text) = client(&server, false, &["balance", "ada"]);
    assert_eq!(code, 0);
    assert!(text.contains("available: 45"), "{text}");
    server.stop();
}

/// Microseconds of an RFC 3339 time.
fn at(text: &str) -> Option<prost_types::Timestamp> {
    Some(timestamp(
        ledger_server::export::parse_time("at", text).expect("time"),
    ))
}

/// Goal: a member's life from enrolment to expiry through the real binary,
/// with the server's own scheduler doing the time-driven work. Method: the
/// commands are dated a year back (business time may be in the past), so
/// the purchase's points have matured and every lot has passed its expiry
/// (end of the 12th month after the month earned) by the time they are
/// written; an Audit subscription waits for the scheduler's expiry event,
/// then a read at that position checks the balance and lifetime totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_life_from_enrolment_to_expiry() {
    use ledger_server::pb::audit_client::AuditClient;
    use prost::Message;
    let server = Ledgerd::start(&[]);
    let target = format!("http://{}", server.addr);
    let mut ledger = LedgerClient::connect(target.clone())
        .await
        .expect("connect");
    let mut audit = AuditClient::connect(target).await.expect("connect");
    // One batch: the scheduler acts on due entries only once a batch is
    // durable, so none of its work (due by the server's clock) can come
    // between these commands and move the member's clock past the
    // redemption's. One call each raced it: the redemption was refused
    // whenever the scheduler's expiry came first.
    use pb::batch_command::Command;
    let commands = [
        Command::Enroll(pb::EnrollRequest {
            program_id: "default".into(),
            member_id: "ada".into(),
            idempotency_key: "e1".into(),
            occurred_at: at("2025-10-01T10:00:00Z"),
            ..Default::default()
        }),
        Command::RecordPurchase(pb::RecordPurchaseRequest {
            program_id: "default".into(),
            member_id: "ada".into(),
            idempotency_key: "p1".into(),
            occurred_at: at("2025-10-02T10:00:00Z"),
            order_id: "o1".into(),
            spend: Some(ledger_core::pb::Money {
                minor_units: 2_500,
                currency: "USD".into(),
            }),
            ..Default::default()
        }),
        Command::AwardPoints(pb::AwardPointsRequest {
            program_id: "default".into(),
            member_id: "ada".into(),
            idempotency_key: "a1".into(),
            occurred_at: at("2025-10-03T10:00:00Z"),
            reason: "welcome".into(),
            points: 100,
            ..Default::default()
        }),
        // Forty days on, the purchase's points have matured: the redemption
        // draws on both lots.
        Command::Redeem(pb::RedeemRequest {
            program_id: "default".into(),
            member_id: "ada".into(),
            idempotency_key: "r1".into(),
            occurred_at: at("2025-11-12T10:00:00Z"),
            redemption_id: "r1".into(),
            points: 10,
            ..Default::default()
        }),
    ];
    let commands = commands
        .into_iter()
        .map(|command| pb::BatchCommand {
            command: Some(command),
        })
        .collect();
    let results = ledger
        .submit_batch(pb::SubmitBatchRequest { commands })
        .await
        .expect("batch")
        .into_inner()
        .results;
    let balances: Vec<(i64, i64)> = results
        .into_iter()
        .map(|result| match result.result {
            Some(pb::batch_result::Result::Ok(answer)) => {
                let balance = answer.balance.expect("balance");
                (balance.available, balance.pending)
            }
            other => panic!("every command is accepted: {other:?}"),
        })
        .collect();
    // Enrolled, bought (25 pending), awarded 100, redeemed 10 of 125.
    assert_eq!(balances, vec![(0, 0), (0, 25), (100, 25), (115, 0)]);

    // The scheduler expires what is left on 2026-11-01 (due already).
    let mut records = audit
        .subscribe(pb::SubscribeRequest { from_position: 1 })
        .await
        .expect("subscribe")
        .into_inner();
    let expired_at = loop {
        let record = records
            .message()
            .await
            .expect("subscription")
            .expect("the stream stays open");
        let event = ledger_core::pb::EventRecord::decode(record.record.as_slice()).expect("decode");
        let kind = event
            .event
            .as_ref()
            .map_or("", ledger_server::export::event_name);
        if kind == "PointsExpired" && event.stream == "member/default/ada" {
            break record.position;
        }
    };
    let state = ledger
        .get_balance(pb::GetBalanceRequest {
            program_id: "default".into(),
            member_id: "ada".into(),
            min_position: expired_at,
        })
        .await
        .expect("balance")
        .into_inner();
    let balance = state.balance.expect("balance");
    let lifetime = state.lifetime.expect("lifetime");
    assert_eq!(
        (balance.available, balance.pending, balance.debt),
        (0, 0, 0)
    );
    assert_eq!(
        (
            lifetime.earned,
            lifetime.awarded,
            lifetime.redeemed,
            lifetime.expired
        ),
        (25, 100, 10, 115)
    );
    assert_eq!(state.open_lots, 0);
    let statement = ledger
        .get_statement(pb::GetStatementRequest {
            program_id: "default".into(),
            member_id: "ada".into(),
            min_position: expired_at,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("statement")
        .into_inner();
    let kinds: Vec<&str> = statement
        .lines
        .iter()
        .map(|line| line.kind.as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"expired"), "{kinds:?}");
    server.stop();
}

/// Goal: concurrent redemptions on one member over the network never
/// overdraw. Method: 100 points, eight clients redeeming 7 points each as
/// fast as they can until refused; the acknowledged redemptions add up to
/// at most 100, and the balance left is 100 minus what they took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redeems_over_the_network_never_overdraw() {
    let server = Ledgerd::start(&[]);
    let client = LedgerClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect");
    client
        .clone()
        .award_points(pb::AwardPointsRequest {
            program_id: "default".into(),
            member_id: "hot".into(),
            idempotency_key: "seed".into(),
            occurred_at: Some(timestamp(now_us())),
            reason: "seed".into(),
            points: 100,
            ..Default::default()
        })
        .await
        .expect("seed");
    let mut tasks = Vec::new();
    for task in 0..8 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            for index in 0.. {
                let key = format!("r{task}-{index}");
                let answer = client
                    .redeem(pb::RedeemRequest {
                        program_id: "default".into(),
                        member_id: "hot".into(),
                        idempotency_key: key.clone(),
                        occurred_at: Some(timestamp(now_us())),
                        redemption_id: key,
                        points: 7,
                        ..Default::default()
                    })
                    .await;
                match answer {
                    Ok(answer) => {
                        let balance = answer.into_inner().balance.expect("balance");
                        assert!(balance.available >= 0, "overdrawn: {balance:?}");
                        taken.push(7);
                    }
                    Err(status) => {
                        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
                        return taken;
                    }
                }
            }
            taken
        }));
    }
    let mut taken = 0;
    for task in tasks {
        taken += task.await.expect("client").iter().sum::<i64>();
    }
    // 14 redemptions of 7 fit in 100; the 15th cannot.
    assert_eq!(taken, 98);
    let head = audit_head(&server).await;
    let state = client
        .clone()
        .get_balance(pb::GetBalanceRequest {
            program_id: "default".into(),
            member_id: "hot".into(),
            min_position: head,
        })
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(state.balance.expect("balance").available, 100 - taken);
    server.stop();
}

/// The durable head of a running server.
async fn audit_head(server: &Ledgerd) -> u64 {
    common::head_over_grpc(&server.addr).await
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as i64
}
