//! Worked examples: given events, when a command, then events or an error.
//!
//! Method: each test builds its "given" history by deciding and applying
//! commands (or, where a state cannot be reached through commands, by
//! applying literal events), then decides the command under test and
//! compares the resulting events, or the error, in full. Every test ends by
//! checking that replaying its whole history from `Member::default()` gives
//! the live state.
// Money is written as dollars_cents (`usd(12_50)`) on purpose.
#![allow(clippy::inconsistent_digit_grouping)]

mod earn;
mod expiry;
mod in_place;
mod lots;
mod redeem;
mod returns;
mod rules;
mod tiers;
mod transfer;

use super::time::{CivilDate, US_PER_DAY, days_from_civil, start_of_day_us};
use super::*;
pub(super) use crate::error::FieldReason;
pub(super) use crate::ids::{LotId, MemberId};
pub(super) use crate::limits::BUSINESS_TIME_US_MAX;

pub(super) const DAY_US: i64 = US_PER_DAY;

/// Midnight UTC of a civil date.
pub(super) fn date(year: i64, month: u32, day: u32) -> i64 {
    start_of_day_us(days_from_civil(CivilDate { year, month, day }))
}

/// A fixed starting instant: 2024-01-10 12:00 UTC.
pub(super) fn t0() -> i64 {
    date(2024, 1, 10) + 12 * 3_600_000_000
}

pub(super) fn usd(minor_units: i64) -> Money {
    Money::new(minor_units, currency("USD"))
}

pub(super) fn currency(code: &str) -> Currency {
    Currency::from_code(code, "currency").unwrap()
}

/// `ProgramRules::basic("USD")` changed by `edit`, validated.
pub(super) fn rules_with(edit: impl FnOnce(&mut ProgramRules)) -> Rules {
    let mut raw = ProgramRules::basic("USD");
    edit(&mut raw);
    Rules::from_raw(&raw).unwrap()
}

pub(super) fn purchase(order_id: &str, spend: Money, tags: &[&str]) -> Command {
    Command::RecordPurchase {
        order_id: order_id.to_owned(),
        spend,
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
    }
}

pub(super) fn award(points: i64) -> Command {
    Command::AwardPoints {
        reason: "goodwill".to_owned(),
        points: Points::new(points),
    }
}

pub(super) fn redeem(redemption_id: &str, points: i64) -> Command {
    Command::Redeem {
        redemption_id: redemption_id.to_owned(),
        points: Points::new(points),
    }
}

pub(super) fn cancel(redemption_id: &str) -> Command {
    Command::CancelRedemption {
        redemption_id: redemption_id.to_owned(),
    }
}

pub(super) fn refund(order_id: &str, refund: Money) -> Command {
    Command::RecordReturn {
        order_id: order_id.to_owned(),
        refund,
    }
}

pub(super) fn adjust(points: i64) -> Command {
    Command::AdjustPoints {
        reason: "correction".to_owned(),
        points: Points::new(points),
    }
}

pub(super) fn draw(lot_id: u64, points: i64) -> LotDraw {
    LotDraw {
        lot_id: LotId::new(lot_id),
        points: Points::new(points),
    }
}

/// One member's history under changing rules.
pub(super) struct Given {
    pub member: Member,
    pub rules: Rules,
    pub history: Vec<Event>,
}

impl Given {
    pub fn new(rules: Rules) -> Self {
        Self {
            member: Member::default(),
            rules,
            history: Vec::new(),
        }
    }

    /// Decides and applies; the command must be accepted.
    pub fn run(&mut self, command: Command, now_us: i64) -> Vec<Event> {
        let events = self
            .when(command.clone(), now_us)
            .unwrap_or_else(|error| panic!("{command:?} at {now_us}: {error}"));
        self.record(&events);
        events
    }

    /// Decides only. Every decision of these tests is also decided in
    /// place on a copy of the member, which must give the same answer and
    /// leave the copy as applying the events (or, on a rejection, nothing)
    /// leaves the member.
    pub fn when(&self, command: Command, now_us: i64) -> Result<Vec<Event>, DomainError> {
        let decided = decide(&self.member, &command, &self.rules, now_us);
        let mut in_place = self.member.clone();
        let decided_in_place = decide_in_place(&mut in_place, &command, &self.rules, now_us);
        let mut expected = self.member.clone();
        match (&decided, decided_in_place) {
            (Ok(events), Ok(in_place_events)) => {
                assert_eq!(*events, in_place_events, "in place: the same events");
                for event in events {
                    apply(&mut expected, event);
                }
            }
            (Err(error), Err(InPlaceError::Rejected(in_place_error))) => {
                assert_eq!(*error, in_place_error, "in place: the same rejection");
            }
            (decided, in_place) => panic!("in place: {in_place:?}, pure: {decided:?}"),
        }
        assert_eq!(in_place, expected, "in place: the state the events give");
        self.check_paged(&command, now_us, &decided, &expected);
        decided
    }

    /// Decides `command` again holding one lot of each order, the others
    /// kept as the engine keeps a paged member's rows and read back one
    /// at a time when the decision asks: the same answer, and once every
    /// lot is given back, the same state as `expected`.
    fn check_paged(
        &self,
        command: &Command,
        now_us: i64,
        decided: &Result<Vec<Event>, DomainError>,
        expected: &Member,
    ) {
        let mut paged = self.member.clone();
        let kept = KeptLots::take_from(&mut paged, 1);
        let outcome = decide_in_place_paged(&mut paged, &kept, command, &self.rules, now_us, 1);
        match (decided, outcome.decided) {
            (Ok(events), Ok(paged_events)) => {
                assert_eq!(*events, paged_events, "paged: the same events")
            }
            (Err(error), Err(InPlaceError::Rejected(paged_error))) => {
                assert_eq!(*error, paged_error, "paged: the same rejection")
            }
            (decided, paged) => panic!("paged: {paged:?}, holding every lot: {decided:?}"),
        }
        kept.give_back(&mut paged);
        assert_eq!(paged, *expected, "paged: the state the events give");
    }

    pub fn record(&mut self, events: &[Event]) {
        for event in events {
            apply(&mut self.member, event);
        }
        self.history.extend_from_slice(events);
    }

    pub fn balance(&self) -> i64 {
        self.member.balance_points().get()
    }

    /// Replaying the history from nothing gives the live state.
    pub fn check_replay(&self) {
        let mut replayed = Member::default();
        for event in &self.history {
            apply(&mut replayed, event);
        }
        assert_eq!(replayed, self.member, "replay equals live state");
    }
}

/// The kinds of `events`, for compact assertions.
pub(super) fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|event| event.kind.name()).collect()
}

pub(super) fn earned(event: &Event) -> &PointsEarned {
    match &event.kind {
        EventKind::PointsEarned(earned) => earned,
        other => panic!("expected PointsEarned, got {other:?}"),
    }
}

/// Two tiers on qualifying points: Base (1x) and Gold from 1,000 (1.5x),
/// changed by `edit`, validated.
pub(super) fn gold_rules(edit: impl FnOnce(&mut ProgramRules)) -> Rules {
    rules_with(|raw| {
        raw.tiers = vec![
            Tier {
                name: "Base".to_owned(),
                threshold: 0,
                earn_multiplier_bps: 10_000,
            },
            Tier {
                name: "Gold".to_owned(),
                threshold: 1_000,
                earn_multiplier_bps: 15_000,
            },
        ];
        raw.tier_measure = TierMeasure::QualifyingPoints;
        edit(raw);
    })
}
