//! A ledger engine over a temporary store for end-to-end tests: the writer
//! with the ledger decider, a manual clock, and commands by member.
#![allow(dead_code)]

use ledger_core::clock::{Clock, ManualClock};
use ledger_core::domain::{Command, Currency, Money, Points, ProgramCommand, ProgramRules};
use ledger_core::engine::scheduler::Scheduler;
use ledger_core::engine::{LedgerCommand, LedgerDecider};
use ledger_core::error::CommandError;
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId};
use ledger_core::store::Store;
use ledger_core::writer::{Appended, Envelope, Writer, WriterConfig, WriterHandle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn program_id() -> ProgramId {
    ProgramId::parse("program_id", "coffee").expect("valid")
}

pub fn member(id: &str) -> MemberId {
    MemberId::parse("member_id", id).expect("valid")
}

pub fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::from_code("USD", "currency").expect("USD"))
}

pub fn award(points: i64) -> Command {
    Command::AwardPoints {
        reason: "test".into(),
        points: Points::new(points),
    }
}

pub fn purchase(order_id: &str, cents: i64) -> Command {
    Command::RecordPurchase {
        order_id: order_id.into(),
        spend: usd(cents),
        tags: vec![],
    }
}

pub fn redeem(redemption_id: &str, points: i64) -> Command {
    Command::Redeem {
        redemption_id: redemption_id.into(),
        points: Points::new(points),
    }
}

/// A cheap-to-clone way to submit commands to one program.
#[derive(Clone)]
pub struct Client {
    pub writer: WriterHandle<LedgerCommand>,
    pub clock: ManualClock,
    /// Prefix of this client's idempotency keys.
    pub key_prefix: String,
    next_key: Arc<AtomicU64>,
}

impl Client {
    pub fn new(writer: WriterHandle<LedgerCommand>, clock: ManualClock, key_prefix: &str) -> Self {
        Client {
            writer,
            clock,
            key_prefix: key_prefix.to_owned(),
            next_key: Arc::new(AtomicU64::new(0)),
        }
    }

    pub async fn run(&self, command: LedgerCommand) -> Result<Appended, CommandError> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.writer
            .submit(Envelope {
                program_id: program_id(),
                idempotency_key: IdempotencyKey::parse(
                    "idempotency_key",
                    &format!("{}-{key}", self.key_prefix),
                )
                .expect("valid"),
                occurred_at_us: self.clock.now_us(),
                principal: "test".into(),
                metadata: vec![],
                expected_version: None,
                command,
            })
            .await
    }

    pub async fn define(&self, rules: ProgramRules) -> Appended {
        self.run(LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules,
        }))
        .await
        .expect("program defined")
    }

    pub async fn member(&self, id: &str, command: Command) -> Result<Appended, CommandError> {
        self.run(LedgerCommand::Member {
            member_id: member(id),
            command,
        })
        .await
    }

    /// Runs the scheduler once at the clock's time; returns commands run.
    pub async fn run_due(&self, store: &Store) -> usize {
        Scheduler::new(
            store.clone(),
            self.writer.clone(),
            Arc::new(self.clock.clone()),
        )
        .run_due(self.clock.now_us())
        .await
        .expect("scheduler round")
    }
}

/// Opens the store in `dir` and starts the engine on it.
pub fn open(dir: &std::path::Path, clock: &ManualClock) -> (Store, Writer<LedgerCommand>) {
    let store = Store::open(dir).expect("open");
    let config = WriterConfig::with_clock(Arc::new(clock.clone()));
    let writer = Writer::start(store.clone(), LedgerDecider::new(), config).expect("writer");
    (store, writer)
}
