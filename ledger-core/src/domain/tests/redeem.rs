//! Redemptions: first-expiring-first across lots, the minimum, no overdraw,
//! and cancellation (points back to their lots, expired ones back expired).

use super::*;

fn after_days(days: u32) -> Option<LotExpiry> {
    Some(LotExpiry {
        rule: Some(LotExpiryRule::AfterDays(days)),
    })
}

#[test]
fn redeem_consumes_available_lots_first_expiring_first() {
    // Three lots under three rule sets: never expiring, 365 and 100 days.
    let mut given = Given::new(rules_with(|_| {}));
    given.run(purchase("a", usd(100_00), &[]), t0());
    given.rules = rules_with(|raw| raw.lot_expiry = after_days(365));
    given.run(purchase("b", usd(100_00), &[]), t0() + DAY_US);
    given.rules = rules_with(|raw| raw.lot_expiry = after_days(100));
    given.run(purchase("c", usd(100_00), &[]), t0() + 2 * DAY_US);
    let events = given.run(redeem("reward-1", 250), t0() + 3 * DAY_US);
    assert_eq!(
        events,
        vec![Event {
            occurred_at_us: t0() + 3 * DAY_US,
            kind: EventKind::PointsRedeemed(PointsRedeemed {
                redemption_id: "reward-1".to_owned(),
                points: Points::new(250),
                // c expires first, then b; a never expires, so it is last.
                draws: vec![draw(3, 100), draw(2, 100), draw(1, 50)],
            }),
        }]
    );
    assert_eq!(given.balance(), 50);
    assert_eq!(given.member.lots().count(), 1);
    given.check_replay();
}

#[test]
fn ties_in_expiry_go_to_the_older_lot() {
    let mut given = Given::new(rules_with(|raw| raw.lot_expiry = after_days(30)));
    given.run(purchase("a", usd(10_00), &[]), t0());
    given.run(purchase("b", usd(10_00), &[]), t0());
    let events = given.run(redeem("r", 15), t0() + 1);
    let EventKind::PointsRedeemed(redeemed) = &events[0].kind else {
        panic!("expected a redemption")
    };
    assert_eq!(redeemed.draws, vec![draw(1, 10), draw(2, 5)]);
}

#[test]
fn redeem_never_overdraws_and_respects_the_minimum() {
    let mut given = Given::new(rules_with(|raw| raw.min_redeem_points = 50));
    given.run(purchase("a", usd(80_00), &[]), t0());
    assert_eq!(
        given.when(redeem("r", 40), t0()).unwrap_err(),
        DomainError::BelowMinimumRedeem {
            minimum: 50,
            requested: 40
        }
    );
    let error = given.when(redeem("r", 81), t0()).unwrap_err();
    assert_eq!(
        error,
        DomainError::InsufficientPoints {
            available: 80,
            requested: 81
        }
    );
    assert_eq!(error.code(), "insufficient_points");
    given.run(redeem("r", 80), t0());
    assert_eq!(
        given.when(redeem("r", 50), t0()).unwrap_err(),
        DomainError::DuplicateRedemption {
            redemption_id: "r".to_owned()
        }
    );
}

#[test]
fn redeem_needs_an_enrolled_member() {
    let rules = rules_with(|_| {});
    assert_eq!(
        decide(&Member::default(), &redeem("r", 1), &rules, t0()).unwrap_err(),
        DomainError::NotEnrolled { field: "member_id" }
    );
}

#[test]
fn cancel_gives_points_back_to_their_lots_and_expired_lots_back_expired() {
    let mut given = Given::new(rules_with(|raw| raw.lot_expiry = after_days(100)));
    given.run(purchase("a", usd(100_00), &[]), t0()); // lot 1, expires day 100
    given.run(purchase("b", usd(100_00), &[]), t0() + 50 * DAY_US); // lot 2, day 150
    given.run(redeem("r", 150), t0() + 60 * DAY_US); // 100 from lot 1, 50 from lot 2
    assert_eq!(given.balance(), 50);
    let now = t0() + 120 * DAY_US;
    let events = given.run(cancel("r"), now);
    assert_eq!(
        events,
        vec![Event {
            occurred_at_us: now,
            kind: EventKind::RedemptionCancelled(RedemptionCancelled {
                redemption_id: "r".to_owned(),
                points: Points::new(150),
                restored: vec![draw(2, 50)],
                // Lot 1 expired on day 100: had it not been redeemed, these
                // points would be gone, so they come back expired.
                expired: vec![draw(1, 100)],
            }),
        }]
    );
    assert_eq!(given.balance(), 100);
    assert_eq!(
        given.member.lot(LotId::new(2)).unwrap().remaining().get(),
        100
    );
    assert_eq!(
        given.when(cancel("r"), now).unwrap_err(),
        DomainError::RedemptionAlreadyCancelled {
            redemption_id: "r".to_owned()
        }
    );
    assert_eq!(
        given.when(cancel("nope"), now).unwrap_err(),
        DomainError::UnknownRedemption {
            redemption_id: "nope".to_owned()
        }
    );
    given.check_replay();
}

#[test]
fn cancel_reopens_a_lot_that_was_used_up() {
    let mut given = Given::new(rules_with(|_| {}));
    given.run(purchase("a", usd(30_00), &[]), t0());
    given.run(redeem("r", 30), t0() + 1);
    assert_eq!(given.member.lots().count(), 0);
    let events = given.run(cancel("r"), t0() + 2);
    let EventKind::RedemptionCancelled(cancelled) = &events[0].kind else {
        panic!("expected a cancellation")
    };
    assert_eq!(cancelled.restored, vec![draw(1, 30)]);
    let lot = given.member.lot(LotId::new(1)).unwrap();
    assert_eq!(lot.remaining().get(), 30);
    assert_eq!(lot.lot().earned_at_us, t0());
    given.check_replay();
}

#[test]
fn cancel_after_an_inactivity_period_gives_points_back_expired() {
    // The member redeemed everything, then did nothing for longer than the
    // inactivity period: the redeemed points would have expired.
    let mut given = Given::new(rules_with(|raw| raw.inactivity_expiry_days = 365));
    given.run(purchase("a", usd(10_00), &[]), t0());
    given.run(redeem("r", 10), t0() + DAY_US);
    // An earn after the gap resets activity, but the gap happened.
    given.run(purchase("b", usd(5_00), &[]), t0() + 400 * DAY_US);
    let events = given.run(cancel("r"), t0() + 401 * DAY_US);
    let EventKind::RedemptionCancelled(cancelled) = &events[0].kind else {
        panic!("expected a cancellation")
    };
    assert_eq!(cancelled.restored, vec![]);
    assert_eq!(cancelled.expired, vec![draw(1, 10)]);
    assert_eq!(given.balance(), 5);
    given.check_replay();
}

#[test]
fn a_gap_before_the_redemption_does_not_expire_its_cancel() {
    // A gap longer than the inactivity period closed before the redemption,
    // then shorter ones after it: only the gaps after it count, and none of
    // them reached the period, so the cancel gives the points back. A second
    // redemption made before the long gap is given back expired.
    let mut given = Given::new(rules_with(|raw| raw.inactivity_expiry_days = 365));
    given.run(purchase("a", usd(10_00), &[]), t0());
    given.run(redeem("early", 4), t0() + DAY_US);
    given.run(purchase("b", usd(10_00), &[]), t0() + 400 * DAY_US);
    given.run(redeem("late", 5), t0() + 401 * DAY_US);
    given.run(purchase("c", usd(1_00), &[]), t0() + 500 * DAY_US);
    given.run(purchase("d", usd(1_00), &[]), t0() + 520 * DAY_US);
    let events = given.run(cancel("late"), t0() + 530 * DAY_US);
    let EventKind::RedemptionCancelled(cancelled) = &events[0].kind else {
        panic!("expected a cancellation")
    };
    assert!(cancelled.expired.is_empty(), "{cancelled:?}");
    assert_eq!(
        cancelled
            .restored
            .iter()
            .map(|d| d.points.get())
            .sum::<i64>(),
        5
    );
    let events = given.run(cancel("early"), t0() + 531 * DAY_US);
    let EventKind::RedemptionCancelled(cancelled) = &events[0].kind else {
        panic!("expected a cancellation")
    };
    assert!(cancelled.restored.is_empty(), "{cancelled:?}");
    assert_eq!(cancelled.expired, vec![draw(1, 4)]);
    given.check_replay();
}
