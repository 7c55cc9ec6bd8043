//! Earning: the earn formula in all three rounding modes and several
//! currencies, the tier multiplier, campaigns stacking and not stacking,
//! pending points, implicit enrollment, debt repayment and overflow.

use super::*;

#[test]
fn first_purchase_enrolls_implicitly_and_earns_a_lot() {
    let mut given = Given::new(rules_with(|_| {}));
    let now = t0();
    let events = given.run(purchase("order-1", usd(12_99), &["food"]), now);
    assert_eq!(
        events,
        vec![
            Event {
                occurred_at_us: now,
                kind: EventKind::MemberEnrolled(MemberEnrolled { implicit: true }),
            },
            Event {
                occurred_at_us: now,
                kind: EventKind::PointsEarned(PointsEarned {
                    order_id: "order-1".to_owned(),
                    spend: usd(12_99),
                    tags: vec!["food".to_owned()],
                    base_points: Points::new(12),
                    tier_multiplier_bps: 10_000,
                    campaigns: vec![],
                    points: Points::new(12),
                    lot: Lot {
                        lot_id: LotId::new(1),
                        points: Points::new(12),
                        earned_at_us: now,
                        available_at_us: now,
                        expires_at_us: None,
                    },
                    qualifying_points: 12,
                    debt_repaid: Points::ZERO,
                }),
            },
        ]
    );
    assert_eq!(given.balance(), 12);
    given.check_replay();
}

#[test]
fn earn_rounding_floor_half_up_ceiling() {
    // 10.5 points and 10.2 points: the three modes disagree on each.
    let cases = [
        (Rounding::Floor, 10_500, 10, 10),
        (Rounding::HalfUp, 10_500, 11, 10),
        (Rounding::Ceiling, 10_500, 11, 11),
    ];
    for (rounding, rate_bps, half, fifth) in cases {
        let rules = rules_with(|raw| {
            raw.rounding = rounding;
            raw.earn_rate_bps = rate_bps;
        });
        let mut given = Given::new(rules);
        // $10.00 x 1.05 = 10.5 points; $9.72 x 1.05 = 10.206 points.
        let a = given.run(purchase("a", usd(10_00), &[]), t0());
        let b = given.run(purchase("b", usd(9_72), &[]), t0() + 1);
        assert_eq!(earned(&a[1]).points.get(), half, "{rounding:?} on 10.5");
        assert_eq!(earned(&b[0]).points.get(), fifth, "{rounding:?} on 10.206");
        given.check_replay();
    }
}

#[test]
fn earn_uses_the_currency_exponent() {
    // 1 point per major unit: JPY has no minor unit, KWD has three digits.
    for (code, minor_units, points) in [
        ("JPY", 1_999, 1_999),
        ("KWD", 12_345, 12),
        ("USD", 12_345, 123),
    ] {
        let mut raw = ProgramRules::basic(code);
        raw.rounding = Rounding::Floor;
        let rules = Rules::from_raw(&raw).unwrap();
        let money = Money::new(minor_units, currency(code));
        let events = decide(&Member::default(), &purchase("o", money, &[]), &rules, t0()).unwrap();
        assert_eq!(earned(&events[1]).points.get(), points, "{code}");
    }
}

#[test]
fn purchase_in_another_currency_is_rejected_naming_spend_currency() {
    let given = Given::new(rules_with(|_| {}));
    let error = given
        .when(purchase("o", Money::new(100, currency("EUR")), &[]), t0())
        .unwrap_err();
    assert_eq!(
        error,
        DomainError::invalid(
            "spend.currency",
            FieldReason::WrongCurrency {
                expected: "USD".to_owned(),
                actual: "EUR".to_owned()
            }
        )
    );
    assert_eq!(error.code(), "invalid_field");
}

#[test]
fn tier_multiplier_applies_after_the_qualifying_purchase() {
    let mut given = Given::new(gold_rules(|_| {}));
    // The purchase that reaches Gold earns at the old rate; the upgrade is
    // in the same decision.
    let first = given.run(purchase("big", usd(1_000_00), &[]), t0());
    assert_eq!(
        kinds(&first),
        ["MemberEnrolled", "PointsEarned", "TierChanged"]
    );
    assert_eq!(earned(&first[1]).points.get(), 1_000);
    assert_eq!(
        first[2].kind,
        EventKind::TierChanged(TierChanged {
            from_tier: "Base".to_owned(),
            to_tier: "Gold".to_owned(),
            reason: TierChangeReason::Qualified,
            qualifying: 1_000,
        })
    );
    let second = given.run(purchase("small", usd(100_00), &[]), t0() + DAY_US);
    let second = earned(&second[0]);
    assert_eq!(second.base_points.get(), 100);
    assert_eq!(second.tier_multiplier_bps, 15_000);
    assert_eq!(second.points.get(), 150);
    // Qualifying points are base points: 1,100, not 1,150.
    assert_eq!(
        given.member.qualifying_as_of(&given.rules, t0() + DAY_US),
        1_100
    );
    given.check_replay();
}

fn campaign(id: &str, multiplier_bps: i64, bonus_points: i64, stackable: bool) -> Campaign {
    Campaign {
        campaign_id: id.to_owned(),
        starts_at_us: date(2024, 1, 1),
        ends_at_us: date(2024, 2, 1),
        multiplier_bps,
        bonus_points,
        tiers: vec![],
        tags: vec![],
        min_spend_minor_units: 0,
        stackable,
    }
}

#[test]
fn stackable_campaigns_add_their_extras() {
    // Two stackable 2x campaigns and a +50 bonus: 1x + 1x + 1x = 3x, + 50.
    let rules = rules_with(|raw| {
        raw.campaigns = vec![
            campaign("double-weekend", 20_000, 0, true),
            campaign("member-day", 20_000, 0, true),
            campaign("welcome-bonus", 0, 50, true),
        ];
    });
    let events = decide(
        &Member::default(),
        &purchase("o", usd(100_00), &[]),
        &rules,
        t0(),
    )
    .unwrap();
    let earned = earned(&events[1]);
    assert_eq!(earned.base_points.get(), 100);
    assert_eq!(earned.points.get(), 350);
    let applied: Vec<&str> = earned
        .campaigns
        .iter()
        .map(|c| c.campaign_id.as_str())
        .collect();
    assert_eq!(applied, ["double-weekend", "member-day", "welcome-bonus"]);
    assert_eq!(earned.campaigns[2].bonus_points.get(), 50);
    assert_eq!(earned.campaigns[2].multiplier_bps, 0);
}

#[test]
fn tier_and_campaign_extras_add_not_compound() {
    // Gold 1.5x during a 2x campaign earns 2.5x, not 3x.
    let rules = gold_rules(|raw| raw.campaigns = vec![campaign("double", 20_000, 0, true)]);
    let mut given = Given::new(rules);
    given.run(adjust_enroll(), t0());
    given.run(purchase("big", usd(1_000_00), &[]), t0());
    let events = given.run(purchase("o", usd(100_00), &[]), t0() + 1);
    assert_eq!(earned(&events[0]).points.get(), 250);
}

fn adjust_enroll() -> Command {
    Command::Enroll
}

#[test]
fn non_stackable_campaign_never_combines_best_single_wins() {
    let mut shoes = campaign("shoes-3x", 30_000, 0, false);
    shoes.tags = vec!["shoes".to_owned()];
    let mut big_basket = campaign("big-basket", 0, 500, false);
    big_basket.min_spend_minor_units = 200_00;
    let rules = rules_with(|raw| {
        raw.campaigns = vec![campaign("double", 20_000, 0, true), shoes, big_basket];
    });
    let quote = |spend: i64, tags: &[&str]| {
        let events = decide(
            &Member::default(),
            &purchase("o", usd(spend), tags),
            &rules,
            t0(),
        )
        .unwrap();
        let earned = earned(&events[1]).clone();
        let ids: Vec<String> = earned
            .campaigns
            .iter()
            .map(|c| c.campaign_id.clone())
            .collect();
        (earned.points.get(), ids)
    };
    // Untagged $100: only the stackable 2x is eligible.
    assert_eq!(quote(100_00, &[]), (200, vec!["double".to_owned()]));
    // Shoes $100: 2x (stack) vs 3x alone: 3x alone wins, without the 2x.
    assert_eq!(
        quote(100_00, &["shoes"]),
        (300, vec!["shoes-3x".to_owned()])
    );
    // Shoes $200: 2x = 400, 3x = 600, +500 bonus = 700: the bonus wins.
    assert_eq!(
        quote(200_00, &["shoes"]),
        (700, vec!["big-basket".to_owned()])
    );
}

#[test]
fn campaign_window_is_half_open_and_tier_condition_holds() {
    let mut gold_only = campaign("gold-double", 20_000, 0, true);
    gold_only.tiers = vec!["Gold".to_owned()];
    let rules = gold_rules(|raw| raw.campaigns = vec![campaign("jan", 20_000, 0, true), gold_only]);
    let base = |now: i64| {
        let events = decide(
            &Member::default(),
            &purchase("o", usd(10_00), &[]),
            &rules,
            now,
        )
        .unwrap();
        earned(&events[1]).points.get()
    };
    assert_eq!(base(date(2024, 1, 1)), 20, "start is inclusive");
    assert_eq!(base(date(2024, 2, 1) - 1), 20);
    assert_eq!(base(date(2024, 2, 1)), 10, "end is exclusive");
}

#[test]
fn pending_points_mature_then_become_spendable() {
    let rules = rules_with(|raw| raw.pending_days = 30);
    let mut given = Given::new(rules);
    let now = t0();
    given.run(purchase("o", usd(100_00), &[]), now);
    assert_eq!(given.member.pending_points().get(), 100);
    assert_eq!(given.balance(), 0);
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((now + 30 * DAY_US, DueKind::MaturePending))
    );
    assert_eq!(
        given.when(redeem("r", 10), now + 29 * DAY_US).unwrap_err(),
        DomainError::InsufficientPoints {
            available: 0,
            requested: 10
        }
    );
    // Nothing is due a microsecond early.
    assert!(
        given
            .when(Command::MaturePending, now + 30 * DAY_US - 1)
            .unwrap()
            .is_empty()
    );
    let matured = given.run(Command::MaturePending, now + 30 * DAY_US);
    assert_eq!(
        matured[0].kind,
        EventKind::PointsMatured(PointsMatured {
            lot_id: LotId::new(1),
            points: Points::new(100)
        })
    );
    assert_eq!(given.balance(), 100);
    assert_eq!(given.member.pending_points().get(), 0);
    given.check_replay();
}

#[test]
fn a_late_scheduler_does_not_matter_the_command_catches_up_first() {
    let rules = rules_with(|raw| raw.pending_days = 30);
    let mut given = Given::new(rules);
    given.run(purchase("o", usd(100_00), &[]), t0());
    let events = given.run(redeem("r", 60), t0() + 31 * DAY_US);
    assert_eq!(kinds(&events), ["PointsMatured", "PointsRedeemed"]);
    assert_eq!(given.balance(), 40);
    given.check_replay();
}

#[test]
fn bonus_points_are_immediate_unless_the_rules_make_them_pending() {
    let immediate = rules_with(|raw| raw.pending_days = 14);
    let events = decide(&Member::default(), &award(25), &immediate, t0()).unwrap();
    let mut member = Member::default();
    events.iter().for_each(|event| apply(&mut member, event));
    assert_eq!(member.balance_points().get(), 25);

    let pending = rules_with(|raw| {
        raw.pending_days = 14;
        raw.bonus_points_pending = true;
    });
    let events = decide(&Member::default(), &award(25), &pending, t0()).unwrap();
    let mut member = Member::default();
    events.iter().for_each(|event| apply(&mut member, event));
    assert_eq!(member.balance_points().get(), 0);
    assert_eq!(member.pending_points().get(), 25);
}

#[test]
fn award_needs_a_reason_and_a_positive_amount() {
    let rules = rules_with(|_| {});
    let no_reason = Command::AwardPoints {
        reason: String::new(),
        points: Points::new(5),
    };
    assert_eq!(
        decide(&Member::default(), &no_reason, &rules, t0()).unwrap_err(),
        DomainError::invalid("reason", FieldReason::Missing)
    );
    assert_eq!(
        decide(&Member::default(), &award(0), &rules, t0()).unwrap_err(),
        DomainError::invalid(
            "points",
            FieldReason::OutOfRange {
                value: 0,
                min: 1,
                max: 1_000_000_000_000
            }
        )
    );
}

#[test]
fn overflow_is_an_error_never_a_wrap() {
    assert_eq!(
        Points::new(i64::MAX).checked_add(Points::new(1), "balance_points"),
        Err(DomainError::Overflow {
            quantity: "balance_points"
        })
    );
    // A balance near i64::MAX cannot be reached through commands (each is
    // at most 10^12 points), so the history is given as a literal event.
    let mut given = Given::new(rules_with(|_| {}));
    given.run(Command::Enroll, t0());
    let huge = i64::MAX - 5;
    given.record(&[Event {
        occurred_at_us: t0(),
        kind: EventKind::PointsAdjusted(PointsAdjusted {
            reason: "test".to_owned(),
            points: Points::new(huge),
            lot: Some(Lot {
                lot_id: LotId::new(1),
                points: Points::new(huge),
                earned_at_us: t0(),
                available_at_us: t0(),
                expires_at_us: None,
            }),
            draws: vec![],
            debt_repaid: Points::ZERO,
        }),
    }]);
    let error = given.when(award(10), t0() + 1).unwrap_err();
    assert_eq!(
        error,
        DomainError::Overflow {
            quantity: "balance_points"
        }
    );
    assert_eq!(error.code(), "overflow");
    assert!(
        given.when(award(5), t0() + 1).is_ok(),
        "exactly i64::MAX still fits"
    );
    // A purchase worth more than one command may carry is refused.
    let rich = rules_with(|raw| raw.earn_rate_bps = 10_000_000);
    assert_eq!(
        decide(
            &Member::default(),
            &purchase("o", usd(1_000_000_000_000_000), &[]),
            &rich,
            t0()
        )
        .unwrap_err(),
        DomainError::invalid(
            "spend.minor_units",
            FieldReason::TooManyPoints {
                max: 1_000_000_000_000
            }
        )
    );
}

#[test]
fn duplicate_order_is_rejected() {
    let mut given = Given::new(rules_with(|_| {}));
    given.run(purchase("o", usd(1_00), &[]), t0());
    assert_eq!(
        given
            .when(purchase("o", usd(1_00), &[]), t0() + 1)
            .unwrap_err(),
        DomainError::DuplicateOrder {
            order_id: "o".to_owned()
        }
    );
}

#[test]
fn business_time_never_runs_backwards_for_a_member() {
    let rules = rules_with(|raw| {
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(10)),
        })
    });
    let mut given = Given::new(rules);
    given.run(purchase("late-clock", usd(1_00), &[]), t0() + DAY_US);
    // A command stamped a day earlier is decided at the member's clock.
    let events = given.run(purchase("early", usd(1_00), &[]), t0());
    let earned = earned(&events[0]);
    assert_eq!(events[0].occurred_at_us, t0());
    assert_eq!(earned.lot.earned_at_us, t0() + DAY_US);
    assert_eq!(earned.lot.expires_at_us, Some(t0() + 11 * DAY_US));
    given.check_replay();
}
