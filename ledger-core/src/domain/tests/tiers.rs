//! Tiers: calendar-year spend tiers with a soft-landing downgrade
//! (Sephora-like), without soft landing, and a rolling window.

use super::*;

fn sephora_rules(soft_landing: bool) -> Rules {
    rules_with(|raw| {
        raw.tiers = vec![
            Tier {
                name: "Insider".to_owned(),
                threshold: 0,
                earn_multiplier_bps: 10_000,
            },
            Tier {
                name: "VIB".to_owned(),
                threshold: 350_00,
                earn_multiplier_bps: 12_500,
            },
            Tier {
                name: "Rouge".to_owned(),
                threshold: 1_000_00,
                earn_multiplier_bps: 15_000,
            },
        ];
        raw.tier_measure = TierMeasure::Spend;
        raw.tier_window_days = 0;
        raw.tier_soft_landing = soft_landing;
    })
}

fn tier_changed(from: &str, to: &str, reason: TierChangeReason, qualifying: i64) -> EventKind {
    EventKind::TierChanged(TierChanged {
        from_tier: from.to_owned(),
        to_tier: to.to_owned(),
        reason,
        qualifying,
    })
}

#[test]
fn calendar_year_spend_tiers_with_soft_landing() {
    let mut given = Given::new(sephora_rules(true));
    // One $1,200 purchase goes straight from Insider to Rouge.
    let events = given.run(purchase("big", usd(1_200_00), &[]), date(2024, 2, 1));
    assert_eq!(
        events[2].kind,
        tier_changed("Insider", "Rouge", TierChangeReason::Qualified, 1_200_00)
    );
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((date(2025, 1, 1), DueKind::EvaluateTier))
    );
    // 2024 qualifies for Rouge: kept through 2025.
    let events = given.run(Command::EvaluateTier, date(2025, 1, 1));
    assert_eq!(
        events[0].kind,
        tier_changed("Rouge", "Rouge", TierChangeReason::PeriodEnd, 1_200_00)
    );
    // Nothing spent in 2025: one level down only.
    let events = given.run(Command::EvaluateTier, date(2026, 1, 1));
    assert_eq!(
        events[0].kind,
        tier_changed("Rouge", "VIB", TierChangeReason::PeriodEnd, 0)
    );
    // $400 in 2026 keeps VIB; no upgrade event since VIB is already held.
    let events = given.run(purchase("mid", usd(400_00), &[]), date(2026, 3, 1));
    assert_eq!(kinds(&events), ["PointsEarned"]);
    assert_eq!(earned(&events[0]).tier_multiplier_bps, 12_500);
    let events = given.run(Command::EvaluateTier, date(2027, 1, 1));
    assert_eq!(
        events[0].kind,
        tier_changed("VIB", "VIB", TierChangeReason::PeriodEnd, 400_00)
    );
    let events = given.run(Command::EvaluateTier, date(2028, 1, 1));
    assert_eq!(
        events[0].kind,
        tier_changed("VIB", "Insider", TierChangeReason::PeriodEnd, 0)
    );
    // At the lowest tier there is nothing to review.
    assert_eq!(given.member.next_due(&given.rules), None);
    given.check_replay();
}

#[test]
fn without_soft_landing_the_tier_drops_to_what_the_year_supports() {
    let mut given = Given::new(sephora_rules(false));
    given.run(purchase("big", usd(1_200_00), &[]), date(2024, 2, 1));
    given.run(Command::EvaluateTier, date(2025, 1, 1));
    let events = given.run(Command::EvaluateTier, date(2026, 1, 1));
    assert_eq!(
        events[0].kind,
        tier_changed("Rouge", "Insider", TierChangeReason::PeriodEnd, 0)
    );
    given.check_replay();
}

#[test]
fn review_is_not_due_before_the_period_ends() {
    let mut given = Given::new(sephora_rules(true));
    given.run(purchase("big", usd(1_200_00), &[]), date(2024, 2, 1));
    assert!(
        given
            .when(Command::EvaluateTier, date(2025, 1, 1) - 1)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn rolling_window_upgrade_and_review() {
    let mut given = Given::new(rules_with(|raw| {
        raw.tiers = vec![
            Tier {
                name: "Member".to_owned(),
                threshold: 0,
                earn_multiplier_bps: 10_000,
            },
            Tier {
                name: "Elite".to_owned(),
                threshold: 500,
                earn_multiplier_bps: 20_000,
            },
        ];
        raw.tier_measure = TierMeasure::QualifyingPoints;
        raw.tier_window_days = 90;
    }));
    // 300 + 300 within 90 days: Elite on the second purchase.
    given.run(purchase("a", usd(300_00), &[]), t0());
    let events = given.run(purchase("b", usd(300_00), &[]), t0() + 60 * DAY_US);
    assert_eq!(kinds(&events), ["PointsEarned", "TierChanged"]);
    // The period runs 90 days from the midnight of the upgrade day.
    let upgrade_day = date(2024, 1, 10) + 60 * DAY_US;
    let period_end = upgrade_day + 90 * DAY_US;
    assert_eq!(
        given.member.next_due(&given.rules),
        Some((period_end, DueKind::EvaluateTier))
    );
    // The window ending there (days 60..150 after t0) holds only 300.
    let events = given.run(Command::EvaluateTier, period_end);
    assert_eq!(
        events[0].kind,
        tier_changed("Elite", "Member", TierChangeReason::PeriodEnd, 300)
    );
    given.check_replay();
}
