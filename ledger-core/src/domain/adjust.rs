//! Operator adjustments, signed. A credit creates a lot under the program's
//! expiry rule, available at once, after paying off debt; it counts as an
//! earn for inactivity expiry (otherwise a credit to a long-inactive member
//! would be due to expire the moment it was made). A debit consumes
//! available lots first-expiring-first and, like a redeem, may not take
//! more than the balance (an error, never a debt); it is not activity.

use super::decide::{Work, draw_fefo, require_enrolled};
use super::earn::new_lot;
use super::error::DomainError;
use super::event::{EventKind, PointsAdjusted};
use super::points::Points;
use super::rules::Rules;

pub(super) fn adjust(
    work: &mut Work<'_>,
    rules: &Rules,
    reason: &str,
    points: Points,
) -> Result<(), DomainError> {
    require_enrolled(work, "member_id")?;
    if points.is_positive() {
        // An adjustment is an operator's correction, never pending.
        let (lot, debt_repaid) = new_lot(work, rules, points, work.now_us())?;
        work.checks_done();
        work.emit(EventKind::PointsAdjusted(PointsAdjusted {
            reason: reason.to_owned(),
            points,
            lot: Some(lot),
            draws: Vec::new(),
            debt_repaid,
        }));
        return Ok(());
    }
    let requested = points.checked_neg("points")?;
    let available = work.member().spendable_points();
    if requested > available {
        return Err(DomainError::InsufficientPoints {
            available: available.get(),
            requested: requested.get(),
        });
    }
    let (draws, missing) = draw_fefo(work.member(), requested, None)?;
    debug_assert!(
        missing == Points::ZERO,
        "debit: the balance never exceeds the available lots"
    );
    work.checks_done();
    work.emit(EventKind::PointsAdjusted(PointsAdjusted {
        reason: reason.to_owned(),
        points,
        lot: None,
        draws,
        debt_repaid: Points::ZERO,
    }));
    Ok(())
}
