//! The demo's traffic: a sample program and a deterministic stream of
//! commands for it, in business-time order, from a seed.
//!
//! **The model of the members.** Each member gets a profile when the
//! generator starts, drawn in member order:
//! - an enrolment instant: a quarter of the members join in the launch
//!   week, the rest uniformly over the period;
//! - a daily purchase probability from a skewed distribution
//!   ([`PURCHASE_PER_MILLE_QUANTILES`]: median about two visits a month, a
//!   few members almost daily), raised by a quarter while the double-points
//!   campaign runs;
//! - whether the member lapses (stops buying from a day drawn after the
//!   first two weeks), whether they redeem and which reward they save for.
//!
//! Purchases happen in opening hours; their spend is drawn from
//! [`SPEND_CENTS_QUANTILES`], log-normal-ish with a median of 6.50 and a
//! mean of about 9.00 USD and a long tail up to 55.00. A few purchases are
//! returned later, in full or in part; a redeemer redeems their reward at a
//! visit once their balance covers it, and a few redemptions are cancelled
//! soon after; a few are followed within days by the return of an order
//! whose points the redemption spent, which leaves the member in debt.
//! Birthday bonuses come once a year; a few transfers between
//! members and a few operator adjustments are spread over the period.
//!
//! **Nothing is refused by construction.** The generator keeps a model of
//! every member: the pure domain (`decide`, `apply`) under the program's
//! rules, fed the same commands in the same order as the engine, and at each
//! midnight the same time-driven work as the engine's scheduler (each due
//! entry's system command at its due time). It predicts each answer of the
//! engine, so a redemption, a debit or a transfer is generated only when the
//! model accepts it, and every command carries the model's prediction for
//! the caller to compare with the engine's answer.
//!
//! **Randomness** is one ChaCha8 stream seeded with the seed, consumed in a
//! fixed order, and turned into integers only (no floating point): the same
//! seed and period give the same commands on every machine. Distributions
//! are piecewise-linear inverse CDFs over tables of quantiles.

use ledger_core::domain::time::{
    CivilDate, US_PER_DAY, civil_of, day_of, days_from_civil, start_of_day_us,
};
use ledger_core::domain::{
    self, Campaign, Command, Currency, DomainError, DueKind, Event, LotExpiry, LotExpiryRule,
    Member, Money, Points, ProgramCommand, ProgramRules, Rounding, Rules, ShortfallPolicy, Tier,
    TierMeasure, TransferPoints,
};
use ledger_core::engine::LedgerCommand;
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId};
use ledger_core::writer::Envelope;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

/// The demo program's id.
pub const PROGRAM_ID: &str = "coffee";

/// Microseconds per minute.
const US_PER_MINUTE: i64 = 60_000_000;
/// Microseconds per hour.
const US_PER_HOUR: i64 = 60 * US_PER_MINUTE;

/// Daily purchase probability of a member, per mille: 17 quantiles (0%,
/// 6.25%, ..., 100%) of a skewed distribution. The median member visits
/// about twice a month (70‰), a third visit less than monthly (< 30‰), and
/// one in sixteen nearly every day (600–900‰).
pub const PURCHASE_PER_MILLE_QUANTILES: [i64; 17] = [
    3, 6, 10, 15, 22, 30, 40, 55, 70, 90, 115, 150, 200, 280, 400, 600, 900,
];

/// Spend of one purchase in cents: 17 quantiles of a log-normal-ish
/// distribution: median 6.50, mean about 9.00, the top sixteenth between
/// 19.00 and 55.00 (orders for a group).
pub const SPEND_CENTS_QUANTILES: [i64; 17] = [
    150, 275, 350, 400, 450, 500, 550, 600, 650, 725, 800, 875, 975, 1_125, 1_400, 1_900, 5_500,
];

/// Members who join in the launch week, per mille.
pub const LAUNCH_PER_MILLE: u64 = 250;
/// Days of the launch week.
const LAUNCH_DAYS: i64 = 7;
/// Members who stop buying at some point, per mille.
pub const LAPSE_PER_MILLE: u64 = 300;
/// A lapsing member buys for at least this many days after enrolling.
const LAPSE_AFTER_DAYS_MIN: i64 = 14;
/// Members who redeem, per mille.
pub const REDEEMER_PER_MILLE: u64 = 650;
/// The rewards a redeemer saves for (points) and their weights.
pub const REWARDS: [(i64, u64); 3] = [(100, 45), (250, 35), (500, 20)];
/// Members who make their first purchase right after enrolling, per mille.
const FIRST_PURCHASE_SAME_VISIT_PER_MILLE: u64 = 500;
/// Purchases later returned, per mille.
pub const RETURN_PER_MILLE: u64 = 30;
/// Returns that refund the whole order, per mille (the rest refund 25–75%).
const FULL_REFUND_PER_MILLE: u64 = 600;
/// Returns made within two weeks, per mille (the rest within 15–45 days).
const EARLY_RETURN_PER_MILLE: u64 = 700;
/// Redemptions cancelled shortly after, per mille.
pub const CANCEL_PER_MILLE: u64 = 20;
/// Redemptions followed within days by the full return of the member's
/// largest recent order past its pending period, per mille.
pub const RETURN_AFTER_REDEEM_PER_MILLE: u64 = 100;
/// Recent orders remembered per member, for those returns.
const RECENT_ORDERS_KEPT: usize = 8;
/// The birthday bonus.
pub const BIRTHDAY_POINTS: i64 = 50;
/// One transfer between members per this many members over the period.
pub const MEMBERS_PER_TRANSFER: u32 = 100;
/// One operator adjustment per this many members over the period.
pub const MEMBERS_PER_ADJUSTMENT: u32 = 50;
/// Adjustments that are debits (corrections), per mille; the rest credit.
const DEBIT_PER_MILLE: u64 = 200;
/// Members tried before a transfer is given up (none could send).
const TRANSFER_TRIES_MAX: u32 = 8;
/// Opening hours (UTC): purchases happen from this hour...
const OPENING_HOUR: i64 = 6;
/// ...until this one.
const CLOSING_HOUR: i64 = 21;
/// Length of the double-points campaign, centred on the period's middle.
pub const CAMPAIGN_DAYS: i64 = 14;
/// Visits rise by this fraction (numerator, denominator) during the campaign.
const CAMPAIGN_LIFT: (i64, i64) = (5, 4);
/// A daily purchase probability never goes above this, per mille.
const PURCHASE_PER_MILLE_MAX: i64 = 950;

/// The sample program, "Coffee Rewards" in USD, over `[start_us, end_us)`:
/// one point per dollar (rounded down), a point worth one cent; tiers
/// Green (1x), Gold from 500 qualifying points (1.25x) and Reserve from
/// 1,500 (1.5x), measured on base points per calendar year with a soft
/// landing; double points for two weeks in the middle of the period;
/// purchase points pending for 30 days (the returns window), bonus points at
/// once; lots expiring at the end of the 12th month after the month earned,
/// and the whole balance after 180 days without an earn or a redemption;
/// redemptions from 100 points; returns beyond the balance become debt.
pub fn coffee_rules(start_us: i64, end_us: i64) -> ProgramRules {
    let tier = |name: &str, threshold: i64, earn_multiplier_bps: i64| Tier {
        name: name.into(),
        threshold,
        earn_multiplier_bps,
    };
    let middle_day = day_of(start_us + (end_us - start_us) / 2);
    let campaign_start_us = start_of_day_us(middle_day - CAMPAIGN_DAYS / 2);
    ProgramRules {
        name: "Coffee Rewards".into(),
        currency: "USD".into(),
        earn_rate_bps: 10_000,
        rounding: Rounding::Floor,
        point_value_minor_units: 1,
        point_value_per_points: 1,
        tiers: vec![
            tier("Green", 0, 10_000),
            tier("Gold", 500, 12_500),
            tier("Reserve", 1_500, 15_000),
        ],
        tier_measure: TierMeasure::QualifyingPoints,
        tier_window_days: 0,
        tier_soft_landing: true,
        campaigns: vec![Campaign {
            campaign_id: "double-points".into(),
            starts_at_us: campaign_start_us,
            ends_at_us: campaign_start_us + CAMPAIGN_DAYS * US_PER_DAY,
            multiplier_bps: 20_000,
            bonus_points: 0,
            tiers: vec![],
            tags: vec![],
            min_spend_minor_units: 0,
            stackable: false,
        }],
        lot_expiry: Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(12)),
        }),
        inactivity_expiry_days: 180,
        pending_days: 30,
        bonus_points_pending: false,
        min_redeem_points: 100,
        return_policy: ShortfallPolicy::Debt,
        utc_offset_minutes: 0,
        rfm_window_days: 0,
    }
}

/// The instant `months` calendar months before `us`, at the same time of
/// day; the day of the month is clamped to the target month's length.
pub fn months_before_us(us: i64, months: u32) -> i64 {
    let date = civil_of(us);
    let index = date.year * 12 + i64::from(date.month) - 1 - i64::from(months);
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    let first = days_from_civil(CivilDate {
        year,
        month: month as u32,
        day: 1,
    });
    let next_index = index + 1;
    let next_first = days_from_civil(CivilDate {
        year: next_index.div_euclid(12),
        month: (next_index.rem_euclid(12) + 1) as u32,
        day: 1,
    });
    let day = first + (i64::from(date.day) - 1).min(next_first - first - 1);
    start_of_day_us(day) + us.rem_euclid(US_PER_DAY)
}

/// What a generated command does, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommandKind {
    /// `Enroll`.
    Enroll,
    /// `RecordPurchase`.
    Purchase,
    /// `Redeem`.
    Redeem,
    /// `CancelRedemption`.
    CancelRedemption,
    /// `RecordReturn`.
    Return,
    /// `AwardPoints` (birthday bonus).
    Award,
    /// `AdjustPoints`.
    Adjust,
    /// `TransferPoints`.
    Transfer,
}

impl CommandKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [CommandKind; 8] = [
        CommandKind::Enroll,
        CommandKind::Purchase,
        CommandKind::Redeem,
        CommandKind::CancelRedemption,
        CommandKind::Return,
        CommandKind::Award,
        CommandKind::Adjust,
        CommandKind::Transfer,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Enroll => "enroll",
            CommandKind::Purchase => "purchase",
            CommandKind::Redeem => "redeem",
            CommandKind::CancelRedemption => "cancel redemption",
            CommandKind::Return => "return",
            CommandKind::Award => "award (birthday)",
            CommandKind::Adjust => "adjust",
            CommandKind::Transfer => "transfer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One generated command.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The command as the writer takes it.
    pub envelope: Envelope<LedgerCommand>,
    /// What it does.
    pub kind: CommandKind,
    /// True when the generator's model of the domain accepted it: the
    /// engine must answer the same.
    pub accepted_by_model: bool,
}

/// What the generator hands out next.
#[derive(Debug, Clone)]
pub enum Step {
    /// The next command, in business-time order (boxed: a step is moved
    /// a few times, a command is large).
    Command(Box<Planned>),
    /// Every command before this midnight has been handed out: the
    /// time-driven work due by then is to be done now (the model has done
    /// its share).
    Midnight(i64),
    /// The period is over.
    End,
}

/// How the members' profiles came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Profiles {
    /// Members.
    pub members: u32,
    /// Joined in the launch week.
    pub launch: u32,
    /// Stop buying at some point.
    pub lapsing: u32,
    /// Redeem when they can.
    pub redeemers: u32,
    /// Buy on most days (daily probability of 600‰ or more).
    pub heavy: u32,
}

/// A member's profile.
#[derive(Debug, Clone)]
struct Profile {
    member_id: MemberId,
    enrol_at_us: i64,
    purchase_per_mille: i64,
    /// No purchase on this day or later.
    lapse_day: Option<i64>,
    /// The reward a redeemer saves for.
    reward_points: Option<i64>,
    birthday: (u32, u32),
    /// The last [`RECENT_ORDERS_KEPT`] orders, oldest first.
    recent_orders: VecDeque<RecentOrder>,
}

/// An order a return may still name.
#[derive(Debug, Clone)]
struct RecentOrder {
    order_id: String,
    at_us: i64,
    spend_cents: i64,
    /// A return of it is planned already.
    returning: bool,
}

/// Something due to happen at an instant.
#[derive(Debug, Clone)]
enum Intent {
    Enroll(u32),
    Purchase(u32),
    Return {
        member: u32,
        order_id: String,
        refund_cents: i64,
    },
    Cancel {
        member: u32,
        redemption_id: String,
    },
    Birthday(u32),
    Transfer,
    Adjust,
}

/// An intent on the agenda, ordered by time, then by when it was planned.
#[derive(Debug, Clone)]
struct Scheduled {
    at_us: i64,
    sequence: u64,
    intent: Intent,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.sequence) == (other.at_us, other.sequence)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at_us, self.sequence).cmp(&(other.at_us, other.sequence))
    }
}

/// The demo's random source: ChaCha8 seeded from the seed, read as
/// integers only.
#[derive(Debug, Clone)]
pub struct Random(ChaCha8Rng);

impl Random {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Random(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiplying a 64-bit draw by
    /// `n` and keeping the high half: the bias is below `n / 2^64`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `low..=high` (`low` when the range is empty).
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        low + self.below(high.abs_diff(low) + 1) as i64
    }

    /// True with probability `per_mille` / 1,000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1_000) < per_mille
    }

    /// A draw from the piecewise-linear inverse CDF through `quantiles`
    /// (equally spaced probabilities, ascending values).
    pub fn quantile(&mut self, quantiles: &[i64]) -> i64 {
        const STEPS: u64 = 1_024;
        let segments = quantiles.len().saturating_sub(1) as u64;
        let draw = self.below(segments * STEPS);
        let (segment, step) = ((draw / STEPS) as usize, (draw % STEPS) as i64);
        match (quantiles.get(segment), quantiles.get(segment + 1)) {
            (Some(low), Some(high)) => low + (high - low) * step / STEPS as i64,
            (Some(only), None) => *only,
            _ => 0,
        }
    }
}

/// The members as the domain sees them, fed what the engine is fed.
struct Model {
    rules: Rules,
    members: Vec<Member>,
    /// `(due_us, member)` of every member with time-driven work ahead: the
    /// engine's due index.
    due: BTreeSet<(i64, u32)>,
    due_at_us: Vec<Option<i64>>,
    /// System commands the model decided (the scheduler's share).
    system_commands: u64,
}

impl Model {
    fn member(&self, member: u32) -> &Member {
        &self.members[member as usize]
    }

    fn decide(
        &self,
        member: u32,
        command: &Command,
        at_us: i64,
    ) -> Result<Vec<Event>, DomainError> {
        domain::decide(self.member(member), command, &self.rules, at_us)
    }

    /// Applies decided events to `member` and updates its due entry, as the
    /// engine stages it after a batch.
    fn commit(&mut self, member: u32, events: &[Event]) {
        let state = &mut self.members[member as usize];
        for event in events {
            domain::apply(state, event);
        }
        let next = state.next_due(&self.rules).map(|(due_us, _)| due_us);
        let slot = &mut self.due_at_us[member as usize];
        if *slot != next {
            if let Some(old) = slot.take() {
                self.due.remove(&(old, member));
            }
            if let Some(due_us) = next {
                self.due.insert((due_us, member));
            }
            *slot = next;
        }
    }

    /// Decides `command` and applies it when accepted; says whether it was.
    fn submit(&mut self, member: u32, command: &Command, at_us: i64) -> bool {
        match self.decide(member, command, at_us) {
            Ok(events) => {
                self.commit(member, &events);
                true
            }
            Err(_) => false,
        }
    }

    /// What the engine's scheduler does at `now_us`: for each due entry at
    /// or before it, earliest first, the member's system command at the
    /// entry's due time, until nothing is due.
    fn run_due(&mut self, now_us: i64) {
        while let Some(&(due_us, member)) = self.due.first() {
            if due_us > now_us {
                return;
            }
            let command = match self.member(member).next_due(&self.rules) {
                Some((_, DueKind::ExpireLot)) => Command::ExpireLots,
                Some((_, DueKind::ExpireInactive)) => Command::ExpireInactive,
                Some((_, DueKind::EvaluateTier)) => Command::EvaluateTier,
                Some((_, DueKind::MaturePending)) | None => Command::MaturePending,
            };
            self.system_commands += 1;
            let progressed = self.submit(member, &command, due_us)
                && self.due_at_us[member as usize].is_none_or(|next_us| next_us > due_us);
            if !progressed {
                // A system command does all work due by its time, so the
                // next entry is later; should that ever fail, the entry is
                // dropped rather than retried for ever (the engine's
                // scheduler skips it for the round too).
                debug_assert!(false, "a system command moves the member's due time on");
                self.due.remove(&(due_us, member));
                self.due_at_us[member as usize] = None;
            }
        }
    }
}

/// Sizes of a demo run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficOptions {
    /// Members to enrol, at least 1.
    pub members: u32,
    /// The seed of every draw.
    pub seed: u64,
    /// Start of the period (business time, µs).
    pub start_us: i64,
    /// End of the period, exclusive: nothing happens at or after it.
    pub end_us: i64,
}

/// The generator: hands out the program's definition, then commands and
/// midnights in business-time order (see the module docs).
pub struct Traffic {
    options: TrafficOptions,
    program_id: ProgramId,
    rules: ProgramRules,
    random: Random,
    profiles: Vec<Profile>,
    model: Model,
    /// Enrolled members, in enrolment order.
    enrolled: Vec<u32>,
    agenda: BinaryHeap<Reverse<Scheduled>>,
    ready: VecDeque<Planned>,
    next_midnight_us: i64,
    /// Intents planned so far (ties on the agenda go to the earlier one).
    sequence: u64,
    /// Commands handed out so far (the next idempotency key's index).
    commands: u64,
    orders: u64,
    redemptions: u64,
    transfers: u64,
    planned: [u64; CommandKind::ALL.len()],
}

impl Traffic {
    /// A generator for `options`; the period must be longer than a day.
    pub fn new(options: TrafficOptions) -> anyhow::Result<Traffic> {
        anyhow::ensure!(options.members > 0, "a demo needs at least one member");
        anyhow::ensure!(
            options.end_us - options.start_us > US_PER_DAY,
            "the period must be longer than a day"
        );
        let raw = coffee_rules(options.start_us, options.end_us);
        let rules = Rules::from_raw(&raw)?;
        let mut random = Random::new(options.seed);
        let mut profiles = Vec::with_capacity(options.members as usize);
        for index in 0..options.members {
            profiles.push(draw_profile(&mut random, &options, index)?);
        }
        let mut traffic = Traffic {
            options,
            program_id: ProgramId::parse("program_id", PROGRAM_ID)?,
            rules: raw,
            random,
            model: Model {
                rules,
                members: vec![Member::default(); profiles.len()],
                due: BTreeSet::new(),
                due_at_us: vec![None; profiles.len()],
                system_commands: 0,
            },
            profiles,
            enrolled: Vec::new(),
            agenda: BinaryHeap::new(),
            ready: VecDeque::new(),
            next_midnight_us: start_of_day_us(day_of(options.start_us) + 1),
            sequence: 0,
            commands: 0,
            orders: 0,
            redemptions: 0,
            transfers: 0,
            planned: [0; CommandKind::ALL.len()],
        };
        for member in 0..options.members {
            let at_us = traffic.profiles[member as usize].enrol_at_us;
            traffic.schedule(at_us, Intent::Enroll(member));
        }
        let period_us = (options.end_us - options.start_us) as u64;
        for _ in 0..(options.members / MEMBERS_PER_TRANSFER).max(1) {
            let at_us = options.start_us + traffic.random.below(period_us) as i64;
            traffic.schedule(at_us, Intent::Transfer);
        }
        for _ in 0..(options.members / MEMBERS_PER_ADJUSTMENT).max(1) {
            let at_us = options.start_us + traffic.random.below(period_us) as i64;
            traffic.schedule(at_us, Intent::Adjust);
        }
        Ok(traffic)
    }

    /// The program's id.
    pub fn program_id(&self) -> &ProgramId {
        &self.program_id
    }

    /// The program's rules.
    pub fn rules(&self) -> &ProgramRules {
        &self.rules
    }

    /// The definition of the program, at the start of the period.
    pub fn define_program(&self) -> anyhow::Result<Envelope<LedgerCommand>> {
        Ok(Envelope {
            program_id: self.program_id.clone(),
            idempotency_key: IdempotencyKey::parse(
                "idempotency_key",
                &format!("demo:{}:define-program", self.options.seed),
            )?,
            occurred_at_us: self.options.start_us,
            principal: "admin".into(),
            metadata: vec![],
            expected_version: Some(0),
            command: LedgerCommand::Program(ProgramCommand::DefineProgram {
                rules: self.rules.clone(),
            }),
        })
    }

    /// Midnights in the period: how many [`Step::Midnight`]s come.
    pub fn midnights(&self) -> u64 {
        let first = day_of(self.options.start_us) + 1;
        let last = day_of(self.options.end_us - 1);
        (last - first + 1).max(0) as u64
    }

    /// How the profiles came out.
    pub fn profiles(&self) -> Profiles {
        let mut summary = Profiles {
            members: self.options.members,
            ..Profiles::default()
        };
        let launch_end_us = self.options.start_us + LAUNCH_DAYS * US_PER_DAY;
        for profile in &self.profiles {
            summary.launch += u32::from(profile.enrol_at_us < launch_end_us);
            summary.lapsing += u32::from(profile.lapse_day.is_some());
            summary.redeemers += u32::from(profile.reward_points.is_some());
            summary.heavy += u32::from(profile.purchase_per_mille >= 600);
        }
        summary
    }

    /// Commands handed out so far, by kind ([`CommandKind::ALL`] order).
    pub fn planned(&self) -> [u64; CommandKind::ALL.len()] {
        self.planned
    }

    /// System commands the model decided at midnights so far.
    pub fn system_commands(&self) -> u64 {
        self.model.system_commands
    }

    /// The next step. After [`Step::End`] it keeps answering `End`.
    pub fn next_step(&mut self) -> anyhow::Result<Step> {
        loop {
            if let Some(planned) = self.ready.pop_front() {
                return Ok(Step::Command(Box::new(planned)));
            }
            let next_at_us = self.agenda.peek().map(|Reverse(next)| next.at_us);
            let midnight_us = self.next_midnight_us;
            if midnight_us < self.options.end_us && next_at_us.is_none_or(|at| at >= midnight_us) {
                self.model.run_due(midnight_us);
                self.next_midnight_us = midnight_us + US_PER_DAY;
                return Ok(Step::Midnight(midnight_us));
            }
            let Some(Reverse(next)) = self.agenda.pop() else {
                return Ok(Step::End);
            };
            self.execute(next.at_us, next.intent)?;
        }
    }

    /// Puts `intent` on the agenda; anything outside the period is dropped.
    fn schedule(&mut self, at_us: i64, intent: Intent) {
        if at_us < self.options.start_us || at_us >= self.options.end_us {
            return;
        }
        self.sequence += 1;
        self.agenda.push(Reverse(Scheduled {
            at_us,
            sequence: self.sequence,
            intent,
        }));
    }

    fn emit(
        &mut self,
        kind: CommandKind,
        at_us: i64,
        principal: &str,
        command: LedgerCommand,
        accepted_by_model: bool,
    ) -> anyhow::Result<()> {
        let index = self.commands;
        self.commands += 1;
        self.planned[kind.index()] += 1;
        self.ready.push_back(Planned {
            envelope: Envelope {
                program_id: self.program_id.clone(),
                idempotency_key: IdempotencyKey::parse(
                    "idempotency_key",
                    &format!("demo:{}:{index}", self.options.seed),
                )?,
                occurred_at_us: at_us,
                principal: principal.into(),
                metadata: vec![],
                expected_version: None,
                command,
            },
            kind,
            accepted_by_model,
        });
        Ok(())
    }

    /// Decides a member's command in the model and hands it out, whatever
    /// the model said (its answer goes with it).
    fn emit_member(
        &mut self,
        kind: CommandKind,
        at_us: i64,
        principal: &str,
        member: u32,
        command: Command,
    ) -> anyhow::Result<()> {
        let accepted = self.model.submit(member, &command, at_us);
        let member_id = self.profiles[member as usize].member_id.clone();
        let command = LedgerCommand::Member { member_id, command };
        self.emit(kind, at_us, principal, command, accepted)
    }

    fn execute(&mut self, at_us: i64, intent: Intent) -> anyhow::Result<()> {
        match intent {
            Intent::Enroll(member) => self.enroll(at_us, member),
            Intent::Purchase(member) => self.visit(at_us, member),
            Intent::Return {
                member,
                order_id,
                refund_cents,
            } => {
                let refund = Money::new(refund_cents, usd()?);
                let command = Command::RecordReturn { order_id, refund };
                self.emit_member(CommandKind::Return, at_us, "checkout", member, command)
            }
            Intent::Cancel {
                member,
                redemption_id,
            } => {
                let command = Command::CancelRedemption { redemption_id };
                self.emit_member(CommandKind::CancelRedemption, at_us, "app", member, command)
            }
            Intent::Birthday(member) => {
                let command = Command::AwardPoints {
                    reason: "birthday".into(),
                    points: Points::new(BIRTHDAY_POINTS),
                };
                self.emit_member(CommandKind::Award, at_us, "crm", member, command)?;
                let next_us = self.birthday_after(member, at_us + US_PER_DAY);
                self.schedule(next_us, Intent::Birthday(member));
                Ok(())
            }
            Intent::Transfer => self.transfer(at_us),
            Intent::Adjust => self.adjust(at_us),
        }
    }

    fn enroll(&mut self, at_us: i64, member: u32) -> anyhow::Result<()> {
        self.emit_member(CommandKind::Enroll, at_us, "app", member, Command::Enroll)?;
        self.enrolled.push(member);
        if self.random.chance(FIRST_PURCHASE_SAME_VISIT_PER_MILLE) {
            let after_us = at_us + self.random.between(1, 10) * US_PER_MINUTE;
            self.schedule(after_us, Intent::Purchase(member));
        } else {
            self.schedule_next_purchase(member, day_of(at_us) + 1);
        }
        let birthday_us = self.birthday_after(member, at_us);
        self.schedule(birthday_us, Intent::Birthday(member));
        Ok(())
    }

    /// A visit: a redemption first when the member saves for a reward their
    /// balance covers, then the purchase; perhaps a later return.
    fn visit(&mut self, at_us: i64, member: u32) -> anyhow::Result<()> {
        if let Some(reward) = self.profiles[member as usize].reward_points {
            self.try_redeem(at_us, member, reward)?;
        }
        self.orders += 1;
        let order_id = format!("o{:07}", self.orders);
        let spend_cents = self.random.quantile(&SPEND_CENTS_QUANTILES);
        let command = Command::RecordPurchase {
            order_id: order_id.clone(),
            spend: Money::new(spend_cents, usd()?),
            tags: vec![],
        };
        self.emit_member(CommandKind::Purchase, at_us, "checkout", member, command)?;
        let returning = self.random.chance(RETURN_PER_MILLE);
        let recent = &mut self.profiles[member as usize].recent_orders;
        recent.push_back(RecentOrder {
            order_id: order_id.clone(),
            at_us,
            spend_cents,
            returning,
        });
        if recent.len() > RECENT_ORDERS_KEPT {
            recent.pop_front();
        }
        if returning {
            let days = if self.random.chance(EARLY_RETURN_PER_MILLE) {
                self.random.between(1, 14)
            } else {
                self.random.between(15, 45)
            };
            let refund_cents = if self.random.chance(FULL_REFUND_PER_MILLE) {
                spend_cents
            } else {
                (spend_cents * self.random.between(25, 75) / 100).max(1)
            };
            let return_us =
                at_us + days * US_PER_DAY + self.random.between(-120, 120) * US_PER_MINUTE;
            self.schedule(
                return_us,
                Intent::Return {
                    member,
                    order_id,
                    refund_cents,
                },
            );
        }
        self.schedule_next_purchase(member, day_of(at_us) + 1);
        Ok(())
    }

    /// Redeems `reward` points if the model says the member can; a
    /// redemption the member cannot afford is not generated at all.
    fn try_redeem(&mut self, at_us: i64, member: u32, reward: i64) -> anyhow::Result<()> {
        let state = self.model.member(member);
        // What catching up to now could make available at most: a cheap
        // filter before asking the model.
        let reachable = state
            .balance_points()
            .get()
            .saturating_add(state.pending_points().get());
        if reachable < reward {
            return Ok(());
        }
        let redemption_id = format!("r{:07}", self.redemptions + 1);
        let command = Command::Redeem {
            redemption_id: redemption_id.clone(),
            points: Points::new(reward),
        };
        let Ok(events) = self.model.decide(member, &command, at_us) else {
            return Ok(());
        };
        self.redemptions += 1;
        self.model.commit(member, &events);
        let member_id = self.profiles[member as usize].member_id.clone();
        let command = LedgerCommand::Member { member_id, command };
        self.emit(CommandKind::Redeem, at_us, "app", command, true)?;
        if self.random.chance(CANCEL_PER_MILLE) {
            let cancel_us = at_us + self.random.between(5, 120) * US_PER_MINUTE;
            self.schedule(
                cancel_us,
                Intent::Cancel {
                    member,
                    redemption_id,
                },
            );
        } else if self.random.chance(RETURN_AFTER_REDEEM_PER_MILLE) {
            self.return_after_redeem(at_us, member);
        }
        Ok(())
    }

    /// Plans the full return, within days, of the member's largest recent
    /// order whose points have matured (and so may have just been spent).
    fn return_after_redeem(&mut self, at_us: i64, member: u32) {
        let matured_before_us = at_us - i64::from(self.rules.pending_days) * US_PER_DAY;
        let return_us = at_us + self.random.between(1, 3) * US_PER_DAY;
        let recent = &mut self.profiles[member as usize].recent_orders;
        let Some(order) = recent
            .iter_mut()
            .filter(|order| !order.returning && order.at_us <= matured_before_us)
            .max_by_key(|order| order.spend_cents)
        else {
            return;
        };
        order.returning = true;
        let intent = Intent::Return {
            member,
            order_id: order.order_id.clone(),
            refund_cents: order.spend_cents,
        };
        self.schedule(return_us, intent);
    }

    /// A transfer of some of a member's points to another member; given up
    /// when none of the members tried can send.
    fn transfer(&mut self, at_us: i64) -> anyhow::Result<()> {
        let count = self.enrolled.len() as u64;
        if count < 2 {
            return Ok(());
        }
        for _ in 0..TRANSFER_TRIES_MAX {
            let from = self.enrolled[self.random.below(count) as usize];
            let to = self.enrolled[self.random.below(count) as usize];
            let spendable = self.model.member(from).spendable_points().get();
            if from == to || spendable < 20 {
                continue;
            }
            let points = self.random.between(10, spendable.min(200));
            let transfer = TransferPoints {
                transfer_id: format!("t{:05}", self.transfers + 1),
                from_member_id: self.profiles[from as usize].member_id.clone(),
                to_member_id: self.profiles[to as usize].member_id.clone(),
                points: Points::new(points),
            };
            let (sender, receiver) = (self.model.member(from), self.model.member(to));
            let Ok((sent, received)) =
                domain::decide_transfer(sender, receiver, &transfer, &self.model.rules, at_us)
            else {
                continue;
            };
            self.transfers += 1;
            self.model.commit(from, &sent);
            self.model.commit(to, &received);
            let command = LedgerCommand::Transfer(transfer);
            return self.emit(CommandKind::Transfer, at_us, "app", command, true);
        }
        Ok(())
    }

    /// An operator's adjustment of a random enrolled member: mostly a
    /// goodwill credit, sometimes a correction that takes points back (only
    /// when the model says the member has them).
    fn adjust(&mut self, at_us: i64) -> anyhow::Result<()> {
        let count = self.enrolled.len() as u64;
        if count == 0 {
            return Ok(());
        }
        let member = self.enrolled[self.random.below(count) as usize];
        if self.random.chance(DEBIT_PER_MILLE) {
            let spendable = self.model.member(member).spendable_points().get();
            if spendable >= 5 {
                let command = Command::AdjustPoints {
                    reason: "correction".into(),
                    points: Points::new(-self.random.between(5, spendable.min(50))),
                };
                if let Ok(events) = self.model.decide(member, &command, at_us) {
                    self.model.commit(member, &events);
                    let member_id = self.profiles[member as usize].member_id.clone();
                    let command = LedgerCommand::Member { member_id, command };
                    return self.emit(CommandKind::Adjust, at_us, "support", command, true);
                }
            }
        }
        let command = Command::AdjustPoints {
            reason: "goodwill".into(),
            points: Points::new(self.random.between(5, 30) * 5),
        };
        self.emit_member(CommandKind::Adjust, at_us, "support", member, command)
    }

    /// Plans the member's next purchase on the first day, from `first_day`,
    /// whose draw says they visit; none once they have lapsed or the period
    /// is over.
    fn schedule_next_purchase(&mut self, member: u32, first_day: i64) {
        let profile = &self.profiles[member as usize];
        let rate = profile.purchase_per_mille;
        let stop_day = profile
            .lapse_day
            .unwrap_or(i64::MAX)
            .min(day_of(self.options.end_us - 1) + 1);
        let campaign = self.rules.campaigns.first().map(|campaign| {
            (
                day_of(campaign.starts_at_us),
                day_of(campaign.ends_at_us - 1),
            )
        });
        for day in first_day..stop_day {
            let in_campaign = campaign.is_some_and(|(first, last)| (first..=last).contains(&day));
            let per_mille = if in_campaign {
                rate * CAMPAIGN_LIFT.0 / CAMPAIGN_LIFT.1
            } else {
                rate
            };
            if self
                .random
                .chance(per_mille.min(PURCHASE_PER_MILLE_MAX) as u64)
            {
                let at_us = self.time_in_opening_hours(day);
                self.schedule(at_us, Intent::Purchase(member));
                return;
            }
        }
    }

    /// A uniformly drawn instant of `day`'s opening hours.
    fn time_in_opening_hours(&mut self, day: i64) -> i64 {
        let open_us = (CLOSING_HOUR - OPENING_HOUR) * US_PER_HOUR;
        start_of_day_us(day) + OPENING_HOUR * US_PER_HOUR + self.random.below(open_us as u64) as i64
    }

    /// The member's first birthday (at 09:00 UTC) at or after `after_us`.
    fn birthday_after(&self, member: u32, after_us: i64) -> i64 {
        let (month, day) = self.profiles[member as usize].birthday;
        let year = civil_of(after_us).year;
        [year, year + 1]
            .into_iter()
            .map(|year| start_of_day_us(days_from_civil(CivilDate { year, month, day })))
            .map(|midnight| midnight + 9 * US_PER_HOUR)
            .find(|at_us| *at_us >= after_us)
            .unwrap_or(i64::MAX)
    }
}

fn usd() -> anyhow::Result<Currency> {
    Ok(Currency::from_code("USD", "spend.currency")?)
}

/// Draws member `index`'s profile (see the module docs).
fn draw_profile(
    random: &mut Random,
    options: &TrafficOptions,
    index: u32,
) -> anyhow::Result<Profile> {
    let period_us = (options.end_us - options.start_us) as u64;
    let launch_us = (LAUNCH_DAYS * US_PER_DAY).min(period_us as i64) as u64;
    let enrol_at_us = if random.chance(LAUNCH_PER_MILLE) {
        options.start_us + random.below(launch_us) as i64
    } else {
        options.start_us + random.below(period_us) as i64
    };
    let purchase_per_mille = random.quantile(&PURCHASE_PER_MILLE_QUANTILES);
    let lapse_day = if random.chance(LAPSE_PER_MILLE) {
        let from = day_of(enrol_at_us) + LAPSE_AFTER_DAYS_MIN;
        let to = day_of(options.end_us - 1);
        (from < to).then(|| random.between(from, to))
    } else {
        None
    };
    let reward_points = if random.chance(REDEEMER_PER_MILLE) {
        let total: u64 = REWARDS.iter().map(|(_, weight)| weight).sum();
        let mut draw = random.below(total);
        let mut chosen = REWARDS[0].0;
        for (points, weight) in REWARDS {
            if draw < weight {
                chosen = points;
                break;
            }
            draw -= weight;
        }
        Some(chosen)
    } else {
        None
    };
    let birthday = (random.between(1, 12) as u32, random.between(1, 28) as u32);
    Ok(Profile {
        member_id: MemberId::parse("member_id", &format!("m{:06}", index + 1))?,
        enrol_at_us,
        purchase_per_mille,
        lapse_day,
        reward_points,
        birthday,
        recent_orders: VecDeque::new(),
    })
}

#[cfg(test)]
mod tests {
    //! Goal: the generator is deterministic for a seed, its distributions
    //! have the documented shapes, and the traffic it makes is what the
    //! domain accepts. Method: draw from the random source and run the
    //! generator to its end with small sizes, no store involved.

    use super::*;

    /// 2026-11-23T00:00:00Z.
    const END_US: i64 = 1_795_392_000_000_000;

    fn options(members: u32, months: u32, seed: u64) -> TrafficOptions {
        TrafficOptions {
            members,
            seed,
            start_us: months_before_us(END_US, months),
            end_us: END_US,
        }
    }

    /// Every step to the end: the commands, and the midnights in order.
    fn run(options: TrafficOptions) -> (Traffic, Vec<Planned>, Vec<i64>) {
        let mut traffic = Traffic::new(options).expect("generator");
        let (mut commands, mut midnights) = (Vec::new(), Vec::new());
        loop {
            match traffic.next_step().expect("step") {
                Step::Command(planned) => commands.push(*planned),
                Step::Midnight(at_us) => midnights.push(at_us),
                Step::End => break,
            }
        }
        (traffic, commands, midnights)
    }

    fn sampled(seed: u64, count: usize, draw: impl Fn(&mut Random) -> i64) -> Vec<i64> {
        let mut random = Random::new(seed);
        let mut values: Vec<i64> = (0..count).map(|_| draw(&mut random)).collect();
        values.sort_unstable();
        values
    }

    #[test]
    fn months_before_keeps_the_time_of_day_and_clamps_the_day() {
        let at = |text: &str| crate::export::parse_time("at", text).expect("time");
        assert_eq!(
            months_before_us(at("2026-11-23T16:30:00Z"), 12),
            at("2025-11-23T16:30:00Z")
        );
        assert_eq!(
            months_before_us(at("2026-03-31T08:00:00Z"), 1),
            at("2026-02-28T08:00:00Z")
        );
        assert_eq!(
            months_before_us(at("2026-01-15T00:00:00Z"), 3),
            at("2025-10-15T00:00:00Z")
        );
    }

    #[test]
    fn the_program_is_valid_with_its_campaign_in_the_middle() {
        let options = options(1, 12, 1);
        let raw = coffee_rules(options.start_us, options.end_us);
        let rules = Rules::from_raw(&raw).expect("valid rules");
        let campaign = &rules.campaigns()[0];
        let middle = options.start_us + (options.end_us - options.start_us) / 2;
        assert!(campaign.starts_at_us < middle && middle < campaign.ends_at_us);
        assert_eq!(
            campaign.ends_at_us - campaign.starts_at_us,
            CAMPAIGN_DAYS * US_PER_DAY
        );
    }

    #[test]
    fn below_between_and_chance_stay_in_range_and_are_roughly_uniform() {
        let mut random = Random::new(3);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[random.below(10) as usize] += 1;
        }
        for count in counts {
            assert!((9_500..=10_500).contains(&count), "{counts:?}");
        }
        for _ in 0..10_000 {
            assert!((-3..=4).contains(&random.between(-3, 4)));
        }
        assert_eq!(random.between(5, 5), 5);
        assert_eq!(random.below(0), 0);
        let hits = (0..100_000).filter(|_| random.chance(300)).count();
        assert!((29_000..=31_000).contains(&hits), "{hits}");
    }

    #[test]
    fn spends_are_log_normal_ish_around_eight_dollars_with_a_long_tail() {
        let spends = sampled(11, 20_000, |random| random.quantile(&SPEND_CENTS_QUANTILES));
        let median = spends[spends.len() / 2];
        let mean = spends.iter().sum::<i64>() / spends.len() as i64;
        let p99 = spends[spends.len() * 99 / 100];
        assert!((600..=700).contains(&median), "median {median}");
        assert!((850..=950).contains(&mean), "mean {mean}");
        assert!(mean > median, "skewed to the right");
        assert!(p99 > 3_000, "long tail: p99 {p99}");
        assert!(spends[0] >= 150 && spends[spends.len() - 1] <= 5_500);
    }

    #[test]
    fn purchase_rates_are_skewed_a_few_heavy_many_light() {
        let rates = sampled(12, 20_000, |random| {
            random.quantile(&PURCHASE_PER_MILLE_QUANTILES)
        });
        let share =
            |keep: fn(&i64) -> bool| rates.iter().filter(|r| keep(r)).count() * 1_000 / rates.len();
        let heavy = share(|rate| *rate >= 600);
        let light = share(|rate| *rate < 30);
        assert!((45..=80).contains(&heavy), "heavy {heavy}‰");
        assert!((280..=345).contains(&light), "light {light}‰");
        let median = rates[rates.len() / 2];
        assert!((60..=80).contains(&median), "median {median}‰");
    }

    #[test]
    fn the_same_seed_gives_the_same_commands_and_another_seed_others() {
        let digest = |seed: u64| {
            let (_, commands, midnights) = run(options(60, 2, seed));
            let commands: Vec<String> = commands
                .iter()
                .map(|planned| format!("{:?}", planned.envelope))
                .collect();
            (commands, midnights)
        };
        let first = digest(7);
        assert!(first.0.len() > 100, "{} commands", first.0.len());
        assert_eq!(first, digest(7));
        let other = digest(8);
        assert_ne!(first.0, other.0);
        assert_eq!(first.1, other.1, "midnights depend on the period only");
    }

    #[test]
    fn a_generated_period_has_sane_shares_and_nothing_the_domain_refuses() {
        let options = options(400, 6, 42);
        let (traffic, commands, midnights) = run(options);
        let planned = traffic.planned();
        let count = |kind: CommandKind| planned[kind.index()];
        assert_eq!(count(CommandKind::Enroll), 400);
        let purchases = count(CommandKind::Purchase);
        assert!(purchases > 400 * 5, "{purchases} purchases");
        let returns_per_mille = count(CommandKind::Return) * 1_000 / purchases;
        assert!(
            (15..=45).contains(&returns_per_mille),
            "{returns_per_mille}‰ returned"
        );
        let redemptions = count(CommandKind::Redeem);
        assert!(
            redemptions > 50 && redemptions < purchases / 4,
            "{redemptions} redemptions"
        );
        assert!(count(CommandKind::CancelRedemption) <= redemptions / 10);
        assert!(count(CommandKind::Award) > 50, "birthdays");
        assert!(count(CommandKind::Transfer) >= 1);
        assert!(count(CommandKind::Adjust) >= 1);
        assert!(
            traffic.system_commands() > purchases / 2,
            "maturations at midnights"
        );
        assert_eq!(commands.len() as u64, planned.iter().sum::<u64>());

        // The model accepted every command: by construction, the engine
        // refuses none.
        let refused: Vec<&Planned> = commands.iter().filter(|p| !p.accepted_by_model).collect();
        assert!(refused.is_empty(), "{:?}", refused.first());

        // Business time never goes back, and midnights fall between.
        let mut times = commands.iter().map(|p| p.envelope.occurred_at_us);
        assert!(
            times
                .clone()
                .zip(times.clone().skip(1))
                .all(|(a, b)| a <= b)
        );
        assert!(times.all(|at| (options.start_us..options.end_us).contains(&at)));
        assert_eq!(midnights.len() as u64, traffic.midnights());
        assert!(
            midnights
                .windows(2)
                .all(|pair| pair[1] - pair[0] == US_PER_DAY)
        );

        // A few members make many of the purchases.
        let mut per_member = std::collections::HashMap::<String, u64>::new();
        for planned in &commands {
            if let LedgerCommand::Member {
                member_id,
                command: Command::RecordPurchase { .. },
            } = &planned.envelope.command
            {
                *per_member.entry(member_id.to_string()).or_default() += 1;
            }
        }
        let mut counts: Vec<u64> = per_member.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_tenth: u64 = counts.iter().take(40).sum();
        assert!(
            top_tenth * 100 / purchases >= 30,
            "top tenth: {top_tenth} of {purchases}"
        );

        // Lapsed members buy nothing from their lapse day on.
        let profiles = traffic.profiles();
        assert!((80..=160).contains(&profiles.lapsing), "{profiles:?}");
        for planned in &commands {
            if let LedgerCommand::Member {
                member_id,
                command: Command::RecordPurchase { .. },
            } = &planned.envelope.command
            {
                let profile = traffic
                    .profiles
                    .iter()
                    .find(|profile| &profile.member_id == member_id)
                    .expect("a member of the demo");
                if let Some(lapse_day) = profile.lapse_day {
                    assert!(day_of(planned.envelope.occurred_at_us) < lapse_day);
                }
            }
        }
    }
}
