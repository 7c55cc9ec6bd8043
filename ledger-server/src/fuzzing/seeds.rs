//! The seed corpus of every target, built from named values rather than
//! written by hand: `fuzz/corpus/<target>/seed-<name>`. The smoke test
//! checks that the files checked in are exactly these (and rewrites them
//! when asked, see `tests/fuzz_smoke.rs`); inputs kept from crashes live
//! beside them as `crash-<what>` files, which nothing regenerates.
//!
//! - `record`: a valid record of every event kind, as the domain decided
//!   them in the scenarios below, and records spoiled in each way the
//!   decoder refuses;
//! - `requests`: a valid message of every request type, and messages
//!   spoiled field by field;
//! - `domain`: scenarios that reach every command, every rule of the
//!   program and every kind of time-driven work, and some refused ones.

// Amounts of money are written major_minor (`12_50` is 12.50).
#![allow(clippy::inconsistent_digit_grouping)]

use super::Violation;
use super::domain::{self, DAY_US, MemberCommand, START_US, Scenario, Step};
use super::requests;
use crate::ledger::timestamp;
use crate::pb;
use crate::pb::batch_command::Command as C;
use ledger_core::domain::{
    Campaign, Event, EventKind, LotExpiry, LotExpiryRule, ProgramRules, Rounding, ShortfallPolicy,
    Tier, TierMeasure,
};
use ledger_core::limits::POINTS_PER_COMMAND_MAX;
use prost::Message;
use std::collections::{BTreeMap, HashMap};

/// The fuzz targets, by name (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: [&str; 3] = ["record", "requests", "domain"];

/// One seed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Its target, one of [`TARGETS`].
    pub target: &'static str,
    /// Its file name in `fuzz/corpus/<target>/`.
    pub file_name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Result<Vec<Seed>, Violation> {
    let mut seeds = Vec::new();
    let scenarios = scenarios();
    for (name, scenario) in &scenarios {
        seeds.push(seed("domain", name, scenario.encode()));
    }
    for (name, bytes) in records(&scenarios)? {
        seeds.push(seed("record", &name, bytes));
    }
    for (name, bytes) in request_inputs() {
        seeds.push(seed("requests", &name, bytes));
    }
    Ok(seeds)
}

fn seed(target: &'static str, name: &str, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        file_name: format!("seed-{name}"),
        bytes,
    }
}

// ---------------------------------------------------------------------------
// domain

/// The domain target's seed scenarios, by name.
pub fn scenarios() -> Vec<(&'static str, Scenario)> {
    let tiers = tiered_rules();
    let mut expiring = usd();
    expiring.lot_expiry = Some(LotExpiry {
        rule: Some(LotExpiryRule::AfterDays(30)),
    });
    let mut month_end = usd();
    month_end.lot_expiry = Some(LotExpiry {
        rule: Some(LotExpiryRule::AfterMonthsEnd(6)),
    });
    let mut inactive = usd();
    inactive.inactivity_expiry_days = 90;
    let mut pending = usd();
    pending.pending_days = 14;
    pending.bonus_points_pending = true;
    let mut debt = usd();
    debt.return_policy = ShortfallPolicy::Debt;
    let mut calendar = tiered_rules();
    calendar.tier_window_days = 0;
    calendar.tier_measure = TierMeasure::Spend;
    calendar.tier_soft_landing = false;
    let mut jpy = usd();
    jpy.currency = "JPY".into();
    jpy.earn_rate_bps = 500;
    jpy.rounding = Rounding::HalfUp;
    let mut kwd = usd();
    kwd.currency = "KWD".into();
    kwd.rounding = Rounding::Ceiling;
    kwd.earn_rate_bps = 15_000;
    let mut minimum = usd();
    minimum.min_redeem_points = 500;
    let mut rich = usd();
    rich.earn_rate_bps = 10_000_000;
    let mut offset = usd();
    offset.utc_offset_minutes = 540;
    offset.rfm_window_days = 90;
    vec![
        (
            "earn-redeem-cancel-return",
            scenario(
                usd(),
                vec![
                    enroll(0),
                    purchase(0, "o-1", 50_00),
                    award(0, 100),
                    days(1),
                    redeem(0, "o-1", 30),
                    cancel(0, "o-1"),
                    ret(0, "o-1", 20_00),
                    adjust(0, -10),
                    adjust(0, 25),
                ],
            ),
        ),
        (
            "tiers-rolling-window",
            scenario(
                tiers,
                vec![
                    purchase(0, "o-1", 120_00),
                    purchase(0, "o-2", 250_00),
                    days(31),
                    system(0, 3),
                    days(31),
                    purchase(0, "o-3", 10_00),
                    system(0, 3),
                    ret(0, "o-3", 10_00),
                ],
            ),
        ),
        (
            "tiers-calendar-year-spend",
            scenario(
                calendar,
                vec![
                    purchase(0, "o-1", 500_00),
                    days(200),
                    purchase(0, "o-2", 20_000_00),
                    days(200),
                    system(0, 3),
                    ret(0, "o-2", 19_000_00),
                ],
            ),
        ),
        (
            "lot-expiry-days",
            scenario(
                expiring,
                vec![
                    purchase(0, "o-1", 40_00),
                    days(10),
                    award(0, 5),
                    days(21),
                    system(0, 1),
                    redeem(0, "o-1", 40),
                    days(30),
                    redeem(0, "o-2", 1),
                ],
            ),
        ),
        (
            "lot-expiry-months-end",
            scenario(
                month_end,
                vec![
                    purchase(0, "o-1", 40_00),
                    days(190),
                    system(0, 1),
                    purchase(0, "o-2", 10_00),
                ],
            ),
        ),
        (
            "inactivity-expiry",
            scenario(
                inactive,
                vec![
                    purchase(0, "o-1", 70_00),
                    redeem(0, "o-1", 20),
                    days(91),
                    system(0, 2),
                    cancel(0, "o-1"),
                    purchase(0, "o-2", 5_00),
                ],
            ),
        ),
        (
            "pending-then-mature",
            scenario(
                pending,
                vec![
                    purchase(0, "o-1", 80_00),
                    award(0, 10),
                    redeem(0, "o-1", 5),
                    days(15),
                    system(0, 0),
                    redeem(0, "o-2", 50),
                    ret(0, "o-1", 80_00),
                ],
            ),
        ),
        (
            "return-into-debt",
            scenario(
                debt.clone(),
                vec![
                    purchase(0, "o-1", 100_00),
                    redeem(0, "o-1", 100),
                    ret(0, "o-1", 60_00),
                    purchase(0, "o-2", 30_00),
                    award(0, 40),
                    adjust(0, 5),
                ],
            ),
        ),
        (
            "return-forfeit",
            scenario(
                usd(),
                vec![
                    purchase(0, "o-1", 100_00),
                    redeem(0, "o-1", 90),
                    ret(0, "o-1", 100_00),
                    ret(0, "o-1", 1),
                ],
            ),
        ),
        (
            "transfer",
            scenario(
                expiring_rules(),
                vec![
                    purchase(0, "o-1", 60_00),
                    enroll(1),
                    days(3),
                    purchase(0, "o-2", 20_00),
                    transfer(0, "t-1", 70),
                    redeem(1, "o-1", 10),
                    transfer(1, "t-2", 1_000),
                    days(40),
                    system(1, 1),
                ],
            ),
        ),
        (
            "transfer-pays-debt",
            scenario(
                debt,
                vec![
                    purchase(1, "o-1", 50_00),
                    redeem(1, "o-1", 50),
                    ret(1, "o-1", 50_00),
                    purchase(0, "o-1", 90_00),
                    transfer(0, "t-1", 80),
                ],
            ),
        ),
        (
            "campaigns",
            scenario(
                campaign_rules(),
                vec![
                    purchase(0, "o-1", 30_00),
                    purchase_tagged(0, "o-2", 60_00, &["coffee"]),
                    days(8),
                    purchase_tagged(0, "o-3", 60_00, &["coffee", "app"]),
                    ret(0, "o-3", 30_00),
                ],
            ),
        ),
        (
            "rules-change",
            scenario(
                usd(),
                vec![
                    purchase(0, "o-1", 10_00),
                    Step::ChangeRules(tiered_rules()),
                    purchase(0, "o-2", 200_00),
                    Step::ChangeRules(jpy.clone()),
                    Step::ChangeRules(expiring_rules()),
                    days(31),
                    system(0, 1),
                    Step::ChangeRules(ProgramRules {
                        rounding: Rounding::Unspecified,
                        ..usd()
                    }),
                ],
            ),
        ),
        (
            "bad-input",
            scenario(
                usd(),
                vec![
                    purchase(0, "o-2", 10_00),
                    purchase(0, "", 10_00),
                    purchase_in(0, "o-1", 10_00, "EUR"),
                    purchase_in(0, "o-1", 10_00, "XXZ"),
                    purchase(0, "o-1", 0),
                    award(0, 0),
                    adjust(0, 0),
                    redeem(0, "o-1", -5),
                    member(
                        0,
                        MemberCommand::Award {
                            reason: "r".repeat(300),
                            points: 1,
                        },
                    ),
                    transfer(0, "t-1", 0),
                    ret_in(0, "o-1", 1_00, "JPY"),
                ],
            ),
        ),
        (
            "duplicates-and-unknowns",
            scenario(
                usd(),
                vec![
                    redeem(0, "o-1", 1),
                    enroll(0),
                    enroll(0),
                    purchase(0, "o-1", 10_00),
                    purchase(0, "o-1", 10_00),
                    ret(0, "o-2", 1_00),
                    ret(0, "o-1", 11_00),
                    cancel(0, "o-3"),
                    redeem(0, "o-3", 5),
                    redeem(0, "o-3", 5),
                    cancel(0, "o-3"),
                    cancel(0, "o-3"),
                    transfer(1, "t-1", 1),
                ],
            ),
        ),
        (
            "clock-backwards-and-edges",
            scenario(
                inactive_rules(),
                vec![
                    purchase(0, "o-1", 10_00),
                    Step::Advance { delta_us: -DAY_US },
                    purchase(0, "o-2", 10_00),
                    Step::Advance {
                        delta_us: 253_402_300_799_999_999 - START_US,
                    },
                    award(0, 1),
                    Step::Advance { delta_us: 1 },
                    award(0, 1),
                    Step::Advance { delta_us: i64::MIN },
                    award(0, 1),
                ],
            ),
        ),
        (
            "large-points",
            scenario(
                rich,
                vec![
                    award(0, POINTS_PER_COMMAND_MAX),
                    award(0, POINTS_PER_COMMAND_MAX),
                    purchase(0, "o-1", 1_000_000_000_000_000),
                    purchase(0, "o-2", 99_999_999),
                    adjust(0, -POINTS_PER_COMMAND_MAX),
                    redeem(0, "o-1", POINTS_PER_COMMAND_MAX),
                    transfer(0, "t-1", POINTS_PER_COMMAND_MAX),
                ],
            ),
        ),
        (
            "jpy-half-up",
            scenario(
                jpy,
                vec![
                    purchase_in(0, "o-1", 1_299, "JPY"),
                    purchase_in(0, "o-2", 100, "JPY"),
                    ret_in(0, "o-1", 650, "JPY"),
                ],
            ),
        ),
        (
            "kwd-ceiling",
            scenario(
                kwd,
                vec![
                    purchase_in(0, "o-1", 1_001, "KWD"),
                    ret_in(0, "o-1", 1, "KWD"),
                ],
            ),
        ),
        (
            "min-redeem",
            scenario(
                minimum,
                vec![award(0, 600), redeem(0, "o-1", 100), redeem(0, "o-2", 500)],
            ),
        ),
        (
            "utc-offset",
            scenario(
                offset,
                vec![
                    Step::Advance {
                        delta_us: DAY_US - 3_600_000_000,
                    },
                    purchase(0, "o-1", 10_00),
                ],
            ),
        ),
        (
            "rules-refused-rounding",
            scenario(
                ProgramRules {
                    rounding: Rounding::Unspecified,
                    ..usd()
                },
                vec![],
            ),
        ),
        (
            "rules-refused-tiers",
            scenario(
                ProgramRules {
                    tiers: vec![tier("base", 10, 10_000), tier("base", 20, 10_000)],
                    ..usd()
                },
                vec![],
            ),
        ),
        (
            "rules-refused-campaign",
            scenario(
                ProgramRules {
                    campaigns: vec![Campaign {
                        ends_at_us: START_US,
                        ..double_points()
                    }],
                    ..usd()
                },
                vec![],
            ),
        ),
        (
            "rules-refused-currency",
            scenario(
                ProgramRules {
                    currency: "usd".into(),
                    ..usd()
                },
                vec![],
            ),
        ),
    ]
}

fn usd() -> ProgramRules {
    ProgramRules {
        name: "Coffee Club".into(),
        ..ProgramRules::basic("USD")
    }
}

fn tier(name: &str, threshold: i64, earn_multiplier_bps: i64) -> Tier {
    Tier {
        name: name.into(),
        threshold,
        earn_multiplier_bps,
    }
}

fn tiered_rules() -> ProgramRules {
    ProgramRules {
        tiers: vec![
            tier("base", 0, 10_000),
            tier("silver", 100, 15_000),
            tier("gold", 300, 20_000),
        ],
        tier_measure: TierMeasure::QualifyingPoints,
        tier_window_days: 30,
        tier_soft_landing: true,
        ..usd()
    }
}

fn expiring_rules() -> ProgramRules {
    ProgramRules {
        lot_expiry: Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(30)),
        }),
        ..usd()
    }
}

fn inactive_rules() -> ProgramRules {
    ProgramRules {
        inactivity_expiry_days: 90,
        ..usd()
    }
}

fn double_points() -> Campaign {
    Campaign {
        campaign_id: "double".into(),
        starts_at_us: START_US,
        ends_at_us: START_US + 7 * DAY_US,
        multiplier_bps: 20_000,
        bonus_points: 0,
        tiers: vec![],
        tags: vec![],
        min_spend_minor_units: 0,
        stackable: true,
    }
}

fn campaign_rules() -> ProgramRules {
    ProgramRules {
        campaigns: vec![
            double_points(),
            Campaign {
                campaign_id: "bonus".into(),
                multiplier_bps: 0,
                bonus_points: 50,
                tags: vec!["coffee".into()],
                min_spend_minor_units: 50_00,
                ends_at_us: START_US + 30 * DAY_US,
                ..double_points()
            },
            Campaign {
                campaign_id: "weekend".into(),
                multiplier_bps: 30_000,
                tiers: vec!["silver".into()],
                stackable: false,
                ..double_points()
            },
        ],
        ..tiered_rules()
    }
}

fn scenario(rules: ProgramRules, steps: Vec<Step>) -> Scenario {
    Scenario { rules, steps }
}

fn member(member: u8, command: MemberCommand) -> Step {
    Step::Member { member, command }
}

fn days(count: i64) -> Step {
    Step::Advance {
        delta_us: count * DAY_US,
    }
}

fn enroll(who: u8) -> Step {
    member(who, MemberCommand::Enroll)
}

fn purchase(who: u8, order_id: &str, minor_units: i64) -> Step {
    purchase_in(who, order_id, minor_units, "")
}

fn purchase_in(who: u8, order_id: &str, minor_units: i64, currency: &str) -> Step {
    member(
        who,
        MemberCommand::Purchase {
            order_id: order_id.into(),
            minor_units,
            currency: currency.into(),
            tags: vec![],
        },
    )
}

fn purchase_tagged(who: u8, order_id: &str, minor_units: i64, tags: &[&str]) -> Step {
    member(
        who,
        MemberCommand::Purchase {
            order_id: order_id.into(),
            minor_units,
            currency: String::new(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        },
    )
}

fn award(who: u8, points: i64) -> Step {
    member(
        who,
        MemberCommand::Award {
            reason: "goodwill".into(),
            points,
        },
    )
}

fn redeem(who: u8, redemption_id: &str, points: i64) -> Step {
    member(
        who,
        MemberCommand::Redeem {
            redemption_id: redemption_id.into(),
            points,
        },
    )
}

fn cancel(who: u8, redemption_id: &str) -> Step {
    member(
        who,
        MemberCommand::Cancel {
            redemption_id: redemption_id.into(),
        },
    )
}

fn ret(who: u8, order_id: &str, minor_units: i64) -> Step {
    ret_in(who, order_id, minor_units, "")
}

fn ret_in(who: u8, order_id: &str, minor_units: i64, currency: &str) -> Step {
    member(
        who,
        MemberCommand::Return {
            order_id: order_id.into(),
            minor_units,
            currency: currency.into(),
        },
    )
}

fn adjust(who: u8, points: i64) -> Step {
    member(
        who,
        MemberCommand::Adjust {
            reason: "correction".into(),
            points,
        },
    )
}

fn system(who: u8, index: u8) -> Step {
    member(who, MemberCommand::System(index))
}

fn transfer(from: u8, transfer_id: &str, points: i64) -> Step {
    Step::Transfer {
        from,
        transfer_id: transfer_id.into(),
        points,
    }
}

// ---------------------------------------------------------------------------
// record

/// Records of at most this many events of each kind are kept as seeds.
const RECORDS_PER_KIND: usize = 2;

/// The record target's seeds: the scenarios' events as stored records (a
/// few of each kind), then spoiled records.
fn records(scenarios: &[(&str, Scenario)]) -> Result<Vec<(String, Vec<u8>)>, Violation> {
    let mut by_kind: BTreeMap<&'static str, Vec<pb_record::EventRecord>> = BTreeMap::new();
    let mut position = 0u64;
    for (_, scenario) in scenarios {
        for (stream, events) in domain::streams(scenario)? {
            for (index, event) in events.iter().enumerate() {
                position += 1;
                let kept = by_kind.entry(kind_name(event)).or_default();
                if kept.len() < RECORDS_PER_KIND {
                    let version = u64::try_from(index).unwrap_or(0) + 1;
                    kept.push(stored(position, &stream, version, event));
                }
            }
        }
    }
    let mut seeds = Vec::new();
    for (kind, records) in &by_kind {
        for (index, record) in records.iter().enumerate() {
            seeds.push((format!("{kind}-{index}"), record.encode_to_vec()));
        }
    }
    let Some(earned) = by_kind.get("points_earned").and_then(|kept| kept.first()) else {
        return Err(Violation::new("no scenario earned points"));
    };
    for (name, spoil) in record_spoils() {
        let mut record = earned.clone();
        spoil(&mut record);
        seeds.push((format!("bad-{name}"), record.encode_to_vec()));
    }
    let bytes = earned.encode_to_vec();
    let half = bytes.get(..bytes.len() / 2).unwrap_or_default().to_vec();
    seeds.push(("bad-truncated".to_owned(), half));
    seeds.push(("bad-not-protobuf".to_owned(), vec![0xff; 12]));
    Ok(seeds)
}

use ledger_core::pb as pb_record;

type RecordSpoil = fn(&mut pb_record::EventRecord);

fn record_spoils() -> Vec<(&'static str, RecordSpoil)> {
    use pb_record::event::Kind;
    vec![
        ("no-event", |r| r.event = None),
        ("no-kind", |r| {
            r.event = Some(pb_record::Event { kind: None })
        }),
        ("unknown-currency", |r| {
            if let Some(Kind::PointsEarned(earned)) = r.event.as_mut().and_then(|e| e.kind.as_mut())
                && let Some(spend) = earned.spend.as_mut()
            {
                spend.currency = "ZZZ".into();
            }
        }),
        ("no-lot", |r| {
            if let Some(Kind::PointsEarned(earned)) = r.event.as_mut().and_then(|e| e.kind.as_mut())
            {
                earned.lot = None;
            }
        }),
        ("unknown-enum", |r| {
            r.event = Some(pb_record::Event {
                kind: Some(Kind::TierChanged(pb_record::TierChanged {
                    from_tier: "base".into(),
                    to_tier: "gold".into(),
                    reason: 99,
                    qualifying: 1,
                })),
            });
        }),
        ("invalid-member-id", |r| {
            r.event = Some(pb_record::Event {
                kind: Some(Kind::PointsTransferred(pb_record::PointsTransferred {
                    transfer_id: "t-1".into(),
                    from_member_id: "ann".into(),
                    to_member_id: "not a member id".into(),
                    points: 1,
                    ..Default::default()
                })),
            });
        }),
        ("rules-do-not-validate", |r| {
            let mut rules = pb_record::ProgramRules::from(&ProgramRules::basic("USD"));
            rules.rounding = 0;
            r.event = Some(pb_record::Event {
                kind: Some(Kind::ProgramDefined(pb_record::ProgramDefined {
                    rules: Some(rules),
                })),
            });
        }),
        ("unspecified-shortfall", |r| {
            r.event = Some(pb_record::Event {
                kind: Some(Kind::EarnReversed(pb_record::EarnReversed {
                    order_id: "o-1".into(),
                    refund: Some(pb_record::Money {
                        minor_units: 1,
                        currency: "USD".into(),
                    }),
                    ..Default::default()
                })),
            });
        }),
    ]
}

fn stored(position: u64, stream: &str, version: u64, event: &Event) -> pb_record::EventRecord {
    let stream = match stream {
        "program" => "program/coffee".to_owned(),
        member => format!("member/coffee/{member}"),
    };
    pb_record::EventRecord {
        position,
        stream,
        stream_version: version,
        program_id: "coffee".into(),
        occurred_at_us: event.occurred_at_us,
        recorded_at_us: event.occurred_at_us.saturating_add(1_000),
        idempotency_key: format!("key-{position}"),
        principal: "checkout".into(),
        metadata: vec![pb_record::MetadataEntry {
            key: "channel".into(),
            value: "app".into(),
        }],
        command_event_index: 0,
        command_event_count: 1,
        request_hash: vec![7; 32],
        event: Some((&event.kind).into()),
    }
}

fn kind_name(event: &Event) -> &'static str {
    match event.kind {
        EventKind::ProgramDefined(_) => "program_defined",
        EventKind::ProgramRulesChanged(_) => "program_rules_changed",
        EventKind::MemberEnrolled(_) => "member_enrolled",
        EventKind::PointsEarned(_) => "points_earned",
        EventKind::PointsAwarded(_) => "points_awarded",
        EventKind::PointsRedeemed(_) => "points_redeemed",
        EventKind::RedemptionCancelled(_) => "redemption_cancelled",
        EventKind::EarnReversed(_) => "earn_reversed",
        EventKind::PointsAdjusted(_) => "points_adjusted",
        EventKind::PointsTransferred(_) => "points_transferred",
        EventKind::PointsMatured(_) => "points_matured",
        EventKind::PointsExpired(_) => "points_expired",
        EventKind::TierChanged(_) => "tier_changed",
    }
}

// ---------------------------------------------------------------------------
// requests

/// 2024-01-01T00:00:00Z.
const OCCURRED_AT_US: i64 = START_US;

fn metadata() -> HashMap<String, String> {
    HashMap::from([("channel".to_owned(), "app".to_owned())])
}

fn money(minor_units: i64, currency: &str) -> Option<pb_record::Money> {
    Some(pb_record::Money {
        minor_units,
        currency: currency.into(),
    })
}

/// A valid command request of each type, with the fields they share set
/// the same way.
macro_rules! command_request {
    ($message:ident { $($field:ident: $value:expr),* $(,)? }) => {
        pb::$message {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            idempotency_key: "key-1".into(),
            occurred_at: Some(timestamp(OCCURRED_AT_US)),
            expected_version: Some(3),
            metadata: metadata(),
            dry_run: false,
            $($field: $value,)*
        }
    };
}

fn enroll_request() -> pb::EnrollRequest {
    command_request!(EnrollRequest {})
}

fn purchase_request() -> pb::RecordPurchaseRequest {
    command_request!(RecordPurchaseRequest {
        order_id: "o-1".into(),
        spend: money(12_50, "USD"),
        tags: vec!["coffee".into()],
    })
}

fn award_request() -> pb::AwardPointsRequest {
    command_request!(AwardPointsRequest {
        reason: "birthday".into(),
        points: 100,
    })
}

fn redeem_request() -> pb::RedeemRequest {
    command_request!(RedeemRequest {
        redemption_id: "r-1".into(),
        points: 50,
    })
}

fn cancel_request() -> pb::CancelRedemptionRequest {
    command_request!(CancelRedemptionRequest {
        redemption_id: "r-1".into(),
    })
}

fn refund_request() -> pb::RecordReturnRequest {
    command_request!(RecordReturnRequest {
        order_id: "o-1".into(),
        refund: money(5_00, "USD"),
    })
}

fn adjust_request() -> pb::AdjustPointsRequest {
    command_request!(AdjustPointsRequest {
        reason: "correction".into(),
        points: -20,
    })
}

fn transfer_request() -> pb::TransferPointsRequest {
    command_request!(TransferPointsRequest {
        to_member_id: "bob".into(),
        points: 10,
        transfer_id: "t-1".into(),
    })
}

fn program_rules() -> Option<pb_record::ProgramRules> {
    Some(pb_record::ProgramRules::from(&campaign_rules()))
}

/// The requests target's seeds.
fn request_inputs() -> Vec<(String, Vec<u8>)> {
    let mut inputs = Vec::new();
    let mut add = |label: &str, name: &str, message: &dyn Fn() -> Option<Vec<u8>>| {
        if let Some(bytes) = message() {
            let short = name.strip_suffix("Request").unwrap_or(name);
            inputs.push((format!("{short}-{label}"), bytes));
        }
    };
    macro_rules! seed {
        ($label:expr, $name:literal, $message:expr) => {
            add($label, $name, &|| requests::input($name, &$message))
        };
    }
    // Commands: valid, then the shared fields spoiled (on Enroll), then
    // each command's own fields.
    seed!("valid", "EnrollRequest", enroll_request());
    seed!(
        "bad-program-id",
        "EnrollRequest",
        pb::EnrollRequest {
            program_id: "no spaces".into(),
            ..enroll_request()
        }
    );
    seed!(
        "bad-member-id",
        "EnrollRequest",
        pb::EnrollRequest {
            member_id: String::new(),
            ..enroll_request()
        }
    );
    seed!(
        "bad-idempotency-key",
        "EnrollRequest",
        pb::EnrollRequest {
            idempotency_key: "k".repeat(129),
            ..enroll_request()
        }
    );
    seed!(
        "no-occurred-at",
        "EnrollRequest",
        pb::EnrollRequest {
            occurred_at: None,
            ..enroll_request()
        }
    );
    seed!(
        "bad-nanos",
        "EnrollRequest",
        pb::EnrollRequest {
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: -1
            }),
            ..enroll_request()
        }
    );
    seed!(
        "empty-metadata-key",
        "EnrollRequest",
        pb::EnrollRequest {
            metadata: HashMap::from([(String::new(), "x".to_owned())]),
            ..enroll_request()
        }
    );
    // Entries appended in key order: a HashMap of 17 would encode in
    // another order on every run.
    add("too-much-metadata", "EnrollRequest", &|| {
        let mut bytes = requests::input(
            "EnrollRequest",
            &pb::EnrollRequest {
                metadata: HashMap::new(),
                ..enroll_request()
            },
        )?;
        for index in 0..17 {
            let entry = pb_record::MetadataEntry {
                key: format!("k{index:02}"),
                value: "v".into(),
            };
            prost::encoding::message::encode(6, &entry, &mut bytes);
        }
        Some(bytes)
    });
    seed!("valid", "RecordPurchaseRequest", purchase_request());
    seed!(
        "no-spend",
        "RecordPurchaseRequest",
        pb::RecordPurchaseRequest {
            spend: None,
            ..purchase_request()
        }
    );
    seed!(
        "wrong-currency",
        "RecordPurchaseRequest",
        pb::RecordPurchaseRequest {
            spend: money(12_50, "EUR"),
            ..purchase_request()
        }
    );
    seed!(
        "too-many-tags",
        "RecordPurchaseRequest",
        pb::RecordPurchaseRequest {
            tags: (0..17).map(|i| format!("t{i}")).collect(),
            ..purchase_request()
        }
    );
    seed!("valid", "AwardPointsRequest", award_request());
    seed!(
        "too-many-points",
        "AwardPointsRequest",
        pb::AwardPointsRequest {
            points: POINTS_PER_COMMAND_MAX + 1,
            ..award_request()
        }
    );
    seed!("valid", "RedeemRequest", redeem_request());
    seed!(
        "no-redemption-id",
        "RedeemRequest",
        pb::RedeemRequest {
            redemption_id: String::new(),
            ..redeem_request()
        }
    );
    seed!("valid", "CancelRedemptionRequest", cancel_request());
    seed!("valid", "RecordReturnRequest", refund_request());
    seed!(
        "negative-refund",
        "RecordReturnRequest",
        pb::RecordReturnRequest {
            refund: money(-1, "USD"),
            ..refund_request()
        }
    );
    seed!("valid", "AdjustPointsRequest", adjust_request());
    seed!(
        "zero",
        "AdjustPointsRequest",
        pb::AdjustPointsRequest {
            points: 0,
            ..adjust_request()
        }
    );
    seed!("valid", "TransferPointsRequest", transfer_request());
    seed!(
        "to-self",
        "TransferPointsRequest",
        pb::TransferPointsRequest {
            to_member_id: "ann".into(),
            ..transfer_request()
        }
    );
    seed!(
        "valid",
        "SubmitBatchRequest",
        pb::SubmitBatchRequest {
            commands: vec![
                pb::BatchCommand {
                    command: Some(C::Enroll(enroll_request()))
                },
                pb::BatchCommand {
                    command: Some(C::RecordPurchase(purchase_request()))
                },
                pb::BatchCommand {
                    command: Some(C::AwardPoints(award_request()))
                },
                pb::BatchCommand {
                    command: Some(C::Redeem(redeem_request()))
                },
                pb::BatchCommand {
                    command: Some(C::CancelRedemption(cancel_request()))
                },
                pb::BatchCommand {
                    command: Some(C::RecordReturn(refund_request()))
                },
                pb::BatchCommand {
                    command: Some(C::AdjustPoints(adjust_request()))
                },
                pb::BatchCommand {
                    command: Some(C::TransferPoints(transfer_request()))
                },
            ],
        }
    );
    seed!(
        "mixed",
        "SubmitBatchRequest",
        pb::SubmitBatchRequest {
            commands: vec![
                pb::BatchCommand { command: None },
                pb::BatchCommand {
                    command: Some(C::Redeem(pb::RedeemRequest {
                        points: 0,
                        ..redeem_request()
                    }))
                },
                pb::BatchCommand {
                    command: Some(C::Enroll(enroll_request()))
                },
            ],
        }
    );
    // Queries.
    seed!(
        "valid",
        "GetBalanceRequest",
        pb::GetBalanceRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 7,
        }
    );
    seed!(
        "valid",
        "GetMemberRequest",
        pb::GetMemberRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 0,
            as_of: Some(timestamp(OCCURRED_AT_US)),
        }
    );
    seed!(
        "before-1970",
        "GetMemberRequest",
        pb::GetMemberRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 0,
            as_of: Some(timestamp(-1)),
        }
    );
    seed!(
        "valid",
        "ListLotsRequest",
        pb::ListLotsRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 0,
            include_closed: true,
        }
    );
    seed!(
        "valid",
        "GetStatementRequest",
        pb::GetStatementRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 0,
            page_size: 20,
            page_token: "7fffffffffffffff0000000000000009".into(),
        }
    );
    seed!(
        "bad-token",
        "GetStatementRequest",
        pb::GetStatementRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 0,
            page_size: 20,
            page_token: "not-a-token".into(),
        }
    );
    seed!(
        "valid",
        "GetBalanceAsOfRequest",
        pb::GetBalanceAsOfRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 0,
            as_of: Some(timestamp(OCCURRED_AT_US)),
        }
    );
    seed!(
        "no-as-of",
        "GetBalanceAsOfRequest",
        pb::GetBalanceAsOfRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            min_position: 0,
            as_of: None,
        }
    );
    // Reports.
    seed!(
        "valid",
        "GetTierDistributionRequest",
        pb::GetTierDistributionRequest {
            program_id: "coffee".into(),
            min_position: 0,
        }
    );
    seed!(
        "valid",
        "GetRfmRequest",
        pb::GetRfmRequest {
            program_id: "coffee".into(),
            member_id: "ann".into(),
            as_of: Some(timestamp(OCCURRED_AT_US)),
            min_position: 0,
        }
    );
    seed!(
        "valid",
        "GetSegmentSizesRequest",
        pb::GetSegmentSizesRequest {
            program_id: "coffee".into(),
            as_of: None,
            min_position: 0,
        }
    );
    seed!(
        "valid",
        "ListSegmentMembersRequest",
        pb::ListSegmentMembersRequest {
            program_id: "coffee".into(),
            segment: "champions".into(),
            as_of: None,
            page_size: 50,
            page_token: "616e6e".into(),
            min_position: 0,
        }
    );
    seed!(
        "bad-segment",
        "ListSegmentMembersRequest",
        pb::ListSegmentMembersRequest {
            program_id: "coffee".into(),
            segment: "whales".into(),
            as_of: None,
            page_size: 5_000,
            page_token: String::new(),
            min_position: 0,
        }
    );
    seed!(
        "valid",
        "GetLiabilityRequest",
        pb::GetLiabilityRequest {
            program_id: "coffee".into(),
            from_date: "2024-01-01".into(),
            to_date: "2024-03-31".into(),
            min_position: 0,
        }
    );
    seed!(
        "inverted",
        "GetLiabilityRequest",
        pb::GetLiabilityRequest {
            program_id: "coffee".into(),
            from_date: "2024-03-31".into(),
            to_date: "2024-02-30".into(),
            min_position: 0,
        }
    );
    seed!(
        "valid",
        "GetExpiringPointsRequest",
        pb::GetExpiringPointsRequest {
            program_id: "coffee".into(),
            as_of: None,
            within_days: 60,
            top: 5,
            min_position: 0,
        }
    );
    seed!(
        "too-far",
        "GetExpiringPointsRequest",
        pb::GetExpiringPointsRequest {
            program_id: "coffee".into(),
            as_of: None,
            within_days: 100_000,
            top: 5,
            min_position: 0,
        }
    );
    // Audit.
    seed!(
        "valid",
        "ReadAllRequest",
        pb::ReadAllRequest {
            from_position: 1,
            to_position: 100,
        }
    );
    seed!(
        "inverted",
        "ReadAllRequest",
        pb::ReadAllRequest {
            from_position: 9,
            to_position: 3,
        }
    );
    seed!(
        "valid",
        "ReadStreamRequest",
        pb::ReadStreamRequest {
            stream: "member/coffee/ann".into(),
            from_version: 1,
            max_count: 10,
        }
    );
    seed!(
        "bad-stream",
        "ReadStreamRequest",
        pb::ReadStreamRequest {
            stream: "member/coffee".into(),
            from_version: 1,
            max_count: 0,
        }
    );
    seed!(
        "valid",
        "SubscribeRequest",
        pb::SubscribeRequest { from_position: 1 }
    );
    seed!("valid", "GetHeadRequest", pb::GetHeadRequest {});
    seed!("valid", "VerifyRequest", pb::VerifyRequest {});
    // Admin.
    let define = || pb::DefineProgramRequest {
        program_id: "coffee".into(),
        idempotency_key: "define-1".into(),
        occurred_at: Some(timestamp(OCCURRED_AT_US)),
        expected_version: Some(0),
        metadata: metadata(),
        dry_run: true,
        rules: program_rules(),
    };
    seed!("valid", "DefineProgramRequest", define());
    seed!(
        "no-rules",
        "DefineProgramRequest",
        pb::DefineProgramRequest {
            rules: None,
            ..define()
        }
    );
    seed!(
        "bad-tier",
        "DefineProgramRequest",
        pb::DefineProgramRequest {
            rules: program_rules().map(|mut rules| {
                if let Some(tier) = rules.tiers.get_mut(1) {
                    tier.threshold = -1;
                }
                rules
            }),
            ..define()
        }
    );
    seed!(
        "unknown-rounding",
        "DefineProgramRequest",
        pb::DefineProgramRequest {
            rules: program_rules().map(|mut rules| {
                rules.rounding = 42;
                rules
            }),
            ..define()
        }
    );
    seed!(
        "valid",
        "ChangeRulesRequest",
        pb::ChangeRulesRequest {
            program_id: "coffee".into(),
            idempotency_key: "change-1".into(),
            occurred_at: Some(timestamp(OCCURRED_AT_US)),
            expected_version: None,
            metadata: HashMap::new(),
            dry_run: false,
            rules: Some(pb_record::ProgramRules::from(&expiring_rules())),
        }
    );
    seed!(
        "valid",
        "GetProgramRequest",
        pb::GetProgramRequest {
            program_id: "coffee".into(),
        }
    );
    seed!("valid", "ListProgramsRequest", pb::ListProgramsRequest {});
    seed!(
        "all",
        "GetProjectionStatusRequest",
        pb::GetProjectionStatusRequest {
            name: String::new(),
        }
    );
    seed!(
        "valid",
        "RebuildProjectionRequest",
        pb::RebuildProjectionRequest {
            name: "balance".into(),
        }
    );
    seed!(
        "unknown",
        "RebuildProjectionRequest",
        pb::RebuildProjectionRequest {
            name: "ledger".into(),
        }
    );
    inputs
}
