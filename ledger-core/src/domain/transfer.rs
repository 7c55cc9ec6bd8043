//! Transfers between two members of one program: one `PointsTransferred` in
//! each stream, decided together.
//!
//! Only available points move, at most the sender's balance, drawn
//! first-expiring-first. The receiver gets one lot per drawn lot, keeping
//! its expiry date: a transfer never extends a point's life. The received
//! lots are available at once and dated at the transfer (`earned_at`).
//! The receiver's debt is paid off first, from the earliest-expiring
//! received points; a received lot left with no points is not created.
//! Both members must be enrolled; a transfer is not activity for either.

use super::command::TransferPoints;
use super::decide::{Work, draw_fefo, require_enrolled};
use super::error::DomainError;
use super::event::{EventKind, PointsTransferred};
use super::lot::{Lot, next_lot_id};
use super::points::Points;

pub(super) fn transfer(
    sender: &mut Work<'_>,
    receiver: &mut Work<'_>,
    command: &TransferPoints,
) -> Result<(), DomainError> {
    require_enrolled(sender, "from_member_id")?;
    require_enrolled(receiver, "to_member_id")?;
    let points = command.points;
    let available = sender.member().spendable_points();
    if points > available {
        return Err(DomainError::InsufficientPoints {
            available: available.get(),
            requested: points.get(),
        });
    }
    let (draws, missing) = draw_fefo(sender.member(), points, None)?;
    debug_assert!(
        missing == Points::ZERO,
        "transfer: the balance never exceeds the available lots"
    );
    let to = receiver.member();
    let now_us = receiver.now_us();
    to.balance_points().checked_add(points, "balance_points")?;
    let mut debt_left = to.debt_points().get().max(0);
    let mut lot_id = to.next_lot_id();
    let mut lots = Vec::with_capacity(draws.len());
    for draw in &draws {
        let Some(source) = sender.member().lot(draw.lot_id) else {
            debug_assert!(false, "transfer: a drawn lot is open");
            continue;
        };
        let repaid = draw.points.get().min(debt_left);
        debt_left -= repaid;
        let lot_points = draw.points.get() - repaid;
        if lot_points > 0 {
            lots.push(Lot {
                lot_id,
                points: Points::new(lot_points),
                earned_at_us: now_us,
                available_at_us: now_us,
                expires_at_us: source.expires_at_us(),
            });
            lot_id = next_lot_id(lot_id)?;
        }
    }
    let debt_repaid = Points::new(to.debt_points().get().max(0) - debt_left);
    let event = PointsTransferred {
        transfer_id: command.transfer_id.clone(),
        from_member_id: command.from_member_id.clone(),
        to_member_id: command.to_member_id.clone(),
        points,
        draws: Vec::new(),
        lots,
        debt_repaid,
    };
    sender.checks_done();
    receiver.checks_done();
    sender.emit(EventKind::PointsTransferred(PointsTransferred {
        draws,
        lots: Vec::new(),
        debt_repaid: Points::ZERO,
        ..event.clone()
    }));
    receiver.emit(EventKind::PointsTransferred(event));
    Ok(())
}
