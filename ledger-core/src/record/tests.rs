//! Goal: the record form loses nothing and names the field of every bad
//! record.
//!
//! Method: proptest generates domain events of every kind and rules (valid
//! ones, for program events and `Rules`; arbitrary ones, for raw rules),
//! encodes them, goes through the protobuf bytes, decodes them and requires
//! the original back. Unit tests damage one field of an encoded event each
//! and check the error's field path and reason. Generators use the crate's
//! limit constants, so valid rules span the whole valid range.

use super::*;
use crate::domain::rules::ONE_X_BPS;
use crate::limits::{
    BUSINESS_TIME_US_MAX, EARN_RATE_BPS_MAX, INACTIVITY_EXPIRY_DAYS_MAX, LOT_EXPIRY_DAYS_MAX,
    LOT_EXPIRY_MONTHS_MAX, MEMBER_ID_BYTES_MAX, MULTIPLIER_BPS_MAX, PENDING_DAYS_MAX,
    POINT_VALUE_MINOR_UNITS_MAX, POINT_VALUE_PER_POINTS_MAX, POINTS_PER_COMMAND_MAX,
    PROGRAM_CAMPAIGNS_MAX, PROGRAM_TIERS_MAX, PURCHASE_TAGS_MAX, RFM_WINDOW_DAYS_MAX,
    SPEND_MINOR_UNITS_MAX, TIER_THRESHOLD_MAX, TIER_WINDOW_DAYS_MAX, UTC_OFFSET_MINUTES_MAX,
    UTC_OFFSET_MINUTES_MIN,
};
use proptest::prelude::*;
use proptest::sample::select;
use prost::Message;

const CURRENCIES: [&str; 6] = ["USD", "EUR", "JPY", "KWD", "CLF", "GBP"];

fn any_points() -> impl Strategy<Value = Points> {
    any::<i64>().prop_map(Points::new)
}

fn any_lot_id() -> impl Strategy<Value = LotId> {
    any::<u64>().prop_map(LotId::new)
}

fn any_text() -> impl Strategy<Value = String> {
    ".{0,16}"
}

fn any_texts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(any_text(), 0..=PURCHASE_TAGS_MAX)
}

/// Expiry 0 is "never" in the record form and is never decided.
fn any_lot() -> impl Strategy<Value = Lot> {
    let expiry = prop_oneof![
        Just(None),
        (1..=i64::MAX).prop_map(Some),
        (i64::MIN..0).prop_map(Some)
    ];
    (
        any_lot_id(),
        any_points(),
        any::<i64>(),
        any::<i64>(),
        expiry,
    )
        .prop_map(
            |(lot_id, points, earned_at_us, available_at_us, expires_at_us)| Lot {
                lot_id,
                points,
                earned_at_us,
                available_at_us,
                expires_at_us,
            },
        )
}

fn any_draws() -> impl Strategy<Value = Vec<LotDraw>> {
    prop::collection::vec(
        (any_lot_id(), any_points()).prop_map(|(lot_id, points)| LotDraw { lot_id, points }),
        0..4,
    )
}

fn any_currency() -> impl Strategy<Value = Currency> {
    select(&CURRENCIES[..]).prop_map(|code| Currency::from_code(code, "currency").unwrap())
}

fn any_money() -> impl Strategy<Value = Money> {
    (any::<i64>(), any_currency())
        .prop_map(|(minor_units, currency)| Money::new(minor_units, currency))
}

fn any_member_id() -> impl Strategy<Value = MemberId> {
    proptest::string::string_regex(&format!("[A-Za-z0-9._:@-]{{1,{MEMBER_ID_BYTES_MAX}}}"))
        .unwrap()
        .prop_map(|id| MemberId::parse("member_id", &id).unwrap())
}

fn any_earned() -> impl Strategy<Value = EventKind> {
    let campaign = (any_text(), any::<i64>(), any_points()).prop_map(
        |(campaign_id, multiplier_bps, bonus_points)| AppliedCampaign {
            campaign_id,
            multiplier_bps,
            bonus_points,
        },
    );
    (
        (
            any_text(),
            any_money(),
            any_texts(),
            any_points(),
            any::<i64>(),
        ),
        prop::collection::vec(campaign, 0..3),
        (any_points(), any_lot(), any::<i64>(), any_points()),
    )
        .prop_map(
            |(
                (order_id, spend, tags, base_points, tier_multiplier_bps),
                campaigns,
                (points, lot, qualifying_points, debt_repaid),
            )| {
                EventKind::PointsEarned(PointsEarned {
                    order_id,
                    spend,
                    tags,
                    base_points,
                    tier_multiplier_bps,
                    campaigns,
                    points,
                    lot,
                    qualifying_points,
                    debt_repaid,
                })
            },
        )
}

fn any_reversed() -> impl Strategy<Value = EventKind> {
    let policy = select(&[ReturnPolicy::Forfeit, ReturnPolicy::Debt][..]);
    (
        (any_text(), any_money(), any_points(), any_draws()),
        (any_points(), policy, any::<i64>(), any_points()),
    )
        .prop_map(
            |(
                (order_id, refund, points, draws),
                (
                    shortfall_points,
                    shortfall_policy,
                    qualifying_points_reversed,
                    base_points_reversed,
                ),
            )| {
                EventKind::EarnReversed(EarnReversed {
                    order_id,
                    refund,
                    points,
                    draws,
                    shortfall_points,
                    shortfall_policy,
                    qualifying_points_reversed,
                    base_points_reversed,
                })
            },
        )
}

fn any_transferred() -> impl Strategy<Value = EventKind> {
    (
        (any_text(), any_member_id(), any_member_id(), any_points()),
        (
            any_draws(),
            prop::collection::vec(any_lot(), 0..3),
            any_points(),
        ),
    )
        .prop_map(
            |((transfer_id, from_member_id, to_member_id, points), (draws, lots, debt_repaid))| {
                EventKind::PointsTransferred(PointsTransferred {
                    transfer_id,
                    from_member_id,
                    to_member_id,
                    points,
                    draws,
                    lots,
                    debt_repaid,
                })
            },
        )
}

fn any_event_kind() -> impl Strategy<Value = EventKind> {
    let expiry_reason = select(&[ExpiryReason::Lot, ExpiryReason::Inactivity][..]);
    let tier_reason = select(
        &[
            TierChangeReason::Qualified,
            TierChangeReason::PeriodEnd,
            TierChangeReason::Return,
        ][..],
    );
    prop_oneof![
        valid_rules().prop_map(|rules| EventKind::ProgramDefined(ProgramDefined { rules })),
        valid_rules()
            .prop_map(|rules| EventKind::ProgramRulesChanged(ProgramRulesChanged { rules })),
        any::<bool>().prop_map(|implicit| EventKind::MemberEnrolled(MemberEnrolled { implicit })),
        any_earned(),
        (any_text(), any_points(), any_lot(), any_points()).prop_map(
            |(reason, points, lot, debt_repaid)| {
                EventKind::PointsAwarded(PointsAwarded {
                    reason,
                    points,
                    lot,
                    debt_repaid,
                })
            }
        ),
        (any_text(), any_points(), any_draws()).prop_map(|(redemption_id, points, draws)| {
            EventKind::PointsRedeemed(PointsRedeemed {
                redemption_id,
                points,
                draws,
            })
        }),
        (any_text(), any_points(), any_draws(), any_draws()).prop_map(
            |(redemption_id, points, restored, expired)| {
                EventKind::RedemptionCancelled(RedemptionCancelled {
                    redemption_id,
                    points,
                    restored,
                    expired,
                })
            }
        ),
        any_reversed(),
        (
            any_text(),
            any_points(),
            prop::option::of(any_lot()),
            any_draws(),
            any_points()
        )
            .prop_map(|(reason, points, lot, draws, debt_repaid)| {
                EventKind::PointsAdjusted(PointsAdjusted {
                    reason,
                    points,
                    lot,
                    draws,
                    debt_repaid,
                })
            }),
        any_transferred(),
        (any_lot_id(), any_points()).prop_map(|(lot_id, points)| EventKind::PointsMatured(
            PointsMatured { lot_id, points }
        )),
        (expiry_reason, any_points(), any_draws()).prop_map(|(reason, points, draws)| {
            EventKind::PointsExpired(PointsExpired {
                reason,
                points,
                draws,
            })
        }),
        (any_text(), any_text(), tier_reason, any::<i64>()).prop_map(
            |(from_tier, to_tier, reason, qualifying)| {
                EventKind::TierChanged(TierChanged {
                    from_tier,
                    to_tier,
                    reason,
                    qualifying,
                })
            }
        ),
    ]
}

fn any_event() -> impl Strategy<Value = Event> {
    (any::<i64>(), any_event_kind()).prop_map(|(occurred_at_us, kind)| Event {
        occurred_at_us,
        kind,
    })
}

/// Tiers with unique names, the first threshold 0, then strictly rising.
fn any_tiers() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec(
        (1..=TIER_THRESHOLD_MAX / 16, 1..=MULTIPLIER_BPS_MAX),
        0..=PROGRAM_TIERS_MAX,
    )
    .prop_map(|steps| {
        let mut threshold = 0;
        steps
            .into_iter()
            .enumerate()
            .map(|(index, (step, earn_multiplier_bps))| {
                let tier = Tier {
                    name: format!("tier {index}"),
                    threshold,
                    earn_multiplier_bps,
                };
                threshold += step;
                tier
            })
            .collect()
    })
}

fn any_campaign(index: usize, tier_names: Vec<String>) -> impl Strategy<Value = Campaign> {
    let effect = prop_oneof![
        // A multiplier campaign is above 1x.
        (ONE_X_BPS + 1..=MULTIPLIER_BPS_MAX).prop_map(|bps| (bps, 0)),
        (1..=POINTS_PER_COMMAND_MAX).prop_map(|bonus| (0, bonus)),
    ];
    let tag = "[a-z]{1,8}";
    (
        (0..BUSINESS_TIME_US_MAX, 1..=BUSINESS_TIME_US_MAX, effect),
        prop::sample::subsequence(tier_names.clone(), 0..=tier_names.len()),
        prop::collection::vec(tag, 0..=3),
        (0..=SPEND_MINOR_UNITS_MAX, any::<bool>()),
    )
        .prop_map(
            move |(
                (starts_at_us, length_us, (multiplier_bps, bonus_points)),
                tiers,
                tags,
                (min_spend_minor_units, stackable),
            )| Campaign {
                campaign_id: format!("campaign-{index}"),
                starts_at_us,
                ends_at_us: starts_at_us
                    .saturating_add(length_us)
                    .min(BUSINESS_TIME_US_MAX),
                multiplier_bps,
                bonus_points,
                tiers,
                tags,
                min_spend_minor_units,
                stackable,
            },
        )
}

fn any_lot_expiry() -> impl Strategy<Value = Option<LotExpiry>> {
    prop_oneof![
        Just(None),
        Just(Some(LotExpiry { rule: None })),
        (1..=LOT_EXPIRY_DAYS_MAX).prop_map(|days| Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(days))
        })),
        (1..=LOT_EXPIRY_MONTHS_MAX).prop_map(|months| Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(months))
        })),
    ]
}

/// Rules that `Rules::from_raw` accepts, over the whole valid range.
fn valid_rules() -> impl Strategy<Value = ProgramRules> {
    let roundings = [Rounding::Floor, Rounding::HalfUp, Rounding::Ceiling];
    let measures = [TierMeasure::QualifyingPoints, TierMeasure::Spend];
    let policies = [ShortfallPolicy::Forfeit, ShortfallPolicy::Debt];
    let base = (
        (
            "[A-Za-z0-9 ]{1,32}",
            select(&CURRENCIES[..]),
            0..=EARN_RATE_BPS_MAX,
        ),
        (select(roundings.to_vec()), 0..=POINT_VALUE_MINOR_UNITS_MAX),
        (1..=POINT_VALUE_PER_POINTS_MAX, select(measures.to_vec())),
        (0..=TIER_WINDOW_DAYS_MAX, any::<bool>(), any_lot_expiry()),
        (
            0..=INACTIVITY_EXPIRY_DAYS_MAX,
            0..=PENDING_DAYS_MAX,
            any::<bool>(),
        ),
        (
            0..=POINTS_PER_COMMAND_MAX,
            select(policies.to_vec()),
            UTC_OFFSET_MINUTES_MIN..=UTC_OFFSET_MINUTES_MAX,
            0..=RFM_WINDOW_DAYS_MAX,
        ),
    );
    (base, any_tiers()).prop_flat_map(|(base, tiers)| {
        let names: Vec<String> = tiers.iter().map(|tier| tier.name.clone()).collect();
        let campaigns = prop::collection::vec(Just(()), 0..=PROGRAM_CAMPAIGNS_MAX.min(4))
            .prop_flat_map(move |slots| {
                (0..slots.len())
                    .map(|index| any_campaign(index, names.clone()))
                    .collect::<Vec<_>>()
            });
        (Just(base), Just(tiers), campaigns).prop_map(|(base, tiers, campaigns)| {
            let (
                (name, currency, earn_rate_bps),
                (rounding, point_value_minor_units),
                (point_value_per_points, tier_measure),
                (tier_window_days, tier_soft_landing, lot_expiry),
                (inactivity_expiry_days, pending_days, bonus_points_pending),
                (min_redeem_points, return_policy, utc_offset_minutes, rfm_window_days),
            ) = base;
            ProgramRules {
                name,
                currency: currency.to_owned(),
                earn_rate_bps,
                rounding,
                point_value_minor_units,
                point_value_per_points,
                tiers,
                tier_measure,
                tier_window_days,
                tier_soft_landing,
                campaigns,
                lot_expiry,
                inactivity_expiry_days,
                pending_days,
                bonus_points_pending,
                min_redeem_points,
                return_policy,
                utc_offset_minutes,
                rfm_window_days,
            }
        })
    })
}

/// Raw rules as the log could carry them: valid rules with fields set to
/// any value, UNSPECIFIED enums included.
fn raw_rules() -> impl Strategy<Value = ProgramRules> {
    let roundings = [
        Rounding::Unspecified,
        Rounding::Floor,
        Rounding::HalfUp,
        Rounding::Ceiling,
    ];
    let measures = [
        TierMeasure::Unspecified,
        TierMeasure::QualifyingPoints,
        TierMeasure::Spend,
    ];
    let policies = [
        ShortfallPolicy::Unspecified,
        ShortfallPolicy::Forfeit,
        ShortfallPolicy::Debt,
    ];
    (
        valid_rules(),
        (any_text(), any_text(), any::<i64>(), any::<u32>()),
        (
            select(roundings.to_vec()),
            select(measures.to_vec()),
            select(policies.to_vec()),
        ),
    )
        .prop_map(
            |(
                mut raw,
                (name, currency, earn_rate_bps, pending_days),
                (rounding, measure, policy),
            )| {
                raw.name = name;
                raw.currency = currency;
                raw.earn_rate_bps = earn_rate_bps;
                raw.pending_days = pending_days;
                raw.rounding = rounding;
                raw.tier_measure = measure;
                raw.return_policy = policy;
                raw
            },
        )
}

fn through_bytes<M: Message + Default>(message: &M) -> M {
    M::decode(message.encode_to_vec().as_slice()).unwrap()
}

fn record_of(event: &Event) -> pb::EventRecord {
    pb::EventRecord {
        occurred_at_us: event.occurred_at_us,
        event: Some(pb::Event::from(&event.kind)),
        ..pb::EventRecord::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn events_round_trip_through_the_record_bytes(event in any_event()) {
        let record = through_bytes(&record_of(&event));
        prop_assert_eq!(event_from_record(&record), Ok(event));
    }

    #[test]
    fn valid_rules_round_trip_through_the_record_bytes(raw in valid_rules()) {
        let rules = Rules::from_raw(&raw).unwrap();
        let decoded = Rules::try_from(&through_bytes(&pb::ProgramRules::from(&rules)));
        prop_assert_eq!(decoded, Ok(rules));
    }

    #[test]
    fn raw_rules_round_trip_through_the_record_bytes(raw in raw_rules()) {
        let decoded = ProgramRules::try_from(&through_bytes(&pb::ProgramRules::from(&raw)));
        prop_assert_eq!(decoded, Ok(raw));
    }
}

// Decode errors: one damaged field each.

fn usd(minor_units: i64) -> Money {
    Money::new(minor_units, Currency::from_code("USD", "currency").unwrap())
}

fn a_lot() -> Lot {
    Lot {
        lot_id: LotId::new(1),
        points: Points::new(10),
        earned_at_us: 1_000,
        available_at_us: 1_000,
        expires_at_us: None,
    }
}

fn earned_pb() -> pb::PointsEarned {
    let kind = EventKind::PointsEarned(PointsEarned {
        order_id: "order-1".to_owned(),
        spend: usd(10_00),
        tags: Vec::new(),
        base_points: Points::new(10),
        tier_multiplier_bps: 10_000,
        campaigns: Vec::new(),
        points: Points::new(10),
        lot: a_lot(),
        qualifying_points: 10,
        debt_repaid: Points::ZERO,
    });
    match pb::Event::from(&kind).kind {
        Some(Kind::PointsEarned(earned)) => earned,
        other => panic!("encoded as {other:?}"),
    }
}

fn decode_error(kind: Kind) -> FieldError {
    EventKind::try_from(&pb::Event { kind: Some(kind) }).unwrap_err()
}

#[test]
fn a_missing_message_is_named_by_its_path() {
    let error = decode_error(Kind::PointsEarned(pb::PointsEarned {
        lot: None,
        ..earned_pb()
    }));
    assert_eq!(
        error,
        FieldError::new("event.points_earned.lot", FieldReason::Missing)
    );
    let error = decode_error(Kind::PointsEarned(pb::PointsEarned {
        spend: None,
        ..earned_pb()
    }));
    assert_eq!(error.field, "event.points_earned.spend");
    let error = decode_error(Kind::PointsAwarded(pb::PointsAwarded::default()));
    assert_eq!(error.field, "event.points_awarded.lot");
    let error = decode_error(Kind::EarnReversed(pb::EarnReversed {
        shortfall_policy: pb::ShortfallPolicy::Forfeit as i32,
        ..pb::EarnReversed::default()
    }));
    assert_eq!(
        error,
        FieldError::new("event.earn_reversed.refund", FieldReason::Missing)
    );
    let error = decode_error(Kind::ProgramDefined(pb::ProgramDefined { rules: None }));
    assert_eq!(error.field, "event.program_defined.rules");
    let error = EventKind::try_from(&pb::Event { kind: None }).unwrap_err();
    assert_eq!(error, FieldError::new("event.kind", FieldReason::Missing));
    let error = event_from_record(&pb::EventRecord::default()).unwrap_err();
    assert_eq!(error, FieldError::new("event", FieldReason::Missing));
}

#[test]
fn an_unknown_currency_is_named_by_its_path() {
    let mut earned = earned_pb();
    if let Some(spend) = earned.spend.as_mut() {
        spend.currency = "XXX".to_owned();
    }
    assert_eq!(
        decode_error(Kind::PointsEarned(earned)),
        FieldError::new(
            "event.points_earned.spend.currency",
            FieldReason::UnknownCurrency {
                code: "XXX".to_owned()
            }
        )
    );
}

#[test]
fn unspecified_and_unknown_enum_values_are_named_by_their_path() {
    let expired = |reason: i32| {
        decode_error(Kind::PointsExpired(pb::PointsExpired {
            reason,
            ..pb::PointsExpired::default()
        }))
    };
    assert_eq!(
        expired(pb::ExpiryReason::Unspecified as i32),
        FieldError::new("event.points_expired.reason", FieldReason::Unspecified)
    );
    let unknown = expired(99);
    assert_eq!(unknown.field, "event.points_expired.reason");
    assert_eq!(
        unknown.reason,
        FieldReason::Invalid("has the unknown enum value 99".to_owned())
    );
    let error = decode_error(Kind::TierChanged(pb::TierChanged {
        reason: -1,
        ..pb::TierChanged::default()
    }));
    assert_eq!(error.field, "event.tier_changed.reason");
    let error = decode_error(Kind::EarnReversed(pb::EarnReversed {
        refund: Some(usd(1).into()),
        ..pb::EarnReversed::default()
    }));
    assert_eq!(
        error,
        FieldError::new(
            "event.earn_reversed.shortfall_policy",
            FieldReason::Unspecified
        )
    );
}

#[test]
fn an_invalid_member_id_is_named_by_its_path() {
    let error = decode_error(Kind::PointsTransferred(pb::PointsTransferred {
        from_member_id: "alice".to_owned(),
        to_member_id: "bob/eve".to_owned(),
        ..pb::PointsTransferred::default()
    }));
    assert_eq!(
        error,
        FieldError::new(
            "event.points_transferred.to_member_id",
            FieldReason::BadCharacter { offset: 3 }
        )
    );
}

#[test]
fn rules_that_do_not_validate_are_named_by_their_path() {
    let mut raw = ProgramRules::basic("USD");
    raw.tiers = vec![Tier {
        name: "Blue".to_owned(),
        threshold: 5,
        earn_multiplier_bps: 10_000,
    }];
    let error = decode_error(Kind::ProgramDefined(pb::ProgramDefined {
        rules: Some((&raw).into()),
    }));
    assert_eq!(
        error.field,
        "event.program_defined.rules.tiers[0].threshold"
    );
    let mut rules = pb::ProgramRules::from(&ProgramRules::basic("USD"));
    rules.rounding = 17;
    let error = decode_error(Kind::ProgramRulesChanged(pb::ProgramRulesChanged {
        rules: Some(rules.clone()),
    }));
    assert_eq!(error.field, "event.program_rules_changed.rules.rounding");
    // Standalone rules name their fields from the rules down.
    assert_eq!(Rules::try_from(&rules).unwrap_err().field, "rounding");
    rules.rounding = pb::Rounding::Floor as i32;
    rules.currency = "usd".to_owned();
    assert_eq!(Rules::try_from(&rules).unwrap_err().field, "currency");
}

#[test]
fn a_lot_that_never_expires_is_zero_in_the_record() {
    let never = pb::Lot::from(a_lot());
    assert_eq!(never.expires_at_us, 0);
    let expiring = Lot {
        expires_at_us: Some(86_400_000_000),
        ..a_lot()
    };
    assert_eq!(pb::Lot::from(expiring).expires_at_us, 86_400_000_000);
    assert_eq!(lot(&never), a_lot());
    assert_eq!(lot(&pb::Lot::from(expiring)), expiring);
}
