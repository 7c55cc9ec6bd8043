//! Earning: purchases (earn rate, tier multiplier, campaigns) and awards.
//!
//! Purchase points, in order:
//! 1. base = `spend x earn_rate_bps / (10,000 x 10^exponent)`, rounded with
//!    the program's mode (i128 intermediates, so the product is exact);
//! 2. the multiplier is the member's tier multiplier *before* this purchase
//!    (the purchase that reaches a tier earns at the old rate, then the
//!    upgrade follows in the same decision) plus the extra of every applied
//!    multiplier campaign: extras add, they do not compound, so Gold 1.5x
//!    during a 2x campaign earns 2.5x and two stackable 2x campaigns earn 3x;
//! 3. points = round(base x multiplier / 10,000) with the same rounding mode,
//!    plus the flat bonus of every applied bonus campaign.
//!
//! Which campaigns apply: a campaign is eligible when `starts_at <= now <
//! ends_at`, and its tier list (if any) holds the member's tier, and its tag
//! list (if any) shares a tag with the purchase, and the spend reaches its
//! minimum. A non-stackable campaign never combines with another campaign.
//! The candidates are "all eligible stackable campaigns together" and "each
//! eligible non-stackable campaign alone"; the purchase gets the candidate
//! worth the most points, ties going to the stackable set and then to the
//! earlier campaign in the rules.

use super::decide::{Work, enroll_implicitly};
use super::error::DomainError;
use super::event::{AppliedCampaign, EventKind, PointsAwarded, PointsEarned};
use super::lot::{Lot, next_lot_id};
use super::member::Member;
use super::money::Money;
use super::points::Points;
use super::rules::{CampaignEffect, CampaignRule, ONE_X_BPS, QualifyingMeasure, Rules};
use super::tier;
use crate::error::FieldReason;
use crate::limits::POINTS_PER_COMMAND_MAX;

/// The points a purchase earns and how they were computed.
struct Quote {
    base_points: i64,
    tier_multiplier_bps: i64,
    campaigns: Vec<AppliedCampaign>,
    points: i64,
}

pub(super) fn record_purchase(
    work: &mut Work<'_>,
    rules: &Rules,
    order_id: &str,
    spend: Money,
    tags: &[String],
) -> Result<(), DomainError> {
    let now_us = work.now_us();
    if work
        .member()
        .returnable_purchase(order_id, now_us)
        .is_some()
    {
        return Err(DomainError::DuplicateOrder {
            order_id: order_id.to_owned(),
        });
    }
    let quote = quote(work.member(), rules, spend, tags, now_us)?;
    let points = Points::new(quote.points);
    let available_at_us = rules.available_at_us(now_us, true);
    // The lot is computed before the implicit enrollment, which changes
    // nothing it depends on (points, debt, lot ids, the time), so that every
    // check is done before the first event.
    let (lot, debt_repaid) = new_lot(work, rules, points, available_at_us)?;
    let qualifying_points = match rules.measure() {
        QualifyingMeasure::Points => quote.base_points,
        QualifyingMeasure::Spend => spend.minor_units,
    };
    work.checks_done();
    enroll_implicitly(work);
    work.emit(EventKind::PointsEarned(PointsEarned {
        order_id: order_id.to_owned(),
        spend,
        tags: tags.to_vec(),
        base_points: Points::new(quote.base_points),
        tier_multiplier_bps: quote.tier_multiplier_bps,
        campaigns: quote.campaigns,
        points,
        lot,
        qualifying_points,
        debt_repaid,
    }));
    tier::upgrade_after_purchase(work, rules);
    Ok(())
}

pub(super) fn award(
    work: &mut Work<'_>,
    rules: &Rules,
    reason: &str,
    points: Points,
) -> Result<(), DomainError> {
    let available_at_us = rules.available_at_us(work.now_us(), false);
    // Before the implicit enrollment, as for a purchase.
    let (lot, debt_repaid) = new_lot(work, rules, points, available_at_us)?;
    work.checks_done();
    enroll_implicitly(work);
    work.emit(EventKind::PointsAwarded(PointsAwarded {
        reason: reason.to_owned(),
        points,
        lot,
        debt_repaid,
    }));
    Ok(())
}

/// The lot for `points` newly earned at the decision's time: debt is paid
/// off first ("later earns pay off debt first", even by points that are
/// still pending), the rest becomes the lot, available at `available_at_us`,
/// expiring per the rules. Checks that the member's totals stay in i64.
pub(super) fn new_lot(
    work: &Work<'_>,
    rules: &Rules,
    points: Points,
    available_at_us: i64,
) -> Result<(Lot, Points), DomainError> {
    let member = work.member();
    let now_us = work.now_us();
    let debt_repaid = Points::new(points.get().min(member.debt_points().get()).max(0));
    let lot_points = points.checked_sub(debt_repaid, "lot points")?;
    if available_at_us > now_us {
        member
            .pending_points()
            .checked_add(lot_points, "pending_points")?;
        member
            .balance_points()
            .checked_add(debt_repaid, "balance_points")?;
    } else {
        member
            .balance_points()
            .checked_add(points, "balance_points")?;
    }
    let lot_id = member.next_lot_id();
    next_lot_id(lot_id)?;
    Ok((
        Lot {
            lot_id,
            points: lot_points,
            earned_at_us: now_us,
            available_at_us,
            expires_at_us: rules.lot_expires_at_us(now_us),
        },
        debt_repaid,
    ))
}

fn quote(
    member: &Member,
    rules: &Rules,
    spend: Money,
    tags: &[String],
    now_us: i64,
) -> Result<Quote, DomainError> {
    let base = rules.base_points(spend.minor_units);
    let base_points = within_command_limit(base)?;
    let position = member.tier_position(rules);
    let tier_multiplier_bps = rules.tier_multiplier_bps(position.index);
    let tier_name = rules.tier_name(position.index);
    let eligible: Vec<&CampaignRule> = rules
        .campaigns()
        .iter()
        .filter(|campaign| eligible(campaign, tier_name, spend, tags, now_us))
        .collect();
    let stackable: Vec<&CampaignRule> = eligible.iter().copied().filter(|c| c.stackable).collect();
    let mut best: (i128, Vec<&CampaignRule>) = (
        points_with(rules, base, tier_multiplier_bps, &stackable),
        stackable,
    );
    for single in eligible.iter().copied().filter(|c| !c.stackable) {
        let points = points_with(rules, base, tier_multiplier_bps, &[single]);
        if points > best.0 {
            best = (points, vec![single]);
        }
    }
    let points = within_command_limit(best.0)?;
    let campaigns = best
        .1
        .iter()
        .map(|campaign| match campaign.effect {
            CampaignEffect::Multiplier(bps) => AppliedCampaign {
                campaign_id: campaign.campaign_id.clone(),
                multiplier_bps: bps,
                bonus_points: Points::ZERO,
            },
            CampaignEffect::Bonus(bonus) => AppliedCampaign {
                campaign_id: campaign.campaign_id.clone(),
                multiplier_bps: 0,
                bonus_points: bonus,
            },
        })
        .collect();
    Ok(Quote {
        base_points,
        tier_multiplier_bps,
        campaigns,
        points,
    })
}

fn eligible(
    campaign: &CampaignRule,
    tier_name: &str,
    spend: Money,
    tags: &[String],
    now_us: i64,
) -> bool {
    let in_time = campaign.starts_at_us <= now_us && now_us < campaign.ends_at_us;
    let in_tier = campaign.tiers.is_empty() || campaign.tiers.iter().any(|name| name == tier_name);
    let tagged = campaign.tags.is_empty() || campaign.tags.iter().any(|tag| tags.contains(tag));
    in_time && in_tier && tagged && spend.minor_units >= campaign.min_spend_minor_units
}

/// Points for `base` under the tier multiplier and `campaigns` together.
/// Exact in i128: base <= 10^12 and the multiplier sum <= 65 x 50x.
fn points_with(
    rules: &Rules,
    base: i128,
    tier_multiplier_bps: i64,
    campaigns: &[&CampaignRule],
) -> i128 {
    let mut multiplier_bps = i128::from(tier_multiplier_bps);
    let mut bonus_points: i128 = 0;
    for campaign in campaigns {
        match campaign.effect {
            CampaignEffect::Multiplier(bps) => multiplier_bps += i128::from(bps - ONE_X_BPS),
            CampaignEffect::Bonus(bonus) => bonus_points += i128::from(bonus.get()),
        }
    }
    rules.round_div(base * multiplier_bps, i128::from(ONE_X_BPS)) + bonus_points
}

/// A purchase may not earn more than one command may carry.
fn within_command_limit(points: i128) -> Result<i64, DomainError> {
    if points <= i128::from(POINTS_PER_COMMAND_MAX) {
        i64::try_from(points).map_err(|_| DomainError::Overflow { quantity: "points" })
    } else {
        Err(DomainError::invalid(
            "spend.minor_units",
            FieldReason::TooManyPoints {
                max: POINTS_PER_COMMAND_MAX,
            },
        ))
    }
}
