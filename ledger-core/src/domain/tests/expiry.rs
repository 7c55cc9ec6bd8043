//! Expiry: per lot at the end of the sixth month after the month earned
//! (Starbucks-like) and of the whole balance after 24 months without an earn
//! or a redeem (Marriott-like).

use super::*;

#[test]
fn lots_expire_at_the_end_of_the_sixth_month_after_the_month_earned() {
    let rules = rules_with(|raw| {
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(6)),
        })
    });
    let mut given = Given::new(rules);
    let ten_am = 10 * 3_600_000_000;
    given.run(
        purchase("march-15", usd(100_00), &[]),
        date(2024, 3, 15) + ten_am,
    );
    given.run(
        purchase("march-31", usd(20_00), &[]),
        date(2024, 3, 31) + ten_am,
    );
    given.run(
        purchase("april-1", usd(7_00), &[]),
        date(2024, 4, 1) + ten_am,
    );
    let october_1 = date(2024, 10, 1);
    assert_eq!(
        given.member.lot(LotId::new(1)).unwrap().expires_at_us(),
        Some(october_1)
    );
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((october_1, DueKind::ExpireLot))
    );
    assert!(
        given
            .when(Command::ExpireLots, october_1 - 1)
            .unwrap()
            .is_empty()
    );
    // Both March lots expire together, in one event.
    let events = given.run(Command::ExpireLots, october_1);
    assert_eq!(
        events,
        vec![Event {
            occurred_at_us: october_1,
            kind: EventKind::PointsExpired(PointsExpired {
                reason: ExpiryReason::Lot,
                points: Points::new(120),
                draws: vec![draw(1, 100), draw(2, 20)],
            }),
        }]
    );
    assert_eq!(given.balance(), 7);
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((date(2024, 11, 1), DueKind::ExpireLot))
    );
    given.check_replay();
}

#[test]
fn expiry_takes_only_what_is_left_of_a_lot() {
    let rules = rules_with(|raw| {
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(6)),
        })
    });
    let mut given = Given::new(rules);
    given.run(purchase("a", usd(100_00), &[]), date(2024, 3, 15));
    given.run(redeem("r", 70), date(2024, 5, 1));
    // A scheduler two months late: still the lot's expiry that counts.
    let events = given.run(Command::ExpireLots, date(2024, 12, 1));
    let EventKind::PointsExpired(expired) = &events[0].kind else {
        panic!("expected an expiry")
    };
    assert_eq!(expired.draws, vec![draw(1, 30)]);
    given.check_replay();
}

#[test]
fn the_whole_balance_expires_after_24_months_without_activity() {
    let rules = rules_with(|raw| raw.inactivity_expiry_days = 730);
    let mut given = Given::new(rules);
    given.run(purchase("a", usd(100_00), &[]), t0());
    given.run(purchase("b", usd(50_00), &[]), t0() + 300 * DAY_US);
    given.run(redeem("r", 10), t0() + 500 * DAY_US); // a redeem is activity
    // A debit adjustment is not activity.
    given.run(adjust(-5), t0() + 900 * DAY_US);
    let deadline = t0() + 1_230 * DAY_US;
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((deadline, DueKind::ExpireInactive))
    );
    assert!(
        given
            .when(Command::ExpireInactive, deadline - 1)
            .unwrap()
            .is_empty()
    );
    let events = given.run(Command::ExpireInactive, deadline);
    assert_eq!(
        events,
        vec![Event {
            occurred_at_us: deadline,
            kind: EventKind::PointsExpired(PointsExpired {
                reason: ExpiryReason::Inactivity,
                points: Points::new(135),
                draws: vec![draw(1, 85), draw(2, 50)],
            }),
        }]
    );
    assert_eq!(given.balance(), 0);
    assert_eq!(given.member.next_due(&given.rules), None);
    given.check_replay();
}

#[test]
fn an_earn_before_the_deadline_keeps_the_balance() {
    let rules = rules_with(|raw| raw.inactivity_expiry_days = 730);
    let mut given = Given::new(rules);
    given.run(purchase("a", usd(100_00), &[]), t0());
    given.run(award(1), t0() + 729 * DAY_US);
    assert!(
        given
            .when(Command::ExpireInactive, t0() + 730 * DAY_US)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((t0() + (729 + 730) * DAY_US, DueKind::ExpireInactive))
    );
}

#[test]
fn due_work_is_done_in_due_time_order() {
    // A lot expiring by its own rule before the inactivity deadline expires
    // with reason LOT; the rest later with reason INACTIVITY.
    let mut given = Given::new(rules_with(|raw| raw.inactivity_expiry_days = 100));
    given.run(purchase("keeps", usd(10_00), &[]), t0());
    given.rules = rules_with(|raw| {
        raw.inactivity_expiry_days = 100;
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(50)),
        });
    });
    given.run(purchase("short", usd(20_00), &[]), t0() + DAY_US);
    let events = given.run(Command::ExpireInactive, t0() + 200 * DAY_US);
    let reasons: Vec<(ExpiryReason, i64)> = events
        .iter()
        .map(|event| match &event.kind {
            EventKind::PointsExpired(expired) => (expired.reason, expired.points.get()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [(ExpiryReason::Lot, 20), (ExpiryReason::Inactivity, 10)]
    );
    given.check_replay();
}

#[test]
fn the_due_schedule_gives_each_kind_for_the_engines_indexes() {
    let rules = rules_with(|raw| {
        raw.pending_days = 10;
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(100)),
        });
        raw.inactivity_expiry_days = 200;
        raw.tiers = vec![
            Tier {
                name: "Base".to_owned(),
                threshold: 0,
                earn_multiplier_bps: 10_000,
            },
            Tier {
                name: "Gold".to_owned(),
                threshold: 10,
                earn_multiplier_bps: 10_000,
            },
        ];
    });
    let mut given = Given::new(rules);
    given.run(purchase("a", usd(20_00), &[]), t0());
    assert_eq!(
        given.member.due_schedule(&given.rules),
        DueSchedule {
            mature_pending_us: Some(t0() + 10 * DAY_US),
            expire_lot_us: Some(t0() + 100 * DAY_US),
            expire_inactive_us: Some(t0() + 200 * DAY_US),
            evaluate_tier_us: Some(date(2025, 1, 1)),
        }
    );
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((t0() + 10 * DAY_US, DueKind::MaturePending))
    );
    // One system command at a late time does everything due, in order.
    let events = given.run(Command::EvaluateTier, date(2025, 1, 1));
    assert_eq!(
        kinds(&events),
        ["PointsMatured", "PointsExpired", "TierChanged"]
    );
    // Gold was kept (2024 qualified); the next review is a year later, and
    // with no lot left nothing else is due.
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((date(2026, 1, 1), DueKind::EvaluateTier))
    );
    given.check_replay();
}
