//! Target `domain`: a program's rules and a sequence of commands for two
//! members (and rules changes, transfers and clock moves between them)
//! through the pure domain: `decide_program`, `decide`, `decide_transfer`,
//! `apply` and `apply_program`.
//!
//! The input is a [`Scenario`], read from the bytes by [`Scenario::decode`]
//! (any bytes are some scenario) and written by [`Scenario::encode`], so
//! seeds are written as scenarios.
//!
//! Properties, for any scenario:
//! - nothing panics (the fuzz build keeps `debug_assert!` and overflow
//!   checks on, so the domain's own assertions after every `apply` run too);
//! - rules and commands that are refused as bad input name a field;
//! - after every applied event: balance = open available lots - debt,
//!   pending = open pending lots, no negative debt, every open lot has
//!   points left and no more than it was created with, and the member's
//!   clock is the latest business time it saw;
//! - an accepted redeem leaves the balance non-negative and takes exactly
//!   the points asked for, and every event of a decision carries the
//!   command's business time;
//! - every event decided round-trips through its record form unchanged;
//! - `decide_in_place` (the engine's path) gives the same answer as
//!   `decide`, and leaves the member as applying the events would (or, on a
//!   rejection, unchanged);
//! - so does deciding while holding only a window of the member's lots,
//!   the others read back one at a time when the decision asks (the
//!   engine's path for a member whose lots are rows);
//! - replaying each stream's events from the empty state gives the live
//!   state (the program's rules too).

use super::Violation;
use super::bytes::{Reader, Writer};
use ledger_core::domain::{
    Campaign, Command, Currency, DomainError, Event, EventKind, InPlaceError, KeptLots, LotExpiry,
    LotExpiryRule, Member, Money, Points, Program, ProgramCommand, ProgramRules, Rounding, Rules,
    ShortfallPolicy, Tier, TierMeasure, TransferPoints, apply, apply_program, decide,
    decide_in_place, decide_in_place_paged, decide_program, decide_transfer,
};
use ledger_core::ids::MemberId;
use ledger_core::limits::{
    COMMAND_EVENTS_MAX, EARN_RATE_BPS_MAX, INACTIVITY_EXPIRY_DAYS_MAX, LOT_EXPIRY_DAYS_MAX,
    LOT_EXPIRY_MONTHS_MAX, MULTIPLIER_BPS_MAX, PENDING_DAYS_MAX, POINTS_PER_COMMAND_MAX,
    REASON_BYTES_MAX, REFERENCE_BYTES_MAX, RFM_WINDOW_DAYS_MAX, TAG_BYTES_MAX, TIER_NAME_BYTES_MAX,
    TIER_WINDOW_DAYS_MAX, UTC_OFFSET_MINUTES_MAX, UTC_OFFSET_MINUTES_MIN,
};
use ledger_core::pb;
use ledger_core::record::event_from_record;

/// One day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;
/// Where every scenario's clock starts: 2024-01-01T00:00:00Z.
pub const START_US: i64 = 19_723 * DAY_US;
/// Steps read from one input at most: longer inputs are cut, so one input
/// stays well under a millisecond.
pub const STEPS_MAX: usize = 96;

/// The two members' ids; a transfer goes from one to the other.
pub const MEMBER_IDS: [&str; 2] = ["ann", "bob"];

const CURRENCIES: [&str; 4] = ["USD", "JPY", "KWD", "EUR"];
/// A currency code no currency has, for purchases and returns.
const UNKNOWN_CURRENCY: &str = "XXZ";
const TIER_NAMES: [&str; 4] = ["base", "silver", "gold", "platinum"];
const TAGS: [&str; 3] = ["coffee", "food", "app"];
const REFERENCES: [&str; 4] = ["o-1", "o-2", "o-3", "o-4"];
const REASONS: [&str; 2] = ["goodwill", "birthday"];

/// A program's rules and what happens to its two members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The rules the program is defined with.
    pub rules: ProgramRules,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The business clock moves by this much (backwards too).
    Advance {
        /// Microseconds.
        delta_us: i64,
    },
    /// A command for member `member` (an index into [`MEMBER_IDS`]).
    Member {
        /// 0 or 1.
        member: u8,
        /// What is asked.
        command: MemberCommand,
    },
    /// Points from member `from` to the other one.
    Transfer {
        /// 0 or 1.
        from: u8,
        /// The caller's reference.
        transfer_id: String,
        /// Points.
        points: i64,
    },
    /// The program's rules are replaced.
    ChangeRules(ProgramRules),
}

/// A member command as a request carries it: raw amounts and a currency
/// code, converted as the server converts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberCommand {
    /// `Command::Enroll`.
    Enroll,
    /// `Command::RecordPurchase`.
    Purchase {
        /// Order id.
        order_id: String,
        /// Spend, minor units.
        minor_units: i64,
        /// Currency code.
        currency: String,
        /// Tags.
        tags: Vec<String>,
    },
    /// `Command::AwardPoints`.
    Award {
        /// Why.
        reason: String,
        /// Points.
        points: i64,
    },
    /// `Command::Redeem`.
    Redeem {
        /// Redemption id.
        redemption_id: String,
        /// Points.
        points: i64,
    },
    /// `Command::CancelRedemption`.
    Cancel {
        /// Redemption id.
        redemption_id: String,
    },
    /// `Command::RecordReturn`.
    Return {
        /// Order id.
        order_id: String,
        /// Refund, minor units.
        minor_units: i64,
        /// Currency code.
        currency: String,
    },
    /// `Command::AdjustPoints`.
    Adjust {
        /// Why.
        reason: String,
        /// Points, signed.
        points: i64,
    },
    /// One of the four system commands, by index.
    System(u8),
}

/// What one input did, for the smoke test's coverage counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The program's rules were refused (nothing else ran).
    pub rules_refused: bool,
    /// Commands (and transfers and rules changes) accepted.
    pub accepted: u32,
    /// Refused as bad input, naming a field.
    pub invalid: u32,
    /// Refused by a rule.
    pub rejected: u32,
    /// Events applied to the members.
    pub events: u32,
}

/// Runs one input; `Err` is a broken property.
pub fn check(data: &[u8]) -> Result<Outcome, Violation> {
    run(&Scenario::decode(data))
}

impl Scenario {
    /// The scenario that `data` reads as.
    pub fn decode(data: &[u8]) -> Scenario {
        let mut reader = Reader::new(data);
        let rules = read_rules(&mut reader);
        let mut steps = Vec::new();
        while !reader.is_empty() && steps.len() < STEPS_MAX {
            steps.push(read_step(&mut reader));
        }
        Scenario { rules, steps }
    }

    /// Bytes that [`Scenario::decode`] reads as this scenario (texts of
    /// at most 1 KiB, lists within the reader's counts, at most
    /// [`STEPS_MAX`] steps).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        write_rules(&mut writer, &self.rules);
        for step in &self.steps {
            write_step(&mut writer, step);
        }
        writer.into_bytes()
    }
}

// The byte form. Each read_* has its write_* just below it, field for
// field in the same order; `tests/fuzz_smoke.rs` checks that every seed
// decodes to the scenario it was encoded from.

fn read_rules(r: &mut Reader<'_>) -> ProgramRules {
    let mut rules = ProgramRules::basic("USD");
    rules.name = r.text(&["Coffee Club"], 128);
    rules.currency = r.text(&CURRENCIES, 3);
    rules.earn_rate_bps = r.int(0, EARN_RATE_BPS_MAX);
    rules.rounding = rounding(r.byte());
    rules.point_value_minor_units = r.int(0, 1_000);
    rules.point_value_per_points = r.int(1, 1_000);
    let tiers = r.count(4);
    for index in 0..tiers {
        let previous = rules.tiers.last().map(|tier: &Tier| tier.threshold);
        rules.tiers.push(read_tier(r, index, previous));
    }
    rules.tier_measure = tier_measure(r.byte());
    rules.tier_window_days = window_days(r.int(0, i64::from(TIER_WINDOW_DAYS_MAX)));
    rules.tier_soft_landing = r.flag();
    let campaigns = r.count(3);
    let tier_names: Vec<String> = rules.tiers.iter().map(|tier| tier.name.clone()).collect();
    rules.campaigns = (0..campaigns)
        .map(|index| read_campaign(r, index, &tier_names))
        .collect();
    rules.lot_expiry = match r.byte() % 4 {
        0 => None,
        1 => Some(LotExpiry { rule: None }),
        2 => Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(u32_of(
                r.int(1, i64::from(LOT_EXPIRY_DAYS_MAX)),
            ))),
        }),
        _ => Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(u32_of(
                r.int(1, i64::from(LOT_EXPIRY_MONTHS_MAX)),
            ))),
        }),
    };
    rules.inactivity_expiry_days = u32_of(r.int(0, i64::from(INACTIVITY_EXPIRY_DAYS_MAX)));
    rules.pending_days = u32_of(r.int(0, i64::from(PENDING_DAYS_MAX)));
    rules.bonus_points_pending = r.flag();
    rules.min_redeem_points = r.int(0, 1_000);
    rules.return_policy = shortfall_policy(r.byte());
    rules.utc_offset_minutes = i32::try_from(r.int(
        i64::from(UTC_OFFSET_MINUTES_MIN),
        i64::from(UTC_OFFSET_MINUTES_MAX),
    ))
    .unwrap_or(i32::MAX);
    rules.rfm_window_days = u32_of(r.int(0, i64::from(RFM_WINDOW_DAYS_MAX)));
    rules
}

fn write_rules(w: &mut Writer, rules: &ProgramRules) {
    w.text(&rules.name);
    w.text(&rules.currency);
    w.int(rules.earn_rate_bps);
    w.byte(rounding_byte(rules.rounding));
    w.int(rules.point_value_minor_units);
    w.int(rules.point_value_per_points);
    w.count(rules.tiers.len());
    let mut previous = None;
    for tier in &rules.tiers {
        write_tier(w, tier, previous);
        previous = Some(tier.threshold);
    }
    w.byte(tier_measure_byte(rules.tier_measure));
    w.int(rules.tier_window_days.into());
    w.flag(rules.tier_soft_landing);
    w.count(rules.campaigns.len());
    for campaign in &rules.campaigns {
        write_campaign(w, campaign);
    }
    match rules.lot_expiry {
        None => w.byte(0),
        Some(LotExpiry { rule: None }) => w.byte(1),
        Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(days)),
        }) => {
            w.byte(2);
            w.int(days.into());
        }
        Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(months)),
        }) => {
            w.byte(3);
            w.int(months.into());
        }
    }
    w.int(rules.inactivity_expiry_days.into());
    w.int(rules.pending_days.into());
    w.flag(rules.bonus_points_pending);
    w.int(rules.min_redeem_points);
    w.byte(shortfall_policy_byte(rules.return_policy));
    w.int(rules.utc_offset_minutes.into());
    w.int(rules.rfm_window_days.into());
}

/// Tier `index`, valid unless an edge tag says otherwise: its own name, a
/// threshold of 0 for the first and above the `previous` one for the rest.
fn read_tier(r: &mut Reader<'_>, index: usize, previous: Option<i64>) -> Tier {
    let name = TIER_NAMES.get(index).copied().unwrap_or("tier");
    Tier {
        name: r.text(&[name], TIER_NAME_BYTES_MAX),
        threshold: match previous {
            None => r.int(0, 0),
            Some(previous) => previous.saturating_add(r.int(1, 50_000)),
        },
        earn_multiplier_bps: r.int(1, 50_000),
    }
}

fn write_tier(w: &mut Writer, tier: &Tier, previous: Option<i64>) {
    w.text(&tier.name);
    w.int(tier.threshold.saturating_sub(previous.unwrap_or(0)));
    w.int(tier.earn_multiplier_bps);
}

/// How a campaign's effect is read (a byte modulo 16): mostly a multiplier
/// or a bonus, as the rules allow; the last kind reads both freely.
const EFFECT_MULTIPLIER: u8 = 0;
const EFFECT_BONUS: u8 = 8;
const EFFECT_FREE: u8 = 15;

/// Campaign `index`, valid unless an edge tag says otherwise: its own id,
/// an end after its start, one effect, and conditions on defined tiers.
fn read_campaign(r: &mut Reader<'_>, index: usize, tier_names: &[String]) -> Campaign {
    let starts_at_us = START_US.saturating_add(r.int(-30 * DAY_US, 400 * DAY_US));
    let id = ["double", "bonus", "weekend", "member-day"]
        .get(index)
        .copied()
        .unwrap_or("campaign");
    let campaign_id = r.text(&[id], REFERENCE_BYTES_MAX);
    let ends_at_us = starts_at_us.saturating_add(r.int(1, 400 * DAY_US));
    let (multiplier_bps, bonus_points) = match r.byte() % 16 {
        EFFECT_MULTIPLIER..EFFECT_BONUS => (r.int(10_001, MULTIPLIER_BPS_MAX), 0),
        EFFECT_BONUS..EFFECT_FREE => (0, r.int(1, 10_000)),
        _ => (r.int(0, MULTIPLIER_BPS_MAX), r.int(0, 10_000)),
    };
    let names: Vec<&str> = tier_names.iter().map(String::as_str).collect();
    let tiers_max = if names.is_empty() { 0 } else { 2 };
    Campaign {
        campaign_id,
        starts_at_us,
        ends_at_us,
        multiplier_bps,
        bonus_points,
        tiers: read_list(r, tiers_max, |r| r.text(&names, TIER_NAME_BYTES_MAX)),
        tags: read_list(r, 2, |r| r.text(&TAGS, TAG_BYTES_MAX)),
        min_spend_minor_units: r.int(0, 100_000),
        stackable: r.flag(),
    }
}

fn write_campaign(w: &mut Writer, campaign: &Campaign) {
    // The reader takes the start and end relative to `START_US` and the
    // start, so the writer gives the differences.
    w.int(campaign.starts_at_us.saturating_sub(START_US));
    w.text(&campaign.campaign_id);
    w.int(campaign.ends_at_us.saturating_sub(campaign.starts_at_us));
    match (campaign.multiplier_bps, campaign.bonus_points) {
        (0, bonus) => {
            w.byte(EFFECT_BONUS);
            w.int(bonus);
        }
        (multiplier, 0) => {
            w.byte(EFFECT_MULTIPLIER);
            w.int(multiplier);
        }
        (multiplier, bonus) => {
            w.byte(EFFECT_FREE);
            w.int(multiplier);
            w.int(bonus);
        }
    }
    write_list(w, &campaign.tiers);
    write_list(w, &campaign.tags);
    w.int(campaign.min_spend_minor_units);
    w.flag(campaign.stackable);
}

fn read_list(
    r: &mut Reader<'_>,
    max: u8,
    mut item: impl FnMut(&mut Reader<'_>) -> String,
) -> Vec<String> {
    let count = r.count(max);
    (0..count).map(|_| item(r)).collect()
}

fn write_list(w: &mut Writer, items: &[String]) {
    w.count(items.len());
    for item in items {
        w.text(item);
    }
}

fn read_step(r: &mut Reader<'_>) -> Step {
    let member = r.byte() & 1;
    match r.byte() % 12 {
        0 => Step::Advance {
            delta_us: match r.byte() % 4 {
                0 => r.int(-DAY_US, DAY_US),
                1 => r.int(0, 40 * DAY_US),
                2 => r.int(0, 800 * DAY_US),
                _ => r.int(i64::MIN, i64::MAX),
            },
        },
        1 => member_step(member, MemberCommand::Enroll),
        2 => member_step(
            member,
            MemberCommand::Purchase {
                order_id: r.text(&REFERENCES, REFERENCE_BYTES_MAX),
                minor_units: r.int(1, 100_000),
                currency: currency(r),
                tags: read_list(r, 3, |r| r.text(&TAGS, TAG_BYTES_MAX)),
            },
        ),
        3 => member_step(
            member,
            MemberCommand::Award {
                reason: r.text(&REASONS, REASON_BYTES_MAX),
                points: r.int(1, 5_000),
            },
        ),
        4 => member_step(
            member,
            MemberCommand::Redeem {
                redemption_id: r.text(&REFERENCES, REFERENCE_BYTES_MAX),
                points: r.int(1, 5_000),
            },
        ),
        5 => member_step(
            member,
            MemberCommand::Cancel {
                redemption_id: r.text(&REFERENCES, REFERENCE_BYTES_MAX),
            },
        ),
        6 => member_step(
            member,
            MemberCommand::Return {
                order_id: r.text(&REFERENCES, REFERENCE_BYTES_MAX),
                minor_units: r.int(1, 100_000),
                currency: currency(r),
            },
        ),
        7 => member_step(
            member,
            MemberCommand::Adjust {
                reason: r.text(&REASONS, REASON_BYTES_MAX),
                points: r.int(-5_000, 5_000),
            },
        ),
        8 => member_step(member, MemberCommand::System(r.byte() % 4)),
        9 => Step::Transfer {
            from: member,
            transfer_id: r.text(&REFERENCES, REFERENCE_BYTES_MAX),
            points: r.int(1, POINTS_PER_COMMAND_MAX),
        },
        10 => Step::ChangeRules(read_rules(r)),
        // Points near the limits, where arithmetic overflows if anywhere.
        _ => member_step(
            member,
            MemberCommand::Award {
                reason: "large".to_owned(),
                points: r.int(POINTS_PER_COMMAND_MAX - 1_000, POINTS_PER_COMMAND_MAX),
            },
        ),
    }
}

fn write_step(w: &mut Writer, step: &Step) {
    let (member, kind) = match step {
        Step::Advance { .. } => (0, 0),
        Step::Member { member, command } => (
            *member,
            match command {
                MemberCommand::Enroll => 1,
                MemberCommand::Purchase { .. } => 2,
                MemberCommand::Award { .. } => 3,
                MemberCommand::Redeem { .. } => 4,
                MemberCommand::Cancel { .. } => 5,
                MemberCommand::Return { .. } => 6,
                MemberCommand::Adjust { .. } => 7,
                MemberCommand::System(_) => 8,
            },
        ),
        Step::Transfer { from, .. } => (*from, 9),
        Step::ChangeRules(_) => (0, 10),
    };
    w.byte(member);
    w.byte(kind);
    match step {
        Step::Advance { delta_us } => {
            w.byte(3);
            w.int(*delta_us);
        }
        Step::Member { command, .. } => match command {
            MemberCommand::Enroll => {}
            MemberCommand::Purchase {
                order_id,
                minor_units,
                currency,
                tags,
            } => {
                w.text(order_id);
                w.int(*minor_units);
                write_currency(w, currency);
                write_list(w, tags);
            }
            MemberCommand::Award { reason, points } | MemberCommand::Adjust { reason, points } => {
                w.text(reason);
                w.int(*points);
            }
            MemberCommand::Redeem {
                redemption_id,
                points,
            } => {
                w.text(redemption_id);
                w.int(*points);
            }
            MemberCommand::Cancel { redemption_id } => w.text(redemption_id),
            MemberCommand::Return {
                order_id,
                minor_units,
                currency,
            } => {
                w.text(order_id);
                w.int(*minor_units);
                write_currency(w, currency);
            }
            MemberCommand::System(index) => w.byte(*index),
        },
        Step::Transfer {
            transfer_id,
            points,
            ..
        } => {
            w.text(transfer_id);
            w.int(*points);
        }
        Step::ChangeRules(rules) => write_rules(w, rules),
    }
}

fn member_step(member: u8, command: MemberCommand) -> Step {
    Step::Member { member, command }
}

/// The currency of a purchase or return: mostly the program's (an empty
/// code stands for it), sometimes another.
fn currency(r: &mut Reader<'_>) -> String {
    if r.byte() < 224 {
        String::new()
    } else {
        r.text(&[CURRENCIES[1], CURRENCIES[3], UNKNOWN_CURRENCY], 3)
    }
}

fn write_currency(w: &mut Writer, code: &str) {
    if code.is_empty() {
        w.byte(0);
    } else {
        w.byte(255);
        w.text(code);
    }
}

// Enum fields: a byte modulo 64, where 63 is UNSPECIFIED and 0 (what the
// reader gives past the input's end) the plainest valid value.

/// The byte (modulo 64) that reads as UNSPECIFIED.
const UNSPECIFIED_BYTE: u8 = 63;

fn rounding(byte: u8) -> Rounding {
    match byte % 64 {
        UNSPECIFIED_BYTE => Rounding::Unspecified,
        n if n % 3 == 0 => Rounding::Floor,
        n if n % 3 == 1 => Rounding::HalfUp,
        _ => Rounding::Ceiling,
    }
}

fn rounding_byte(rounding: Rounding) -> u8 {
    match rounding {
        Rounding::Unspecified => UNSPECIFIED_BYTE,
        Rounding::Floor => 0,
        Rounding::HalfUp => 1,
        Rounding::Ceiling => 2,
    }
}

fn tier_measure(byte: u8) -> TierMeasure {
    match byte % 64 {
        UNSPECIFIED_BYTE => TierMeasure::Unspecified,
        n if n % 2 == 0 => TierMeasure::QualifyingPoints,
        _ => TierMeasure::Spend,
    }
}

fn tier_measure_byte(measure: TierMeasure) -> u8 {
    match measure {
        TierMeasure::Unspecified => UNSPECIFIED_BYTE,
        TierMeasure::QualifyingPoints => 0,
        TierMeasure::Spend => 1,
    }
}

fn shortfall_policy(byte: u8) -> ShortfallPolicy {
    match byte % 64 {
        UNSPECIFIED_BYTE => ShortfallPolicy::Unspecified,
        n if n % 2 == 0 => ShortfallPolicy::Forfeit,
        _ => ShortfallPolicy::Debt,
    }
}

fn shortfall_policy_byte(policy: ShortfallPolicy) -> u8 {
    match policy {
        ShortfallPolicy::Unspecified => UNSPECIFIED_BYTE,
        ShortfallPolicy::Forfeit => 0,
        ShortfallPolicy::Debt => 1,
    }
}

/// Tier windows: the calendar year (0) or a rolling number of days.
fn window_days(value: i64) -> u32 {
    u32_of(value)
}

/// A u32 field from a drawn integer; values outside u32 saturate, so the
/// edges of the field are still reached.
fn u32_of(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

// Running a scenario.

/// The state of a running scenario: the program, both members and their
/// streams so far.
struct World {
    program: Program,
    program_events: Vec<Event>,
    members: [Member; 2],
    streams: [Vec<Event>; 2],
    ids: [MemberId; 2],
    now_us: i64,
    outcome: Outcome,
}

/// Runs a scenario; `Err` is a broken property.
pub fn run(scenario: &Scenario) -> Result<Outcome, Violation> {
    play(scenario).map(|world| world.outcome)
}

/// The streams a scenario leaves, program stream first, each with its
/// events in order (the record target's seeds are made from them).
pub fn streams(scenario: &Scenario) -> Result<Vec<(String, Vec<Event>)>, Violation> {
    let world = play(scenario)?;
    let [ann, bob] = world.streams;
    Ok(vec![
        ("program".to_owned(), world.program_events),
        (MEMBER_IDS[0].to_owned(), ann),
        (MEMBER_IDS[1].to_owned(), bob),
    ])
}

fn play(scenario: &Scenario) -> Result<World, Violation> {
    let mut world = World::new()?;
    let define = ProgramCommand::DefineProgram {
        rules: scenario.rules.clone(),
    };
    match decide_program(&world.program, &define, world.now_us) {
        Ok(events) => world.apply_program_events(events)?,
        Err(error) => {
            refused_rules(&error)?;
            world.outcome.rules_refused = true;
            return Ok(world);
        }
    }
    for step in &scenario.steps {
        world.step(step)?;
    }
    world.check_replay()?;
    Ok(world)
}

/// Rules refused must be refused as bad input naming a rules field.
fn refused_rules(error: &DomainError) -> Result<(), Violation> {
    match error {
        DomainError::InvalidField(field) if !field.field.is_empty() => Ok(()),
        other => Err(Violation::new(format!(
            "rules were refused without naming a field: {other:?}"
        ))),
    }
}

impl World {
    fn new() -> Result<World, Violation> {
        let id = |name: &str| {
            MemberId::parse("member_id", name)
                .map_err(|error| Violation::new(format!("member id {name}: {error}")))
        };
        Ok(World {
            program: Program::default(),
            program_events: Vec::new(),
            members: [Member::default(), Member::default()],
            streams: [Vec::new(), Vec::new()],
            ids: [id(MEMBER_IDS[0])?, id(MEMBER_IDS[1])?],
            now_us: START_US,
            outcome: Outcome::default(),
        })
    }

    fn step(&mut self, step: &Step) -> Result<(), Violation> {
        match step {
            Step::Advance { delta_us } => {
                self.now_us = self.now_us.saturating_add(*delta_us);
                Ok(())
            }
            Step::ChangeRules(rules) => {
                let command = ProgramCommand::ChangeRules {
                    rules: rules.clone(),
                };
                match decide_program(&self.program, &command, self.now_us) {
                    Ok(events) => {
                        self.outcome.accepted += 1;
                        self.apply_program_events(events)
                    }
                    Err(error) => self.refused(&error),
                }
            }
            Step::Member { member, command } => self.member_command(*member, command),
            Step::Transfer {
                from,
                transfer_id,
                points,
            } => self.transfer(*from, transfer_id, *points),
        }
    }

    fn rules(&self) -> Result<ledger_core::domain::Rules, Violation> {
        self.program
            .rules()
            .cloned()
            .ok_or_else(|| Violation::new("the program lost its rules"))
    }

    fn member_command(&mut self, member: u8, command: &MemberCommand) -> Result<(), Violation> {
        let index = usize::from(member & 1);
        let rules = self.rules()?;
        let command = match to_command(command, rules.currency()) {
            Ok(command) => command,
            Err(error) => return self.refused(&error),
        };
        let state = &self.members[index];
        let decided = decide(state, &command, &rules, self.now_us);
        check_in_place(state, &command, &rules, self.now_us, &decided)?;
        check_paged(state, &command, &rules, self.now_us, &decided)?;
        match decided {
            Ok(events) => {
                self.outcome.accepted += 1;
                self.check_decision(&events)?;
                if let Command::Redeem { points, .. } = &command {
                    check_redeemed(&events, *points)?;
                }
                for event in events {
                    self.apply_member(index, event)?;
                }
                if matches!(command, Command::Redeem { .. })
                    && self.members[index].balance_points().get() < 0
                {
                    return Err(Violation::new("an accepted redeem overdrew the balance"));
                }
                Ok(())
            }
            Err(error) => self.refused(&error),
        }
    }

    fn transfer(&mut self, from: u8, transfer_id: &str, points: i64) -> Result<(), Violation> {
        let (from, to) = if from & 1 == 0 { (0, 1) } else { (1, 0) };
        let rules = self.rules()?;
        let command = TransferPoints {
            transfer_id: transfer_id.to_owned(),
            from_member_id: self.ids[from].clone(),
            to_member_id: self.ids[to].clone(),
            points: Points::new(points),
        };
        let decided = decide_transfer(
            &self.members[from],
            &self.members[to],
            &command,
            &rules,
            self.now_us,
        );
        match decided {
            Ok((sent, received)) => {
                self.outcome.accepted += 1;
                self.check_decision(&sent)?;
                self.check_decision(&received)?;
                // The writer appends both sides as one command's events.
                if sent.len() + received.len() > COMMAND_EVENTS_MAX {
                    return Err(Violation::new(format!(
                        "a transfer made {} + {} events, more than COMMAND_EVENTS_MAX",
                        sent.len(),
                        received.len()
                    )));
                }
                for event in sent {
                    self.apply_member(from, event)?;
                }
                for event in received {
                    self.apply_member(to, event)?;
                }
                if self.members[from].balance_points().get() < 0 {
                    return Err(Violation::new("an accepted transfer overdrew the sender"));
                }
                Ok(())
            }
            Err(error) => self.refused(&error),
        }
    }

    /// A refusal: bad input names a field; anything else is a rule.
    fn refused(&mut self, error: &DomainError) -> Result<(), Violation> {
        match error {
            DomainError::InvalidField(field) if field.field.is_empty() => Err(Violation::new(
                format!("bad input refused without naming a field: {error}"),
            )),
            DomainError::InvalidField(_) => {
                self.outcome.invalid += 1;
                Ok(())
            }
            _ => {
                self.outcome.rejected += 1;
                Ok(())
            }
        }
    }

    /// What holds for every decision's events before they are applied.
    fn check_decision(&self, events: &[Event]) -> Result<(), Violation> {
        if events.len() > COMMAND_EVENTS_MAX {
            return Err(Violation::new(format!(
                "a decision made {} events, more than COMMAND_EVENTS_MAX",
                events.len()
            )));
        }
        for event in events {
            if event.occurred_at_us != self.now_us {
                return Err(Violation::new(format!(
                    "an event carries business time {}, not the command's {}",
                    event.occurred_at_us, self.now_us
                )));
            }
            round_trip(event)?;
        }
        Ok(())
    }

    fn apply_program_events(&mut self, events: Vec<Event>) -> Result<(), Violation> {
        for event in events {
            round_trip(&event)?;
            apply_program(&mut self.program, &event);
            self.program_events.push(event);
        }
        if self.program.rules().is_none() {
            return Err(Violation::new("an accepted program command left no rules"));
        }
        Ok(())
    }

    fn apply_member(&mut self, index: usize, event: Event) -> Result<(), Violation> {
        let member = &mut self.members[index];
        let clock_before_us = member.clock_us();
        apply(member, &event);
        check_member(member, clock_before_us.max(event.occurred_at_us))?;
        self.outcome.events += 1;
        self.streams[index].push(event);
        Ok(())
    }

    /// Replaying every stream from the empty state gives the live state.
    fn check_replay(&self) -> Result<(), Violation> {
        for (index, stream) in self.streams.iter().enumerate() {
            let mut replayed = Member::default();
            for event in stream {
                apply(&mut replayed, event);
            }
            if replayed != self.members[index] {
                return Err(Violation::new(format!(
                    "replaying member {}'s {} events gives another state",
                    MEMBER_IDS[index],
                    stream.len()
                )));
            }
        }
        let mut program = Program::default();
        for event in &self.program_events {
            apply_program(&mut program, event);
        }
        if program.rules() != self.program.rules() {
            return Err(Violation::new("replaying the program gives other rules"));
        }
        Ok(())
    }
}

fn to_command(command: &MemberCommand, program_currency: Currency) -> Result<Command, DomainError> {
    let money = |field: &str, minor_units: i64, code: &str| {
        let currency = if code.is_empty() {
            program_currency
        } else {
            Currency::from_code(code, format!("{field}.currency"))?
        };
        Ok::<_, DomainError>(Money::new(minor_units, currency))
    };
    Ok(match command {
        MemberCommand::Enroll => Command::Enroll,
        MemberCommand::Purchase {
            order_id,
            minor_units,
            currency,
            tags,
        } => Command::RecordPurchase {
            order_id: order_id.clone(),
            spend: money("spend", *minor_units, currency)?,
            tags: tags.clone(),
        },
        MemberCommand::Award { reason, points } => Command::AwardPoints {
            reason: reason.clone(),
            points: Points::new(*points),
        },
        MemberCommand::Redeem {
            redemption_id,
            points,
        } => Command::Redeem {
            redemption_id: redemption_id.clone(),
            points: Points::new(*points),
        },
        MemberCommand::Cancel { redemption_id } => Command::CancelRedemption {
            redemption_id: redemption_id.clone(),
        },
        MemberCommand::Return {
            order_id,
            minor_units,
            currency,
        } => Command::RecordReturn {
            order_id: order_id.clone(),
            refund: money("refund", *minor_units, currency)?,
        },
        MemberCommand::Adjust { reason, points } => Command::AdjustPoints {
            reason: reason.clone(),
            points: Points::new(*points),
        },
        MemberCommand::System(index) => match index % 4 {
            0 => Command::MaturePending,
            1 => Command::ExpireLots,
            2 => Command::ExpireInactive,
            _ => Command::EvaluateTier,
        },
    })
}

/// An accepted redeem records exactly the points asked for, drawn from lots.
fn check_redeemed(events: &[Event], asked: Points) -> Result<(), Violation> {
    let redeemed: Vec<_> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::PointsRedeemed(redeemed) => Some(redeemed),
            _ => None,
        })
        .collect();
    let [redeemed] = redeemed.as_slice() else {
        return Err(Violation::new(format!(
            "an accepted redeem made {} PointsRedeemed events",
            redeemed.len()
        )));
    };
    let drawn = redeemed
        .draws
        .iter()
        .try_fold(0_i64, |sum, draw| sum.checked_add(draw.points.get()));
    if redeemed.points != asked || drawn != Some(asked.get()) {
        return Err(Violation::new(format!(
            "a redeem of {} recorded {} points and drew {drawn:?}",
            asked.get(),
            redeemed.points.get()
        )));
    }
    Ok(())
}

/// The member's invariants, recomputed from its lots.
fn check_member(member: &Member, clock_us: i64) -> Result<(), Violation> {
    let mut available = 0_i64;
    let mut pending = 0_i64;
    for lot in member.lots() {
        let remaining = lot.remaining().get();
        if remaining <= 0 {
            return Err(Violation::new(format!(
                "lot {} is open with {remaining} points",
                lot.lot_id()
            )));
        }
        if remaining > lot.lot().points.get() {
            return Err(Violation::new(format!(
                "lot {} holds {remaining} points, more than the {} it was created with",
                lot.lot_id(),
                lot.lot().points.get()
            )));
        }
        if lot.lot_id() >= member.next_lot_id() {
            return Err(Violation::new(format!(
                "lot {} is at or beyond the next lot id",
                lot.lot_id()
            )));
        }
        let sum = if lot.is_pending() {
            &mut pending
        } else {
            &mut available
        };
        *sum = sum
            .checked_add(remaining)
            .ok_or_else(|| Violation::new("the open lots' points overflow i64"))?;
    }
    let debt = member.debt_points().get();
    if debt < 0 {
        return Err(Violation::new(format!("debt is negative: {debt}")));
    }
    if available.checked_sub(debt) != Some(member.balance_points().get()) {
        return Err(Violation::new(format!(
            "balance {} is not open available lots {available} - debt {debt}",
            member.balance_points().get()
        )));
    }
    if pending != member.pending_points().get() {
        return Err(Violation::new(format!(
            "pending {} is not the open pending lots' {pending}",
            member.pending_points().get()
        )));
    }
    if member.clock_us() != clock_us {
        return Err(Violation::new(format!(
            "the member's clock is {}, not the latest business time {clock_us}",
            member.clock_us()
        )));
    }
    Ok(())
}

/// An event survives its record form: encoded into an `EventRecord` and
/// decoded, it is the same event.
fn round_trip(event: &Event) -> Result<(), Violation> {
    let record = pb::EventRecord {
        occurred_at_us: event.occurred_at_us,
        event: Some((&event.kind).into()),
        ..pb::EventRecord::default()
    };
    match event_from_record(&record) {
        Ok(decoded) if decoded == *event => Ok(()),
        Ok(decoded) => Err(Violation::new(format!(
            "an event changes through its record form:\n decided {event:?}\n decoded {decoded:?}"
        ))),
        Err(error) => Err(Violation::new(format!(
            "a decided event does not decode from its record form: {error}\n{event:?}"
        ))),
    }
}

/// The decision again on a copy of `state` holding a window of zero to two
/// lots of each order (by its open lot count), the others kept as rows are
/// and read back one at a time: the same answer, and with every lot given
/// back, the member the events give.
fn check_paged(
    state: &Member,
    command: &Command,
    rules: &Rules,
    now_us: i64,
    decided: &Result<Vec<Event>, DomainError>,
) -> Result<(), Violation> {
    let mut paged = state.clone();
    let keep = usize::try_from(state.open_lot_count() % 3).unwrap_or(0);
    let kept = KeptLots::take_from(&mut paged, keep);
    let mut expected = state.clone();
    match (
        decided,
        decide_in_place_paged(&mut paged, &kept, command, rules, now_us, 1).decided,
    ) {
        (Ok(events), Ok(paged_events)) if *events == paged_events => {
            for event in events {
                apply(&mut expected, event);
            }
        }
        (Err(error), Err(InPlaceError::Rejected(paged_error))) if *error == paged_error => {}
        (decided, paged) => {
            return Err(Violation::new(format!(
                "decided holding {keep} lots: {paged:?}, holding every lot: {decided:?}"
            )));
        }
    }
    kept.give_back(&mut paged);
    if paged != expected {
        return Err(Violation::new(format!(
            "decided holding {keep} lots, the member is not what the events give:\n paged {paged:?}\n expected {expected:?}"
        )));
    }
    Ok(())
}

/// `decide_in_place` on a copy of `state` must agree with `decided`, the
/// pure decision.
fn check_in_place(
    state: &Member,
    command: &Command,
    rules: &Rules,
    now_us: i64,
    decided: &Result<Vec<Event>, DomainError>,
) -> Result<(), Violation> {
    let mut in_place = state.clone();
    let mut expected = state.clone();
    match (
        decided,
        decide_in_place(&mut in_place, command, rules, now_us),
    ) {
        (Ok(events), Ok(in_place_events)) => {
            if *events != in_place_events {
                return Err(Violation::new(format!(
                    "decided in place: {in_place_events:?}, pure: {events:?}"
                )));
            }
            for event in events {
                apply(&mut expected, event);
            }
        }
        (Err(error), Err(InPlaceError::Rejected(in_place_error))) if *error == in_place_error => {}
        (decided, in_place) => {
            return Err(Violation::new(format!(
                "decided in place: {in_place:?}, pure: {decided:?}"
            )));
        }
    }
    if in_place != expected {
        return Err(Violation::new(format!(
            "decided in place, the member is not what the events give:\n in place {in_place:?}\n expected {expected:?}"
        )));
    }
    Ok(())
}
