//! How fast a view is rebuilt from the log, against reading the log alone.
//!
//! Setup (not timed): the real engine writes a log of `EVENTS` events (at
//! least 1,000,000 under `cargo bench`) for 10,000 members of one program:
//! purchases, awards and redeems in turn, each decided by the domain, with
//! lot expiry and three tiers.
//!
//! Timed, each over the whole log:
//! - `read/decode`: read every record in chunks and decode the protobuf
//!   record and its domain event, as a view does (`runtime::read_chunk`);
//!   the floor any view pays;
//! - `rebuild/balance`, `rebuild/tier`: `rebuild_offline` of the view: read,
//!   decode, fold, write rows and checkpoints, switch generation.
//!
//! After criterion's report a table prints events/s of each and its ratio
//! to `read/decode`, from every timed iteration of this run, with the
//! machine. Under `cargo test` (no `--bench`) the log is 20,000 events and
//! each is run once, to keep the code path tested.

mod common;

use common::machine;
use criterion::{Criterion, SamplingMode, Throughput};
use ledger_core::clock::ManualClock;
use ledger_core::domain::{Command, Currency, LotExpiry, LotExpiryRule, Money, Points};
use ledger_core::domain::{ProgramCommand, ProgramRules, Tier};
use ledger_core::engine::{LedgerCommand, LedgerDecider};
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId};
use ledger_core::store::Store;
use ledger_core::writer::{Envelope, Writer, WriterConfig};
use projections::runtime::{ViewKind, read_chunk, rebuild_offline};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MEMBERS: u64 = 10_000;
const T0_US: i64 = 1_767_225_600_000_000;

/// (events, elapsed) per benchmark id, summed over every timed iteration.
static TOTALS: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record_total(id: &'static str, events: u64, elapsed: Duration) {
    let mut totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    let entry = totals.entry(id).or_default();
    entry.0 += events;
    entry.1 += elapsed;
}

fn rules() -> ProgramRules {
    let mut rules = ProgramRules::basic("USD");
    rules.lot_expiry = Some(LotExpiry {
        rule: Some(LotExpiryRule::AfterMonthsEnd(12)),
    });
    rules.tiers = ["Member", "Silver", "Gold"]
        .iter()
        .zip([0, 500, 2_000])
        .map(|(name, threshold)| Tier {
            name: (*name).into(),
            threshold,
            earn_multiplier_bps: 10_000 + threshold * 5,
        })
        .collect();
    rules.tier_measure = ledger_core::domain::TierMeasure::QualifyingPoints;
    rules
}

fn command(sequence: u64) -> LedgerCommand {
    let usd = Currency::from_code("USD", "currency").expect("USD");
    let command = match (sequence / MEMBERS) % 4 {
        0 | 1 => Command::RecordPurchase {
            order_id: format!("order-{sequence}"),
            spend: Money::new(500 + (sequence % 9_000) as i64, usd),
            tags: vec![],
        },
        2 => Command::AwardPoints {
            reason: "bench bonus".into(),
            points: Points::new(10),
        },
        _ => Command::Redeem {
            redemption_id: format!("redeem-{sequence}"),
            points: Points::new(3),
        },
    };
    LedgerCommand::Member {
        member_id: MemberId::parse("member_id", &format!("member-{}", sequence % MEMBERS))
            .expect("valid"),
        command,
    }
}

fn envelope(key: String, command: LedgerCommand) -> Envelope<LedgerCommand> {
    Envelope {
        program_id: ProgramId::parse("program_id", "bench").expect("valid"),
        idempotency_key: IdempotencyKey::parse("idempotency_key", &key).expect("valid"),
        occurred_at_us: T0_US,
        principal: "bench".into(),
        metadata: vec![],
        expected_version: None,
        command,
    }
}

/// Writes a log of at least `events` events through the engine.
fn build_log(store: &Store, events: u64) {
    let clock = ManualClock::new(T0_US);
    let config = WriterConfig::with_clock(Arc::new(clock));
    let writer = Writer::start(store.clone(), LedgerDecider::new(), config).expect("writer");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let started = Instant::now();
    tokio.block_on(async {
        let define = LedgerCommand::Program(ProgramCommand::DefineProgram { rules: rules() });
        writer
            .handle()
            .submit(envelope("define".into(), define))
            .await
            .expect("define");
        let mut sequence = 0u64;
        while store.head().expect("head").position < events {
            // Four batches in flight keep the writer's pipeline full.
            let mut batches = Vec::new();
            for _ in 0..4 {
                let envelopes: Vec<_> = (sequence..sequence + 1_000)
                    .map(|n| envelope(format!("c{n}"), command(n)))
                    .collect();
                sequence += 1_000;
                let handle = writer.handle();
                batches.push(tokio::spawn(
                    async move { handle.submit_many(envelopes).await },
                ));
            }
            for batch in batches {
                batch.await.expect("task").expect("submitted");
            }
        }
    });
    writer.shutdown();
    println!(
        "bench: log of {} events written by the engine in {:.1} s",
        store.head().expect("head").position,
        started.elapsed().as_secs_f64()
    );
}

fn read_and_decode(store: &Store) -> u64 {
    let head = store.head().expect("head").position;
    let mut next = 1;
    while next <= head {
        let events = read_chunk(store, next, head).expect("read and decode");
        next += events.len() as u64;
        std::hint::black_box(events);
    }
    head
}

fn main() {
    let benching = std::env::args().any(|arg| arg == "--bench");
    let events: u64 = if benching { 1_000_000 } else { 20_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    build_log(&store, events);
    let head = store.head().expect("head").position;
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20))
        .configure_from_args();
    let mut group = criterion.benchmark_group("views");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(head));
    group.bench_function("read/decode", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                read_and_decode(&store);
            }
            let elapsed = start.elapsed();
            record_total("read/decode", iters * head, elapsed);
            elapsed
        })
    });
    for (kind, id) in [
        (ViewKind::Balance, "rebuild/balance"),
        (ViewKind::Tier, "rebuild/tier"),
    ] {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let outcome = rebuild_offline(&store, kind, |_, _| {}).expect("rebuild");
                    assert_eq!(outcome.position, head);
                }
                let elapsed = start.elapsed();
                record_total(id, iters * head, elapsed);
                elapsed
            })
        });
    }
    group.finish();
    criterion.final_summary();
    let totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    let rate = |id: &str| {
        totals
            .get(id)
            .map(|(events, elapsed)| *events as f64 / elapsed.as_secs_f64().max(1e-9))
    };
    println!(
        "\nview rebuild from a log of {head} events, same run; {}",
        machine()
    );
    println!("{:<16} {:>14} {:>16}", "", "events/s", "of read/decode");
    let Some(floor) = rate("read/decode") else {
        return;
    };
    for id in ["read/decode", "rebuild/balance", "rebuild/tier"] {
        if let Some(events_per_s) = rate(id) {
            println!(
                "{id:<16} {events_per_s:>14.0} {:>15.0}%",
                100.0 * events_per_s / floor
            );
        }
    }
}
