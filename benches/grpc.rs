//! The write path end to end: a tonic client on loopback against the real
//! server (`ledger_server::server::Bound`, the code `ledgerd serve` runs:
//! writer, engine, views, scheduler) in the same process.
//!
//! - `grpc/batch1000`: `SubmitBatch` calls of 1,000 purchases each, spread
//!   over 10,000 members of the default program (30-day pending points,
//!   12-month lot expiry, three tiers), four calls in flight. Each
//!   iteration is one call; the figure is durable events per second, counted
//!   from the `event_count` of every answer.
//! - `grpc/noop`: the standard health `Check`, a unary call that does no
//!   work, from `UNARY_CALLERS` concurrent callers: the ceiling of unary
//!   calls through this server's stack on this machine.
//! - `grpc/checkout`: single-command calls from the same callers in the
//!   checkout mix: 70% purchases, 15% balance reads, 10% redeems, 5%
//!   returns (of the caller's own earlier purchases).
//!
//! Members are enrolled and given redeemable points before timing. Every
//! call must succeed. After criterion's report, a table gives each figure
//! and the checkout mix as a share of the no-op calls, with the machine.

mod common;

use common::machine;
use criterion::{Criterion, Throughput};
use ledger_server::ledger::timestamp;
use ledger_server::pb;
use ledger_server::pb::ledger_client::LedgerClient;
use ledger_server::server::{Bound, DEFAULT_PROGRAM_ID, ServeOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const MEMBERS: u64 = 10_000;
const BATCH_COMMANDS: usize = 1_000;
const BATCHES_IN_FLIGHT: usize = 4;
const UNARY_CALLERS: usize = 64;
/// Connections the callers share, round robin.
const CONNECTIONS: usize = 4;
/// Points each member is given before timing, so that redeems succeed.
const WARM_UP_POINTS: i64 = 1_000_000;

/// CPU time of this process's threads by case and thread group, in ns,
/// summed over every timed iteration: the machine is shared, so CPU per
/// event or call is the steadier figure, and it shows which threads bound
/// the rate.
static CPU_NS: Mutex<BTreeMap<(&'static str, String), u64>> = Mutex::new(BTreeMap::new());

/// Adds the CPU used since `before` to `case`.
fn record_cpu(case: &'static str, before: &BTreeMap<String, u64>) {
    let mut cpu = CPU_NS.lock().unwrap_or_else(|poison| poison.into_inner());
    for (group, after_ns) in cpu_by_group() {
        let before_ns = before.get(&group).copied().unwrap_or(0);
        *cpu.entry((case, group)).or_default() += after_ns.saturating_sub(before_ns);
    }
}

/// CPU time so far of each live thread of this process, in ns, summed by
/// thread group (its name without a trailing number).
fn cpu_by_group() -> BTreeMap<String, u64> {
    let mut groups = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return groups;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let group = name
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_owned();
        let on_cpu_ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *groups.entry(group).or_default() += on_cpu_ns;
    }
    groups
}

/// (units, elapsed) per benchmark id, summed over every timed iteration.
static TOTALS: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record_total(id: &'static str, units: u64, elapsed: Duration) {
    let mut totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    let entry = totals.entry(id).or_default();
    entry.0 += units;
    entry.1 += elapsed;
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as i64
}

fn usd(minor_units: i64) -> Option<ledger_core::pb::Money> {
    Some(ledger_core::pb::Money {
        minor_units,
        currency: "USD".into(),
    })
}

fn member(sequence: u64) -> String {
    // A stride coprime with MEMBERS spreads consecutive commands over members.
    format!("member-{:05}", (sequence * 7_919) % MEMBERS)
}

fn purchase(sequence: u64) -> pb::RecordPurchaseRequest {
    pb::RecordPurchaseRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        member_id: member(sequence),
        idempotency_key: format!("p-{sequence:012}"),
        occurred_at: Some(timestamp(now_us())),
        order_id: format!("order-{sequence:012}"),
        spend: usd(1_000 + (sequence % 9_000) as i64),
        ..Default::default()
    }
}

fn batch_of(commands: impl Iterator<Item = pb::batch_command::Command>) -> pb::SubmitBatchRequest {
    pb::SubmitBatchRequest {
        commands: commands
            .map(|command| pb::BatchCommand {
                command: Some(command),
            })
            .collect(),
    }
}

/// Events of every answer of a batch; panics on a failed command.
fn batch_events(response: pb::SubmitBatchResponse) -> u64 {
    response
        .results
        .into_iter()
        .map(|result| match result.result {
            Some(pb::batch_result::Result::Ok(ok)) => u64::from(ok.event_count),
            other => panic!("every command succeeds: {other:?}"),
        })
        .sum()
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    channels: Vec<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn start() -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let options = ServeOptions {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().expect("addr"),
            tokens: vec![],
            tls: None,
        };
        let (channels, stop, server) = runtime.block_on(async {
            let bound = Bound::open(&options).await.expect("server opens");
            let addr = bound.local_addr().expect("bound");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(bound.serve(async {
                // A dropped sender stops the server too.
                let _ = stopped.await;
            }));
            let mut channels = Vec::new();
            for _ in 0..CONNECTIONS {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .expect("endpoint")
                    .connect()
                    .await
                    .expect("connect");
                channels.push(channel);
            }
            (channels, stop, server)
        });
        let bench = Bench {
            runtime,
            channels,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        };
        bench.warm_up();
        bench
    }

    fn client(&self, index: usize) -> LedgerClient<Channel> {
        LedgerClient::new(self.channels[index % CONNECTIONS].clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// Enrolls every member with points it can redeem at once, and waits
    /// until the balance view holds them all: the `checkout` calls read
    /// balances without `min_position`, so a member the view has not
    /// folded yet would be NotFound.
    fn warm_up(&self) {
        let mut client = self.client(0);
        self.runtime.block_on(async {
            let mut head = 0;
            for first in (0..MEMBERS).step_by(BATCH_COMMANDS) {
                let request = batch_of((first..first + BATCH_COMMANDS as u64).map(|index| {
                    pb::batch_command::Command::AwardPoints(pb::AwardPointsRequest {
                        program_id: DEFAULT_PROGRAM_ID.into(),
                        member_id: format!("member-{index:05}"),
                        idempotency_key: format!("warm-{index}"),
                        occurred_at: Some(timestamp(now_us())),
                        reason: "welcome".into(),
                        points: WARM_UP_POINTS,
                        ..Default::default()
                    })
                }));
                let response = client.submit_batch(request).await.expect("warm-up");
                let response = response.into_inner();
                head = response
                    .results
                    .iter()
                    .filter_map(|result| match &result.result {
                        Some(pb::batch_result::Result::Ok(ok)) => Some(ok.position),
                        _ => None,
                    })
                    .fold(head, u64::max);
                batch_events(response);
            }
            // A read at `head` waits for the view, a few seconds at a time.
            let read = || {
                let mut client = client.clone();
                async move {
                    client
                        .get_balance(pb::GetBalanceRequest {
                            program_id: DEFAULT_PROGRAM_ID.into(),
                            member_id: member(0),
                            min_position: head,
                        })
                        .await
                }
            };
            let mut attempts = 0;
            while let Err(status) = read().await {
                attempts += 1;
                assert!(
                    attempts < 60,
                    "the balance view never reached {head}: {status}"
                );
            }
        });
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may have stopped already; then there is no one to tell.
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            self.runtime
                .block_on(server)
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

/// Runs `iters` calls made by `call` from `callers` concurrent tasks; each
/// call returns the units it did. Returns the units and the time taken.
fn drive<F, Fut>(bench: &Bench, callers: usize, iters: u64, call: F) -> (u64, Duration)
where
    F: Fn(usize, LedgerClient<Channel>, HealthClient<Channel>, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = u64> + Send,
{
    let start = Instant::now();
    let units = bench.runtime.block_on(async {
        let mut tasks = Vec::new();
        for caller in 0..callers {
            let client = bench.client(caller);
            let health = HealthClient::new(bench.channels[caller % CONNECTIONS].clone());
            let call = call.clone();
            let share =
                iters / callers as u64 + u64::from((caller as u64) < iters % callers as u64);
            tasks.push(tokio::spawn(async move {
                let mut units = 0;
                for _ in 0..share {
                    units += call(caller, client.clone(), health.clone(), share).await;
                }
                units
            }));
        }
        let mut units = 0;
        for task in tasks {
            units += task.await.expect("caller");
        }
        units
    });
    (units, start.elapsed())
}

fn bench_batch(c: &mut Criterion, bench: &Bench) {
    let sequence = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("grpc");
    group.throughput(Throughput::Elements(BATCH_COMMANDS as u64));
    group.bench_function("batch1000", |b| {
        b.iter_custom(|iters| {
            let sequence = sequence.clone();
            let cpu_before = cpu_by_group();
            let (events, elapsed) = drive(
                bench,
                BATCHES_IN_FLIGHT,
                iters,
                move |_, mut client, _, _| {
                    let first = sequence.fetch_add(BATCH_COMMANDS as u64, Ordering::Relaxed);
                    let request =
                        batch_of((first..first + BATCH_COMMANDS as u64).map(|index| {
                            pb::batch_command::Command::RecordPurchase(purchase(index))
                        }));
                    async move {
                        let response = client.submit_batch(request).await.expect("submitted");
                        batch_events(response.into_inner())
                    }
                },
            );
            record_total("batch1000 events", events, elapsed);
            record_cpu("batch1000 events", &cpu_before);
            elapsed
        })
    });
    group.finish();
}

fn bench_noop(c: &mut Criterion, bench: &Bench) {
    let mut group = c.benchmark_group("grpc");
    group.throughput(Throughput::Elements(1));
    group.bench_function("noop", |b| {
        b.iter_custom(|iters| {
            let cpu_before = cpu_by_group();
            let (calls, elapsed) = drive(
                bench,
                UNARY_CALLERS,
                iters,
                |_, _, mut health, _| async move {
                    health
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .expect("health");
                    1
                },
            );
            record_total("noop calls", calls, elapsed);
            record_cpu("noop calls", &cpu_before);
            elapsed
        })
    });
    group.finish();
}

/// What a checkout caller remembers of its purchases, for its returns.
type Purchases = Arc<Mutex<Vec<Vec<(String, String)>>>>;

async fn checkout_call(
    mut client: LedgerClient<Channel>,
    sequence: u64,
    caller: usize,
    purchases: Purchases,
) -> u64 {
    match sequence % 20 {
        // 14 in 20 purchases.
        0..14 => {
            let request = purchase(sequence);
            let (member_id, order_id) = (request.member_id.clone(), request.order_id.clone());
            client.record_purchase(request).await.expect("purchase");
            let mut purchases = purchases
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            purchases[caller].push((member_id, order_id));
        }
        // 3 in 20 balance reads.
        14..17 => {
            client
                .get_balance(pb::GetBalanceRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    member_id: member(sequence),
                    min_position: 0,
                })
                .await
                .expect("balance");
        }
        // 2 in 20 redeems.
        17..19 => {
            client
                .redeem(pb::RedeemRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    member_id: member(sequence),
                    idempotency_key: format!("r-{sequence:012}"),
                    occurred_at: Some(timestamp(now_us())),
                    redemption_id: format!("redemption-{sequence:012}"),
                    points: 10,
                    ..Default::default()
                })
                .await
                .expect("redeem");
        }
        // 1 in 20 returns of 1.00 USD of this caller's latest purchase.
        _ => {
            let bought = purchases
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())[caller]
                .pop();
            let Some((member_id, order_id)) = bought else {
                return 0;
            };
            client
                .record_return(pb::RecordReturnRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    member_id,
                    idempotency_key: format!("x-{sequence:012}"),
                    occurred_at: Some(timestamp(now_us())),
                    order_id,
                    refund: usd(100),
                    ..Default::default()
                })
                .await
                .expect("return");
        }
    }
    1
}

fn bench_checkout(c: &mut Criterion, bench: &Bench) {
    // Far from the purchases of the batch case, so keys never collide.
    let sequence = Arc::new(AtomicU64::new(1 << 40));
    let purchases: Purchases = Arc::new(Mutex::new(vec![Vec::new(); UNARY_CALLERS]));
    let mut group = c.benchmark_group("grpc");
    group.throughput(Throughput::Elements(1));
    group.bench_function("checkout", |b| {
        b.iter_custom(|iters| {
            let cpu_before = cpu_by_group();
            let sequence = sequence.clone();
            let purchases = purchases.clone();
            let (calls, elapsed) =
                drive(bench, UNARY_CALLERS, iters, move |caller, client, _, _| {
                    let sequence = sequence.fetch_add(1, Ordering::Relaxed);
                    checkout_call(client, sequence, caller, purchases.clone())
                });
            record_total("checkout calls", calls, elapsed);
            record_cpu("checkout calls", &cpu_before);
            elapsed
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let bench = Bench::start();
    bench_noop(&mut criterion, &bench);
    bench_checkout(&mut criterion, &bench);
    bench_batch(&mut criterion, &bench);
    bench.stop();
    criterion.final_summary();
    let totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    let rate = |id: &str| {
        totals
            .get(id)
            .map(|(units, elapsed)| *units as f64 / elapsed.as_secs_f64().max(1e-9))
    };
    println!(
        "\ngRPC end to end, in-process server, loopback; {}",
        machine()
    );
    if let Some(events) = rate("batch1000 events") {
        println!(
            "SubmitBatch of {BATCH_COMMANDS} purchases, {BATCHES_IN_FLIGHT} in flight: {events:>10.0} durable events/s"
        );
    }
    if let Some(noop) = rate("noop calls") {
        println!("no-op unary calls, {UNARY_CALLERS} callers:        {noop:>10.0} calls/s");
        if let Some(checkout) = rate("checkout calls") {
            println!(
                "checkout mix, {UNARY_CALLERS} callers:             {checkout:>10.0} calls/s ({:.0}% of no-op)",
                100.0 * checkout / noop
            );
        }
    }
    let cpu = CPU_NS.lock().unwrap_or_else(|poison| poison.into_inner());
    for case in ["batch1000 events", "noop calls", "checkout calls"] {
        let Some((units, _)) = totals.get(case) else {
            continue;
        };
        let mut groups: Vec<(&str, u64)> = cpu
            .iter()
            .filter(|((of, _), ns)| *of == case && **ns > 0)
            .map(|((_, group), ns)| (group.as_str(), *ns))
            .collect();
        groups.sort_by_key(|(_, ns)| std::cmp::Reverse(*ns));
        let per_unit = |ns: u64| ns as f64 / 1_000.0 / (*units).max(1) as f64;
        let total_us = per_unit(groups.iter().map(|(_, ns)| ns).sum());
        println!(
            "CPU per {}: {total_us:.2} us in all ({:.0}/s if two cores did nothing else)",
            case.split(' ')
                .nth(1)
                .unwrap_or("unit")
                .trim_end_matches('s'),
            2e6 / total_us.max(1e-9)
        );
        for (group, ns) in groups {
            println!("    {group:<20} {:>8.2} us", per_unit(ns));
        }
    }
}
