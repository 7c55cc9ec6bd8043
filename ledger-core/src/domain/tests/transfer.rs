//! Transfers: one event in each stream, lots recreated on the receiver with
//! their expiry kept, receiver debt paid first, only available points.

use super::*;

fn member_id(id: &str) -> MemberId {
    MemberId::parse("member_id", id).unwrap()
}

fn transfer_command(points: i64) -> TransferPoints {
    TransferPoints {
        transfer_id: "t-1".to_owned(),
        from_member_id: member_id("alice"),
        to_member_id: member_id("bob"),
        points: Points::new(points),
    }
}

fn expiring_rules(policy: ShortfallPolicy) -> Rules {
    rules_with(|raw| {
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(365)),
        });
        raw.return_policy = policy;
    })
}

#[test]
fn transfer_recreates_lots_on_the_receiver_keeping_their_expiry() {
    let rules = expiring_rules(ShortfallPolicy::Forfeit);
    let mut alice = Given::new(rules.clone());
    let mut bob = Given::new(rules.clone());
    alice.run(purchase("a1", usd(100_00), &[]), t0()); // expires day 365
    alice.run(purchase("a2", usd(100_00), &[]), t0() + 100 * DAY_US); // day 465
    bob.run(Command::Enroll, t0());
    let now = t0() + 200 * DAY_US;
    let (from, to) = decide_transfer(
        &alice.member,
        &bob.member,
        &transfer_command(150),
        &rules,
        now,
    )
    .unwrap();
    let common = PointsTransferred {
        transfer_id: "t-1".to_owned(),
        from_member_id: member_id("alice"),
        to_member_id: member_id("bob"),
        points: Points::new(150),
        draws: vec![],
        lots: vec![],
        debt_repaid: Points::ZERO,
    };
    assert_eq!(
        from,
        vec![Event {
            occurred_at_us: now,
            kind: EventKind::PointsTransferred(PointsTransferred {
                draws: vec![draw(1, 100), draw(2, 50)],
                ..common.clone()
            }),
        }]
    );
    assert_eq!(
        to,
        vec![Event {
            occurred_at_us: now,
            kind: EventKind::PointsTransferred(PointsTransferred {
                lots: vec![
                    Lot {
                        lot_id: LotId::new(1),
                        points: Points::new(100),
                        earned_at_us: now,
                        available_at_us: now,
                        expires_at_us: Some(t0() + 365 * DAY_US),
                    },
                    Lot {
                        lot_id: LotId::new(2),
                        points: Points::new(50),
                        earned_at_us: now,
                        available_at_us: now,
                        expires_at_us: Some(t0() + 465 * DAY_US),
                    },
                ],
                ..common
            }),
        }]
    );
    alice.record(&from);
    bob.record(&to);
    assert_eq!(alice.balance(), 50);
    assert_eq!(bob.balance(), 150);
    // The received points expire when the sender's would have.
    let expired = bob.run(Command::ExpireLots, t0() + 365 * DAY_US);
    assert_eq!(
        expired[0].kind,
        EventKind::PointsExpired(PointsExpired {
            reason: ExpiryReason::Lot,
            points: Points::new(100),
            draws: vec![draw(1, 100)],
        })
    );
    alice.check_replay();
    bob.check_replay();
}

#[test]
fn transfer_pays_the_receivers_debt_first() {
    let rules = expiring_rules(ShortfallPolicy::Debt);
    let mut alice = Given::new(rules.clone());
    let mut bob = Given::new(rules.clone());
    alice.run(purchase("a1", usd(100_00), &[]), t0());
    bob.run(purchase("b1", usd(30_00), &[]), t0());
    bob.run(redeem("r", 30), t0() + 1);
    bob.run(refund("b1", usd(30_00)), t0() + 2);
    assert_eq!(bob.member.debt_points().get(), 30);
    let (from, to) = decide_transfer(
        &alice.member,
        &bob.member,
        &transfer_command(50),
        &rules,
        t0() + 3,
    )
    .unwrap();
    alice.record(&from);
    bob.record(&to);
    let EventKind::PointsTransferred(received) = &to[0].kind else {
        panic!("expected a transfer")
    };
    assert_eq!(received.debt_repaid.get(), 30);
    assert_eq!(received.lots.len(), 1);
    assert_eq!(received.lots[0].points.get(), 20);
    assert_eq!(bob.balance(), 20);
    assert_eq!(bob.member.debt_points().get(), 0);
    alice.check_replay();
    bob.check_replay();
}

#[test]
fn transfer_rejections() {
    let rules = rules_with(|raw| raw.pending_days = 10);
    let mut alice = Given::new(rules.clone());
    let mut bob = Given::new(rules.clone());
    alice.run(purchase("a1", usd(100_00), &[]), t0());
    // Pending points cannot move.
    assert_eq!(
        decide_transfer(
            &alice.member,
            &bob.member,
            &transfer_command(1),
            &rules,
            t0()
        )
        .unwrap_err(),
        DomainError::NotEnrolled {
            field: "to_member_id"
        }
    );
    bob.run(Command::Enroll, t0());
    assert_eq!(
        decide_transfer(
            &alice.member,
            &bob.member,
            &transfer_command(1),
            &rules,
            t0()
        )
        .unwrap_err(),
        DomainError::InsufficientPoints {
            available: 0,
            requested: 1
        }
    );
    let mut to_self = transfer_command(1);
    to_self.to_member_id = member_id("alice");
    assert_eq!(
        decide_transfer(&alice.member, &alice.member, &to_self, &rules, t0()).unwrap_err(),
        DomainError::invalid(
            "to_member_id",
            FieldReason::SameAs {
                other: "from_member_id"
            }
        )
    );
    // Once matured (the transfer catches up first), they can.
    let (from, to) = decide_transfer(
        &alice.member,
        &bob.member,
        &transfer_command(100),
        &rules,
        t0() + 10 * DAY_US,
    )
    .unwrap();
    assert_eq!(kinds(&from), ["PointsMatured", "PointsTransferred"]);
    assert_eq!(kinds(&to), ["PointsTransferred"]);
}
