//! Deciding in place (the engine's path): a rejection leaves the member as
//! it was, even when the decision's due work had already changed it; an
//! acceptance leaves it as applying the events does. Every other test of
//! this module checks the same through `Given::when`; these cases make the
//! due work come first on purpose.

use super::*;

#[test]
fn a_rejection_after_due_work_leaves_the_member_as_it_was() {
    let rules = rules_with(|raw| raw.pending_days = 30);
    let mut given = Given::new(rules);
    given.run(purchase("o-1", usd(100_00), &[]), t0());
    let before = given.member.clone();
    let later = t0() + 31 * DAY_US;
    // The lot matures first (due work), then the redeem asks for too much.
    let mut member = given.member.clone();
    let refused = decide_in_place(&mut member, &redeem("r-1", 500), &given.rules, later);
    assert_eq!(
        refused,
        Err(InPlaceError::Rejected(DomainError::InsufficientPoints {
            available: 100,
            requested: 500,
        }))
    );
    assert_eq!(member, before, "the maturation was rolled back too");
    assert_eq!(member.pending_points().get(), 100);
}

#[test]
fn an_acceptance_after_due_work_keeps_the_due_work_and_the_command() {
    let rules = rules_with(|raw| raw.pending_days = 30);
    let mut given = Given::new(rules);
    given.run(purchase("o-1", usd(100_00), &[]), t0());
    let later = t0() + 31 * DAY_US;
    let mut member = given.member.clone();
    let events =
        decide_in_place(&mut member, &redeem("r-1", 60), &given.rules, later).expect("accepted");
    assert_eq!(kinds(&events), vec!["PointsMatured", "PointsRedeemed"]);
    given.record(&events);
    assert_eq!(member, given.member);
    assert_eq!(
        (member.balance_points().get(), member.pending_points().get()),
        (40, 0)
    );
    given.check_replay();
}

#[test]
fn a_rejection_before_any_change_leaves_the_member_as_it_was() {
    let mut given = Given::new(rules_with(|_| {}));
    given.run(award(10), t0());
    let before = given.member.clone();
    let mut member = given.member.clone();
    let refused = decide_in_place(
        &mut member,
        &purchase("o-1", usd(1_00), &[]),
        &given.rules,
        t0(),
    )
    .and_then(|_| {
        decide_in_place(
            &mut member,
            &purchase("o-1", usd(1_00), &[]),
            &given.rules,
            t0(),
        )
    });
    assert_eq!(
        refused,
        Err(InPlaceError::Rejected(DomainError::DuplicateOrder {
            order_id: "o-1".to_owned(),
        }))
    );
    // The first purchase was accepted and stays; the duplicate changed nothing.
    let mut expected = before;
    for event in given
        .when(purchase("o-1", usd(1_00), &[]), t0())
        .expect("first")
    {
        apply(&mut expected, &event);
    }
    assert_eq!(member, expected);
}
