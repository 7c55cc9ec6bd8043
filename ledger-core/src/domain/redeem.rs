//! Redemptions and their cancellation.
//!
//! A redeem never overdraws: it may take at most the balance (available
//! points minus debt), at least the program minimum, from available lots
//! first-expiring-first. It counts as activity for inactivity expiry.
//!
//! A cancel gives the points back to the lots they came from (reopening a
//! lot that was used up since). Points whose lot would have expired by now
//! had they not been redeemed come back expired instead: the lot's own
//! expiry has passed, or the member has since gone a whole inactivity period
//! without earning or redeeming (which would have expired the whole
//! balance). A cancel is not activity.

use super::decide::{Work, draw_fefo, require_enrolled};
use super::error::DomainError;
use super::event::{EventKind, PointsRedeemed, RedemptionCancelled};
use super::lot::LotDraw;
use super::points::Points;
use super::rules::Rules;

pub(super) fn redeem(
    work: &mut Work<'_>,
    rules: &Rules,
    redemption_id: &str,
    points: Points,
) -> Result<(), DomainError> {
    require_enrolled(work, "member_id")?;
    let member = work.member();
    if member
        .cancellable_redemption(redemption_id, work.now_us())
        .is_some()
    {
        return Err(DomainError::DuplicateRedemption {
            redemption_id: redemption_id.to_owned(),
        });
    }
    let minimum = rules.min_redeem_points();
    if points < minimum {
        return Err(DomainError::BelowMinimumRedeem {
            minimum: minimum.get(),
            requested: points.get(),
        });
    }
    let available = member.spendable_points();
    if points > available {
        return Err(DomainError::InsufficientPoints {
            available: available.get(),
            requested: points.get(),
        });
    }
    let (draws, missing) = draw_fefo(member, points, None)?;
    debug_assert!(
        missing == Points::ZERO,
        "redeem: the balance never exceeds the available lots"
    );
    work.checks_done();
    work.emit(EventKind::PointsRedeemed(PointsRedeemed {
        redemption_id: redemption_id.to_owned(),
        points,
        draws,
    }));
    Ok(())
}

pub(super) fn cancel(
    work: &mut Work<'_>,
    rules: &Rules,
    redemption_id: &str,
) -> Result<(), DomainError> {
    require_enrolled(work, "member_id")?;
    let now_us = work.now_us();
    let member = work.member();
    let Some(redemption) = member.cancellable_redemption(redemption_id, now_us) else {
        return Err(DomainError::UnknownRedemption {
            redemption_id: redemption_id.to_owned(),
        });
    };
    if redemption.cancelled {
        return Err(DomainError::RedemptionAlreadyCancelled {
            redemption_id: redemption_id.to_owned(),
        });
    }
    let inactive = rules.inactivity_expiry_us().is_some_and(|period_us| {
        let open_gap_us = now_us.saturating_sub(member.last_activity_us());
        member
            .longest_inactive_gap_since(redemption.redeemed_at_us)
            .max(open_gap_us)
            >= period_us
    });
    let mut restored = Vec::new();
    let mut expired = Vec::new();
    for (lot, points) in &redemption.draws {
        let draw = LotDraw {
            lot_id: lot.lot_id,
            points: *points,
        };
        let lot_expired = lot
            .expires_at_us
            .is_some_and(|expires_at_us| expires_at_us <= now_us);
        if inactive || lot_expired {
            expired.push(draw);
        } else {
            // Giving points back needs to know whether the lot is still
            // open (it gets them) or closed (it opens again as created).
            member.lots.state(lot.lot_id)?;
            restored.push(draw);
        }
    }
    let restored_points =
        Points::checked_sum(restored.iter().map(|draw| draw.points), "restored points")?;
    work.member_balance_headroom(restored_points)?;
    let points = redemption.points;
    work.checks_done();
    work.emit(EventKind::RedemptionCancelled(RedemptionCancelled {
        redemption_id: redemption_id.to_owned(),
        points,
        restored,
        expired,
    }));
    Ok(())
}
