//! Goal: the projection runtime folds the real engine's log into views that
//! answer what a member's life says, read their writes, survive restarts at
//! any point of a catch-up, rebuild byte-equal (online and offline) while
//! the old rows keep answering, and stop on an event they cannot fold
//! without skipping it.
//!
//! Method: the engine (writer, ledger decider, manual clock, scheduler run
//! by hand) over a temporary store, and the runtime of both views over the
//! same store. Waiting is on the views' published positions, never on time.

mod common;

use common::T0_US;
use common::ledger::{self, Client, award, member, program_id, purchase, redeem};
use ledger_core::clock::ManualClock;
use ledger_core::domain::{Command, LotExpiry, LotExpiryRule, Points, ProgramRules, Tier};
use ledger_core::domain::{TierMeasure, TransferPoints};
use ledger_core::engine::LedgerCommand;
use ledger_core::ids::StreamName;
use ledger_core::pb;
use ledger_core::store::Store;
use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig};
use projections::balance::{self, LineKind};
use projections::runtime::{Folder, ViewKind, rebuild_offline, view_digest};
use projections::{Runtime, WorkerState, tier};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const DAY_US: i64 = 86_400_000_000;
/// Far beyond what folding a few thousand events takes: reaching it means
/// the view is stuck, and the assertions after the wait say so.
const PATIENCE: Duration = Duration::from_secs(60);

/// One point per dollar; Silver from 500 qualifying points (1.25x), Gold
/// from 2,000; purchase points pending 30 days; lots expire at the end of
/// the 12th month after the month earned.
fn rules() -> ProgramRules {
    let mut rules = ProgramRules::basic("USD");
    rules.pending_days = 30;
    rules.lot_expiry = Some(LotExpiry {
        rule: Some(LotExpiryRule::AfterMonthsEnd(12)),
    });
    rules.tier_measure = TierMeasure::QualifyingPoints;
    rules.tiers = vec![
        Tier {
            name: "Member".into(),
            threshold: 0,
            earn_multiplier_bps: 10_000,
        },
        Tier {
            name: "Silver".into(),
            threshold: 500,
            earn_multiplier_bps: 12_500,
        },
        Tier {
            name: "Gold".into(),
            threshold: 2_000,
            earn_multiplier_bps: 15_000,
        },
    ];
    rules
}

struct Fixture {
    store: Store,
    writer: Option<Writer<LedgerCommand>>,
    client: Client,
    /// Last: fields drop in order, and the store must close before its
    /// directory is removed, or its last files outlive the removal.
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(T0_US);
        let (store, writer) = ledger::open(dir.path(), &clock);
        let client = Client::new(writer.handle(), clock, "k");
        client.define(rules()).await;
        Fixture {
            store,
            writer: Some(writer),
            client,
            _dir: dir,
        }
    }

    fn runtime(&self) -> Runtime {
        Runtime::start(
            self.store.clone(),
            self.client.writer.head(),
            Arc::new(self.client.clock.clone()),
            &ViewKind::ALL,
        )
        .expect("views start")
    }

    fn head(&self) -> u64 {
        self.store.head().expect("head").position
    }

    async fn caught_up(&self, runtime: &Runtime) {
        let head = self.head();
        for kind in ViewKind::ALL {
            let reached = runtime.wait_for(kind, head, PATIENCE).await.expect("wait");
            assert_eq!(reached, head, "{} reaches the head", kind.name());
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.shutdown();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_life_in_the_views() {
    let fixture = Fixture::new().await;
    let runtime = fixture.runtime();
    let client = &fixture.client;
    let (program, ann) = (program_id(), member("ann"));
    let enrolled = client.member("ann", Command::Enroll).await.expect("enroll");
    let bought = client
        .member("ann", purchase("o-1", 60_000))
        .await
        .expect("purchase");
    client.clock.advance(DAY_US);
    let awarded = client.member("ann", award(100)).await.expect("award");
    let redeemed = client
        .member("ann", redeem("r-1", 40))
        .await
        .expect("redeem");

    // Read-your-writes on the last write.
    let reached = runtime
        .wait_for(ViewKind::Balance, redeemed.last_position(), PATIENCE)
        .await
        .expect("wait");
    assert!(reached >= redeemed.last_position());
    let answer = balance::get_balance(&fixture.store, &program, &ann).expect("balance");
    assert!(
        answer.position >= redeemed.last_position(),
        "answer says its position"
    );
    let row = answer.value;
    // 600 purchase points pending; the award is available at once.
    assert_eq!((row.available, row.pending, row.debt), (60, 600, 0));
    assert_eq!(row.balance(), 60);
    assert_eq!(row.lifetime.earned, 600);
    assert_eq!(row.lifetime.awarded, 100);
    assert_eq!(row.lifetime.redeemed, 40);
    let lots = balance::list_lots(&fixture.store, &program, &ann, false)
        .expect("lots")
        .value;
    assert_eq!(
        lots.iter()
            .map(|lot| (lot.lot_id, lot.remaining, lot.pending))
            .collect::<Vec<_>>(),
        vec![(1, 600, true), (2, 60, false)]
    );
    assert!(lots.iter().all(|lot| lot.expires_at_us.is_some()));

    // 31 days on, the purchase matures.
    client.clock.advance(31 * DAY_US);
    assert!(client.run_due(&fixture.store).await >= 1);
    fixture.caught_up(&runtime).await;
    let row = balance::get_balance(&fixture.store, &program, &ann)
        .expect("balance")
        .value;
    assert_eq!((row.available, row.pending), (660, 0));

    let page = balance::statement(&fixture.store, &program, &ann, 2, None)
        .expect("statement")
        .value;
    let kinds: Vec<_> = page.lines.iter().map(|line| line.kind).collect();
    assert_eq!(kinds, vec![LineKind::Matured, LineKind::Redeemed]);
    assert_eq!(page.lines[0].balance_after, 660);
    assert_eq!(page.lines[1].points, -40);
    assert_eq!(page.lines[1].reference, "r-1");
    assert_eq!(page.lines[1].position, redeemed.first_position);
    let token = page.next_page_token.expect("more lines");
    let older = balance::statement(&fixture.store, &program, &ann, 10, Some(&token))
        .expect("page 2")
        .value;
    assert_eq!(
        older
            .lines
            .iter()
            .map(|line| (line.kind, line.points, line.balance_after))
            .collect::<Vec<_>>(),
        vec![(LineKind::Awarded, 100, 100), (LineKind::Earned, 600, 0)]
    );
    assert_eq!(older.lines[1].position, bought.first_position);
    assert!(older.next_page_token.is_none());
    let bad = balance::statement(&fixture.store, &program, &ann, 10, Some("zz"));
    assert!(
        matches!(&bad, Err(projections::QueryError::Invalid(e)) if e.field == "page_token"),
        "{bad:?}"
    );
    let too_many = balance::statement(&fixture.store, &program, &ann, 1_001, None);
    assert!(
        matches!(&too_many, Err(projections::QueryError::Invalid(e)) if e.field == "page_size"),
        "{too_many:?}"
    );

    // The balance as of past times, from the statement.
    let as_of = |at_us| {
        balance::balance_as_of(&fixture.store, &program, &ann, at_us)
            .expect("as of")
            .value
    };
    assert_eq!((as_of(T0_US - 1).balance, as_of(T0_US - 1).pending), (0, 0));
    assert_eq!((as_of(T0_US).balance, as_of(T0_US).pending), (0, 600));
    assert_eq!(as_of(T0_US + DAY_US).balance, 60);
    assert_eq!(
        as_of(T0_US + DAY_US).as_of_position,
        redeemed.first_position
    );
    assert_eq!(as_of(T0_US + 40 * DAY_US).balance, 660);

    // 600 qualifying points: Silver since the purchase, 1,400 to Gold.
    let status = tier::member_tier(&fixture.store, &program, &ann, client.clock_now())
        .expect("tier")
        .value;
    assert_eq!(status.tier, "Silver");
    assert_eq!(status.tier_since_us, T0_US);
    assert_eq!(status.qualifying, 600);
    assert_eq!(status.next_tier.as_deref(), Some("Gold"));
    assert_eq!(status.needed_for_next, Some(1_400));
    assert_eq!(status.needed_to_keep, Some(0));
    assert!(status.period_end_us.is_some());
    let history = tier::tier_history(&fixture.store, &program, &ann)
        .expect("history")
        .value;
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].from_tier.as_str(), history[0].to_tier.as_str()),
        ("Member", "Silver")
    );
    client.member("bob", award(5)).await.expect("bob");
    fixture.caught_up(&runtime).await;
    let distribution = tier::tier_distribution(&fixture.store, &program)
        .expect("distribution")
        .value;
    assert_eq!(
        distribution,
        vec![
            ("Member".to_owned(), 1),
            ("Silver".to_owned(), 1),
            ("Gold".to_owned(), 0)
        ]
    );
    assert!(enrolled.first_position < awarded.first_position);
    for status in runtime.status() {
        assert_eq!(status.state, WorkerState::Live, "{status:?}");
        assert_eq!((status.lag_events, status.lag_us), (0, 0), "{status:?}");
        assert_eq!(status.checkpoint, fixture.head());
    }
    runtime.stop().await;
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for Client {
    fn clock_now(&self) -> i64 {
        use ledger_core::clock::Clock;
        self.clock.now_us()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_their_writes_under_concurrent_writes() {
    let fixture = Fixture::new().await;
    let runtime = Arc::new(fixture.runtime());
    let store = fixture.store.clone();
    let mut tasks = Vec::new();
    for task in 0..4 {
        let client = fixture.client.clone();
        let runtime = runtime.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("m{task}");
            let mut expected = 0;
            for round in 1..=40i64 {
                let written = client.member(&id, award(round)).await.expect("award");
                expected += round;
                let reached = runtime
                    .wait_for(ViewKind::Balance, written.last_position(), PATIENCE)
                    .await
                    .expect("wait");
                assert!(
                    reached >= written.last_position(),
                    "{id}: view reached the write"
                );
                let answer =
                    balance::get_balance(&store, &program_id(), &member(&id)).expect("balance");
                assert!(answer.position >= written.last_position());
                assert_eq!(
                    answer.value.balance(),
                    expected,
                    "{id}: after award {round}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    runtime.stop().await;
}

/// Goal: a worker that lingers at the head for more commits never holds
/// back a reader: one waiting for a position, or for the view to settle,
/// ends the linger.
/// Method: the linger set to an hour, far beyond `PATIENCE`; after each of
/// 20 writes, every view is waited for at the write's position (by
/// `wait_for` on even rounds, `wait_settled` on odd ones). A linger a
/// reader did not end would hold the view at the position before the
/// write until the wait gave up, and the assertion would fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_reader_ends_the_linger_at_the_head() {
    let fixture = Fixture::new().await;
    let runtime = fixture.runtime();
    runtime.set_live_linger(Duration::from_secs(3_600));
    fixture.caught_up(&runtime).await;
    for round in 1..=20i64 {
        let written = fixture
            .client
            .member("ann", award(round))
            .await
            .expect("award");
        let position = written.last_position();
        for kind in ViewKind::ALL {
            let reached = if round % 2 == 0 {
                runtime
                    .wait_for(kind, position, PATIENCE)
                    .await
                    .expect("wait")
            } else {
                let status = runtime.wait_settled(kind, PATIENCE).await.expect("settle");
                assert_eq!(status.state, WorkerState::Live, "{}", kind.name());
                status.checkpoint
            };
            assert!(
                reached >= position,
                "round {round}: {} at {reached}, the write at {position}",
                kind.name()
            );
        }
    }
    runtime.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_beyond_the_head_is_refused() {
    let fixture = Fixture::new().await;
    let runtime = fixture.runtime();
    let error = runtime
        .wait_for(ViewKind::Balance, fixture.head() + 1, PATIENCE)
        .await
        .expect_err("beyond the head");
    assert!(
        matches!(&error, projections::QueryError::Invalid(e) if e.field == "min_position"),
        "{error:?}"
    );
    runtime.stop().await;
}

/// Steps of a random history for the rebuild property.
#[derive(Debug, Clone)]
enum Step {
    Purchase(usize, i64),
    Award(usize, i64),
    Redeem(usize, i64),
    Return(usize, usize, i64),
    Transfer(usize, usize, i64),
    /// Days forward, then a scheduler round.
    Advance(i64),
    /// Stop the views and start them again.
    Restart,
    /// Stop the views, fold part of what they lack by hand, start again:
    /// the runtime resumes mid-catch-up.
    RestartMidway,
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0usize..4;
    prop_oneof![
        4 => (who.clone(), 1i64..80_000).prop_map(|(m, c)| Step::Purchase(m, c)),
        2 => (who.clone(), 1i64..500).prop_map(|(m, p)| Step::Award(m, p)),
        3 => (who.clone(), 1i64..400).prop_map(|(m, p)| Step::Redeem(m, p)),
        1 => (who.clone(), 0usize..8, 1i64..80_000).prop_map(|(m, o, c)| Step::Return(m, o, c)),
        1 => (who.clone(), who.clone(), 1i64..300).prop_map(|(f, t, p)| Step::Transfer(f, t, p)),
        2 => (1i64..200).prop_map(Step::Advance),
        1 => Just(Step::Restart),
        1 => Just(Step::RestartMidway),
    ]
}

async fn run_history(steps: Vec<Step>) {
    let mut fixture = Fixture::new().await;
    let client = fixture.client.clone();
    let mut runtime = Some(fixture.runtime());
    for (index, step) in steps.into_iter().enumerate() {
        let id = |m: usize| format!("m{m}");
        // Rule rejections (nothing to redeem, unknown order...) are part of
        // a random history; only the views are checked here.
        let _ = match step {
            Step::Purchase(m, cents) => {
                client
                    .member(&id(m), purchase(&format!("o{index}"), cents))
                    .await
            }
            Step::Award(m, points) => client.member(&id(m), award(points)).await,
            Step::Redeem(m, points) => {
                client
                    .member(&id(m), redeem(&format!("r{index}"), points))
                    .await
            }
            Step::Return(m, order, cents) => {
                client
                    .member(
                        &id(m),
                        Command::RecordReturn {
                            order_id: format!("o{order}"),
                            refund: ledger::usd(cents),
                        },
                    )
                    .await
            }
            Step::Transfer(from, to, points) => {
                client
                    .run(LedgerCommand::Transfer(TransferPoints {
                        transfer_id: format!("t{index}"),
                        from_member_id: member(&id(from)),
                        to_member_id: member(&id(to)),
                        points: Points::new(points),
                    }))
                    .await
            }
            Step::Advance(days) => {
                client.clock.advance(days * DAY_US);
                client.run_due(&fixture.store).await;
                continue;
            }
            Step::Restart => {
                if let Some(old) = runtime.take() {
                    old.stop().await;
                }
                runtime = Some(fixture.runtime());
                continue;
            }
            Step::RestartMidway => {
                if let Some(old) = runtime.take() {
                    old.stop().await;
                }
                for award_round in 0..3 {
                    let _ = client.member(&id(award_round), award(7)).await;
                }
                let head = fixture.head();
                for kind in ViewKind::ALL {
                    let mut folder = Folder::open(&fixture.store, kind, 1).expect("folder");
                    let midway =
                        folder.checkpoint().position + (head - folder.checkpoint().position) / 2;
                    folder.step(&fixture.store, midway).expect("fold part");
                }
                runtime = Some(fixture.runtime());
                continue;
            }
        };
    }
    let runtime = runtime.expect("running");
    fixture.caught_up(&runtime).await;
    let incremental: Vec<_> = ViewKind::ALL
        .iter()
        .map(|kind| view_digest(&fixture.store, *kind).expect("digest"))
        .collect();
    // Online: a second generation from position 0 replaces the first.
    for (kind, digest) in ViewKind::ALL.iter().zip(&incremental) {
        let outcome = runtime.rebuild(*kind).await.expect("rebuild");
        assert_eq!(outcome.generation, 2);
        assert_eq!(outcome.position, fixture.head());
        assert_eq!(
            &view_digest(&fixture.store, *kind).expect("digest"),
            digest,
            "{}: online rebuild equals the incremental view",
            kind.name()
        );
    }
    runtime.stop().await;
    // Offline, with the writer stopped.
    if let Some(writer) = fixture.writer.take() {
        writer.shutdown();
    }
    for (kind, digest) in ViewKind::ALL.iter().zip(&incremental) {
        let outcome = rebuild_offline(&fixture.store, *kind, |_, _| {}).expect("rebuild");
        assert_eq!(outcome.generation, 3);
        assert_eq!(
            &view_digest(&fixture.store, *kind).expect("digest"),
            digest,
            "{}: offline rebuild equals the incremental view",
            kind.name()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn rebuilds_equal_incremental_views_byte_for_byte(
        steps in prop::collection::vec(step(), 10..60)
    ) {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio");
        tokio.block_on(run_history(steps));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_rows_answer_until_the_rebuilt_ones_are_complete() {
    let fixture = Fixture::new().await;
    let runtime = Arc::new(fixture.runtime());
    let client = &fixture.client;
    let mut expected = 0;
    for batch in 0..40 {
        let mut writes = Vec::new();
        for n in 0..100 {
            let client = client.clone();
            writes.push(tokio::spawn(async move {
                client.member(&format!("m{n}"), award(batch + 1)).await
            }));
        }
        for write in writes {
            write.await.expect("task").expect("award");
        }
        expected += batch + 1;
    }
    fixture.caught_up(&runtime).await;
    let head = fixture.head();
    let before = view_digest(&fixture.store, ViewKind::Balance).expect("digest");
    let rebuild = {
        let runtime = runtime.clone();
        tokio::spawn(async move { runtime.rebuild(ViewKind::Balance).await })
    };
    // Every answer during the rebuild comes from complete rows: the whole
    // balance at the head, never a partly rebuilt one.
    let mut answers = 0;
    loop {
        let finished = rebuild.is_finished();
        let answer =
            balance::get_balance(&fixture.store, &program_id(), &member("m7")).expect("balance");
        assert_eq!(answer.position, head);
        assert_eq!(answer.value.balance(), expected);
        answers += 1;
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    let outcome = rebuild.await.expect("task").expect("rebuild");
    assert_eq!(outcome.generation, 2);
    assert!(answers >= 1);
    assert_eq!(
        view_digest(&fixture.store, ViewKind::Balance).expect("digest"),
        before
    );
    // The rebuilt view follows new writes.
    let written = client.member("m7", award(1)).await.expect("award");
    runtime
        .wait_for(ViewKind::Balance, written.last_position(), PATIENCE)
        .await
        .expect("wait");
    let answer =
        balance::get_balance(&fixture.store, &program_id(), &member("m7")).expect("balance");
    assert_eq!(answer.value.balance(), expected + 1);
    runtime.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_stops_at_an_event_it_cannot_fold_and_never_skips_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_US);
    let store = Store::open(dir.path()).expect("store");
    let config = WriterConfig::with_clock(Arc::new(clock.clone()));
    let writer = Writer::start(store.clone(), PassThrough, config).expect("writer");
    let append = |key: &str, event: pb::Event| Envelope {
        program_id: program_id(),
        idempotency_key: ledger_core::ids::IdempotencyKey::parse("idempotency_key", key)
            .expect("valid"),
        occurred_at_us: T0_US,
        principal: "test".into(),
        metadata: vec![],
        expected_version: None,
        command: Append::new([(StreamName::member(&program_id(), &member("ann")), event)]),
    };
    let enrolled = pb::Event {
        kind: Some(pb::event::Kind::MemberEnrolled(pb::MemberEnrolled {
            implicit: false,
        })),
    };
    writer
        .handle()
        .submit(append("a", enrolled))
        .await
        .expect("enroll");
    let runtime = Runtime::start(
        store.clone(),
        writer.handle().head(),
        Arc::new(clock.clone()),
        &ViewKind::ALL,
    )
    .expect("start");
    runtime
        .wait_for(ViewKind::Balance, 1, PATIENCE)
        .await
        .expect("wait");
    // A redemption drawing from a lot the member never had.
    let bogus = pb::Event {
        kind: Some(pb::event::Kind::PointsRedeemed(pb::PointsRedeemed {
            redemption_id: "r".into(),
            points: 5,
            draws: vec![pb::LotDraw {
                lot_id: 9,
                points: 5,
            }],
        })),
    };
    let bad = writer
        .handle()
        .submit(append("b", bogus))
        .await
        .expect("append");
    let later = pb::Event {
        kind: Some(pb::event::Kind::PointsAwarded(pb::PointsAwarded {
            reason: "after".into(),
            points: 3,
            lot: Some(pb::Lot {
                lot_id: 1,
                points: 3,
                earned_at_us: T0_US,
                available_at_us: T0_US,
                expires_at_us: 0,
            }),
            debt_repaid: 0,
        })),
    };
    writer
        .handle()
        .submit(append("c", later))
        .await
        .expect("append");
    // The tier view has nothing to object to and reaches the head.
    let reached = runtime
        .wait_for(ViewKind::Tier, 3, PATIENCE)
        .await
        .expect("wait");
    assert_eq!(reached, 3);
    let status = runtime
        .wait_settled(ViewKind::Balance, PATIENCE)
        .await
        .expect("status");
    let WorkerState::Failed { position, error } = &status.state else {
        panic!("the balance view stops: {status:?}");
    };
    assert_eq!(*position, bad.first_position);
    assert!(error.contains("lot 9"), "{error}");
    assert_eq!(
        status.checkpoint,
        bad.first_position - 1,
        "nothing at or after it applied"
    );
    assert_eq!(status.lag_events, 2);
    clock.advance(7_000_000);
    let status = runtime.status_of(ViewKind::Balance).expect("status");
    assert_eq!(
        status.lag_us, 7_000_000,
        "lag since the stuck event was recorded"
    );
    let answer = balance::get_balance(&store, &program_id(), &member("ann")).expect("answer");
    assert_eq!(answer.position, bad.first_position - 1);
    // Read-your-writes on a stopped view answers at once, from where it is.
    let reached = runtime
        .wait_for(ViewKind::Balance, 3, PATIENCE)
        .await
        .expect("wait");
    assert_eq!(reached, bad.first_position - 1);
    // A rebuild fails at the same event; the old rows stay active.
    let rebuilt = runtime.rebuild(ViewKind::Balance).await;
    assert!(rebuilt.is_err(), "{rebuilt:?}");
    let answer = balance::get_balance(&store, &program_id(), &member("ann")).expect("answer");
    assert_eq!(answer.position, bad.first_position - 1);
    runtime.stop().await;
    writer.shutdown();
}
