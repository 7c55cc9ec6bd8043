//! Returns: a partial return after part of the lot was spent, under both
//! return policies; debt paid off by a later earn; refunds capped by spend;
//! a return that undoes a tier upgrade.

use super::*;

fn policy_rules(policy: ShortfallPolicy) -> Rules {
    rules_with(|raw| raw.return_policy = policy)
}

/// Purchase A ($100 -> lot 1: 100), award 20 (lot 2), redeem 90 (all from
/// lot 1): lot 1 holds 10, lot 2 holds 20.
fn spent_history(policy: ShortfallPolicy) -> Given {
    let mut given = Given::new(policy_rules(policy));
    given.run(purchase("A", usd(100_00), &[]), t0());
    given.run(award(20), t0() + 1);
    given.run(redeem("r", 90), t0() + 2);
    assert_eq!(given.balance(), 30);
    given
}

fn reversed(policy: ReturnPolicy) -> EarnReversed {
    EarnReversed {
        order_id: "A".to_owned(),
        refund: usd(60_00),
        points: Points::new(60),
        // Own lot first, then the other lot; 30 still missing.
        draws: vec![draw(1, 10), draw(2, 20)],
        shortfall_points: Points::new(30),
        shortfall_policy: policy,
        qualifying_points_reversed: 60,
        base_points_reversed: Points::new(60),
    }
}

#[test]
fn partial_return_after_spending_forfeits_the_shortfall() {
    let mut given = spent_history(ShortfallPolicy::Forfeit);
    let now = t0() + DAY_US;
    let events = given.run(refund("A", usd(60_00)), now);
    assert_eq!(
        events,
        vec![Event {
            occurred_at_us: now,
            kind: EventKind::EarnReversed(reversed(ReturnPolicy::Forfeit)),
        }]
    );
    assert_eq!(given.balance(), 0);
    assert_eq!(given.member.debt_points().get(), 0);
    // A later earn is not reduced: nothing is owed.
    let earn = given.run(purchase("B", usd(50_00), &[]), now + 1);
    assert_eq!(earned(&earn[0]).debt_repaid, Points::ZERO);
    assert_eq!(given.balance(), 50);
    // The rest of the refund: cumulative floor(100 x 100/100) - 60 = 40,
    // from lot 3 (B's), since lot 1 is used up.
    let rest = given.run(refund("A", usd(40_00)), now + 2);
    let EventKind::EarnReversed(rest) = &rest[0].kind else {
        panic!("expected a reversal")
    };
    assert_eq!(rest.points.get(), 40);
    assert_eq!(rest.draws, vec![draw(3, 40)]);
    assert_eq!(rest.shortfall_points, Points::ZERO);
    assert_eq!(given.balance(), 10);
    assert_eq!(
        given.when(refund("A", usd(1)), now + 3).unwrap_err(),
        DomainError::RefundExceedsSpend {
            spend_minor_units: 100_00,
            refunded_minor_units: 100_00,
            refund_minor_units: 1
        }
    );
    given.check_replay();
}

#[test]
fn partial_return_after_spending_carries_the_shortfall_as_debt() {
    let mut given = spent_history(ShortfallPolicy::Debt);
    let now = t0() + DAY_US;
    let events = given.run(refund("A", usd(60_00)), now);
    assert_eq!(
        events[0].kind,
        EventKind::EarnReversed(reversed(ReturnPolicy::Debt))
    );
    assert_eq!(given.balance(), -30);
    assert_eq!(given.member.debt_points().get(), 30);
    // Debt is paid off first by the next earn.
    let earn = given.run(purchase("B", usd(50_00), &[]), now + 1);
    let earn = earned(&earn[0]);
    assert_eq!(earn.points.get(), 50);
    assert_eq!(earn.debt_repaid.get(), 30);
    assert_eq!(earn.lot.points.get(), 20);
    assert_eq!(given.balance(), 20);
    assert_eq!(given.member.debt_points().get(), 0);
    // The rest of the refund: 40 more, 20 drawn, 20 back into debt.
    let rest = given.run(refund("A", usd(40_00)), now + 2);
    let EventKind::EarnReversed(rest) = &rest[0].kind else {
        panic!("expected a reversal")
    };
    assert_eq!(rest.draws, vec![draw(3, 20)]);
    assert_eq!(rest.shortfall_points.get(), 20);
    assert_eq!(given.balance(), -20);
    // A redeem with debt is refused: the balance is what may be spent.
    assert_eq!(
        given.when(redeem("r2", 1), now + 3).unwrap_err(),
        DomainError::InsufficientPoints {
            available: 0,
            requested: 1
        }
    );
    given.check_replay();
}

#[test]
fn a_return_during_the_pending_period_takes_the_pending_lot() {
    let mut given = Given::new(rules_with(|raw| raw.pending_days = 30));
    given.run(purchase("A", usd(100_00), &[]), t0());
    let events = given.run(refund("A", usd(25_00)), t0() + DAY_US);
    let EventKind::EarnReversed(reversed) = &events[0].kind else {
        panic!("expected a reversal")
    };
    assert_eq!(reversed.draws, vec![draw(1, 25)]);
    assert_eq!(given.member.pending_points().get(), 75);
    let matured = given.run(Command::MaturePending, t0() + 30 * DAY_US);
    assert_eq!(
        matured[0].kind,
        EventKind::PointsMatured(PointsMatured {
            lot_id: LotId::new(1),
            points: Points::new(75)
        })
    );
    given.check_replay();
}

#[test]
fn return_validation() {
    let mut given = Given::new(rules_with(|_| {}));
    given.run(purchase("A", usd(10_00), &[]), t0());
    assert_eq!(
        given.when(refund("B", usd(1_00)), t0()).unwrap_err(),
        DomainError::UnknownOrder {
            order_id: "B".to_owned()
        }
    );
    assert_eq!(
        given
            .when(refund("A", Money::new(1_00, currency("EUR"))), t0())
            .unwrap_err(),
        DomainError::invalid(
            "refund.currency",
            FieldReason::WrongCurrency {
                expected: "USD".to_owned(),
                actual: "EUR".to_owned()
            }
        )
    );
    assert_eq!(
        given
            .when(refund("A", usd(10_01)), t0())
            .unwrap_err()
            .code(),
        "refund_exceeds_spend"
    );
    // Purchases are remembered for RECORD_RETENTION_DAYS, then forgotten.
    let late = t0() + 733 * DAY_US;
    assert_eq!(
        given.when(refund("A", usd(1_00)), late).unwrap_err().code(),
        "unknown_order"
    );
}

#[test]
fn a_return_undoes_the_upgrade_it_paid_for() {
    let mut given = Given::new(gold_rules(|_| {}));
    given.run(purchase("A", usd(1_000_00), &[]), t0());
    assert_eq!(given.member.tier(), "Gold");
    let events = given.run(refund("A", usd(500_00)), t0() + DAY_US);
    assert_eq!(kinds(&events), ["EarnReversed", "TierChanged"]);
    assert_eq!(
        events[1].kind,
        EventKind::TierChanged(TierChanged {
            from_tier: "Gold".to_owned(),
            to_tier: "Base".to_owned(),
            reason: TierChangeReason::Return,
            qualifying: 500,
        })
    );
    given.check_replay();
}

#[test]
fn a_return_never_takes_away_a_tier_secured_at_a_review() {
    let mut given = Given::new(gold_rules(|_| {}));
    given.run(purchase("A", usd(1_000_00), &[]), t0());
    let review = given.run(Command::EvaluateTier, date(2025, 1, 1));
    assert_eq!(
        review[0].kind,
        EventKind::TierChanged(TierChanged {
            from_tier: "Gold".to_owned(),
            to_tier: "Gold".to_owned(),
            reason: TierChangeReason::PeriodEnd,
            qualifying: 1_000,
        })
    );
    let events = given.run(refund("A", usd(1_000_00)), date(2025, 1, 5));
    assert_eq!(kinds(&events), ["EarnReversed"]);
    assert_eq!(given.member.tier(), "Gold");
    given.check_replay();
}
