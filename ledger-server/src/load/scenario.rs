//! What each scenario sends, and what it checks at the end.
//!
//! Every write carries an idempotency key `{run_id}-{worker}-{sequence}`
//! (batch items add `-{item}`), so keys never repeat within a run or across
//! runs with different run ids, and an acknowledged command can be found in
//! the log by its key. Business times are the wall clock.

use super::{Authed, Check, LoadOptions, report::Stats};
use crate::ledger::timestamp;
use crate::pb;
use crate::pb::admin_client::AdminClient;
use crate::pb::ledger_client::LedgerClient;
use anyhow::Context;
use ledger_core::domain::{LotExpiry, LotExpiryRule, ProgramRules, Rounding, ShortfallPolicy};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_distr::{Distribution, Zipf};
use std::collections::VecDeque;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;

/// Zipf exponent of member activity: a few members are very active, most
/// rarely seen.
pub const ZIPF_EXPONENT: f64 = 1.0;
/// Purchases per `SubmitBatch` call of the batch scenario.
pub const BATCH_COMMANDS: usize = ledger_core::limits::SUBMIT_BATCH_COMMANDS_MAX;
/// Recent purchases a checkout worker remembers, for its returns and
/// redemptions.
const RECENT_PURCHASES_MAX: usize = 64;
/// Points of each hot-member award, and the most one redemption takes.
const HOT_POINTS: i64 = 10;
/// Points the hot member starts with per worker.
const HOT_FUNDING_PER_WORKER: i64 = 100;

/// A load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 70% purchases, 15% balance reads with min_position, 10% redeems, 5%
    /// returns, over Zipf-distributed members.
    Checkout,
    /// SubmitBatch calls of 1,000 purchases.
    Batch,
    /// Every worker redeems from (and awards to) one member.
    HotMember,
    /// Health checks only: the transport's ceiling.
    Noop,
    /// One purchase for each of the members, by SubmitBatch of 1,000, then
    /// stop: fills a server with `--members` members.
    Populate,
}

impl Scenario {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Checkout => "checkout",
            Scenario::Batch => "batch",
            Scenario::HotMember => "hot-member",
            Scenario::Noop => "noop",
            Scenario::Populate => "populate",
        }
    }
}

/// The kinds of call a scenario makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Op {
    Purchase,
    Balance,
    Redeem,
    Return,
    Award,
    Batch,
    Health,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Purchase => "purchase",
            Op::Balance => "balance",
            Op::Redeem => "redeem",
            Op::Return => "return",
            Op::Award => "award",
            Op::Batch => "batch",
            Op::Health => "health",
        }
    }
}

/// An acknowledged command: durable in the log at these positions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ack {
    /// Its idempotency key.
    pub key: String,
    /// `purchase`, `redeem`, `return` or `award`.
    pub op: &'static str,
    /// Member id.
    pub member: String,
    /// Position of its first event.
    pub first_position: u64,
    /// Position of its last event.
    pub position: u64,
    /// Events it appended.
    pub event_count: u32,
    /// True when the answer was the remembered one of an earlier call.
    pub replayed: bool,
}

/// What one call did.
pub(crate) struct Outcome {
    pub op: Op,
    /// The call's own result: answered, or refused with this code.
    pub result: Result<(), Code>,
    /// Commands the call carried (0 for reads).
    pub commands: u64,
    /// Events the call's accepted commands appended.
    pub events: u64,
    /// Commands of a batch refused one by one, by code.
    pub command_errors: Vec<Code>,
    /// The call's acknowledged commands.
    pub acks: Vec<Ack>,
}

impl Outcome {
    fn read(op: Op, result: Result<(), Code>) -> Outcome {
        Outcome {
            op,
            result,
            commands: 0,
            events: 0,
            command_errors: Vec::new(),
            acks: Vec::new(),
        }
    }
}

/// What the end-of-run checks need from each worker.
#[derive(Debug, Default, Clone)]
pub(crate) struct WorkerSummary {
    /// Hot member: points of acknowledged awards and redemptions.
    awarded_points: i64,
    redeemed_points: i64,
    /// Hot member: the lowest balance any answer showed.
    lowest_balance: Option<i64>,
    /// Commands whose outcome is unknown (timed out, connection lost).
    unknown_outcomes: u64,
    /// The highest position any answer reached.
    max_position: u64,
}

/// The rules of a program the generator defines: like the default program
/// but with no pending period, so redemptions can spend purchase points.
pub fn load_rules() -> ProgramRules {
    ProgramRules {
        name: "Load test program".into(),
        pending_days: 0,
        lot_expiry: Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(12)),
        }),
        rounding: Rounding::Floor,
        return_policy: ShortfallPolicy::Forfeit,
        ..crate::server::default_rules()
    }
}

/// What a run prepared before the workers start.
pub(crate) struct Setup {
    scenario: Scenario,
    program: String,
    currency: String,
    hot_member: Option<String>,
    hot_funding: i64,
}

impl Setup {
    /// Makes sure the program exists (defining it with [`load_rules`] if
    /// not) and funds the hot member.
    pub(crate) async fn prepare(options: &LoadOptions, channel: &Authed) -> anyhow::Result<Setup> {
        let mut setup = Setup {
            scenario: options.scenario,
            program: options.program.clone(),
            currency: String::new(),
            hot_member: None,
            hot_funding: 0,
        };
        if options.scenario == Scenario::Noop {
            return Ok(setup);
        }
        setup.currency = ensure_program(options, channel).await?;
        if options.scenario == Scenario::HotMember {
            let member = format!("hot-{}", options.run_id);
            let funding = HOT_FUNDING_PER_WORKER * i64::from(options.concurrency);
            let answer = LedgerClient::new(channel.clone())
                .award_points(pb::AwardPointsRequest {
                    program_id: options.program.clone(),
                    member_id: member.clone(),
                    idempotency_key: format!("{}-fund", options.run_id),
                    occurred_at: Some(timestamp(now_us())),
                    reason: "load: hot-member funding".into(),
                    points: funding,
                    ..Default::default()
                })
                .await
                .context("funding the hot member")?
                .into_inner();
            anyhow::ensure!(
                answer.balance.as_ref().map(|b| b.balance) == Some(funding),
                "the hot member {member} should start at {funding} points, the answer says {:?}",
                answer.balance
            );
            setup.hot_member = Some(member);
            setup.hot_funding = funding;
        }
        Ok(setup)
    }

    /// The scenario's checks once every worker has stopped.
    pub(crate) async fn check(
        &self,
        channel: &Authed,
        summaries: &[WorkerSummary],
        total: &Stats,
    ) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();
        let unknown: u64 = summaries.iter().map(|s| s.unknown_outcomes).sum();
        if self.scenario != Scenario::Noop {
            checks.push(Check {
                name: "every call answered".into(),
                passed: unknown == 0,
                detail: format!(
                    "{unknown} command(s) timed out or lost their connection: \
                     their outcome is unknown"
                ),
            });
        }
        let Some(member) = &self.hot_member else {
            return Ok(checks);
        };
        let lowest = summaries.iter().filter_map(|s| s.lowest_balance).min();
        checks.push(Check {
            name: "no answer shows the hot member overdrawn".into(),
            passed: lowest.is_none_or(|lowest| lowest >= 0),
            detail: format!("lowest balance answered: {lowest:?}"),
        });
        let awarded: i64 = summaries.iter().map(|s| s.awarded_points).sum();
        let redeemed: i64 = summaries.iter().map(|s| s.redeemed_points).sum();
        let max_position = summaries.iter().map(|s| s.max_position).max().unwrap_or(0);
        let balance = LedgerClient::new(channel.clone())
            .get_balance(pb::GetBalanceRequest {
                program_id: self.program.clone(),
                member_id: member.clone(),
                min_position: max_position,
            })
            .await
            .context("reading the hot member's final balance")?
            .into_inner();
        let expected = self.hot_funding + awarded - redeemed;
        let actual = balance.balance.as_ref().map_or(0, |b| b.balance);
        checks.push(Check {
            name: "the hot member's balance is what the acknowledged commands add up to".into(),
            // An unknown outcome may or may not be in the log: the sum is
            // then not exact, and the first check already failed.
            passed: actual == expected || unknown > 0,
            detail: format!(
                "funding {} + awarded {awarded} - redeemed {redeemed} = {expected}; \
                 balance at position {}: {actual}; {} redemption(s) refused",
                self.hot_funding,
                balance.position,
                total.refused(Op::Redeem, Code::FailedPrecondition),
            ),
        });
        Ok(checks)
    }
}

/// Defines the program with [`load_rules`] unless it exists; returns its
/// currency.
async fn ensure_program(options: &LoadOptions, channel: &Authed) -> anyhow::Result<String> {
    let mut admin = AdminClient::new(channel.clone());
    let get = pb::GetProgramRequest {
        program_id: options.program.clone(),
    };
    match admin.get_program(get.clone()).await {
        Ok(program) => {
            return program
                .into_inner()
                .rules
                .map(|rules| rules.currency)
                .context("GetProgram answered without rules");
        }
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => {
            return Err(status).with_context(|| format!("reading program {}", options.program));
        }
    }
    let rules = load_rules();
    let defined = admin
        .define_program(pb::DefineProgramRequest {
            program_id: options.program.clone(),
            idempotency_key: format!("ledgerd-load:define:{}", options.program),
            occurred_at: Some(timestamp(now_us())),
            expected_version: Some(0),
            rules: Some(ledger_core::pb::ProgramRules::from(&rules)),
            ..Default::default()
        })
        .await;
    match defined {
        Ok(_) => Ok(rules.currency),
        // Another generator defined it first: use it as it is.
        Err(status) if matches!(status.code(), Code::Aborted | Code::AlreadyExists) => admin
            .get_program(get)
            .await
            .with_context(|| format!("reading program {}", options.program))?
            .into_inner()
            .rules
            .map(|rules| rules.currency)
            .context("GetProgram answered without rules"),
        Err(status) => Err(status).with_context(|| format!("defining program {}", options.program)),
    }
}

/// A purchase a checkout worker may return or redeem against.
struct Recent {
    member: String,
    order_id: String,
    spend_minor: i64,
    /// The member's available points in the purchase's answer.
    available: i64,
}

/// One worker's generator and clients.
pub(crate) struct Worker {
    scenario: Scenario,
    program: String,
    currency: String,
    key_prefix: String,
    sequence: u64,
    random: ChaCha8Rng,
    zipf: Option<Zipf<f64>>,
    ledger: LedgerClient<Authed>,
    health: HealthClient<Authed>,
    recent: VecDeque<Recent>,
    last_position: u64,
    keep_acks: bool,
    hot_member: Option<String>,
    summary: WorkerSummary,
    /// Populate: the next member this worker fills, its stride and the end.
    populate_next: u64,
    populate_stride: u64,
    populate_end: u64,
}

impl Worker {
    pub(crate) fn new(options: &LoadOptions, setup: &Setup, index: u32, channel: Authed) -> Worker {
        // Each worker draws its own stream from the seed.
        let stream = options.seed ^ (u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Worker {
            scenario: options.scenario,
            program: options.program.clone(),
            currency: setup.currency.clone(),
            key_prefix: format!("{}-{index}", options.run_id),
            sequence: 0,
            random: ChaCha8Rng::seed_from_u64(stream),
            // n >= 1 and a positive exponent are what Zipf requires.
            zipf: Zipf::new(f64::from(options.members.max(1)), ZIPF_EXPONENT).ok(),
            ledger: LedgerClient::new(channel.clone()),
            health: HealthClient::new(channel),
            recent: VecDeque::with_capacity(RECENT_PURCHASES_MAX),
            last_position: 0,
            keep_acks: options.keep_acks,
            hot_member: setup.hot_member.clone(),
            summary: WorkerSummary::default(),
            populate_next: u64::from(index) * BATCH_COMMANDS as u64,
            populate_stride: u64::from(options.concurrency) * BATCH_COMMANDS as u64,
            populate_end: u64::from(options.members),
        }
    }

    pub(crate) fn summary(self) -> WorkerSummary {
        self.summary
    }

    /// Sends one request and says what it did; `None` when the scenario
    /// has nothing more to send.
    pub(crate) async fn step(&mut self) -> Option<Outcome> {
        Some(match self.scenario {
            Scenario::Noop => {
                let result = self
                    .health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(drop)
                    .map_err(|status| status.code());
                Outcome::read(Op::Health, result)
            }
            Scenario::Checkout => self.checkout().await,
            Scenario::Batch => self.batch(None).await,
            Scenario::HotMember => self.hot_member().await,
            Scenario::Populate => {
                // Worker w fills members [w * 1000, w * 1000 + 1000), then
                // jumps by the concurrency: disjoint ranges, every member once.
                let first = self.populate_next;
                if first >= self.populate_end {
                    return None;
                }
                let last = (first + BATCH_COMMANDS as u64).min(self.populate_end);
                self.populate_next += self.populate_stride;
                self.batch(Some(first..last)).await
            }
        })
    }

    fn next_key(&mut self) -> String {
        self.sequence += 1;
        format!("{}-{}", self.key_prefix, self.sequence)
    }

    fn member(&mut self) -> String {
        // Zipf draws 1..=members; member ids count from 0.
        let rank = self
            .zipf
            .as_ref()
            .map_or(1.0, |zipf| zipf.sample(&mut self.random));
        format!("m{}", (rank as u64).saturating_sub(1))
    }

    fn percent(&mut self) -> u32 {
        use rand_chacha::rand_core::RngCore;
        self.random.next_u32() % 100
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        use rand_chacha::rand_core::RngCore;
        let span = u64::try_from(high - low + 1).unwrap_or(1).max(1);
        low + i64::try_from(self.random.next_u64() % span).unwrap_or(0)
    }

    async fn checkout(&mut self) -> Outcome {
        let roll = self.percent();
        if (70..85).contains(&roll) {
            let member = self.member();
            let result = self
                .ledger
                .get_balance(pb::GetBalanceRequest {
                    program_id: self.program.clone(),
                    member_id: member,
                    min_position: self.last_position,
                })
                .await
                .map(drop)
                .map_err(|status| status.code());
            // A member never seen is NOT_FOUND: a read, answered.
            let result = match result {
                Err(Code::NotFound) => Ok(()),
                other => other,
            };
            return Outcome::read(Op::Balance, result);
        }
        if (85..95).contains(&roll) {
            // Redeem from the latest purchase's member that had points.
            if let Some(index) = self.recent.iter().rposition(|recent| recent.available >= 2) {
                let (member, available) = {
                    let recent = &self.recent[index];
                    (recent.member.clone(), recent.available)
                };
                let points = self.between(1, (available / 2).min(100));
                if let Some(recent) = self.recent.get_mut(index) {
                    recent.available -= points;
                }
                return self.redeem(member, points, Op::Redeem).await;
            }
        }
        if roll >= 95
            && let Some(recent) = self.take_recent()
        {
            return self.refund(recent).await;
        }
        self.purchase().await
    }

    fn take_recent(&mut self) -> Option<Recent> {
        if self.recent.is_empty() {
            return None;
        }
        let index = self.between(0, self.recent.len() as i64 - 1) as usize;
        self.recent.remove(index)
    }

    async fn purchase(&mut self) -> Outcome {
        let member = self.member();
        let key = self.next_key();
        let spend_minor = self.between(100, 10_000);
        let request = pb::RecordPurchaseRequest {
            program_id: self.program.clone(),
            member_id: member.clone(),
            idempotency_key: key.clone(),
            occurred_at: Some(timestamp(now_us())),
            order_id: key.clone(),
            spend: Some(ledger_core::pb::Money {
                minor_units: spend_minor,
                currency: self.currency.clone(),
            }),
            ..Default::default()
        };
        let answer = self.ledger.record_purchase(request).await;
        let outcome = self.command(Op::Purchase, &key, &member, answer.as_ref());
        if let Ok(answer) = answer {
            if self.recent.len() == RECENT_PURCHASES_MAX {
                self.recent.pop_front();
            }
            self.recent.push_back(Recent {
                member,
                order_id: key,
                spend_minor,
                available: answer.get_ref().balance.as_ref().map_or(0, |b| b.available),
            });
        }
        outcome
    }

    async fn refund(&mut self, recent: Recent) -> Outcome {
        let key = self.next_key();
        let request = pb::RecordReturnRequest {
            program_id: self.program.clone(),
            member_id: recent.member.clone(),
            idempotency_key: key.clone(),
            occurred_at: Some(timestamp(now_us())),
            order_id: recent.order_id,
            refund: Some(ledger_core::pb::Money {
                minor_units: (recent.spend_minor / 2).max(1),
                currency: self.currency.clone(),
            }),
            ..Default::default()
        };
        let answer = self.ledger.record_return(request).await;
        self.command(Op::Return, &key, &recent.member, answer.as_ref())
    }

    async fn redeem(&mut self, member: String, points: i64, op: Op) -> Outcome {
        let key = self.next_key();
        let request = pb::RedeemRequest {
            program_id: self.program.clone(),
            member_id: member.clone(),
            idempotency_key: key.clone(),
            occurred_at: Some(timestamp(now_us())),
            redemption_id: key.clone(),
            points,
            ..Default::default()
        };
        let answer = self.ledger.redeem(request).await;
        self.command(op, &key, &member, answer.as_ref())
    }

    async fn hot_member(&mut self) -> Outcome {
        let Some(member) = self.hot_member.clone() else {
            return Outcome::read(Op::Redeem, Err(Code::FailedPrecondition));
        };
        // Redemptions outweigh awards four to one, so the balance runs
        // down to zero and stays near it: most redemptions race for the
        // last points.
        if self.percent() < 80 {
            let points = self.between(1, HOT_POINTS);
            let outcome = self.redeem(member, points, Op::Redeem).await;
            if outcome.result.is_ok() {
                self.summary.redeemed_points += points;
            }
            return outcome;
        }
        let key = self.next_key();
        let request = pb::AwardPointsRequest {
            program_id: self.program.clone(),
            member_id: member.clone(),
            idempotency_key: key.clone(),
            occurred_at: Some(timestamp(now_us())),
            reason: "load: hot member".into(),
            points: HOT_POINTS,
            ..Default::default()
        };
        let answer = self.ledger.award_points(request).await;
        let outcome = self.command(Op::Award, &key, &member, answer.as_ref());
        if outcome.result.is_ok() {
            self.summary.awarded_points += HOT_POINTS;
        }
        outcome
    }

    /// The outcome of one command's call, noting its ack and balance.
    fn command(
        &mut self,
        op: Op,
        key: &str,
        member: &str,
        answer: Result<&tonic::Response<pb::CommandResponse>, &tonic::Status>,
    ) -> Outcome {
        let mut outcome = Outcome {
            commands: 1,
            ..Outcome::read(op, Ok(()))
        };
        match answer {
            Ok(answer) => {
                let answer = answer.get_ref();
                self.note_answer(answer);
                outcome.events = u64::from(answer.event_count);
                if self.keep_acks {
                    outcome.acks.push(ack(op, key, member, answer));
                }
            }
            Err(status) => {
                if unknown_outcome(status.code()) {
                    self.summary.unknown_outcomes += 1;
                }
                outcome.result = Err(status.code());
            }
        }
        outcome
    }

    fn note_answer(&mut self, answer: &pb::CommandResponse) {
        self.last_position = self.last_position.max(answer.position);
        self.summary.max_position = self.summary.max_position.max(answer.position);
        if self.hot_member.is_some()
            && let Some(balance) = &answer.balance
        {
            let lowest = self.summary.lowest_balance.get_or_insert(balance.balance);
            *lowest = (*lowest).min(balance.balance).min(balance.available);
        }
    }

    /// A SubmitBatch of purchases: 1,000 by Zipf-drawn members, or one for
    /// each member of `range`.
    async fn batch(&mut self, range: Option<std::ops::Range<u64>>) -> Outcome {
        let prefix = self.next_key();
        let occurred_at = Some(timestamp(now_us()));
        let count = range
            .as_ref()
            .map_or(BATCH_COMMANDS, |range| (range.end - range.start) as usize);
        let mut members = Vec::with_capacity(count);
        let mut commands = Vec::with_capacity(count);
        for item in 0..count {
            let member = match &range {
                Some(range) => format!("m{}", range.start + item as u64),
                None => self.member(),
            };
            let key = format!("{prefix}-{item}");
            let spend_minor = self.between(100, 10_000);
            commands.push(pb::BatchCommand {
                command: Some(pb::batch_command::Command::RecordPurchase(
                    pb::RecordPurchaseRequest {
                        program_id: self.program.clone(),
                        member_id: member.clone(),
                        idempotency_key: key.clone(),
                        occurred_at,
                        order_id: key,
                        spend: Some(ledger_core::pb::Money {
                            minor_units: spend_minor,
                            currency: self.currency.clone(),
                        }),
                        ..Default::default()
                    },
                )),
            });
            members.push(member);
        }
        let mut outcome = Outcome {
            commands: count as u64,
            ..Outcome::read(Op::Batch, Ok(()))
        };
        match self
            .ledger
            .submit_batch(pb::SubmitBatchRequest { commands })
            .await
        {
            Ok(answer) => {
                for (item, (result, member)) in
                    answer.into_inner().results.iter().zip(members).enumerate()
                {
                    match &result.result {
                        Some(pb::batch_result::Result::Ok(answer)) => {
                            self.note_answer(answer);
                            outcome.events += u64::from(answer.event_count);
                            if self.keep_acks {
                                let key = format!("{prefix}-{item}");
                                outcome.acks.push(ack(Op::Purchase, &key, &member, answer));
                            }
                        }
                        Some(pb::batch_result::Result::Error(failure)) => {
                            let code = Code::from_i32(failure.code);
                            if unknown_outcome(code) {
                                self.summary.unknown_outcomes += 1;
                            }
                            outcome.command_errors.push(code);
                        }
                        None => outcome.command_errors.push(Code::Unknown),
                    }
                }
            }
            Err(status) => {
                if unknown_outcome(status.code()) {
                    self.summary.unknown_outcomes += count as u64;
                }
                outcome.result = Err(status.code());
            }
        }
        outcome
    }
}

fn ack(op: Op, key: &str, member: &str, answer: &pb::CommandResponse) -> Ack {
    Ack {
        key: key.to_owned(),
        op: op.name(),
        member: member.to_owned(),
        first_position: answer.first_position,
        position: answer.position,
        event_count: answer.event_count,
        replayed: answer.replayed,
    }
}

/// Codes after which a command may or may not be in the log: the server
/// may have committed it before the answer was lost. UNAVAILABLE is not
/// among them when the server said so itself (a failed write, a stop),
/// but a lost connection is reported as UNAVAILABLE too, so it counts.
fn unknown_outcome(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// The wall clock, µs since the epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}
