//! The group-commit writer against raw RocksDB, in the same run.
//!
//! For each batch size (1, 16, 256, 1,000 commands of one ~200-byte record):
//! - `writer/N`: the real writer (pass-through decider) with its batch limit
//!   set to N, fed by four submitters that each send N commands at a time, so
//!   every group commit holds N commands; each is validated, hashed for
//!   idempotency, checked against the idempotency index, encoded, chained
//!   and indexed, written with fsync, and answered.
//! - `raw/N`: the same key-value entries (record, chain hash, stream index,
//!   idempotency entry per event; the head once per batch) with precomputed
//!   bytes, written in sync `WriteBatch`es of N events one after another.
//!
//! - `engine/N` (N = 256, 1,000): the same writer with the real engine:
//!   purchases by 10,000 members of a program with 30-day pending points,
//!   each decided by the domain, with the member's snapshot and due entry
//!   staged into the batch. Members are warmed into the cache first.
//!
//! After criterion's report, a table prints events/s of each and the ratios
//! to raw, computed from every timed iteration of this run, with the machine.

mod common;

use common::machine;
use criterion::{Criterion, Throughput};
use ledger_core::clock::SystemClock;
use ledger_core::domain::{Command, Currency, Money, ProgramCommand, ProgramRules};
use ledger_core::engine::{LedgerCommand, LedgerDecider};
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId, StreamName};
use ledger_core::pb;
use ledger_core::store::{CF_CHAIN, CF_IDEMPOTENCY, CF_LOG, CF_STREAM_INDEX, Store, keys};
use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig, WriterHandle};
use prost::Message;
use rocksdb::{WriteBatch, WriteOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BATCH_SIZES: [usize; 4] = [1, 16, 256, 1_000];
const SUBMITTERS: usize = 4;
const MEMBERS: u64 = 10_000;

/// (events, elapsed) per benchmark id, summed over every timed iteration.
static TOTALS: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record_total(id: String, events: u64, elapsed: Duration) {
    let mut totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    let entry = totals.entry(id).or_default();
    entry.0 += events;
    entry.1 += elapsed;
}

fn program() -> ProgramId {
    ProgramId::parse("program_id", "bench").expect("valid")
}

fn event(sequence: u64) -> pb::Event {
    pb::Event {
        kind: Some(pb::event::Kind::PointsAwarded(pb::PointsAwarded {
            reason: format!("benchmark award {sequence:>12}: birthday month"),
            points: 100 + (sequence % 900) as i64,
            lot: Some(pb::Lot {
                lot_id: sequence,
                points: 100 + (sequence % 900) as i64,
                earned_at_us: 1_767_225_600_000_000,
                available_at_us: 1_767_225_600_000_000,
                expires_at_us: 1_798_761_600_000_000,
            }),
            debt_repaid: 0,
        })),
    }
}

fn member_stream(sequence: u64) -> StreamName {
    let member =
        MemberId::parse("member_id", &format!("member-{:06}", sequence % MEMBERS)).expect("valid");
    StreamName::member(&program(), &member)
}

fn envelope(sequence: u64) -> Envelope<Append> {
    Envelope {
        program_id: program(),
        idempotency_key: IdempotencyKey::parse("idempotency_key", &format!("bench-{sequence:012}"))
            .expect("valid"),
        occurred_at_us: 1_767_225_600_000_000,
        principal: "bench".into(),
        metadata: vec![],
        expected_version: None,
        command: Append::new([(member_stream(sequence), event(sequence))]),
    }
}

/// Sends `iters` submissions of `batch` commands made by `make` from
/// `SUBMITTERS` concurrent tasks and waits for every answer. Returns the
/// events appended and the time taken.
fn drive<C: serde::Serialize + Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    handle: &WriterHandle<C>,
    sequence: &Arc<AtomicU64>,
    iters: u64,
    batch: usize,
    make: fn(u64) -> Envelope<C>,
) -> (u64, Duration) {
    let start = Instant::now();
    let events = runtime.block_on(async {
        let mut tasks = Vec::new();
        for submitter in 0..SUBMITTERS as u64 {
            let handle = handle.clone();
            let sequence = sequence.clone();
            // Iterations are shared out among the submitters.
            let share =
                iters / SUBMITTERS as u64 + u64::from(submitter < iters % SUBMITTERS as u64);
            tasks.push(tokio::spawn(async move {
                let mut events = 0u64;
                for _ in 0..share {
                    let first = sequence.fetch_add(batch as u64, Ordering::Relaxed);
                    let envelopes = (first..first + batch as u64).map(make).collect();
                    for result in handle.submit_many(envelopes).await.expect("submitted") {
                        events += u64::from(result.expect("every command succeeds").event_count);
                    }
                }
                events
            }));
        }
        let mut events = 0u64;
        for task in tasks {
            events += task.await.expect("submitter");
        }
        events
    });
    (events, start.elapsed())
}

fn bench_writer(c: &mut Criterion, batch: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut config = WriterConfig::with_clock(Arc::new(SystemClock));
    config.batch_commands_max = batch;
    let writer = Writer::start(store, PassThrough, config).expect("writer");
    let handle = writer.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sequence = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("writer");
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(format!("{batch}"), |b| {
        b.iter_custom(|iters| {
            let (events, elapsed) = drive(&runtime, &handle, &sequence, iters, batch, envelope);
            record_total(format!("writer/{batch:>4}"), events, elapsed);
            elapsed
        })
    });
    group.finish();
    writer.shutdown();
}

fn purchase(sequence: u64, round: u64) -> Envelope<LedgerCommand> {
    let member =
        MemberId::parse("member_id", &format!("member-{:06}", sequence % MEMBERS)).expect("valid");
    let key = format!("p-{round}-{sequence:012}");
    Envelope {
        program_id: program(),
        idempotency_key: IdempotencyKey::parse("idempotency_key", &key).expect("valid"),
        occurred_at_us: 1_767_225_600_000_000,
        principal: "bench".into(),
        metadata: vec![],
        expected_version: None,
        command: LedgerCommand::Member {
            member_id: member,
            command: Command::RecordPurchase {
                order_id: format!("order-{round}-{sequence}"),
                spend: Money::new(
                    1_000 + (sequence % 9_000) as i64,
                    Currency::from_code("USD", "currency").expect("USD"),
                ),
                tags: vec![],
            },
        },
    }
}

fn bench_engine(c: &mut Criterion, batch: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut config = WriterConfig::with_clock(Arc::new(SystemClock));
    config.batch_commands_max = batch;
    let writer = Writer::start(store, LedgerDecider::new(), config).expect("writer");
    let handle = writer.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rules = ProgramRules::basic("USD");
    rules.pending_days = 30;
    let define = Envelope {
        program_id: program(),
        idempotency_key: IdempotencyKey::parse("idempotency_key", "define").expect("valid"),
        occurred_at_us: 1_767_225_600_000_000,
        principal: "bench".into(),
        metadata: vec![],
        expected_version: None,
        command: LedgerCommand::Program(ProgramCommand::DefineProgram { rules }),
    };
    runtime.block_on(handle.submit(define)).expect("define");
    // Warm every member into the cache (and enroll it) before timing.
    runtime.block_on(async {
        for first in (0..MEMBERS).step_by(1_000) {
            let envelopes = (first..first + 1_000)
                .map(|sequence| purchase(sequence, 0))
                .collect();
            let results = handle.submit_many(envelopes).await.expect("submitted");
            assert!(
                results.iter().all(Result::is_ok),
                "warm-up purchases succeed"
            );
        }
    });
    let sequence = Arc::new(AtomicU64::new(MEMBERS));
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(format!("{batch}"), |b| {
        b.iter_custom(|iters| {
            let purchase = |sequence| purchase(sequence, 1);
            let (events, elapsed) = drive(&runtime, &handle, &sequence, iters, batch, purchase);
            record_total(format!("engine/{batch:>4}"), events, elapsed);
            elapsed
        })
    });
    group.finish();
    writer.shutdown();
}

fn bench_raw(c: &mut Criterion, batch: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    // Precomputed bytes of the same sizes the writer stores.
    let record = pb::EventRecord {
        position: 1,
        stream: member_stream(1).to_string(),
        stream_version: 1,
        program_id: "bench".into(),
        occurred_at_us: 1_767_225_600_000_000,
        recorded_at_us: 1_767_225_600_000_000,
        idempotency_key: "bench-000000000001".into(),
        principal: "bench".into(),
        metadata: vec![],
        command_event_index: 0,
        command_event_count: 1,
        request_hash: vec![7; 32],
        event: Some(event(1)),
    }
    .encode_to_vec();
    let idempotency = vec![9u8; 48];
    let hash = [3u8; 32];
    // Key prefixes are built before timing: the baseline does no per-event
    // work beyond filling the batch, so the ratio is not flattered.
    let stream_prefixes: Vec<Vec<u8>> = (0..MEMBERS)
        .map(|m| keys::stream_prefix(&member_stream(m)))
        .collect();
    let idempotency_prefix = {
        let key = IdempotencyKey::parse("k", "bench-").expect("valid");
        keys::idempotency_key(&program(), &key)
    };
    let mut stream_key = Vec::with_capacity(64);
    let mut idempotency_key = Vec::with_capacity(64);
    let mut position = 0u64;
    let mut options = WriteOptions::default();
    options.set_sync(true);
    let mut group = c.benchmark_group("raw");
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(format!("{batch}"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let mut write = WriteBatch::default();
                for _ in 0..batch {
                    position += 1;
                    let key = keys::position_key(position);
                    write.put_cf(store.cf(CF_LOG), key, &record);
                    write.put_cf(store.cf(CF_CHAIN), key, hash);
                    stream_key.clear();
                    stream_key.extend_from_slice(&stream_prefixes[(position % MEMBERS) as usize]);
                    stream_key.extend_from_slice(&key);
                    write.put_cf(store.cf(CF_STREAM_INDEX), &stream_key, key);
                    // Same length as "bench-{position:012}", as the writer stores.
                    idempotency_key.clear();
                    idempotency_key.extend_from_slice(&idempotency_prefix);
                    idempotency_key.extend_from_slice(&[b'0'; 4]);
                    idempotency_key.extend_from_slice(&key);
                    write.put_cf(store.cf(CF_IDEMPOTENCY), &idempotency_key, &idempotency);
                }
                write.put_cf(store.cf(CF_CHAIN), keys::HEAD_KEY, [0u8; 40]);
                store.db().write_opt(write, &options).expect("sync write");
            }
            let elapsed = start.elapsed();
            record_total(format!("raw/{batch:>4}"), iters * batch as u64, elapsed);
            elapsed
        })
    });
    group.finish();
    println!("bench: record size {} bytes", record.len());
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    for batch in BATCH_SIZES {
        bench_raw(&mut criterion, batch);
        bench_writer(&mut criterion, batch);
        if batch >= 256 {
            bench_engine(&mut criterion, batch);
        }
    }
    criterion.final_summary();
    let totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    println!("\nwriter vs raw RocksDB, fsync on, same run; {}", machine());
    println!(
        "{:>6} {:>14} {:>14} {:>7} {:>14} {:>7}",
        "batch", "raw events/s", "writer ev/s", "ratio", "engine ev/s", "ratio"
    );
    let rate = |id: String| {
        totals
            .get(&id)
            .map(|(events, elapsed)| *events as f64 / elapsed.as_secs_f64().max(1e-9))
    };
    for batch in BATCH_SIZES {
        let (Some(raw), Some(writer)) = (
            rate(format!("raw/{batch:>4}")),
            rate(format!("writer/{batch:>4}")),
        ) else {
            continue;
        };
        let engine = rate(format!("engine/{batch:>4}"))
            .map(|engine| format!("{engine:>14.0} {:>6.0}%", 100.0 * engine / raw))
            .unwrap_or_default();
        println!(
            "{batch:>6} {raw:>14.0} {writer:>14.0} {:>6.0}% {engine}",
            100.0 * writer / raw
        );
    }
}
