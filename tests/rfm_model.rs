//! Goal: the RFM view answers what a deliberately simple model says, for
//! random histories: every member's recency, frequency, monetary value,
//! scores and segment; the segment sizes; and every segment listed page by
//! page, at as-of dates before the first purchase, in the middle, on the
//! edges of the window and long after the end. Answers are deterministic:
//! asked twice, or after a rebuild from position 0, they are the same.
//!
//! Method: the real engine (writer, ledger decider, manual clock) writes
//! purchases (some recorded late), returns of earlier orders, awards,
//! redeems, enrollments and rules changes of the RFM window and the UTC
//! offset, for a few members of one program and a member of a second
//! program whose id extends the first's. The RFM view is folded by hand at
//! random points of the history, then once more after a rebuild. The model
//! keeps, per member, the list of its accepted purchases and returns with
//! their reporting days (computed with the offset in force when each
//! command was accepted), recomputes each measure by scanning that list,
//! and scores each member by counting the scored members that come before
//! it in the order of that measure (no sorting). Default case count is
//! modest; `RFM_MODEL_CASES` raises it.

mod common;

use common::T0_US;
use common::ledger::{self, member, usd};
use ledger_core::clock::ManualClock;
use ledger_core::domain::time::start_of_report_day_us;
use ledger_core::domain::{Command, Points, ProgramCommand, ProgramRules};
use ledger_core::engine::LedgerCommand;
use ledger_core::error::CommandError;
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId};
use ledger_core::store::Store;
use ledger_core::writer::{Appended, Envelope, Writer};
use projections::QueryError;
use projections::rfm::{self, MemberRfm, Segment};
use projections::runtime::{Folder, ViewKind, rebuild_offline, view_digest};
use proptest::prelude::*;
use std::collections::BTreeMap;

const MINUTE_US: i64 = 60_000_000;
const DAY_US: i64 = 86_400_000_000;
const MEMBERS: usize = 6;

fn coffee() -> ProgramId {
    ProgramId::parse("program_id", "coffee").expect("valid")
}

/// A second program whose member streams share the first's name prefix
/// (`member/coffee2/...` against `member/coffee/...`).
fn coffee2() -> ProgramId {
    ProgramId::parse("program_id", "coffee2").expect("valid")
}

fn rules(window_days: u32, utc_offset_minutes: i32) -> ProgramRules {
    let mut rules = ProgramRules::basic("USD");
    rules.rfm_window_days = window_days;
    rules.utc_offset_minutes = utc_offset_minutes;
    rules
}

fn id(who: usize) -> String {
    format!("m{who}")
}

#[derive(Debug, Clone)]
enum Step {
    /// A purchase recorded `late_minutes` after it happened.
    Purchase {
        who: usize,
        cents: i64,
        late_minutes: i64,
    },
    /// A return of (part of) one of the member's earlier orders.
    Return {
        who: usize,
        order: usize,
        cents: i64,
    },
    Award {
        who: usize,
        points: i64,
    },
    Redeem {
        who: usize,
        points: i64,
    },
    Enroll {
        who: usize,
    },
    Advance {
        minutes: i64,
    },
    ChangeRules {
        window_days: u32,
        utc_offset_minutes: i32,
    },
    /// Fold the view up to the head now.
    Fold,
}

fn window_days() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![0u32, 1, 7, 30, 90])
}

fn utc_offset_minutes() -> impl Strategy<Value = i32> {
    prop::sample::select(vec![-720i32, -330, 0, 60, 840])
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0..MEMBERS;
    let late = prop_oneof![3 => Just(0i64), 1 => 1i64..3 * 24 * 60];
    prop_oneof![
        6 => (who.clone(), 1i64..100_000, late).prop_map(|(who, cents, late_minutes)| {
            Step::Purchase { who, cents, late_minutes }
        }),
        2 => (who.clone(), 0usize..8, 1i64..60_000)
            .prop_map(|(who, order, cents)| Step::Return { who, order, cents }),
        1 => (who.clone(), 1i64..500).prop_map(|(who, points)| Step::Award { who, points }),
        1 => (who.clone(), 1i64..300).prop_map(|(who, points)| Step::Redeem { who, points }),
        1 => who.prop_map(|who| Step::Enroll { who }),
        4 => (1i64..20 * 24 * 60).prop_map(|minutes| Step::Advance { minutes }),
        1 => (window_days(), utc_offset_minutes()).prop_map(|(window_days, utc_offset_minutes)| {
            Step::ChangeRules { window_days, utc_offset_minutes }
        }),
        1 => Just(Step::Fold),
    ]
}

// ---------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, Copy)]
enum Entry {
    Purchase { day: i64, cents: i64 },
    Refund { day: i64, cents: i64 },
}

#[derive(Debug, Default)]
struct Model {
    /// Every member with an accepted command, and its purchases and returns.
    members: BTreeMap<String, Vec<Entry>>,
    /// Accepted orders per member: (order id, spend).
    orders: BTreeMap<String, Vec<(String, i64)>>,
    window_days: u32,
    utc_offset_minutes: i32,
}

impl Model {
    fn day(&self, at_us: i64) -> i64 {
        (at_us + i64::from(self.utc_offset_minutes) * MINUTE_US).div_euclid(DAY_US)
    }

    fn window(&self) -> i64 {
        if self.window_days == 0 {
            365
        } else {
            i64::from(self.window_days)
        }
    }

    /// Recency, frequency and monetary of every member with a purchase on
    /// or before the as-of day, before scoring.
    fn measures(&self, as_of_day: i64) -> Vec<MemberRfm> {
        let first_day = as_of_day - self.window() + 1;
        let mut scored = Vec::new();
        for (member_id, entries) in &self.members {
            let mut last = None;
            let (mut frequency, mut monetary) = (0, 0);
            for entry in entries {
                match *entry {
                    Entry::Purchase { day, cents } if day <= as_of_day => {
                        last = Some(last.map_or(day, |last: i64| last.max(day)));
                        if day >= first_day {
                            frequency += 1;
                            monetary += cents;
                        }
                    }
                    Entry::Refund { day, cents } if day <= as_of_day && day >= first_day => {
                        monetary -= cents;
                    }
                    _ => {}
                }
            }
            if let Some(last) = last {
                scored.push(MemberRfm {
                    member_id: member_id.clone(),
                    last_purchase_day: last,
                    recency_days: as_of_day - last,
                    frequency,
                    monetary_minor_units: monetary,
                    r: 0,
                    f: 0,
                    m: 0,
                    segment: Segment::Lost,
                });
            }
        }
        scored
    }

    fn answer(&self, as_of_us: i64) -> Vec<MemberRfm> {
        let mut members = self.measures(self.day(as_of_us));
        let n = members.len();
        let score = |worse_before: &dyn Fn(&MemberRfm, &MemberRfm) -> bool, x: &MemberRfm| {
            let k = members
                .iter()
                .filter(|y| {
                    worse_before(y, x) || (!worse_before(x, y) && y.member_id < x.member_id)
                })
                .count();
            (1 + 5 * k / n) as u8
        };
        let scores: Vec<(u8, u8, u8)> = members
            .iter()
            .map(|x| {
                (
                    score(&|y, x| y.recency_days > x.recency_days, x),
                    score(&|y, x| y.frequency < x.frequency, x),
                    score(&|y, x| y.monetary_minor_units < x.monetary_minor_units, x),
                )
            })
            .collect();
        for (member, (r, f, m)) in members.iter_mut().zip(scores) {
            member.r = r;
            member.f = f;
            member.m = m;
            member.segment = segment(r, f, m);
        }
        members
    }
}

/// The segment table: rows r = 1..=5, columns fm = 1..=5.
fn segment(r: u8, f: u8, m: u8) -> Segment {
    use Segment::*;
    let table = [
        [Lost, Hibernating, AtRisk, AtRisk, CantLoseThem],
        [Hibernating, Hibernating, AtRisk, AtRisk, CantLoseThem],
        [AboutToSleep, AboutToSleep, NeedAttention, Loyal, Loyal],
        [
            Promising,
            PotentialLoyalist,
            PotentialLoyalist,
            Loyal,
            Loyal,
        ],
        [
            New,
            PotentialLoyalist,
            PotentialLoyalist,
            Champions,
            Champions,
        ],
    ];
    let sum = f + m;
    let fm = sum / 2 + sum % 2;
    table[usize::from(r - 1)][usize::from(fm - 1)]
}

// ---------------------------------------------------------------------------
// The engine and the view.

struct Ledger {
    store: Store,
    clock: ManualClock,
    writer: Option<Writer<LedgerCommand>>,
    tokio: tokio::runtime::Runtime,
    folder: Folder,
    next_key: u64,
    /// Last: fields drop in order, and the store must close before its
    /// directory is removed, or its last files outlive the removal.
    _dir: tempfile::TempDir,
}

impl Ledger {
    fn new() -> Ledger {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(T0_US);
        let (store, writer) = ledger::open(dir.path(), &clock);
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let mut folder = Folder::open(&store, ViewKind::Rfm, 1).expect("folder");
        folder.activate(&store).expect("activate");
        Ledger {
            store,
            clock,
            writer: Some(writer),
            tokio,
            folder,
            next_key: 0,
            _dir: dir,
        }
    }

    fn submit(
        &mut self,
        program_id: &ProgramId,
        occurred_at_us: i64,
        command: LedgerCommand,
    ) -> Result<Appended, CommandError> {
        self.next_key += 1;
        let envelope = Envelope {
            program_id: program_id.clone(),
            idempotency_key: IdempotencyKey::parse(
                "idempotency_key",
                &format!("k{}", self.next_key),
            )
            .expect("valid"),
            occurred_at_us,
            principal: "test".into(),
            metadata: vec![],
            expected_version: None,
            command,
        };
        let writer = self.writer.as_ref().expect("writer running");
        self.tokio.block_on(writer.handle().submit(envelope))
    }

    fn member(
        &mut self,
        program_id: &ProgramId,
        who: &str,
        occurred_at_us: i64,
        command: Command,
    ) -> Result<Appended, CommandError> {
        let member_id = member(who);
        self.submit(
            program_id,
            occurred_at_us,
            LedgerCommand::Member { member_id, command },
        )
    }

    fn head(&self) -> u64 {
        self.store.head().expect("head").position
    }

    fn clock_now(&self) -> i64 {
        use ledger_core::clock::Clock;
        self.clock.now_us()
    }

    fn fold(&mut self) {
        let head = self.head();
        while self.folder.checkpoint().position < head {
            self.folder
                .step(&self.store, head)
                .expect("the view folds every event");
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.shutdown();
        }
    }
}

fn run(ledger: &mut Ledger, model: &mut Model, steps: &[Step]) -> i64 {
    let mut now = T0_US;
    for (index, step) in steps.iter().enumerate() {
        ledger.clock.set(now);
        let program = coffee();
        match *step {
            Step::Purchase {
                who,
                cents,
                late_minutes,
            } => {
                let order_id = format!("o{index}");
                let at = now - late_minutes * MINUTE_US;
                let purchase = ledger::purchase(&order_id, cents);
                if ledger.member(&program, &id(who), at, purchase).is_ok() {
                    let day = model.day(at);
                    let entries = model.members.entry(id(who)).or_default();
                    entries.push(Entry::Purchase { day, cents });
                    let orders = model.orders.entry(id(who)).or_default();
                    orders.push((order_id, cents));
                }
            }
            Step::Return { who, order, cents } => {
                let Some(orders) = model.orders.get(&id(who)) else {
                    continue;
                };
                let Some((order_id, _)) = orders.get(order % orders.len()).cloned() else {
                    continue;
                };
                let command = Command::RecordReturn {
                    order_id,
                    refund: usd(cents),
                };
                // Refunds beyond what is left of the order are refused.
                if ledger.member(&program, &id(who), now, command).is_ok() {
                    let day = model.day(now);
                    let entries = model.members.entry(id(who)).or_default();
                    entries.push(Entry::Refund { day, cents });
                }
            }
            Step::Award { who, points } => {
                if ledger
                    .member(&program, &id(who), now, ledger::award(points))
                    .is_ok()
                {
                    model.members.entry(id(who)).or_default();
                }
            }
            Step::Redeem { who, points } => {
                let redeem = Command::Redeem {
                    redemption_id: format!("r{index}"),
                    points: Points::new(points),
                };
                if ledger.member(&program, &id(who), now, redeem).is_ok() {
                    model.members.entry(id(who)).or_default();
                }
            }
            Step::Enroll { who } => {
                if ledger
                    .member(&program, &id(who), now, Command::Enroll)
                    .is_ok()
                {
                    model.members.entry(id(who)).or_default();
                }
            }
            Step::Advance { minutes } => now += minutes * MINUTE_US,
            Step::ChangeRules {
                window_days,
                utc_offset_minutes,
            } => {
                let change = LedgerCommand::Program(ProgramCommand::ChangeRules {
                    rules: rules(window_days, utc_offset_minutes),
                });
                ledger.submit(&program, now, change).expect("rules changed");
                model.window_days = window_days;
                model.utc_offset_minutes = utc_offset_minutes;
            }
            Step::Fold => ledger.fold(),
        }
    }
    now
}

/// Every answer of the view as of `as_of_us`, as text: equal text means
/// equal answers, positions included.
fn answers(store: &Store, as_of_us: i64, page_size: usize) -> String {
    let program = coffee();
    let mut text = format!(
        "{:?}\n{:?}\n",
        rfm::score_program(store, &program, as_of_us).expect("scores"),
        rfm::segment_sizes(store, &program, as_of_us).expect("sizes"),
    );
    for segment in Segment::ALL {
        let mut token = String::new();
        loop {
            let page = rfm::segment_members(store, &program, as_of_us, segment, page_size, &token)
                .expect("page");
            text.push_str(&format!("{page:?}\n"));
            token = page.value.next_page_token;
            if token.is_empty() {
                break;
            }
        }
    }
    text
}

fn check_as_of(ledger: &Ledger, model: &Model, as_of_us: i64, page_size: usize) {
    let store = &ledger.store;
    let program = coffee();
    let head = ledger.head();
    let expected = model.answer(as_of_us);
    let as_of_day = model.day(as_of_us);
    let context = format!("as of {as_of_us} (day {as_of_day})");

    let scores = rfm::score_program(store, &program, as_of_us).expect("scores");
    assert_eq!(scores.position, head, "{context}");
    assert_eq!(scores.value.as_of_day, as_of_day, "{context}");
    assert_eq!(
        i64::from(scores.value.window_days),
        model.window(),
        "{context}"
    );
    assert_eq!(scores.value.currency, "USD");
    assert_eq!(scores.value.members, expected, "{context}");

    let sizes = rfm::segment_sizes(store, &program, as_of_us)
        .expect("sizes")
        .value;
    assert_eq!(sizes.scored, expected.len() as u64, "{context}");
    let model_sizes: Vec<(Segment, u64)> = Segment::ALL
        .iter()
        .map(|segment| {
            let count = expected.iter().filter(|m| m.segment == *segment).count();
            (*segment, count as u64)
        })
        .collect();
    assert_eq!(sizes.sizes, model_sizes, "{context}");

    for segment in Segment::ALL {
        let mut listed = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = rfm::segment_members(store, &program, as_of_us, segment, page_size, &token)
                .expect("page")
                .value;
            assert!(page.members.len() <= page_size, "{context}");
            pages += 1;
            assert!(pages <= MEMBERS + 1, "{context}: paging ends");
            listed.extend(page.members);
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        let in_segment: Vec<MemberRfm> = expected
            .iter()
            .filter(|m| m.segment == segment)
            .cloned()
            .collect();
        assert_eq!(listed, in_segment, "{context}: {}", segment.name());
    }

    for who in 0..=MEMBERS {
        let member_id = MemberId::parse("member_id", &id(who)).expect("valid");
        let got = rfm::member_rfm(store, &program, &member_id, as_of_us);
        match expected.iter().find(|m| m.member_id == id(who)) {
            Some(expected) => assert_eq!(&got.expect("scored").value, expected, "{context}"),
            None => {
                let Err(QueryError::NotFound { what, position }) = &got else {
                    panic!("{context}: {} is not scored: {got:?}", id(who));
                };
                assert_eq!(*position, head);
                let known = model.members.contains_key(&id(who));
                assert_eq!(what.contains("purchase"), known, "{context}: {what}");
            }
        }
    }
}

fn check_history(
    (initial_window, initial_offset): (u32, i32),
    steps: Vec<Step>,
    picks: Vec<u64>,
    page_size: usize,
) {
    let mut ledger = Ledger::new();
    let mut model = Model {
        window_days: initial_window,
        utc_offset_minutes: initial_offset,
        ..Model::default()
    };
    for (program, window, offset) in [
        (coffee(), initial_window, initial_offset),
        (coffee2(), 7, 0),
    ] {
        let define = LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules: rules(window, offset),
        });
        ledger.submit(&program, T0_US, define).expect("defined");
    }
    // A member of the other program buys: it is never one of coffee's.
    ledger
        .member(&coffee2(), "m0", T0_US, ledger::purchase("x", 99_999))
        .expect("purchase");
    let end = run(&mut ledger, &mut model, &steps);
    ledger.fold();
    let incremental = view_digest(&ledger.store, ViewKind::Rfm).expect("digest");

    // As-of dates: before anything, the end, long after; random ones in
    // between; and both sides of the window's first day for the earliest
    // purchase.
    let mut as_of = vec![T0_US - 4 * DAY_US, end, end + DAY_US, end + 800 * DAY_US];
    for pick in &picks {
        as_of.push(T0_US + (*pick as i64).rem_euclid((end - T0_US).max(1) + 1));
    }
    let first_purchase = model
        .members
        .values()
        .flatten()
        .filter_map(|entry| match entry {
            Entry::Purchase { day, .. } => Some(*day),
            Entry::Refund { .. } => None,
        })
        .min();
    if let Some(day) = first_purchase {
        for as_of_day in [day, day + model.window() - 1, day + model.window()] {
            let start = start_of_report_day_us(as_of_day, model.utc_offset_minutes);
            as_of.extend([start - 1, start, start + DAY_US - 1]);
        }
    }
    let before: Vec<String> = as_of
        .iter()
        .map(|at| answers(&ledger.store, *at, page_size))
        .collect();
    for at in &as_of {
        check_as_of(&ledger, &model, *at, page_size);
    }
    let unknown = rfm::score_program(
        &ledger.store,
        &ProgramId::parse("p", "tea").expect("ok"),
        end,
    );
    assert!(
        matches!(unknown, Err(QueryError::NotFound { .. })),
        "{unknown:?}"
    );

    // Asked again, and after a rebuild from position 0: the same answers.
    if let Some(writer) = ledger.writer.take() {
        writer.shutdown();
    }
    let outcome = rebuild_offline(&ledger.store, ViewKind::Rfm, |_, _| {}).expect("rebuild");
    assert_eq!(outcome.position, ledger.head());
    assert_eq!(
        view_digest(&ledger.store, ViewKind::Rfm).expect("digest"),
        incremental,
        "a rebuild is byte-equal to the view folded in random chunks"
    );
    for (at, before) in as_of.iter().zip(&before) {
        assert_eq!(
            &answers(&ledger.store, *at, page_size),
            before,
            "as of {at}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("RFM_MODEL_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(24),
        max_shrink_iters: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_view_answers_what_the_model_says(
        initial in (window_days(), utc_offset_minutes()),
        steps in prop::collection::vec(step(), 10..80),
        picks in prop::collection::vec(any::<u64>(), 3),
        page_size in 1usize..4,
    ) {
        check_history(initial, steps, picks, page_size);
    }
}

#[test]
fn a_worked_example_on_the_programs_reporting_days() {
    let mut ledger = Ledger::new();
    let program = coffee();
    let define = LedgerCommand::Program(ProgramCommand::DefineProgram {
        rules: rules(30, 60),
    });
    ledger.submit(&program, T0_US, define).expect("defined");
    let hour = 60 * MINUTE_US;
    let day0 = T0_US.div_euclid(DAY_US);
    let mut run = |who: &str, at_us: i64, command: Command| {
        ledger.clock.set(ledger.clock_now().max(at_us));
        ledger
            .member(&program, who, at_us, command)
            .expect("accepted");
    };
    // 23:30 UTC is 00:30 of the next reporting day at UTC+01:00.
    run(
        "ann",
        T0_US + 23 * hour + 30 * MINUTE_US,
        ledger::purchase("a1", 5_000),
    );
    run("bob", T0_US + 10 * hour, ledger::purchase("b1", 2_000));
    run("bob", T0_US + 2 * DAY_US, ledger::purchase("b2", 3_000));
    run("cat", T0_US, ledger::award(100));
    // Neither an award nor a redemption is a purchase.
    run("ann", T0_US + 3 * DAY_US, ledger::award(500));
    run("ann", T0_US + 3 * DAY_US, ledger::redeem("r1", 50));
    run(
        "ann",
        T0_US + 40 * DAY_US,
        Command::RecordReturn {
            order_id: "a1".into(),
            refund: usd(1_000),
        },
    );
    ledger.fold();
    let store = &ledger.store;
    let rfm_of = |who: &str, as_of_us: i64| {
        rfm::member_rfm(store, &program, &member(who), as_of_us).map(|answer| answer.value)
    };
    let expect =
        |who: &str, last: i64, recency, frequency, monetary, (r, f, m), segment| MemberRfm {
            member_id: who.into(),
            last_purchase_day: day0 + last,
            recency_days: recency,
            frequency,
            monetary_minor_units: monetary,
            r,
            f,
            m,
            segment,
        };

    // Day 0 at 22:00 UTC (23:00 local): only bob has bought.
    let evening = T0_US + 22 * hour;
    let scores = rfm::score_program(store, &program, evening).expect("scores");
    assert_eq!(scores.value.as_of_day, day0);
    assert_eq!(scores.value.window_days, 30);
    assert_eq!(
        scores.value.members,
        vec![expect("bob", 0, 0, 1, 2_000, (1, 1, 1), Segment::Lost)]
    );
    for who in ["ann", "cat"] {
        let error = rfm_of(who, evening).expect_err("no purchase yet");
        assert!(
            matches!(&error, QueryError::NotFound { what, .. } if what.contains("purchase")),
            "{error}"
        );
    }
    let error = rfm_of("dan", evening).expect_err("unknown member");
    assert!(
        matches!(&error, QueryError::NotFound { what, .. } if what.contains("member/coffee/dan")),
        "{error}"
    );

    // Day 3: equal spend, ties broken by member id.
    let day3 = T0_US + 3 * DAY_US;
    assert_eq!(
        rfm_of("ann", day3).expect("scored"),
        expect("ann", 1, 2, 1, 5_000, (1, 1, 1), Segment::Lost)
    );
    assert_eq!(
        rfm_of("bob", day3).expect("scored"),
        expect("bob", 2, 1, 2, 5_000, (3, 3, 3), Segment::NeedAttention)
    );

    // Day 40: every purchase has left the 30-day window; ann's refund is in
    // it, on the day of the return.
    let day40 = T0_US + 40 * DAY_US + 12 * hour;
    assert_eq!(
        rfm::score_program(store, &program, day40)
            .expect("scores")
            .value
            .members,
        vec![
            expect("ann", 1, 39, 0, -1_000, (1, 1, 1), Segment::Lost),
            expect("bob", 2, 38, 0, 0, (3, 3, 3), Segment::NeedAttention),
        ]
    );
    let sizes = rfm::segment_sizes(store, &program, day40)
        .expect("sizes")
        .value;
    assert_eq!(sizes.scored, 2);
    let named: Vec<(&str, u64)> = sizes
        .sizes
        .iter()
        .filter(|(_, size)| *size > 0)
        .map(|(segment, size)| (segment.name(), *size))
        .collect();
    assert_eq!(named, vec![("need_attention", 1), ("lost", 1)]);
    assert_eq!(sizes.sizes.len(), Segment::ALL.len());

    // Page size 0 is the default; the last page has no token.
    let page = rfm::segment_members(store, &program, day40, Segment::Lost, 0, "")
        .expect("page")
        .value;
    assert_eq!(page.members.len(), 1);
    assert_eq!(page.next_page_token, "");

    // Bad input names its field; an unknown program is not found.
    let too_many = rfm::segment_members(store, &program, day40, Segment::Lost, 1_001, "");
    assert!(
        matches!(&too_many, Err(QueryError::Invalid(e)) if e.field == "page_size"),
        "{too_many:?}"
    );
    for token in ["zz", "6", "00"] {
        let bad = rfm::segment_members(store, &program, day40, Segment::Lost, 10, token);
        assert!(
            matches!(&bad, Err(QueryError::Invalid(e)) if e.field == "page_token"),
            "{token}: {bad:?}"
        );
    }
    let tea = ProgramId::parse("program_id", "tea").expect("valid");
    for answer in [
        rfm::segment_sizes(store, &tea, day40).map(|_| ()),
        rfm::member_rfm(store, &tea, &member("ann"), day40).map(|_| ()),
        rfm::segment_members(store, &tea, day40, Segment::New, 1, "").map(|_| ()),
    ] {
        assert!(
            matches!(&answer, Err(QueryError::NotFound { what, .. }) if what.contains("tea")),
            "{answer:?}"
        );
    }
}
