//! Tiers: upgrade at once, downgrade only at period end.
//!
//! - Measure: qualifying points = base points of purchases (before tier
//!   multiplier, campaigns and bonuses; awards, adjustments and transfers
//!   never qualify), or spend; both net of returns. History is kept per UTC
//!   day, so windows are whole days: rolling N days = the last N days, today
//!   included; calendar year = since January 1 (UTC).
//! - Upgrade: right after the purchase that meets a higher threshold, in the
//!   same decision (reason QUALIFIED), possibly several levels at once.
//! - Period: starts at the last tier change or review; ends at the next
//!   January 1 (calendar year) or at the midnight N days after it started
//!   (rolling). A member above the lowest tier is reviewed at period end:
//!   the window that ends there is measured and the tier set to what it
//!   supports, at most one level down with soft landing. The review is
//!   always recorded (reason PERIOD_END, `from_tier == to_tier` when kept),
//!   which starts the next period and fixes the tier the member secured.
//!   A review decided late starts the next period at its decision time, so
//!   a scheduler that was down for several periods costs at most one level.
//! - Return: the qualifying measure is taken back, and if the window no
//!   longer supports the current tier the member goes down to what it
//!   supports, but never below the tier secured at the last review (reason
//!   RETURN): a return undoes an upgrade it paid for, not last year's tier.
//! - A tier name the current rules no longer define counts as the lowest
//!   tier for earning and is reviewed at the next period end.

use super::decide::Work;
use super::error::DomainError;
use super::event::{EventKind, TierChangeReason, TierChanged};
use super::rules::Rules;
use super::time::day_of;

pub(super) fn upgrade_after_purchase(work: &mut Work<'_>, rules: &Rules) {
    if rules.tiers().is_empty() {
        return;
    }
    let position = work.member().tier_position(rules);
    let qualifying = work.member().qualifying_as_of(rules, work.now_us());
    let target = rules.tier_for_measure(qualifying);
    if target > position.index {
        change(work, rules, target, TierChangeReason::Qualified, qualifying);
    }
}

pub(super) fn after_return(work: &mut Work<'_>, rules: &Rules) {
    if rules.tiers().is_empty() {
        return;
    }
    let position = work.member().tier_position(rules);
    let floor = work.member().tier_floor_position(rules);
    let qualifying = work.member().qualifying_as_of(rules, work.now_us());
    let target = rules.tier_for_measure(qualifying).max(floor.index);
    if target < position.index {
        change(work, rules, target, TierChangeReason::Return, qualifying);
    }
}

/// The review at the end of the period that ends at `period_end_us`.
pub(super) fn review(
    work: &mut Work<'_>,
    rules: &Rules,
    period_end_us: i64,
) -> Result<(), DomainError> {
    let position = work.member().tier_position(rules);
    let (first_day, end_day) = rules.window_days(day_of(period_end_us));
    let qualifying = work
        .member()
        .qualifying_between(rules.measure(), first_day, end_day);
    let measured = rules.tier_for_measure(qualifying);
    let soft_landing = rules.raw().tier_soft_landing && position.known;
    let target = if soft_landing && measured < position.index {
        // Soft landing: at most one level down per period.
        position.index.saturating_sub(1).max(measured)
    } else {
        measured
    };
    change(work, rules, target, TierChangeReason::PeriodEnd, qualifying);
    Ok(())
}

fn change(
    work: &mut Work<'_>,
    rules: &Rules,
    target: usize,
    reason: TierChangeReason,
    qualifying: i64,
) {
    let from_tier = work.member().tier_name(rules).to_owned();
    work.emit(EventKind::TierChanged(TierChanged {
        from_tier,
        to_tier: rules.tier_name(target).to_owned(),
        reason,
        qualifying,
    }));
}
