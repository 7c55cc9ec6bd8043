//! `apply`: folds one decided event into a member's state. It only mutates:
//! no rules, no clock, no validation (the event was validated when decided;
//! the log is trusted and checked on decode). Everything it needs is in the
//! event, the event's time, or the state itself.

use super::event::{
    EarnReversed, Event, EventKind, ExpiryReason, PointsAdjusted, PointsEarned, PointsMatured,
    PointsRedeemed, PointsTransferred, RedemptionCancelled, TierChangeReason, TierChanged,
};
use super::lot::{Lot, LotDraw, OpenLot};
use super::member::{Member, Purchase, QualifyingDay, Redemption};
use super::points::Points;
use super::time::day_of;
use crate::ids::LotId;
use crate::limits::QUALIFYING_HISTORY_DAYS_MAX;

/// Folds `event` into `state`. Program events (`ProgramDefined`,
/// `ProgramRulesChanged`) belong to program streams and leave a member as it
/// is; see `apply_program`.
pub fn apply(state: &mut Member, event: &Event) {
    // The member's clock never runs backwards: a command with an earlier
    // business time is decided, and applied, at the latest time seen.
    let previous_clock_us = state.clock_us;
    let now_us = state.clock_us.max(event.occurred_at_us);
    state.clock_us = now_us;
    match &event.kind {
        EventKind::ProgramDefined(_) | EventKind::ProgramRulesChanged(_) => {}
        EventKind::MemberEnrolled(_) => {
            state.enrolled = true;
            state.last_activity_us = now_us;
            state.tier_since_us = now_us;
            state.tier_period_start_us = now_us;
        }
        EventKind::PointsEarned(earned) => apply_earned(state, earned, now_us),
        EventKind::PointsAwarded(awarded) => {
            repay_debt(state, awarded.debt_repaid);
            create_lot(state, &awarded.lot, now_us);
            note_activity(state, now_us);
        }
        EventKind::PointsRedeemed(redeemed) => apply_redeemed(state, redeemed, now_us),
        EventKind::RedemptionCancelled(cancelled) => apply_cancelled(state, cancelled),
        EventKind::EarnReversed(reversed) => apply_reversed(state, reversed, now_us),
        EventKind::PointsAdjusted(adjusted) => apply_adjusted(state, adjusted, now_us),
        EventKind::PointsTransferred(transferred) => apply_transferred(state, transferred, now_us),
        EventKind::PointsMatured(matured) => apply_matured(state, matured),
        EventKind::PointsExpired(expired) => {
            debug_assert!(
                expired.reason == ExpiryReason::Lot
                    || expired.draws.len() as u64 == state.lots.open_count(),
                "inactivity expiry: the whole balance expires"
            );
            take_draws(state, &expired.draws);
        }
        EventKind::TierChanged(changed) => apply_tier_changed(state, changed, now_us),
    }
    if day_of(now_us) != day_of(previous_clock_us) {
        prune(state, now_us);
    }
    check_invariants(state);
}

fn apply_earned(state: &mut Member, earned: &PointsEarned, now_us: i64) {
    repay_debt(state, earned.debt_repaid);
    create_lot(state, &earned.lot, now_us);
    note_activity(state, now_us);
    add_qualifying(
        state,
        now_us,
        QualifyingDay {
            base_points: earned.base_points.get(),
            spend_minor_units: earned.spend.minor_units,
        },
    );
    state.purchases.insert(
        earned.order_id.clone(),
        Purchase {
            lot_id: earned.lot.lot_id,
            spend: earned.spend,
            base_points: earned.base_points,
            points: earned.points,
            purchased_at_us: now_us,
            refunded_minor_units: 0,
            points_reversed: Points::ZERO,
            base_points_reversed: Points::ZERO,
        },
    );
}

fn apply_redeemed(state: &mut Member, redeemed: &PointsRedeemed, now_us: i64) {
    // Remember each drawn lot as it was created, so that a cancel can reopen
    // it even after it closed.
    let draws = redeemed
        .draws
        .iter()
        .filter_map(|draw| {
            state
                .lots
                .get(draw.lot_id)
                .map(|lot| (*lot.lot(), draw.points))
        })
        .collect();
    take_draws(state, &redeemed.draws);
    note_activity(state, now_us);
    state.redemptions.insert(
        redeemed.redemption_id.clone(),
        Redemption {
            redeemed_at_us: now_us,
            points: redeemed.points,
            draws,
            cancelled: false,
        },
    );
}

fn apply_matured(state: &mut Member, matured: &PointsMatured) {
    let Some(lot) = state.lots.get(matured.lot_id) else {
        debug_assert!(false, "maturation: the maturing lot is open and held");
        return;
    };
    debug_assert!(lot.is_pending(), "maturation: only a pending lot matures");
    debug_assert!(
        lot.remaining() == matured.points,
        "maturation: the whole remainder of the lot matures"
    );
    state.lots.mature(matured.lot_id);
    state.pending_points = state
        .pending_points
        .sub_decided(matured.points, "pending_points");
    state.balance_points = state
        .balance_points
        .add_decided(matured.points, "balance_points");
}

/// Every tier change or review starts a new tier period; a review also
/// fixes the tier secured for it (the floor a return cannot go below).
fn apply_tier_changed(state: &mut Member, changed: &TierChanged, now_us: i64) {
    if changed.from_tier != changed.to_tier {
        state.tier_since_us = now_us;
    }
    if changed.reason == TierChangeReason::PeriodEnd {
        state.tier_floor = changed.to_tier.clone();
    }
    state.tier = changed.to_tier.clone();
    state.tier_period_start_us = now_us;
}

fn apply_cancelled(state: &mut Member, cancelled: &RedemptionCancelled) {
    let Some(redemption) = state.redemptions.get_mut(&cancelled.redemption_id) else {
        debug_assert!(false, "cancellation: the redemption is remembered");
        return;
    };
    redemption.cancelled = true;
    let originals = redemption.draws.clone();
    for draw in &cancelled.restored {
        let original = originals.iter().find(|(lot, _)| lot.lot_id == draw.lot_id);
        match (state.lots.get(draw.lot_id), original) {
            (Some(open), _) => {
                let remaining = open.remaining().add_decided(draw.points, "lot remaining");
                state.lots.set_remaining(draw.lot_id, remaining);
            }
            // The lot closed since (fully used): it opens again as created.
            (None, Some((lot, _))) => {
                state.lots.open(OpenLot::new(*lot, draw.points, false));
            }
            (None, None) => debug_assert!(false, "cancellation: restored lots were drawn"),
        }
        state.balance_points = state
            .balance_points
            .add_decided(draw.points, "balance_points");
    }
    // Points in `expired` are not given back: their lots expired meanwhile.
}

fn apply_reversed(state: &mut Member, reversed: &EarnReversed, now_us: i64) {
    take_draws(state, &reversed.draws);
    if reversed.shortfall_policy == super::rules::ReturnPolicy::Debt {
        state.debt_points = state
            .debt_points
            .add_decided(reversed.shortfall_points, "debt_points");
        state.balance_points = state
            .balance_points
            .sub_decided(reversed.shortfall_points, "balance_points");
    }
    let base_reversed = reversed.base_points_reversed.get();
    match state.purchases.get_mut(&reversed.order_id) {
        Some(purchase) => reverse_purchase(purchase, reversed),
        // Kept elsewhere and not held: its stored row is the latest.
        None => debug_assert!(
            state.records_elsewhere,
            "return: the purchase is remembered"
        ),
    }
    add_qualifying(
        state,
        now_us,
        QualifyingDay {
            base_points: base_reversed.saturating_neg(),
            spend_minor_units: reversed.refund.minor_units.saturating_neg(),
        },
    );
}

/// What a return changes in its purchase's record.
fn reverse_purchase(purchase: &mut Purchase, reversed: &EarnReversed) {
    purchase.refunded_minor_units = purchase
        .refunded_minor_units
        .saturating_add(reversed.refund.minor_units);
    purchase.points_reversed = purchase
        .points_reversed
        .add_decided(reversed.points, "points_reversed");
    // Base points go back by the same cumulative floor as points (decided in
    // `reverse`), so a purchase refunded in pieces gives back exactly its
    // base points.
    purchase.base_points_reversed = purchase
        .base_points_reversed
        .add_decided(reversed.base_points_reversed, "base_points_reversed");
    debug_assert_eq!(
        purchase.base_points_reversed.get(),
        cumulative_share(
            purchase.base_points.get(),
            purchase.refunded_minor_units,
            purchase.spend.minor_units,
        ),
        "return: base points reversed follow the cumulative floor"
    );
}

fn apply_adjusted(state: &mut Member, adjusted: &PointsAdjusted, now_us: i64) {
    repay_debt(state, adjusted.debt_repaid);
    if let Some(lot) = &adjusted.lot {
        create_lot(state, lot, now_us);
        // A credit is an earn for inactivity (see `adjust`).
        note_activity(state, now_us);
    }
    take_draws(state, &adjusted.draws);
}

fn apply_transferred(state: &mut Member, transferred: &PointsTransferred, now_us: i64) {
    if transferred.draws.is_empty() {
        // The receiver's copy: lots created, debt repaid.
        repay_debt(state, transferred.debt_repaid);
        for lot in &transferred.lots {
            create_lot(state, lot, now_us);
        }
    } else {
        debug_assert!(
            transferred.lots.is_empty(),
            "transfer: the sender's copy creates no lot"
        );
        take_draws(state, &transferred.draws);
    }
}

/// `floor(total x part / whole)`, the share of a purchase a refund reverses.
pub(super) fn cumulative_share(total: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    let share = i128::from(total) * i128::from(part) / i128::from(whole);
    i64::try_from(share).unwrap_or(i64::MAX)
}

fn repay_debt(state: &mut Member, repaid: Points) {
    state.debt_points = state.debt_points.sub_decided(repaid, "debt_points");
    state.balance_points = state.balance_points.add_decided(repaid, "balance_points");
}

/// Adds a created lot; a lot whose points all went to debt stays closed but
/// still takes its id.
fn create_lot(state: &mut Member, lot: &Lot, now_us: i64) {
    debug_assert!(
        lot.lot_id == LotId::new(state.lots_created.saturating_add(1)),
        "lot ids: contiguous from 1 per member"
    );
    state.lots_created = state.lots_created.max(lot.lot_id.get());
    let pending = lot.available_at_us > now_us;
    if pending {
        state.pending_points = state
            .pending_points
            .add_decided(lot.points, "pending_points");
    } else {
        state.balance_points = state
            .balance_points
            .add_decided(lot.points, "balance_points");
    }
    if lot.points.is_positive() {
        state.lots.open(OpenLot::new(*lot, lot.points, pending));
    }
}

/// Takes drawn points out of their lots; emptied lots close.
fn take_draws(state: &mut Member, draws: &[LotDraw]) {
    for draw in draws {
        let Some(lot) = state.lots.get(draw.lot_id) else {
            debug_assert!(false, "draws: a drawn lot is open and held");
            continue;
        };
        debug_assert!(
            draw.points <= lot.remaining(),
            "draws: never more than a lot holds"
        );
        let remaining = lot.remaining().sub_decided(draw.points, "lot remaining");
        let pending = lot.is_pending();
        if remaining.is_positive() {
            state.lots.set_remaining(draw.lot_id, remaining);
        } else {
            state.lots.close(draw.lot_id);
        }
        if pending {
            state.pending_points = state
                .pending_points
                .sub_decided(draw.points, "pending_points");
        } else {
            state.balance_points = state
                .balance_points
                .sub_decided(draw.points, "balance_points");
        }
    }
}

/// An earn or a redeem: closes the current inactivity gap, which the
/// redemptions made before it must be able to ask about (see
/// `Member::activity_gaps`). Amortized constant time: each gap is pushed
/// once and dropped at most once.
fn note_activity(state: &mut Member, now_us: i64) {
    let start_us = state.last_activity_us;
    let gap_us = now_us.saturating_sub(start_us);
    if gap_us > 0 {
        while state
            .activity_gaps
            .last()
            .is_some_and(|(_, length_us)| *length_us <= gap_us)
        {
            state.activity_gaps.pop();
        }
        debug_assert!(
            state
                .activity_gaps
                .last()
                .is_none_or(|(last_start_us, _)| *last_start_us < start_us),
            "activity gaps: starts ascending"
        );
        state.activity_gaps.push((start_us, gap_us));
    }
    state.last_activity_us = now_us;
}

fn add_qualifying(state: &mut Member, now_us: i64, delta: QualifyingDay) {
    let day = state.qualifying.entry(day_of(now_us)).or_default();
    day.base_points = day.base_points.saturating_add(delta.base_points);
    day.spend_minor_units = day
        .spend_minor_units
        .saturating_add(delta.spend_minor_units);
}

/// Forgets what no decision can read any more, so that a member's state
/// stays bounded: qualifying days older than every window, purchases and
/// redemptions older than the retention period. Runs when the day changes.
///
/// Qualifying days are kept back from the start of the current tier period
/// as well as from now: a review decided late (the member had no command
/// for years) still measures the window that ends at its period end, which
/// lies before now. Every window read is within `QUALIFYING_HISTORY_DAYS_MAX`
/// days of one of the two.
fn prune(state: &mut Member, now_us: i64) {
    let anchor_day = day_of(now_us).min(day_of(state.tier_period_start_us));
    let first_day = anchor_day.saturating_sub(QUALIFYING_HISTORY_DAYS_MAX);
    state.qualifying = state.qualifying.split_off(&first_day);
    // Whole days, so that what a replay keeps depends on the day of the
    // member's clock alone (`records_kept_since_us`), not on the event that
    // changed the day.
    let oldest_us = state.records_kept_since_us();
    state
        .purchases
        .retain(|_, purchase| purchase.purchased_at_us >= oldest_us);
    state
        .redemptions
        .retain(|_, redemption| redemption.redeemed_at_us >= oldest_us);
    // Only redemptions kept ask about gaps, and they ask about those that
    // start after they were made.
    let first = state
        .activity_gaps
        .partition_point(|(start_us, _)| *start_us < oldest_us);
    state.activity_gaps.drain(..first);
}

/// The hot invariants, checked after every event in debug builds. The sums
/// over the lots are exact when every lot is held; when part of them is
/// kept elsewhere, the lots held are a part of what the totals count.
fn check_invariants(state: &Member) {
    if cfg!(debug_assertions) {
        let available = state.held_available_points().get();
        let pending: i64 = state
            .lots
            .values()
            .filter(|lot| lot.is_pending())
            .map(|lot| lot.remaining().get())
            .sum();
        if state.lots.all_held() {
            debug_assert_eq!(
                state.balance_points.get(),
                available - state.debt_points.get(),
                "balance invariant: balance == sum of open available lots - debt"
            );
            debug_assert_eq!(
                state.pending_points.get(),
                pending,
                "pending invariant: pending == sum of open pending lots"
            );
        } else {
            debug_assert!(
                available <= state.balance_points.get() + state.debt_points.get(),
                "balance invariant: the held lots are part of the balance"
            );
            debug_assert!(
                pending <= state.pending_points.get(),
                "pending invariant: the held pending lots are part of it"
            );
        }
        debug_assert!(
            state.debt_points.get() >= 0,
            "debt invariant: debt is never negative"
        );
        debug_assert!(
            state.lots.values().all(|lot| lot.remaining().is_positive()),
            "lot invariant: only lots with points left are open"
        );
        debug_assert!(
            state.lots.indexes_agree(),
            "lot index invariant: the orders match the held lots, within the counts"
        );
    }
}
