//! Returns: a (partial) refund claws back the points its purchase earned.
//!
//! - Points reversed: cumulative `floor(points x refunded / spend)` minus
//!   what earlier refunds of the order reversed. For the first refund that
//!   is exactly `floor(lot_points x refund / spend)`; taking the floor of the
//!   running total, rather than of each refund, means an order refunded in
//!   pieces gives back exactly its points, never one less per piece.
//!   "Points" here are all the purchase earned, including any part that paid
//!   off debt.
//! - Refunds of an order may not add up to more than its spend, and are in
//!   the purchase's currency.
//! - Drawn from the purchase's own lot first (pending or available), then
//!   from other available lots first-expiring-first. Pending points of
//!   other purchases are not taken: they are still in their own returns
//!   window. What is still missing is the shortfall: forfeited (the program
//!   absorbs it) or carried as debt, per `return_policy`.
//! - The qualifying measure is taken back the same way (base points by the
//!   same cumulative floor, or the refund itself), dated on the day of the
//!   return; then the tier may go down (see `tier`).
//! - A return is not activity for inactivity expiry.

use super::apply::cumulative_share;
use super::decide::{Work, draw_fefo, require_enrolled};
use super::error::DomainError;
use super::event::{EarnReversed, EventKind};
use super::lot::LotDraw;
use super::money::Money;
use super::points::Points;
use super::rules::{QualifyingMeasure, ReturnPolicy, Rules};
use super::tier;
use crate::error::FieldReason;
use crate::ids::LotId;

pub(super) fn record_return(
    work: &mut Work<'_>,
    rules: &Rules,
    order_id: &str,
    refund: Money,
) -> Result<(), DomainError> {
    require_enrolled(work, "member_id")?;
    let member = work.member();
    let Some(purchase) = member.returnable_purchase(order_id, work.now_us()) else {
        return Err(DomainError::UnknownOrder {
            order_id: order_id.to_owned(),
        });
    };
    if refund.currency != purchase.spend.currency {
        return Err(DomainError::invalid(
            "refund.currency",
            FieldReason::WrongCurrency {
                expected: purchase.spend.currency.code().to_owned(),
                actual: refund.currency.code().to_owned(),
            },
        ));
    }
    let spend = purchase.spend.minor_units;
    let refunded = purchase
        .refunded_minor_units
        .checked_add(refund.minor_units)
        .filter(|total| *total <= spend)
        .ok_or(DomainError::RefundExceedsSpend {
            spend_minor_units: spend,
            refunded_minor_units: purchase.refunded_minor_units,
            refund_minor_units: refund.minor_units,
        })?;
    let points_total = cumulative_share(purchase.points.get(), refunded, spend);
    let points =
        Points::new(points_total).checked_sub(purchase.points_reversed, "points reversed")?;
    let base_total = cumulative_share(purchase.base_points.get(), refunded, spend);
    let base_reversed = base_total.saturating_sub(purchase.base_points_reversed.get());
    let qualifying_points_reversed = match rules.measure() {
        QualifyingMeasure::Points => base_reversed,
        QualifyingMeasure::Spend => refund.minor_units,
    };
    let (draws, shortfall_points) = claw_back(work, purchase.lot_id, points)?;
    let shortfall_policy = rules.return_policy();
    if shortfall_policy == ReturnPolicy::Debt {
        member
            .debt_points()
            .checked_add(shortfall_points, "debt_points")?;
        member
            .balance_points()
            .checked_sub(shortfall_points, "balance_points")?;
    }
    work.checks_done();
    work.emit(EventKind::EarnReversed(EarnReversed {
        order_id: order_id.to_owned(),
        refund,
        points,
        draws,
        shortfall_points,
        shortfall_policy,
        qualifying_points_reversed,
        base_points_reversed: Points::new(base_reversed),
    }));
    tier::after_return(work, rules);
    Ok(())
}

/// Own lot first, then other available lots first-expiring-first.
fn claw_back(
    work: &Work<'_>,
    own_lot_id: LotId,
    points: Points,
) -> Result<(Vec<LotDraw>, Points), DomainError> {
    let member = work.member();
    let mut draws = Vec::new();
    let mut missing = points;
    if let Some(own) = member.lots.state(own_lot_id)? {
        let take = Points::new(missing.get().min(own.remaining().get()));
        if take.is_positive() {
            draws.push(LotDraw {
                lot_id: own_lot_id,
                points: take,
            });
            missing = Points::new(missing.get() - take.get());
        }
    }
    let (others, shortfall) = draw_fefo(member, missing, Some(own_lot_id))?;
    draws.extend(others);
    Ok((draws, shortfall))
}
