//! Goal: the domain's mechanics work through the real writer: durable,
//! idempotent and hash-chained like any command; the write model after a
//! restart equals a replay of the member's stream; time-driven work is
//! decided by the scheduler as ordinary events at their due time, and a
//! server stopped for months catches up in due-time order.
//!
//! Method: a store in a temporary directory, the writer with the ledger
//! decider and a manual clock; the scheduler is driven with `run_due(now)`,
//! never by waiting. Members are read back through the public state loader
//! and compared with a from-scratch replay of their stream.

mod common;

use common::T0_US;
use ledger_core::clock::ManualClock;
use ledger_core::domain::{
    self, Command, Money, Points, ProgramCommand, ProgramRules, TransferPoints,
};
use ledger_core::engine::scheduler::{Scheduler, due_entries};
use ledger_core::engine::{LedgerCommand, LedgerDecider, load_member, replay_member};
use ledger_core::error::CommandError;
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId};
use ledger_core::store::{CF_SNAPSHOTS, Store, VerifyOutcome};
use ledger_core::writer::{Appended, Envelope, Writer, WriterConfig, WriterHandle};
use std::sync::Arc;

const DAY_US: i64 = 86_400_000_000;

fn program_id() -> ProgramId {
    ProgramId::parse("program_id", "coffee").expect("valid")
}

fn member(id: &str) -> MemberId {
    MemberId::parse("member_id", id).expect("valid")
}

/// One point per dollar, 30 days pending, lots expiring at the end of the
/// 12th month after the month earned.
fn rules() -> ProgramRules {
    let mut rules = ProgramRules::basic("USD");
    rules.pending_days = 30;
    rules.lot_expiry = Some(domain::LotExpiry {
        rule: Some(domain::LotExpiryRule::AfterMonthsEnd(12)),
    });
    rules
}

/// [`rules`] with no pending period: purchase points are available at once.
fn rules_without_pending() -> ProgramRules {
    let mut rules = rules();
    rules.pending_days = 0;
    rules
}

struct Engine {
    store: Store,
    clock: ManualClock,
    writer: Writer<LedgerCommand>,
    next_key: u64,
}

impl Engine {
    fn open(dir: &std::path::Path, clock: ManualClock) -> Engine {
        Engine::open_with(dir, clock, LedgerDecider::new())
    }

    fn open_with(dir: &std::path::Path, clock: ManualClock, decider: LedgerDecider) -> Engine {
        let store = Store::open(dir).expect("open");
        let config = WriterConfig::with_clock(Arc::new(clock.clone()));
        let writer = Writer::start(store.clone(), decider, config).expect("writer");
        Engine {
            store,
            clock,
            writer,
            next_key: 0,
        }
    }

    fn handle(&self) -> WriterHandle<LedgerCommand> {
        self.writer.handle()
    }

    fn envelope(&mut self, command: LedgerCommand) -> Envelope<LedgerCommand> {
        self.next_key += 1;
        Envelope {
            program_id: program_id(),
            idempotency_key: IdempotencyKey::parse(
                "idempotency_key",
                &format!("k{}-{}", self.clock.now(), self.next_key),
            )
            .expect("valid"),
            occurred_at_us: self.clock.now(),
            principal: "test".into(),
            metadata: vec![],
            expected_version: None,
            command,
        }
    }

    async fn run(&mut self, command: LedgerCommand) -> Result<Appended, CommandError> {
        let envelope = self.envelope(command);
        self.handle().submit(envelope).await
    }

    async fn define(&mut self, rules: ProgramRules) {
        self.run(LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules,
        }))
        .await
        .expect("define");
    }

    async fn member_command(
        &mut self,
        id: &str,
        command: Command,
    ) -> Result<Appended, CommandError> {
        self.run(LedgerCommand::Member {
            member_id: member(id),
            command,
        })
        .await
    }

    async fn run_due(&self) -> usize {
        let scheduler = Scheduler::new(
            self.store.clone(),
            self.handle(),
            Arc::new(self.clock.clone()),
        );
        scheduler
            .run_due(self.clock.now())
            .await
            .expect("scheduler round")
    }

    /// Stops the writer and closes the store.
    fn close(self) {
        self.writer.shutdown();
    }

    fn state(&self, id: &str) -> domain::Member {
        load_member(&self.store, &program_id(), &member(id)).expect("load")
    }
}

trait Now {
    fn now(&self) -> i64;
}

impl Now for ManualClock {
    fn now(&self) -> i64 {
        ledger_core::clock::Clock::now_us(self)
    }
}

fn usd(minor_units: i64) -> Money {
    Money::new(
        minor_units,
        domain::Currency::from_code("USD", "currency").expect("USD"),
    )
}

/// A purchase of `minor_units` USD under `order_id`, without tags.
fn purchase(order_id: impl Into<String>, minor_units: i64) -> Command {
    Command::RecordPurchase {
        order_id: order_id.into(),
        spend: usd(minor_units),
        tags: vec![],
    }
}

fn rejection_code(answer: Result<Appended, CommandError>) -> String {
    match answer {
        Err(CommandError::Rejected(rejection)) => rejection.code.to_string(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Goal: purchases and redemptions are kept as rows, not in the cached
/// member: with the engine letting go of every record after each batch,
/// returns, cancels and duplicate checks read them back and decide as with
/// everything in memory; and a store whose members have no record rows (no
/// snapshot of the current format either, as one written before records
/// were rows) gets them written by the first command after a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_read_back_from_their_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_US);
    let forgetful = || LedgerDecider::new().with_records_held_max(0);
    let mut engine = Engine::open_with(dir.path(), clock.clone(), forgetful());
    engine.define(ProgramRules::basic("USD")).await;
    let refund = |order: &str, cents| Command::RecordReturn {
        order_id: order.into(),
        refund: usd(cents),
    };
    let cancel = |id: &str| Command::CancelRedemption {
        redemption_id: id.into(),
    };
    for command in [
        purchase("o1", 1_0000),
        purchase("o2", 5_000),
        Command::Redeem {
            redemption_id: "r1".into(),
            points: Points::new(120),
        },
        refund("o1", 4_000),
        cancel("r1"),
    ] {
        engine
            .member_command("ann", command)
            .await
            .expect("decided");
    }
    let ann = engine.state("ann");
    assert_eq!(
        ann.purchase("o1").map(|p| p.refunded_minor_units),
        Some(4_000)
    );
    assert!(ann.redemption("r1").is_some_and(|r| r.cancelled));
    let answer = engine.member_command("ann", purchase("o2", 100)).await;
    assert_eq!(rejection_code(answer), "duplicate_order");
    let answer = engine
        .member_command(
            "ann",
            Command::Redeem {
                redemption_id: "r1".into(),
                points: Points::new(1),
            },
        )
        .await;
    assert_eq!(rejection_code(answer), "duplicate_redemption");
    let answer = engine.member_command("ann", cancel("r1")).await;
    assert_eq!(rejection_code(answer), "redemption_already_cancelled");
    let replayed = replay_member(&engine.store, &program_id(), &member("ann")).expect("replay");
    assert_eq!(engine.state("ann"), replayed);
    engine.close();

    // A store without record rows or current snapshots.
    {
        let store = Store::open(dir.path()).expect("open");
        let family = store.cf(ledger_core::store::CF_SNAPSHOTS);
        let keys: Vec<Box<[u8]>> = store
            .db()
            .iterator_cf(family, rocksdb::IteratorMode::Start)
            .map(|row| row.expect("row").0)
            .collect();
        assert!(keys.len() > 2, "record rows were written: {}", keys.len());
        let mut batch = rocksdb::WriteBatch::default();
        for key in keys {
            batch.delete_cf(family, key);
        }
        store.write_durable(batch).expect("deleted");
    }
    let mut engine = Engine::open_with(dir.path(), clock, forgetful());
    // New idempotency keys (they include the time).
    engine.clock.advance(DAY_US);
    // Decided on the replayed member, which writes every record's row...
    engine
        .member_command("ann", refund("o2", 1_000))
        .await
        .expect("return after a replay");
    // ...which the next decisions read back.
    engine
        .member_command("ann", refund("o2", 1_000))
        .await
        .expect("return from the row");
    let answer = engine.member_command("ann", cancel("r1")).await;
    assert_eq!(rejection_code(answer), "redemption_already_cancelled");
    let replayed = replay_member(&engine.store, &program_id(), &member("ann")).expect("replay");
    assert_eq!(engine.state("ann"), replayed);
    assert_eq!(
        replayed.purchase("o2").map(|p| p.refunded_minor_units),
        Some(2_000)
    );
    engine.close();
}

/// A member loaded without a snapshot but with events keeps the due entry
/// it had: when its next due time moves, the old entry goes. (A member with
/// neither, a new one, is known to have none and is not looked up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reloaded_from_its_events_replaces_its_due_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_US);
    let mut engine = Engine::open(dir.path(), clock.clone());
    engine.define(rules()).await;
    engine
        .member_command("alice", purchase("o-1", 42_00))
        .await
        .expect("purchase");
    let entries = |engine: &Engine| {
        due_entries(&engine.store, i64::MAX, usize::MAX)
            .expect("due entries")
            .into_iter()
            .map(|entry| (entry.member_id.as_str().to_owned(), entry.due_us))
            .collect::<Vec<_>>()
    };
    let matures_at = T0_US + 30 * DAY_US;
    assert_eq!(entries(&engine), [("alice".to_owned(), matures_at)]);
    // A new engine holds no member, and alice has no snapshot: she is
    // loaded by replaying her events.
    engine.close();
    let engine = Engine::open(dir.path(), clock);
    engine.clock.advance(31 * DAY_US);
    assert!(engine.run_due().await >= 1, "the maturing is due");
    let alice = engine.state("alice");
    assert_eq!(alice.available_points(), Points::new(42));
    let due = entries(&engine);
    assert_eq!(due.len(), 1, "one due entry, the lot's expiry: {due:?}");
    assert!(due[0].1 > matures_at, "{due:?}");
    engine.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_mature_and_expire_through_the_scheduler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = Engine::open(dir.path(), ManualClock::new(T0_US));
    engine.define(rules()).await;
    let purchase = purchase("o-1", 42_00);
    engine
        .member_command("alice", purchase)
        .await
        .expect("purchase");
    let alice = engine.state("alice");
    assert_eq!(alice.pending_points(), Points::new(42));
    assert_eq!(alice.available_points(), Points::new(0));

    // Nothing is due before the pending period ends.
    engine.clock.advance(29 * DAY_US);
    assert_eq!(engine.run_due().await, 0);
    engine.clock.advance(2 * DAY_US);
    assert!(engine.run_due().await >= 1);
    let alice = engine.state("alice");
    assert_eq!(alice.pending_points(), Points::new(0));
    assert_eq!(alice.available_points(), Points::new(42));

    // The maturing was recorded at its due time, not at the scheduler's.
    let records = engine
        .store
        .read_stream(
            &ledger_core::ids::StreamName::member(&program_id(), &member("alice")),
            1,
            usize::MAX,
        )
        .expect("read");
    let matured = records
        .iter()
        .map(|stored| stored.decode().expect("decodes"))
        .find(|record| {
            matches!(
                record.event.as_ref().and_then(|e| e.kind.as_ref()),
                Some(ledger_core::pb::event::Kind::PointsMatured(_))
            )
        })
        .expect("a PointsMatured event");
    assert_eq!(matured.occurred_at_us, T0_US + 30 * DAY_US);
    assert_eq!(matured.principal, "system");

    // A second round with nothing new due submits nothing new.
    let head = engine.store.head().expect("head");
    engine.run_due().await;
    assert_eq!(engine.store.head().expect("head"), head);
    engine.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_are_remembered_and_unknown_programs_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = Engine::open(dir.path(), ManualClock::new(T0_US));
    let unknown = engine
        .member_command("bob", Command::Enroll)
        .await
        .expect_err("no program yet");
    match unknown {
        CommandError::Rejected(rejection) => {
            assert_eq!(rejection.code, "unknown_program");
            assert_eq!(rejection.field.as_deref(), Some("program_id"));
        }
        other => panic!("unexpected {other}"),
    }
    engine.define(rules()).await;
    engine
        .member_command("bob", Command::Enroll)
        .await
        .expect("enroll");
    let redeem = Command::Redeem {
        redemption_id: "r-1".into(),
        points: Points::new(10),
    };
    let envelope = engine.envelope(LedgerCommand::Member {
        member_id: member("bob"),
        command: redeem,
    });
    let first = engine
        .handle()
        .submit(envelope.clone())
        .await
        .expect_err("nothing to redeem");
    // Bob earns enough now, but the retry of the same request keeps its answer.
    let award = Command::AwardPoints {
        reason: "welcome".into(),
        points: Points::new(50),
    };
    engine.member_command("bob", award).await.expect("award");
    let retry = engine
        .handle()
        .submit(envelope)
        .await
        .expect_err("same answer");
    assert_eq!(first, retry);
    assert!(
        matches!(first, CommandError::Rejected(ref r) if r.code == "insufficient_points"),
        "{first}"
    );
    engine.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_after_restart_equals_a_replay_and_downtime_is_caught_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_US);
    let mut engine = Engine::open(dir.path(), clock.clone());
    engine.define(rules_without_pending()).await;
    for (index, id) in ["ann", "ben", "cat"].iter().enumerate() {
        let purchase = purchase(format!("o-{id}"), 10_00 * (index as i64 + 1));
        engine.member_command(id, purchase).await.expect("purchase");
        clock.advance(DAY_US);
    }
    let transfer = TransferPoints {
        transfer_id: "t-1".into(),
        from_member_id: member("cat"),
        to_member_id: member("ann"),
        points: Points::new(5),
    };
    engine
        .run(LedgerCommand::Transfer(transfer))
        .await
        .expect("transfer");
    let redeem = Command::Redeem {
        redemption_id: "r-1".into(),
        points: Points::new(12),
    };
    engine.member_command("ann", redeem).await.expect("redeem");
    let before: Vec<domain::Member> = ["ann", "ben", "cat"]
        .iter()
        .map(|id| engine.state(id))
        .collect();
    engine.close();

    // Restart: snapshots give the same state as replaying each stream.
    let engine = Engine::open(dir.path(), clock.clone());
    for (index, id) in ["ann", "ben", "cat"].iter().enumerate() {
        let loaded = engine.state(id);
        let replayed = replay_member(&engine.store, &program_id(), &member(id)).expect("replay");
        assert_eq!(loaded, replayed, "{id}: snapshot equals replay");
        assert_eq!(loaded, before[index], "{id}: state survives the restart");
        assert_eq!(
            loaded.balance_points(),
            Points::new(
                loaded.lots().map(|lot| lot.remaining().get()).sum::<i64>()
                    - loaded.debt_points().get()
            )
        );
    }

    // Two years of downtime: everything falls due, in due-time order.
    clock.advance(2 * 366 * DAY_US);
    let submitted = engine.run_due().await;
    assert!(
        submitted >= 3,
        "each member had lots to expire, got {submitted}"
    );
    for id in ["ann", "ben", "cat"] {
        let state = engine.state(id);
        assert_eq!(
            state.balance_points(),
            Points::new(0),
            "{id}: every lot expired"
        );
        assert_eq!(
            state,
            replay_member(&engine.store, &program_id(), &member(id)).expect("replay")
        );
    }
    let head = engine.store.head().expect("head");
    assert_eq!(
        engine.store.verify(|_| {}).expect("verify"),
        VerifyOutcome::Verified { head }
    );
    // The expiries were recorded at their due times, in order per member.
    for id in ["ann", "ben", "cat"] {
        let stream = ledger_core::ids::StreamName::member(&program_id(), &member(id));
        let times: Vec<i64> = engine
            .store
            .read_stream(&stream, 1, usize::MAX)
            .expect("read")
            .iter()
            .map(|stored| stored.decode().expect("decodes").occurred_at_us)
            .collect();
        assert!(
            times.windows(2).all(|pair| pair[0] <= pair[1]),
            "{id}: {times:?}"
        );
        assert!(times.iter().all(|t| *t <= clock.now()));
    }
    engine.close();
}

/// Found by `engine_model`: a member whose inactivity expiry had run got
/// points by transfer (which is not activity), so the same expiry was due
/// again at the same instant. The scheduler's idempotency key was derived
/// from (due time, kind, member) only, so the second expiry was answered as
/// a replay of the first and the points never expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_entry_that_recurs_at_the_same_instant_runs_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = Engine::open(dir.path(), ManualClock::new(T0_US));
    let mut program_rules = ProgramRules::basic("USD");
    program_rules.inactivity_expiry_days = 180;
    let define = LedgerCommand::Program(ProgramCommand::DefineProgram {
        rules: program_rules,
    });
    engine.run(define).await.expect("define");
    let purchase = purchase("o-1", 1_00);
    engine
        .member_command("ben", purchase)
        .await
        .expect("purchase");
    engine.clock.advance(180 * DAY_US);
    engine.run_due().await;
    assert_eq!(
        engine.state("ben").balance_points(),
        Points::new(0),
        "inactive for 180 days"
    );
    let award = Command::AwardPoints {
        reason: "gift".into(),
        points: Points::new(91),
    };
    engine.member_command("cat", award).await.expect("award");
    let transfer = TransferPoints {
        transfer_id: "t-1".into(),
        from_member_id: member("cat"),
        to_member_id: member("ben"),
        points: Points::new(1),
    };
    engine
        .run(LedgerCommand::Transfer(transfer))
        .await
        .expect("transfer");
    engine.clock.advance(60_000_000);
    engine.run_due().await;
    let ben = engine.state("ben");
    assert_eq!(
        ben.balance_points(),
        Points::new(0),
        "the received point expires too: {ben:?}"
    );
    engine.close();
}

/// A rules change must reach members who never act again: a program that
/// switches on inactivity expiry expires a dormant member's points, although
/// the member's due entry was computed under the old rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_change_reschedules_dormant_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = Engine::open(dir.path(), ManualClock::new(T0_US));
    let define = ProgramCommand::DefineProgram {
        rules: ProgramRules::basic("USD"),
    };
    engine
        .run(LedgerCommand::Program(define))
        .await
        .expect("define");
    let purchase = purchase("o-1", 5_00);
    engine
        .member_command("dora", purchase)
        .await
        .expect("purchase");
    engine.clock.advance(DAY_US);
    assert_eq!(
        engine.run_due().await,
        0,
        "nothing ever expires under the first rules"
    );
    let mut stricter = ProgramRules::basic("USD");
    stricter.inactivity_expiry_days = 180;
    engine
        .run(LedgerCommand::Program(ProgramCommand::ChangeRules {
            rules: stricter,
        }))
        .await
        .expect("change");
    engine.clock.advance(200 * DAY_US);
    engine.run_due().await;
    assert_eq!(
        engine.state("dora").balance_points(),
        Points::new(0),
        "dormant for 201 days"
    );
    engine.close();
}

/// Goal: a member the writer's cache forgets is written as a snapshot at
/// its current version, so loading it again reads that row instead of
/// replaying its stream, and the state loaded equals a replay. Method: a
/// cache bounded to 2 members, five members with two purchases each (too
/// few events for the interval's snapshot), then a purchase for each again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_member_is_snapshotted_and_loads_equal_a_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_US);
    let decider = LedgerDecider::new().with_member_cache_max(2);
    let mut engine = Engine::open_with(dir.path(), clock.clone(), decider);
    engine.define(rules_without_pending()).await;
    let ids = ["ann", "ben", "cat", "dan", "eve"];
    let mut orders = 0;
    let mut purchase = async |engine: &mut Engine, id: &str| {
        orders += 1;
        let command = purchase(format!("o-{orders}"), 10_00);
        engine.member_command(id, command).await.expect("purchase");
    };
    for id in ids {
        purchase(&mut engine, id).await;
        purchase(&mut engine, id).await;
    }
    let snapshot = |engine: &Engine, id: &str| {
        let stream = ledger_core::ids::StreamName::member(&program_id(), &member(id));
        let store = &engine.store;
        store
            .db()
            .get_pinned_cf(store.cf(CF_SNAPSHOTS), stream.as_str().as_bytes())
            .expect("read")
            .is_some()
    };
    // The first members were forgotten when later ones filled the cache.
    for id in ["ann", "ben", "cat"] {
        assert!(
            snapshot(&engine, id),
            "{id}: snapshot written when forgotten"
        );
    }
    for id in ids {
        purchase(&mut engine, id).await;
    }
    for id in ids {
        let replayed = replay_member(&engine.store, &program_id(), &member(id)).expect("replay");
        assert_eq!(engine.state(id), replayed, "{id}: load equals replay");
        assert_eq!(replayed.balance_points(), Points::new(30), "{id}");
    }
    engine.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_versions_after_a_restart_come_from_the_loaded_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_US);
    let mut engine = Engine::open(dir.path(), clock.clone());
    engine.define(rules_without_pending()).await;
    let mut orders = 0;
    let mut purchase = |id: &str| {
        orders += 1;
        LedgerCommand::Member {
            member_id: member(id),
            command: purchase(format!("o-{orders}"), 10_00),
        }
    };
    // Members of different lengths; a cache of two forgets most of them.
    let counts = [("ann", 1), ("ben", 3), ("cat", 40), ("dan", 2), ("eve", 1)];
    let mut versions = Vec::new();
    for (id, purchases) in counts {
        let mut last = 0;
        for _ in 0..purchases {
            last = engine
                .run(purchase(id))
                .await
                .expect("purchase")
                .stream_version;
        }
        versions.push((id, last));
    }
    engine.close();

    // A new writer knows no version: each comes from loading the member.
    // (A later instant: the new engine's idempotency keys count from 1.)
    clock.advance(1);
    let decider = LedgerDecider::new().with_member_cache_max(2);
    let mut engine = Engine::open_with(dir.path(), clock, decider);
    let stream = |id: &str| ledger_core::ids::StreamName::member(&program_id(), &member(id));
    let eve_version = versions.pop().expect("eve").1;
    for (id, version) in versions {
        let stream = stream(id);
        let mut stale = engine.envelope(purchase(id));
        stale.expected_version = Some(version - 1);
        match engine.handle().submit(stale).await {
            Err(CommandError::VersionConflict { actual, .. }) => {
                assert_eq!(actual, version, "{id}: version after a restart");
            }
            other => panic!("{id}: expected a version conflict, got {other:?}"),
        }
        let mut current = engine.envelope(purchase(id));
        current.expected_version = Some(version);
        let appended = engine.handle().submit(current).await.expect("purchase");
        assert!(appended.stream_version > version, "{id}");
        assert_eq!(
            engine.store.stream_version(&stream).expect("read"),
            appended.stream_version,
            "{id}: the stream index agrees"
        );
        let records = engine
            .store
            .read_stream_records(&stream, 1, usize::MAX)
            .expect("read");
        assert_eq!(records.len() as u64, appended.stream_version, "{id}");
    }
    // A transfer's receiver is not the command's primary stream: its version
    // is looked up after the decision, which has applied the transfer to
    // the receiver's state already.
    let transfer = TransferPoints {
        transfer_id: "t-1".into(),
        from_member_id: member("cat"),
        to_member_id: member("eve"),
        points: Points::new(5),
    };
    engine
        .run(LedgerCommand::Transfer(transfer))
        .await
        .expect("transfer");
    let eve = stream("eve");
    let records = engine
        .store
        .read_stream_records(&eve, 1, usize::MAX)
        .expect("read");
    let index = engine.store.stream_version(&eve).expect("read");
    assert!(index > eve_version, "the transfer reached eve's stream");
    assert_eq!(records.len() as u64, index, "eve: no version skipped");
    engine.close();
}
