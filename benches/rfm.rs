//! How long RFM queries over a large program take.
//!
//! Setup (not timed): a program of `MEMBERS` members (1,000,000 under
//! `cargo bench`), each enrolled with one to four purchases on random days
//! of the year before the as-of date, and a return for one member in ten.
//! The events are synthetic `LogEvent`s folded straight into the RFM view
//! with `Folder::apply_chunk`, without the writer: the engine would take
//! about a minute to decide the same four million events, and the queries
//! read only the view's rows, which are the same either way. Events come
//! member by member, so the fold's cache holds each member while it is
//! written.
//!
//! Timed, as of the last day of that year:
//! - `score_program`: every member's RFM, scores and segment;
//! - `segment_sizes`: the members per segment.
//!
//! After criterion's report a table prints the time per call, members per
//! second and whether a call stays under the 10 s target, from every timed
//! iteration of this run, with the machine. Under `cargo test` (no
//! `--bench`) the program has 10,000 members and each query runs once, to
//! keep the code path tested.

mod common;

use common::machine;
use criterion::{Criterion, SamplingMode, Throughput};
use ledger_core::domain::{
    Currency, EarnReversed, Event, EventKind, Lot, MemberEnrolled, Money, Points, PointsEarned,
    ProgramDefined, ProgramRules, ReturnPolicy,
};
use ledger_core::ids::{LotId, ProgramId};
use ledger_core::store::Store;
use projections::event::LogEvent;
use projections::rfm::{self, Segment};
use projections::runtime::{CHUNK_EVENTS_MAX, Folder, ViewKind};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DAY_US: i64 = 86_400_000_000;
/// 2027-01-01T00:00:00Z: purchases fall in the 365 days before it.
const AS_OF_US: i64 = 1_798_761_600_000_000;
/// The target for a program of 1,000,000 scored members.
const TARGET: Duration = Duration::from_secs(10);

/// (calls, elapsed) per benchmark id, summed over every timed iteration.
static TOTALS: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record_total(id: &'static str, calls: u64, elapsed: Duration) {
    let mut totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    let entry = totals.entry(id).or_default();
    entry.0 += calls;
    entry.1 += elapsed;
}

/// xorshift64*: a seeded, dependency-free source of days and amounts.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Builds the log's events in order and hands them out one chunk at a time.
struct History {
    program: String,
    usd: Currency,
    members: u64,
    next_member: u64,
    position: u64,
    random: u64,
}

impl History {
    fn new(members: u64) -> History {
        History {
            program: "bench".into(),
            usd: Currency::from_code("USD", "currency").expect("USD"),
            members,
            next_member: 0,
            position: 0,
            random: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn push(&mut self, events: &mut Vec<LogEvent>, stream: &str, version: u64, event: Event) {
        self.position += 1;
        events.push(LogEvent {
            position: self.position,
            stream: stream.to_owned(),
            stream_version: version,
            program_id: self.program.clone(),
            recorded_at_us: event.occurred_at_us,
            event,
        });
    }

    fn member_events(&mut self, events: &mut Vec<LogEvent>) {
        let member = self.next_member;
        self.next_member += 1;
        let stream = format!("member/{}/member-{member:07}", self.program);
        let mut random = next_random(&mut self.random);
        let purchases = 1 + random % 4;
        let day_us =
            |random: &mut u64| AS_OF_US - (1 + (next_random(random) % 365) as i64) * DAY_US;
        let enrolled_at = day_us(&mut random);
        self.push(
            events,
            &stream,
            1,
            Event {
                occurred_at_us: enrolled_at,
                kind: EventKind::MemberEnrolled(MemberEnrolled { implicit: true }),
            },
        );
        for lot in 1..=purchases {
            let at_us = day_us(&mut random);
            let cents = 500 + (next_random(&mut random) % 20_000) as i64;
            let points = Points::new(cents / 100);
            let earned = PointsEarned {
                order_id: format!("o{member}-{lot}"),
                spend: Money::new(cents, self.usd),
                tags: vec![],
                base_points: points,
                tier_multiplier_bps: 10_000,
                campaigns: vec![],
                points,
                lot: Lot {
                    lot_id: LotId::new(lot),
                    points,
                    earned_at_us: at_us,
                    available_at_us: at_us,
                    expires_at_us: None,
                },
                qualifying_points: points.get(),
                debt_repaid: Points::new(0),
            };
            let event = Event {
                occurred_at_us: at_us,
                kind: EventKind::PointsEarned(earned),
            };
            self.push(events, &stream, 1 + lot, event);
        }
        if member.is_multiple_of(10) {
            let returned = EarnReversed {
                order_id: format!("o{member}-1"),
                refund: Money::new(100, self.usd),
                points: Points::new(1),
                draws: vec![],
                shortfall_points: Points::new(0),
                shortfall_policy: ReturnPolicy::Forfeit,
                qualifying_points_reversed: 1,
                base_points_reversed: Points::new(1),
            };
            let event = Event {
                occurred_at_us: AS_OF_US - DAY_US,
                kind: EventKind::EarnReversed(returned),
            };
            self.push(events, &stream, 2 + purchases, event);
        }
    }

    /// The next chunk of events (empty at the end).
    fn chunk(&mut self) -> Vec<LogEvent> {
        let mut events = Vec::with_capacity(CHUNK_EVENTS_MAX);
        if self.position == 0 {
            let program = format!("program/{}", self.program);
            let rules = ProgramRules::basic("USD");
            let defined = Event {
                occurred_at_us: AS_OF_US - 400 * DAY_US,
                kind: EventKind::ProgramDefined(ProgramDefined { rules }),
            };
            self.push(&mut events, &program, 1, defined);
        }
        // A member has at most six events.
        while self.next_member < self.members && events.len() + 6 <= CHUNK_EVENTS_MAX {
            self.member_events(&mut events);
        }
        events
    }
}

/// Folds the synthetic history into generation 1 of the RFM view and makes
/// it active.
fn build_view(store: &Store, members: u64) {
    let started = Instant::now();
    let mut folder = Folder::open(store, ViewKind::Rfm, 1).expect("folder");
    let mut history = History::new(members);
    loop {
        let events = history.chunk();
        if events.is_empty() {
            break;
        }
        folder.apply_chunk(store, &events).expect("folds");
    }
    folder.activate(store).expect("activate");
    println!(
        "bench: {} events for {members} members folded into the rfm view in {:.1} s",
        history.position,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let benching = std::env::args().any(|arg| arg == "--bench");
    let members: u64 = if benching { 1_000_000 } else { 10_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    build_view(&store, members);
    let program = ProgramId::parse("program_id", "bench").expect("valid");
    let as_of_us = AS_OF_US - 1;

    // What the timed calls return, checked once.
    let scores = rfm::score_program(&store, &program, as_of_us)
        .expect("scores")
        .value;
    assert_eq!(
        scores.members.len() as u64,
        members,
        "every member is scored"
    );
    let sizes = rfm::segment_sizes(&store, &program, as_of_us)
        .expect("sizes")
        .value;
    assert_eq!(sizes.scored, members);
    println!(
        "bench: segments as of the last day: {}",
        sizes
            .sizes
            .iter()
            .map(|(segment, size)| format!("{} {size}", segment.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(sizes.sizes.len(), Segment::ALL.len());
    drop(scores);

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30))
        .configure_from_args();
    let mut group = criterion.benchmark_group("rfm");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(members));
    group.bench_function("score_program", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let answer = rfm::score_program(&store, &program, as_of_us).expect("scores");
                std::hint::black_box(&answer);
            }
            let elapsed = start.elapsed();
            record_total("score_program", iters, elapsed);
            elapsed
        })
    });
    group.bench_function("segment_sizes", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let answer = rfm::segment_sizes(&store, &program, as_of_us).expect("sizes");
                std::hint::black_box(&answer);
            }
            let elapsed = start.elapsed();
            record_total("segment_sizes", iters, elapsed);
            elapsed
        })
    });
    group.finish();
    criterion.final_summary();
    let totals = TOTALS.lock().unwrap_or_else(|poison| poison.into_inner());
    println!(
        "\nrfm queries over a program of {members} scored members, same run; {}",
        machine()
    );
    println!(
        "{:<16} {:>12} {:>16} {:>12}",
        "", "s per call", "members/s", "under 10 s"
    );
    for id in ["score_program", "segment_sizes"] {
        if let Some((calls, elapsed)) = totals.get(id) {
            let per_call = elapsed.as_secs_f64() / (*calls).max(1) as f64;
            let under = if Duration::from_secs_f64(per_call) < TARGET {
                "yes"
            } else {
                "no"
            };
            println!(
                "{id:<16} {per_call:>12.3} {:>16.0} {under:>12}",
                members as f64 / per_call.max(1e-9)
            );
        }
    }
}
