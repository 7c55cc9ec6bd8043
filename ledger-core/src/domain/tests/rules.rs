//! Rules: validation errors name the field; a rules change applies to later
//! decisions and never rewrites history; the program stream.

use super::*;

fn invalid_field(raw: &ProgramRules) -> (String, FieldReason) {
    match Rules::from_raw(raw) {
        Err(DomainError::InvalidField(invalid)) => (invalid.field, invalid.reason),
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

fn tier(name: &str, threshold: i64, earn_multiplier_bps: i64) -> Tier {
    Tier {
        name: name.to_owned(),
        threshold,
        earn_multiplier_bps,
    }
}

#[test]
fn validation_errors_name_the_field() {
    let mut raw = ProgramRules::basic("XYZ");
    assert_eq!(
        invalid_field(&raw),
        (
            "currency".to_owned(),
            FieldReason::UnknownCurrency {
                code: "XYZ".to_owned()
            }
        )
    );
    raw.currency = "USD".to_owned();
    raw.rounding = Rounding::Unspecified;
    assert_eq!(
        invalid_field(&raw),
        ("rounding".to_owned(), FieldReason::Unspecified)
    );
    raw.rounding = Rounding::HalfUp;

    raw.tiers = vec![
        tier("A", 0, 10_000),
        tier("B", 100, 12_000),
        tier("C", 100, 15_000),
    ];
    assert_eq!(
        invalid_field(&raw),
        (
            "tiers[2].threshold".to_owned(),
            FieldReason::NotIncreasing {
                previous: 100,
                value: 100
            }
        )
    );
    raw.tiers = vec![tier("A", 5, 10_000)];
    assert_eq!(
        invalid_field(&raw),
        (
            "tiers[0].threshold".to_owned(),
            FieldReason::OutOfRange {
                value: 5,
                min: 0,
                max: 0
            }
        )
    );
    raw.tiers = vec![tier("A", 0, 0)];
    assert_eq!(invalid_field(&raw).0, "tiers[0].earn_multiplier_bps");
    raw.tiers = vec![tier("A", 0, 10_000), tier("A", 10, 10_000)];
    assert_eq!(invalid_field(&raw).0, "tiers[1].name");
    raw.tiers = vec![tier("A", 0, 10_000)];
    raw.tier_measure = TierMeasure::Unspecified;
    assert_eq!(
        invalid_field(&raw),
        ("tier_measure".to_owned(), FieldReason::Unspecified)
    );
    raw.tier_measure = TierMeasure::Spend;

    let campaign = Campaign {
        campaign_id: "c".to_owned(),
        starts_at_us: 0,
        ends_at_us: 10,
        multiplier_bps: 5_000,
        bonus_points: 0,
        tiers: vec![],
        tags: vec![],
        min_spend_minor_units: 0,
        stackable: true,
    };
    raw.campaigns = vec![campaign.clone()];
    assert_eq!(
        invalid_field(&raw),
        (
            "campaigns[0].multiplier_bps".to_owned(),
            FieldReason::OutOfRange {
                value: 5_000,
                min: 10_001,
                max: 500_000
            }
        )
    );
    let mut both = campaign.clone();
    both.multiplier_bps = 20_000;
    both.bonus_points = 5;
    raw.campaigns = vec![both];
    assert_eq!(invalid_field(&raw).0, "campaigns[0].bonus_points");
    let mut unknown_tier = campaign.clone();
    unknown_tier.multiplier_bps = 20_000;
    unknown_tier.tiers = vec!["A".to_owned(), "Platinum".to_owned()];
    raw.campaigns = vec![unknown_tier];
    assert_eq!(
        invalid_field(&raw),
        (
            "campaigns[0].tiers[1]".to_owned(),
            FieldReason::UnknownTier {
                name: "Platinum".to_owned()
            }
        )
    );
    let mut backwards = campaign;
    backwards.multiplier_bps = 20_000;
    backwards.ends_at_us = 0;
    raw.campaigns = vec![backwards];
    assert_eq!(invalid_field(&raw).0, "campaigns[0].ends_at_us");
    raw.campaigns = vec![];

    raw.lot_expiry = Some(LotExpiry {
        rule: Some(LotExpiryRule::AfterDays(0)),
    });
    assert_eq!(invalid_field(&raw).0, "lot_expiry.after_days");
    raw.lot_expiry = None;
    raw.return_policy = ShortfallPolicy::Unspecified;
    assert_eq!(
        invalid_field(&raw),
        ("return_policy".to_owned(), FieldReason::Unspecified)
    );
    raw.return_policy = ShortfallPolicy::Debt;
    raw.tier_window_days = 5_000;
    assert_eq!(invalid_field(&raw).0, "tier_window_days");
    raw.tier_window_days = 365;
    for offset in [-721, 841] {
        raw.utc_offset_minutes = offset;
        assert_eq!(invalid_field(&raw).0, "utc_offset_minutes");
    }
    raw.utc_offset_minutes = 330;
    raw.rfm_window_days = 3_661;
    assert_eq!(invalid_field(&raw).0, "rfm_window_days");
    raw.rfm_window_days = 0;
    let rules = Rules::from_raw(&raw).expect("valid");
    assert_eq!(rules.rfm_window_days(), 365);
    // 2026-03-01T20:00Z is already March 2 at UTC+05:30.
    let evening_utc = 1_772_395_200_000_000;
    assert_eq!(
        rules.report_day_of(evening_utc),
        crate::domain::time::day_of(evening_utc) + 1
    );
}

#[test]
fn a_rules_change_applies_to_later_decisions_and_never_rewrites_history() {
    let mut program = Program::default();
    let mut raw = ProgramRules::basic("USD");
    raw.lot_expiry = Some(LotExpiry {
        rule: Some(LotExpiryRule::AfterDays(30)),
    });
    let defined = decide_program(
        &program,
        &ProgramCommand::DefineProgram { rules: raw.clone() },
        t0(),
    )
    .unwrap();
    defined
        .iter()
        .for_each(|event| apply_program(&mut program, event));
    assert_eq!(
        decide_program(
            &program,
            &ProgramCommand::DefineProgram { rules: raw.clone() },
            t0()
        )
        .unwrap_err(),
        DomainError::ProgramAlreadyDefined
    );

    let mut given = Given::new(program.rules().unwrap().clone());
    let first = given.run(purchase("before", usd(100_00), &[]), t0());

    let mut doubled = raw.clone();
    doubled.earn_rate_bps = 20_000;
    doubled.lot_expiry = None;
    let changed = decide_program(
        &program,
        &ProgramCommand::ChangeRules { rules: doubled },
        t0() + 1,
    )
    .unwrap();
    changed
        .iter()
        .for_each(|event| apply_program(&mut program, event));
    given.rules = program.rules().unwrap().clone();

    let second = given.run(purchase("after", usd(100_00), &[]), t0() + 2);
    assert_eq!(earned(&second[0]).points.get(), 200);
    assert_eq!(earned(&second[0]).lot.expires_at_us, None);
    // The earlier lot keeps the expiry it was earned with.
    assert_eq!(
        earned(&first[1]).lot.expires_at_us,
        Some(t0() + 30 * DAY_US)
    );
    assert_eq!(
        given.member.lot(LotId::new(1)).unwrap().expires_at_us(),
        Some(t0() + 30 * DAY_US)
    );
    let expired = given.run(Command::ExpireLots, t0() + 30 * DAY_US);
    assert_eq!(kinds(&expired), ["PointsExpired"]);
    assert_eq!(given.balance(), 200);

    let mut euro = raw;
    euro.currency = "EUR".to_owned();
    assert_eq!(
        decide_program(&program, &ProgramCommand::ChangeRules { rules: euro }, t0()).unwrap_err(),
        DomainError::invalid("currency", FieldReason::Immutable)
    );
    given.check_replay();
}

#[test]
fn a_renamed_tier_is_reviewed_into_the_new_rules() {
    let old = rules_with(|raw| {
        raw.tiers = vec![tier("Base", 0, 10_000), tier("Gold", 100, 20_000)];
    });
    let mut given = Given::new(old);
    given.run(purchase("a", usd(150_00), &[]), t0());
    assert_eq!(given.member.tier(), "Gold");
    given.rules = rules_with(|raw| {
        raw.tiers = vec![tier("Base", 0, 10_000), tier("Or", 100, 20_000)];
    });
    // Unknown names earn like the lowest tier until reviewed.
    let events = given.run(purchase("b", usd(10_00), &[]), t0() + 1);
    assert_eq!(earned(&events[0]).tier_multiplier_bps, 10_000);
    // 160 qualifying points in 2024 already meet "Or", but only a purchase
    // or the review moves the name; this purchase did (upgrade from index 0).
    assert_eq!(kinds(&events), ["PointsEarned", "TierChanged"]);
    assert_eq!(given.member.tier(), "Or");
    given.check_replay();
}

#[test]
fn business_time_is_validated() {
    let rules = rules_with(|_| {});
    assert_eq!(
        decide(&Member::default(), &Command::Enroll, &rules, -1).unwrap_err(),
        DomainError::invalid(
            "occurred_at",
            FieldReason::OutOfRange {
                value: -1,
                min: 0,
                max: BUSINESS_TIME_US_MAX.into()
            }
        )
    );
    let mut given = Given::new(rules);
    given.run(Command::Enroll, t0());
    assert_eq!(
        given.when(Command::Enroll, t0()).unwrap_err(),
        DomainError::AlreadyEnrolled
    );
}
