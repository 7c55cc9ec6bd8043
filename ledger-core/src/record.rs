//! The log record form of the domain: conversions between the domain's
//! events and rules and the `pointsledger.v1` messages of [`crate::pb`].
//!
//! The mapping is field for field, so it is lossless both ways:
//! `decode(encode(x)) == x` for every event and every rules value (the
//! property tests below check it through the encoded bytes). A domain field
//! with no place in `record.proto` is added there under a new field number,
//! never mapped lossily. Three conventions make the proto's defaults fit:
//! - `Lot.expires_at_us` 0 is "never expires" (`None`): no lot the domain
//!   creates expires at the epoch, since business time starts there and
//!   every expiry rule adds at least a day;
//! - an absent `PointsAdjusted.lot` is a debit's `None`;
//! - the receiver's copy of `PointsTransferred` is the one without draws.
//!
//! Encoding cannot fail. Decoding reads the log and so checks what the types
//! cannot: a missing message, an UNSPECIFIED or unknown enum value, a
//! currency the ledger does not know, an invalid member id, and rules that
//! do not validate. Its error is a [`FieldError`] naming the field path,
//! e.g. `event.points_earned.spend.currency`.
//!
//! `Event::occurred_at_us` is the envelope's `EventRecord.occurred_at_us`,
//! not a payload field: [`event_from_record`] reads both.

// The log is input: decoding must not panic on any bytes, so the same
// lints as in `domain` hold here.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use crate::domain::{
    AppliedCampaign, Campaign, Currency, DomainError, EarnReversed, Event, EventKind, ExpiryReason,
    Lot, LotDraw, LotExpiry, LotExpiryRule, MemberEnrolled, Money, Points, PointsAdjusted,
    PointsAwarded, PointsEarned, PointsExpired, PointsMatured, PointsRedeemed, PointsTransferred,
    ProgramDefined, ProgramRules, ProgramRulesChanged, RedemptionCancelled, ReturnPolicy, Rounding,
    Rules, ShortfallPolicy, Tier, TierChangeReason, TierChanged, TierMeasure,
};
use crate::error::{FieldError, FieldReason};
use crate::ids::{LotId, MemberId};
use crate::pb;
use pb::event::Kind;

/// Decodes the event of a stored record: its payload and its business time.
pub fn event_from_record(record: &pb::EventRecord) -> Result<Event, FieldError> {
    let event = required(&record.event, "event")?;
    Ok(Event {
        occurred_at_us: record.occurred_at_us,
        kind: EventKind::try_from(event)?,
    })
}

impl From<&EventKind> for pb::Event {
    fn from(kind: &EventKind) -> Self {
        let kind = match kind {
            EventKind::ProgramDefined(e) => Kind::ProgramDefined(pb::ProgramDefined {
                rules: Some((&e.rules).into()),
            }),
            EventKind::ProgramRulesChanged(e) => {
                Kind::ProgramRulesChanged(pb::ProgramRulesChanged {
                    rules: Some((&e.rules).into()),
                })
            }
            EventKind::MemberEnrolled(e) => Kind::MemberEnrolled(pb::MemberEnrolled {
                implicit: e.implicit,
            }),
            EventKind::PointsEarned(e) => Kind::PointsEarned(pb::PointsEarned {
                order_id: e.order_id.clone(),
                spend: Some(e.spend.into()),
                tags: e.tags.clone(),
                base_points: e.base_points.get(),
                tier_multiplier_bps: e.tier_multiplier_bps,
                campaigns: e.campaigns.iter().map(Into::into).collect(),
                points: e.points.get(),
                lot: Some(e.lot.into()),
                qualifying_points: e.qualifying_points,
                debt_repaid: e.debt_repaid.get(),
            }),
            EventKind::PointsAwarded(e) => Kind::PointsAwarded(pb::PointsAwarded {
                reason: e.reason.clone(),
                points: e.points.get(),
                lot: Some(e.lot.into()),
                debt_repaid: e.debt_repaid.get(),
            }),
            EventKind::PointsRedeemed(e) => Kind::PointsRedeemed(pb::PointsRedeemed {
                redemption_id: e.redemption_id.clone(),
                points: e.points.get(),
                draws: draws_to_pb(&e.draws),
            }),
            EventKind::RedemptionCancelled(e) => {
                Kind::RedemptionCancelled(pb::RedemptionCancelled {
                    redemption_id: e.redemption_id.clone(),
                    points: e.points.get(),
                    restored: draws_to_pb(&e.restored),
                    expired: draws_to_pb(&e.expired),
                })
            }
            EventKind::EarnReversed(e) => Kind::EarnReversed(pb::EarnReversed {
                order_id: e.order_id.clone(),
                refund: Some(e.refund.into()),
                points: e.points.get(),
                draws: draws_to_pb(&e.draws),
                shortfall_points: e.shortfall_points.get(),
                shortfall_policy: return_policy_to_pb(e.shortfall_policy),
                qualifying_points_reversed: e.qualifying_points_reversed,
                base_points_reversed: e.base_points_reversed.get(),
            }),
            EventKind::PointsAdjusted(e) => Kind::PointsAdjusted(pb::PointsAdjusted {
                reason: e.reason.clone(),
                points: e.points.get(),
                lot: e.lot.map(Into::into),
                draws: draws_to_pb(&e.draws),
                debt_repaid: e.debt_repaid.get(),
            }),
            EventKind::PointsTransferred(e) => Kind::PointsTransferred(pb::PointsTransferred {
                transfer_id: e.transfer_id.clone(),
                from_member_id: e.from_member_id.as_str().to_owned(),
                to_member_id: e.to_member_id.as_str().to_owned(),
                points: e.points.get(),
                draws: draws_to_pb(&e.draws),
                lots: e.lots.iter().copied().map(Into::into).collect(),
                debt_repaid: e.debt_repaid.get(),
            }),
            EventKind::PointsMatured(e) => Kind::PointsMatured(pb::PointsMatured {
                lot_id: e.lot_id.get(),
                points: e.points.get(),
            }),
            EventKind::PointsExpired(e) => Kind::PointsExpired(pb::PointsExpired {
                reason: expiry_reason_to_pb(e.reason),
                points: e.points.get(),
                draws: draws_to_pb(&e.draws),
            }),
            EventKind::TierChanged(e) => Kind::TierChanged(pb::TierChanged {
                from_tier: e.from_tier.clone(),
                to_tier: e.to_tier.clone(),
                reason: tier_change_reason_to_pb(e.reason),
                qualifying: e.qualifying,
            }),
        };
        pb::Event { kind: Some(kind) }
    }
}

impl TryFrom<&pb::Event> for EventKind {
    type Error = FieldError;

    /// Errors name the path from the payload down, e.g. `event.points_earned.lot`.
    fn try_from(event: &pb::Event) -> Result<Self, FieldError> {
        let kind = required(&event.kind, "event.kind")?;
        let (name, decoded) = match kind {
            Kind::ProgramDefined(e) => (
                "program_defined",
                rules_at(&e.rules, "rules")
                    .map(|rules| EventKind::ProgramDefined(ProgramDefined { rules })),
            ),
            Kind::ProgramRulesChanged(e) => (
                "program_rules_changed",
                rules_at(&e.rules, "rules")
                    .map(|rules| EventKind::ProgramRulesChanged(ProgramRulesChanged { rules })),
            ),
            Kind::MemberEnrolled(e) => (
                "member_enrolled",
                Ok(EventKind::MemberEnrolled(MemberEnrolled {
                    implicit: e.implicit,
                })),
            ),
            Kind::PointsEarned(e) => ("points_earned", earned(e).map(EventKind::PointsEarned)),
            Kind::PointsAwarded(e) => ("points_awarded", awarded(e).map(EventKind::PointsAwarded)),
            Kind::PointsRedeemed(e) => (
                "points_redeemed",
                Ok(EventKind::PointsRedeemed(PointsRedeemed {
                    redemption_id: e.redemption_id.clone(),
                    points: Points::new(e.points),
                    draws: draws(&e.draws),
                })),
            ),
            Kind::RedemptionCancelled(e) => (
                "redemption_cancelled",
                Ok(EventKind::RedemptionCancelled(RedemptionCancelled {
                    redemption_id: e.redemption_id.clone(),
                    points: Points::new(e.points),
                    restored: draws(&e.restored),
                    expired: draws(&e.expired),
                })),
            ),
            Kind::EarnReversed(e) => ("earn_reversed", reversed(e).map(EventKind::EarnReversed)),
            Kind::PointsAdjusted(e) => (
                "points_adjusted",
                Ok(EventKind::PointsAdjusted(PointsAdjusted {
                    reason: e.reason.clone(),
                    points: Points::new(e.points),
                    lot: e.lot.as_ref().map(lot),
                    draws: draws(&e.draws),
                    debt_repaid: Points::new(e.debt_repaid),
                })),
            ),
            Kind::PointsTransferred(e) => (
                "points_transferred",
                transferred(e).map(EventKind::PointsTransferred),
            ),
            Kind::PointsMatured(e) => (
                "points_matured",
                Ok(EventKind::PointsMatured(PointsMatured {
                    lot_id: LotId::new(e.lot_id),
                    points: Points::new(e.points),
                })),
            ),
            Kind::PointsExpired(e) => ("points_expired", expired(e).map(EventKind::PointsExpired)),
            Kind::TierChanged(e) => ("tier_changed", tier_changed(e).map(EventKind::TierChanged)),
        };
        // The path is formatted only for an error: every record read
        // passes here, and a `format!` per record was a few percent of a
        // view's CPU.
        decoded.map_err(|error| error.within(&format!("event.{name}")))
    }
}

impl From<&ProgramRules> for pb::ProgramRules {
    fn from(raw: &ProgramRules) -> Self {
        pb::ProgramRules {
            name: raw.name.clone(),
            currency: raw.currency.clone(),
            earn_rate_bps: raw.earn_rate_bps,
            rounding: rounding_to_pb(raw.rounding),
            point_value_minor_units: raw.point_value_minor_units,
            point_value_per_points: raw.point_value_per_points,
            tiers: raw.tiers.iter().map(Into::into).collect(),
            tier_measure: tier_measure_to_pb(raw.tier_measure),
            tier_window_days: raw.tier_window_days,
            tier_soft_landing: raw.tier_soft_landing,
            campaigns: raw.campaigns.iter().map(Into::into).collect(),
            lot_expiry: raw.lot_expiry.map(|expiry| pb::LotExpiry {
                rule: expiry.rule.map(|rule| match rule {
                    LotExpiryRule::AfterDays(days) => pb::lot_expiry::Rule::AfterDays(days),
                    LotExpiryRule::AfterMonthsEnd(months) => {
                        pb::lot_expiry::Rule::AfterMonthsEnd(months)
                    }
                }),
            }),
            inactivity_expiry_days: raw.inactivity_expiry_days,
            pending_days: raw.pending_days,
            bonus_points_pending: raw.bonus_points_pending,
            min_redeem_points: raw.min_redeem_points,
            return_policy: shortfall_policy_to_pb(raw.return_policy),
            utc_offset_minutes: raw.utc_offset_minutes,
            rfm_window_days: raw.rfm_window_days,
        }
    }
}

impl From<&Rules> for pb::ProgramRules {
    fn from(rules: &Rules) -> Self {
        rules.raw().into()
    }
}

impl TryFrom<&pb::ProgramRules> for ProgramRules {
    type Error = FieldError;

    /// The raw rules, not validated: UNSPECIFIED enum values are kept (they
    /// are raw values too); only values outside the enums are refused.
    fn try_from(raw: &pb::ProgramRules) -> Result<Self, FieldError> {
        Ok(ProgramRules {
            name: raw.name.clone(),
            currency: raw.currency.clone(),
            earn_rate_bps: raw.earn_rate_bps,
            rounding: rounding_from_pb(raw.rounding, "rounding")?,
            point_value_minor_units: raw.point_value_minor_units,
            point_value_per_points: raw.point_value_per_points,
            tiers: raw.tiers.iter().map(Into::into).collect(),
            tier_measure: tier_measure_from_pb(raw.tier_measure, "tier_measure")?,
            tier_window_days: raw.tier_window_days,
            tier_soft_landing: raw.tier_soft_landing,
            campaigns: raw.campaigns.iter().map(Into::into).collect(),
            lot_expiry: raw.lot_expiry.as_ref().map(|expiry| LotExpiry {
                rule: expiry.rule.map(|rule| match rule {
                    pb::lot_expiry::Rule::AfterDays(days) => LotExpiryRule::AfterDays(days),
                    pb::lot_expiry::Rule::AfterMonthsEnd(months) => {
                        LotExpiryRule::AfterMonthsEnd(months)
                    }
                }),
            }),
            inactivity_expiry_days: raw.inactivity_expiry_days,
            pending_days: raw.pending_days,
            bonus_points_pending: raw.bonus_points_pending,
            min_redeem_points: raw.min_redeem_points,
            return_policy: shortfall_policy_from_pb(raw.return_policy, "return_policy")?,
            utc_offset_minutes: raw.utc_offset_minutes,
            rfm_window_days: raw.rfm_window_days,
        })
    }
}

impl TryFrom<&pb::ProgramRules> for Rules {
    type Error = FieldError;

    /// Decodes and validates; errors name the rules field, e.g. `tiers[1].threshold`.
    fn try_from(raw: &pb::ProgramRules) -> Result<Self, FieldError> {
        validated(&ProgramRules::try_from(raw)?)
    }
}

fn validated(raw: &ProgramRules) -> Result<Rules, FieldError> {
    Rules::from_raw(raw).map_err(|error| match error {
        DomainError::InvalidField(invalid) => invalid,
        // Validation reports nothing else; should that change, the error
        // still names the rules (through the caller's prefix) and says why.
        other => FieldError::new("", FieldReason::Invalid(other.to_string())),
    })
}

/// A message whose domain type has the same fields, of the same types,
/// converts by copying each field, both ways, from one list. Struct
/// literals must name every field, so a field added on either side and not
/// to the list fails to compile rather than being dropped.
macro_rules! same_fields {
    ($domain:ident <=> $proto:ident { $($field:ident),+ $(,)? }) => {
        impl From<&$domain> for pb::$proto {
            #[allow(clippy::clone_on_copy)]
            fn from(value: &$domain) -> Self {
                pb::$proto { $($field: value.$field.clone(),)+ }
            }
        }

        impl From<&pb::$proto> for $domain {
            #[allow(clippy::clone_on_copy)]
            fn from(value: &pb::$proto) -> Self {
                $domain { $($field: value.$field.clone(),)+ }
            }
        }
    };
}

same_fields!(Tier <=> Tier {
    name,
    threshold,
    earn_multiplier_bps
});
same_fields!(Campaign <=> Campaign {
    campaign_id,
    starts_at_us,
    ends_at_us,
    multiplier_bps,
    bonus_points,
    tiers,
    tags,
    min_spend_minor_units,
    stackable,
});

impl From<Lot> for pb::Lot {
    fn from(lot: Lot) -> Self {
        debug_assert!(
            lot.expires_at_us != Some(0),
            "lot expiry: no lot expires at the epoch, whose record form means never"
        );
        pb::Lot {
            lot_id: lot.lot_id.get(),
            points: lot.points.get(),
            earned_at_us: lot.earned_at_us,
            available_at_us: lot.available_at_us,
            expires_at_us: lot.expires_at_us.unwrap_or(0),
        }
    }
}

impl From<Money> for pb::Money {
    fn from(money: Money) -> Self {
        pb::Money {
            minor_units: money.minor_units,
            currency: money.currency.code().to_owned(),
        }
    }
}

impl From<&AppliedCampaign> for pb::AppliedCampaign {
    fn from(applied: &AppliedCampaign) -> Self {
        pb::AppliedCampaign {
            campaign_id: applied.campaign_id.clone(),
            multiplier_bps: applied.multiplier_bps,
            bonus_points: applied.bonus_points.get(),
        }
    }
}

fn draws_to_pb(draws: &[LotDraw]) -> Vec<pb::LotDraw> {
    draws
        .iter()
        .map(|draw| pb::LotDraw {
            lot_id: draw.lot_id.get(),
            points: draw.points.get(),
        })
        .collect()
}

/// Maps a domain enum to the proto enum whose values have the same names,
/// and back, from one list, so the two directions cannot disagree. A proto
/// value missing from the list (UNSPECIFIED, where the domain has no such
/// value) decodes as an error naming `field`.
macro_rules! enum_mapping {
    ($to_pb:ident, $from_pb:ident, $domain:ident <=> $proto:ident { $($value:ident),+ $(,)? }) => {
        fn $to_pb(value: $domain) -> i32 {
            let value = match value {
                $($domain::$value => pb::$proto::$value,)+
            };
            value as i32
        }

        fn $from_pb(value: i32, field: &str) -> Result<$domain, FieldError> {
            match known::<pb::$proto>(value, field)? {
                $(pb::$proto::$value => Ok($domain::$value),)+
                #[allow(unreachable_patterns)]
                _ => Err(FieldError::new(field, FieldReason::Unspecified)),
            }
        }
    };
}

enum_mapping!(rounding_to_pb, rounding_from_pb, Rounding <=> Rounding {
    Unspecified, Floor, HalfUp, Ceiling
});
enum_mapping!(tier_measure_to_pb, tier_measure_from_pb, TierMeasure <=> TierMeasure {
    Unspecified, QualifyingPoints, Spend
});
enum_mapping!(shortfall_policy_to_pb, shortfall_policy_from_pb, ShortfallPolicy <=> ShortfallPolicy {
    Unspecified, Forfeit, Debt
});
enum_mapping!(return_policy_to_pb, return_policy_from_pb, ReturnPolicy <=> ShortfallPolicy {
    Forfeit, Debt
});
enum_mapping!(expiry_reason_to_pb, expiry_reason_from_pb, ExpiryReason <=> ExpiryReason {
    Lot, Inactivity
});
enum_mapping!(tier_change_reason_to_pb, tier_change_reason_from_pb, TierChangeReason <=> TierChangeReason {
    Qualified, PeriodEnd, Return
});

// Decoding. Each payload decoder names fields relative to its message;
// `EventKind::try_from` prefixes the path of the payload.

fn earned(e: &pb::PointsEarned) -> Result<PointsEarned, FieldError> {
    Ok(PointsEarned {
        order_id: e.order_id.clone(),
        spend: money(&e.spend, "spend")?,
        tags: e.tags.clone(),
        base_points: Points::new(e.base_points),
        tier_multiplier_bps: e.tier_multiplier_bps,
        campaigns: e
            .campaigns
            .iter()
            .map(|applied| AppliedCampaign {
                campaign_id: applied.campaign_id.clone(),
                multiplier_bps: applied.multiplier_bps,
                bonus_points: Points::new(applied.bonus_points),
            })
            .collect(),
        points: Points::new(e.points),
        lot: lot(required(&e.lot, "lot")?),
        qualifying_points: e.qualifying_points,
        debt_repaid: Points::new(e.debt_repaid),
    })
}

fn awarded(e: &pb::PointsAwarded) -> Result<PointsAwarded, FieldError> {
    Ok(PointsAwarded {
        reason: e.reason.clone(),
        points: Points::new(e.points),
        lot: lot(required(&e.lot, "lot")?),
        debt_repaid: Points::new(e.debt_repaid),
    })
}

fn reversed(e: &pb::EarnReversed) -> Result<EarnReversed, FieldError> {
    Ok(EarnReversed {
        order_id: e.order_id.clone(),
        refund: money(&e.refund, "refund")?,
        points: Points::new(e.points),
        draws: draws(&e.draws),
        shortfall_points: Points::new(e.shortfall_points),
        shortfall_policy: return_policy_from_pb(e.shortfall_policy, "shortfall_policy")?,
        qualifying_points_reversed: e.qualifying_points_reversed,
        base_points_reversed: Points::new(e.base_points_reversed),
    })
}

fn transferred(e: &pb::PointsTransferred) -> Result<PointsTransferred, FieldError> {
    Ok(PointsTransferred {
        transfer_id: e.transfer_id.clone(),
        from_member_id: MemberId::parse("from_member_id", &e.from_member_id)?,
        to_member_id: MemberId::parse("to_member_id", &e.to_member_id)?,
        points: Points::new(e.points),
        draws: draws(&e.draws),
        lots: e.lots.iter().map(lot).collect(),
        debt_repaid: Points::new(e.debt_repaid),
    })
}

fn expired(e: &pb::PointsExpired) -> Result<PointsExpired, FieldError> {
    Ok(PointsExpired {
        reason: expiry_reason_from_pb(e.reason, "reason")?,
        points: Points::new(e.points),
        draws: draws(&e.draws),
    })
}

fn tier_changed(e: &pb::TierChanged) -> Result<TierChanged, FieldError> {
    Ok(TierChanged {
        from_tier: e.from_tier.clone(),
        to_tier: e.to_tier.clone(),
        reason: tier_change_reason_from_pb(e.reason, "reason")?,
        qualifying: e.qualifying,
    })
}

/// Rules carried by a program event are validated as they are read: the
/// domain folds only rules that validated when they were decided, so rules
/// that do not validate now mean a damaged log.
fn rules_at(rules: &Option<pb::ProgramRules>, field: &str) -> Result<ProgramRules, FieldError> {
    let raw =
        ProgramRules::try_from(required(rules, field)?).map_err(|error| error.within(field))?;
    validated(&raw).map_err(|error| error.within(field))?;
    Ok(raw)
}

fn lot(lot: &pb::Lot) -> Lot {
    Lot {
        lot_id: LotId::new(lot.lot_id),
        points: Points::new(lot.points),
        earned_at_us: lot.earned_at_us,
        available_at_us: lot.available_at_us,
        expires_at_us: (lot.expires_at_us != 0).then_some(lot.expires_at_us),
    }
}

fn draws(draws: &[pb::LotDraw]) -> Vec<LotDraw> {
    draws
        .iter()
        .map(|draw| LotDraw {
            lot_id: LotId::new(draw.lot_id),
            points: Points::new(draw.points),
        })
        .collect()
}

fn money(money: &Option<pb::Money>, field: &str) -> Result<Money, FieldError> {
    let money = required(money, field)?;
    let currency =
        Currency::from_code(&money.currency, "currency").map_err(|error| error.within(field))?;
    Ok(Money::new(money.minor_units, currency))
}

fn required<'a, T>(value: &'a Option<T>, field: &str) -> Result<&'a T, FieldError> {
    value
        .as_ref()
        .ok_or_else(|| FieldError::new(field, FieldReason::Missing))
}

/// A proto enum value this build knows (UNSPECIFIED included).
fn known<E: TryFrom<i32>>(value: i32, field: &str) -> Result<E, FieldError> {
    E::try_from(value).map_err(|_| {
        FieldError::new(
            field,
            FieldReason::Invalid(format!("has the unknown enum value {value}")),
        )
    })
}

#[cfg(test)]
mod tests;
