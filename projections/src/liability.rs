//! The liability view: per program and per reporting day, the points the
//! program issued, took back and still owes, as a roll-forward that finance
//! can tie to the member balances.
//!
//! Rows (inside the view's generation); `P` is the program id (no zero
//! byte):
//! - `'p' || P` -> the program's current [`ProgramRules`] (its reporting
//!   offset and point value);
//! - `'v' || P || 0 || ordered(day)` -> [`PointValue`] in force from that
//!   reporting day on (written by the program's definition and each rules
//!   change);
//! - `'d' || P || 0 || ordered(day)` -> [`Flows`] of that reporting day.
//!
//! **Days.** An event counts on the reporting day of its business time
//! (`occurred_at`) at the program's UTC offset in force when it is folded
//! (`utc_offset_minutes`; a change applies to later events). Business time,
//! not the member's clock: both halves of a transfer carry the same time,
//! so transfers net to zero on every day.
//!
//! **Roll-forward.** `closing = opening + earned + awarded - redeemed +
//! cancelled - expired - reversed + adjusted_in - adjusted_out +
//! transferred_in - transferred_out`, and the next day's opening is this
//! closing. `forfeited` (return shortfalls the program absorbed under the
//! forfeit policy) is a memo column: it never moved a member's points, so it
//! is not in the identity. Over all days, the closing equals the sum of the
//! members' available + pending - debt (the balance view's program totals).
//!
//! **Money.** Each figure is valued on its own at the point value in force
//! at the end of its day: `points * point_value_minor_units /
//! point_value_per_points`, computed in 128 bits and rounded half away from
//! zero to whole minor units. Points tie exactly; money columns are each
//! rounded, so a money closing may differ from the money opening plus money
//! flows by the rounding of each column (at most half a minor unit per
//! column), and a change of point value revalues the opening.

use crate::Answer;
use crate::balance::{self, ProgramTotals};
use crate::error::{QueryError, ViewError};
use crate::event::LogEvent;
use crate::rows::{
    RowCache, RowWriter, ViewSnapshot, decode, prefixed, program_rules, program_rules_key,
    push_i64_ordered, put_program_rules, read_i64_ordered,
};
use crate::runtime::{Projection, ViewKind, read_events};
use ledger_core::domain::time::report_day_of;
use ledger_core::domain::{EventKind, LotDraw, ProgramRules, ReturnPolicy, Rules};
use ledger_core::error::{FieldError, FieldReason};
use ledger_core::ids::ProgramId;
use ledger_core::limits::READ_CHUNK_RECORDS;
use ledger_core::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Most days one liability answer covers (ten years and a bit).
pub const LIABILITY_DAYS_MAX: i64 = 3_700;

/// Most events read from the log to bring the balance view and the
/// liability view to one position for the outstanding check.
pub const CHECK_GAP_EVENTS_MAX: u64 = 1_000_000;

/// Cached day rows between chunks: at the bound, the cache is trimmed after
/// a chunk is written ([`crate::rows::trim_hot`]).
const CACHED_DAYS_MAX: usize = 100_000;

/// Points moved on one day (or over a range), each column non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flows {
    /// Purchase points.
    pub earned: i64,
    /// Bonus points.
    pub awarded: i64,
    /// Redeemed (gross: cancellations are in `cancelled`).
    pub redeemed: i64,
    /// Points of cancelled redemptions, all of them (the part whose lots
    /// expired meanwhile is in `expired` too).
    pub cancelled: i64,
    /// Expired: lot and inactivity expiry, and cancelled redemptions' points
    /// whose lots had expired.
    pub expired: i64,
    /// Clawed back by returns (drawn, plus a shortfall carried as debt).
    pub reversed: i64,
    /// Memo: return shortfalls the program absorbed (not in the identity).
    pub forfeited: i64,
    /// Operator credits.
    pub adjusted_in: i64,
    /// Operator debits.
    pub adjusted_out: i64,
    /// Received by members from members.
    pub transferred_in: i64,
    /// Sent by members to members.
    pub transferred_out: i64,
}

/// The columns of [`Flows`] in report order, with their names.
pub const FLOW_COLUMNS: [&str; 11] = [
    "earned",
    "awarded",
    "redeemed",
    "cancelled",
    "expired",
    "reversed",
    "forfeited",
    "adjusted_in",
    "adjusted_out",
    "transferred_in",
    "transferred_out",
];

fn sum(draws: &[LotDraw]) -> Option<i64> {
    draws
        .iter()
        .try_fold(0i64, |total, draw| total.checked_add(draw.points.get()))
}

impl Flows {
    /// What one event moves; `None` when a sum overflows. Events that move
    /// no points (program events, enrolments, tier changes, maturation)
    /// give zeros.
    pub fn of(kind: &EventKind) -> Option<Flows> {
        let mut flows = Flows::default();
        match kind {
            EventKind::PointsEarned(e) => flows.earned = e.points.get(),
            EventKind::PointsAwarded(e) => flows.awarded = e.points.get(),
            EventKind::PointsRedeemed(e) => flows.redeemed = sum(&e.draws)?,
            EventKind::RedemptionCancelled(e) => {
                flows.cancelled = e.points.get();
                flows.expired = sum(&e.expired)?;
            }
            EventKind::EarnReversed(e) => {
                let drawn = sum(&e.draws)?;
                let shortfall = e.shortfall_points.get();
                if e.shortfall_policy == ReturnPolicy::Debt {
                    flows.reversed = drawn.checked_add(shortfall)?;
                } else {
                    flows.reversed = drawn;
                    flows.forfeited = shortfall;
                }
            }
            EventKind::PointsAdjusted(e) => match &e.lot {
                Some(_) => flows.adjusted_in = e.points.get(),
                None => flows.adjusted_out = sum(&e.draws)?,
            },
            EventKind::PointsTransferred(e) => {
                if e.draws.is_empty() {
                    flows.transferred_in = e.points.get();
                } else {
                    flows.transferred_out = sum(&e.draws)?;
                }
            }
            EventKind::PointsExpired(e) => flows.expired = sum(&e.draws)?,
            EventKind::ProgramDefined(_)
            | EventKind::ProgramRulesChanged(_)
            | EventKind::MemberEnrolled(_)
            | EventKind::TierChanged(_)
            | EventKind::PointsMatured(_) => {}
        }
        Some(flows)
    }

    /// The columns in [`FLOW_COLUMNS`] order.
    pub fn columns(&self) -> [i64; 11] {
        [
            self.earned,
            self.awarded,
            self.redeemed,
            self.cancelled,
            self.expired,
            self.reversed,
            self.forfeited,
            self.adjusted_in,
            self.adjusted_out,
            self.transferred_in,
            self.transferred_out,
        ]
    }

    fn from_columns(c: [i64; 11]) -> Flows {
        let [
            earned,
            awarded,
            redeemed,
            cancelled,
            expired,
            reversed,
            forfeited,
            adjusted_in,
            adjusted_out,
            transferred_in,
            transferred_out,
        ] = c;
        Flows {
            earned,
            awarded,
            redeemed,
            cancelled,
            expired,
            reversed,
            forfeited,
            adjusted_in,
            adjusted_out,
            transferred_in,
            transferred_out,
        }
    }

    /// Column by column sum; `None` on overflow.
    pub fn checked_add(&self, other: &Flows) -> Option<Flows> {
        let (a, b) = (self.columns(), other.columns());
        let mut out = [0i64; 11];
        for ((out, a), b) in out.iter_mut().zip(a).zip(b) {
            *out = a.checked_add(b)?;
        }
        Some(Flows::from_columns(out))
    }

    /// Each column mapped through `f`.
    pub fn try_map(&self, f: impl Fn(i64) -> Option<i64>) -> Option<Flows> {
        let mut out = self.columns();
        for value in &mut out {
            *value = f(*value)?;
        }
        Some(Flows::from_columns(out))
    }

    /// Issued: earned + awarded.
    pub fn issued(&self) -> Option<i64> {
        self.earned.checked_add(self.awarded)
    }

    /// The change of what the program owes (forfeited excluded).
    pub fn net(&self) -> Option<i64> {
        self.earned
            .checked_add(self.awarded)?
            .checked_sub(self.redeemed)?
            .checked_add(self.cancelled)?
            .checked_sub(self.expired)?
            .checked_sub(self.reversed)?
            .checked_add(self.adjusted_in)?
            .checked_sub(self.adjusted_out)?
            .checked_add(self.transferred_in)?
            .checked_sub(self.transferred_out)
    }
}

/// A program's point value: `minor_units` per `per_points` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointValue {
    /// Minor units of the program's currency...
    pub minor_units: i64,
    /// ...per this many points.
    pub per_points: i64,
}

impl PointValue {
    fn of(rules: &ProgramRules) -> PointValue {
        PointValue {
            minor_units: rules.point_value_minor_units,
            per_points: rules.point_value_per_points,
        }
    }

    /// `points` in minor units, rounded half away from zero; `None` when it
    /// does not fit in i64 (or the value is malformed).
    pub fn value(&self, points: i64) -> Option<i64> {
        if self.per_points <= 0 {
            return None;
        }
        let product = i128::from(points).checked_mul(i128::from(self.minor_units))?;
        let per = i128::from(self.per_points);
        let quotient = product / per;
        let remainder = product % per;
        let rounded = if remainder.abs() * 2 >= per {
            quotient + product.signum()
        } else {
            quotient
        };
        i64::try_from(rounded).ok()
    }
}

/// Which program and reporting day an event counts on, following the
/// programs' rules as the log changes them. The view and `reconcile`'s
/// recomputation from the log share it, so both count days alike.
#[derive(Default)]
pub struct DayBook {
    offsets: HashMap<String, i32>,
}

impl DayBook {
    /// Notes a program's new rules.
    pub fn rules(&mut self, program_id: &str, rules: &ProgramRules) {
        self.offsets
            .insert(program_id.to_owned(), rules.utc_offset_minutes);
    }

    /// The reporting day of `occurred_at_us` for `program_id`.
    pub fn day(&self, program_id: &str, occurred_at_us: i64) -> i64 {
        let offset = self.offsets.get(program_id).copied().unwrap_or(0);
        report_day_of(occurred_at_us, offset)
    }
}

fn dated(kind: u8, program_id: &str, day: i64) -> Vec<u8> {
    let mut key = prefixed(kind, program_id);
    push_i64_ordered(&mut key, day);
    key
}

/// The liability projection.
#[derive(Default)]
pub struct LiabilityProjection {
    book: Option<DayBook>,
    days: RowCache<(String, i64), Flows>,
}

impl LiabilityProjection {
    /// The day book, its offsets read from the rows on first use after a
    /// reset (a restart resumes with the offsets in force).
    fn book(&mut self, rows: &RowWriter<'_>, program_id: &str) -> Result<&mut DayBook, ViewError> {
        let book = self.book.get_or_insert_with(DayBook::default);
        if !book.offsets.contains_key(program_id) {
            let stored: Option<ProgramRules> =
                rows.get_value(&program_rules_key(program_id), "program rules")?;
            if let Some(rules) = stored {
                book.rules(program_id, &rules);
            }
        }
        Ok(book)
    }
}

impl Projection for LiabilityProjection {
    fn apply(&mut self, rows: &mut RowWriter<'_>, event: &LogEvent) -> Result<(), ViewError> {
        let program_id = event.program_id.as_str();
        let occurred_at_us = event.event.occurred_at_us;
        if let Some(rules) = put_program_rules(rows, event) {
            let book = self.book(rows, program_id)?;
            book.rules(program_id, rules);
            let day = book.day(program_id, occurred_at_us);
            rows.put_value(&dated(b'v', program_id, day), &PointValue::of(rules));
            return Ok(());
        }
        let flows = Flows::of(&event.event.kind)
            .ok_or_else(|| ViewError::event(event.position, "points of the event overflow"))?;
        if flows == Flows::default() {
            return Ok(());
        }
        let day = self.book(rows, program_id)?.day(program_id, occurred_at_us);
        let entry = self.days.get_mut(
            rows,
            (program_id.to_owned(), day),
            &dated(b'd', program_id, day),
            "liability day",
            Flows::default,
        )?;
        *entry = entry
            .checked_add(&flows)
            .ok_or_else(|| ViewError::event(event.position, "liability day overflows"))?;
        Ok(())
    }

    fn flush(&mut self, rows: &mut RowWriter<'_>) {
        self.days.flush(|(program_id, day), entry| {
            rows.put_value(&dated(b'd', program_id, *day), entry)
        });
        self.days.trim(CACHED_DAYS_MAX);
    }

    fn reset(&mut self) {
        self.book = None;
        self.days.reset();
    }
}

// ---------------------------------------------------------------------------
// Queries.

/// One day of the roll-forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiabilityDay {
    /// Reporting day (days since 1970-01-01 at the program's offset).
    pub day: i64,
    /// Points owed at the start of the day.
    pub opening: i64,
    /// What the day moved.
    pub flows: Flows,
    /// Points owed at its end.
    pub closing: i64,
    /// The point value in force at its end.
    pub point_value: PointValue,
    /// `opening` in minor units.
    pub money_opening: i64,
    /// `flows` in minor units, column by column.
    pub money_flows: Flows,
    /// `closing` in minor units.
    pub money_closing: i64,
}

/// A program's roll-forward over a range of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liability {
    /// The program's currency (of the money columns).
    pub currency: String,
    /// Its reporting offset from UTC, minutes.
    pub utc_offset_minutes: i32,
    /// Every day of the range, first to last, days without events included.
    pub days: Vec<LiabilityDay>,
    /// Opening of the first day.
    pub opening: i64,
    /// The range's flows.
    pub totals: Flows,
    /// Closing of the last day.
    pub closing: i64,
    /// Closing after every day the view holds (what members hold now).
    pub closing_all: i64,
    /// Breakage over the range: expired / issued, in basis points (rounded
    /// down); `None` when nothing was issued.
    pub breakage_bps: Option<i64>,
}

fn overflow(what: &str) -> QueryError {
    QueryError::View(ViewError::row(what, "overflows"))
}

fn read_dated<T: serde::de::DeserializeOwned>(
    view: &ViewSnapshot<'_>,
    kind: u8,
    program_id: &str,
    what: &str,
) -> Result<BTreeMap<i64, T>, QueryError> {
    let prefix = prefixed(kind, program_id);
    let mut out = BTreeMap::new();
    view.scan(&prefix, &prefix, false, |rest, value| {
        let day =
            read_i64_ordered(rest).ok_or_else(|| ViewError::row(what, "bad day in the key"))?;
        out.insert(day, decode(value, what)?);
        Ok(true)
    })?;
    Ok(out)
}

/// Checks a day range: `from_day <= to_day`, at most
/// [`LIABILITY_DAYS_MAX`] days; errors name `from_field` or `to_field`.
pub fn check_range(
    from_day: i64,
    to_day: i64,
    from_field: &str,
    to_field: &str,
) -> Result<(), FieldError> {
    if to_day < from_day {
        return Err(FieldError::new(
            to_field,
            FieldReason::Invalid(format!("is before {from_field}")),
        ));
    }
    if to_day - from_day >= LIABILITY_DAYS_MAX {
        return Err(FieldError::new(
            to_field,
            FieldReason::Invalid(format!(
                "the range covers more than {LIABILITY_DAYS_MAX} days"
            )),
        ));
    }
    Ok(())
}

/// Rolls `days` (flows by day) forward over `from_day..=to_day`, valued at
/// the point values in force (`values` by the day they start).
pub fn roll_forward(
    days: &BTreeMap<i64, Flows>,
    values: &BTreeMap<i64, PointValue>,
    from_day: i64,
    to_day: i64,
) -> Result<(Vec<LiabilityDay>, i64), QueryError> {
    let mut opening = closing_over(days.range(..from_day).map(|(_, flows)| flows))?;
    let default_value = PointValue {
        minor_units: 0,
        per_points: 1,
    };
    let mut out = Vec::new();
    for day in from_day..=to_day {
        let flows = days.get(&day).copied().unwrap_or_default();
        let closing = flows
            .net()
            .and_then(|net| opening.checked_add(net))
            .ok_or_else(|| overflow("liability closing"))?;
        let point_value = values
            .range(..=day)
            .next_back()
            .map(|(_, value)| *value)
            .unwrap_or(default_value);
        let money = |points: i64| point_value.value(points).ok_or_else(|| overflow("money"));
        out.push(LiabilityDay {
            day,
            opening,
            flows,
            closing,
            point_value,
            money_opening: money(opening)?,
            money_flows: flows
                .try_map(|points| point_value.value(points))
                .ok_or_else(|| overflow("money"))?,
            money_closing: money(closing)?,
        });
        opening = closing;
    }
    Ok((out, closing_over(days.values())?))
}

/// What the days' flows leave owed, starting from nothing.
fn closing_over<'a>(flows: impl IntoIterator<Item = &'a Flows>) -> Result<i64, QueryError> {
    flows.into_iter().try_fold(0i64, |closing, flows| {
        flows
            .net()
            .and_then(|net| closing.checked_add(net))
            .ok_or_else(|| overflow("liability closing"))
    })
}

fn summarise(
    rules: &Rules,
    days: Vec<LiabilityDay>,
    closing_all: i64,
) -> Result<Liability, QueryError> {
    let opening = days.first().map(|day| day.opening).unwrap_or(0);
    let closing = days.last().map(|day| day.closing).unwrap_or(0);
    let mut totals = Flows::default();
    for day in &days {
        totals = totals
            .checked_add(&day.flows)
            .ok_or_else(|| overflow("liability totals"))?;
    }
    let issued = totals.issued().ok_or_else(|| overflow("issued"))?;
    let breakage_bps = (issued > 0).then(|| {
        let bps = i128::from(totals.expired) * 10_000 / i128::from(issued);
        i64::try_from(bps).unwrap_or(i64::MAX)
    });
    Ok(Liability {
        currency: rules.currency().code().to_owned(),
        utc_offset_minutes: rules.raw().utc_offset_minutes,
        days,
        opening,
        totals,
        closing,
        closing_all,
        breakage_bps,
    })
}

/// A program's roll-forward for reporting days `from_day..=to_day`.
pub fn liability(
    store: &Store,
    program_id: &ProgramId,
    from_day: i64,
    to_day: i64,
) -> Result<Answer<Liability>, QueryError> {
    check_range(from_day, to_day, "from_date", "to_date")?;
    let view = ViewSnapshot::take(store, ViewKind::Liability.tag())?;
    let rules = program_rules(&view, program_id)?;
    let days: BTreeMap<i64, Flows> = read_dated(&view, b'd', program_id.as_str(), "liability day")?;
    let values = read_dated(&view, b'v', program_id.as_str(), "point value")?;
    let (rows, closing_all) = roll_forward(&days, &values, from_day, to_day)?;
    Ok(Answer {
        position: view.position(),
        value: summarise(&rules, rows, closing_all)?,
    })
}

/// The reporting days of a program that moved points, first and last
/// (`None` when none did).
pub fn active_days(
    store: &Store,
    program_id: &ProgramId,
) -> Result<Option<(i64, i64)>, QueryError> {
    let view = ViewSnapshot::take(store, ViewKind::Liability.tag())?;
    program_rules(&view, program_id)?;
    let days: BTreeMap<i64, Flows> = read_dated(&view, b'd', program_id.as_str(), "liability day")?;
    Ok(days
        .keys()
        .next()
        .copied()
        .zip(days.keys().next_back().copied()))
}

/// The liability's closing checked against the sum of member balances, both
/// at one log position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutstandingCheck {
    /// The position both figures are brought to.
    pub position: u64,
    /// The liability view's closing over all days, at `position`.
    pub closing: i64,
    /// The balance view's available + pending - debt over the program's
    /// members, at `position`.
    pub outstanding: i64,
    /// The balance view's totals as read (at its own position).
    pub totals: ProgramTotals,
    /// The balance view's position.
    pub balance_position: u64,
    /// The liability view's position.
    pub liability_position: u64,
}

impl OutstandingCheck {
    /// The two figures agree.
    pub fn ties(&self) -> bool {
        self.closing == self.outstanding
    }
}

/// Net flows of `program_id`'s events at positions `from..=to`, read from
/// the log.
fn net_between(store: &Store, program_id: &str, from: u64, to: u64) -> Result<i64, QueryError> {
    let mut net: i64 = 0;
    let mut next = from;
    while next <= to {
        let events =
            read_events(store, next, to, READ_CHUNK_RECORDS).map_err(|(_, error)| error)?;
        for event in &events {
            next = event.position + 1;
            if event.program_id != program_id {
                continue;
            }
            let flows = Flows::of(&event.event.kind).ok_or_else(|| overflow("event points"))?;
            net = flows
                .net()
                .and_then(|delta| net.checked_add(delta))
                .ok_or_else(|| overflow("net flows"))?;
        }
    }
    Ok(net)
}

/// Checks the liability view's closing against the balance view's program
/// totals. When the two views reflect different positions, the one behind is
/// brought forward with the events in between, read from the log (at most
/// [`CHECK_GAP_EVENTS_MAX`]; beyond that the error says so).
pub fn check_outstanding(
    store: &Store,
    program_id: &ProgramId,
) -> Result<OutstandingCheck, QueryError> {
    let view = ViewSnapshot::take(store, ViewKind::Liability.tag())?;
    program_rules(&view, program_id)?;
    let days: BTreeMap<i64, Flows> = read_dated(&view, b'd', program_id.as_str(), "liability day")?;
    let mut closing = closing_over(days.values())?;
    let liability_position = view.position();
    drop(view);
    let totals = balance::program_totals(store, program_id)?;
    let mut outstanding = totals
        .value
        .outstanding()
        .ok_or_else(|| overflow("outstanding"))?;
    let (low, high) = (
        liability_position.min(totals.position),
        liability_position.max(totals.position),
    );
    if high - low > CHECK_GAP_EVENTS_MAX {
        return Err(QueryError::View(ViewError::row(
            "outstanding check",
            format!(
                "the balance view (position {}) and the liability view (position \
                 {liability_position}) are more than {CHECK_GAP_EVENTS_MAX} events apart",
                totals.position
            ),
        )));
    }
    if high > low {
        let gap = net_between(store, program_id.as_str(), low + 1, high)?;
        let behind = if liability_position < totals.position {
            &mut closing
        } else {
            &mut outstanding
        };
        *behind = behind
            .checked_add(gap)
            .ok_or_else(|| overflow("outstanding"))?;
    }
    Ok(OutstandingCheck {
        position: high,
        closing,
        outstanding,
        totals: totals.value,
        balance_position: totals.position,
        liability_position,
    })
}

/// A program's flows and point values recomputed straight from the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recomputed {
    /// The program's latest rules in the log.
    pub rules: Option<ProgramRules>,
    /// Flows by reporting day.
    pub days: BTreeMap<i64, Flows>,
    /// Point values by the day they start.
    pub values: BTreeMap<i64, PointValue>,
}

/// Folds the log's positions `1..=up_to` into every program's flows by day,
/// without reading any view row. `progress` is called with each position
/// read, a chunk at a time.
pub fn recompute(
    store: &Store,
    up_to: u64,
    mut progress: impl FnMut(u64),
) -> Result<BTreeMap<String, Recomputed>, ViewError> {
    let mut book = DayBook::default();
    let mut programs: BTreeMap<String, Recomputed> = BTreeMap::new();
    let mut next = 1;
    while next <= up_to {
        let events =
            read_events(store, next, up_to, READ_CHUNK_RECORDS).map_err(|(_, error)| error)?;
        for event in events {
            next = event.position + 1;
            let program = programs.entry(event.program_id.clone()).or_default();
            let occurred_at_us = event.event.occurred_at_us;
            let rules = match &event.event.kind {
                EventKind::ProgramDefined(defined) => Some(&defined.rules),
                EventKind::ProgramRulesChanged(changed) => Some(&changed.rules),
                _ => None,
            };
            if let Some(rules) = rules {
                book.rules(&event.program_id, rules);
                let day = book.day(&event.program_id, occurred_at_us);
                program.values.insert(day, PointValue::of(rules));
                program.rules = Some(rules.clone());
                continue;
            }
            let flows = Flows::of(&event.event.kind)
                .ok_or_else(|| ViewError::event(event.position, "points of the event overflow"))?;
            if flows == Flows::default() {
                continue;
            }
            let day = book.day(&event.program_id, occurred_at_us);
            let entry = program.days.entry(day).or_default();
            *entry = entry
                .checked_add(&flows)
                .ok_or_else(|| ViewError::event(event.position, "liability day overflows"))?;
        }
        progress(next - 1);
    }
    Ok(programs)
}

/// The liability view's rows of one program: flows by day and point values.
pub fn view_rows(store: &Store, program_id: &ProgramId) -> Result<Answer<Recomputed>, QueryError> {
    let view = ViewSnapshot::take(store, ViewKind::Liability.tag())?;
    let rules = program_rules(&view, program_id)?;
    Ok(Answer {
        position: view.position(),
        value: Recomputed {
            rules: Some(rules.raw().clone()),
            days: read_dated(&view, b'd', program_id.as_str(), "liability day")?,
            values: read_dated(&view, b'v', program_id.as_str(), "point value")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rounds_half_away_from_zero() {
        let half_cent = PointValue {
            minor_units: 1,
            per_points: 2,
        };
        assert_eq!(half_cent.value(3), Some(2));
        assert_eq!(half_cent.value(-3), Some(-2));
        assert_eq!(half_cent.value(2), Some(1));
        let third = PointValue {
            minor_units: 1,
            per_points: 3,
        };
        assert_eq!(third.value(4), Some(1));
        assert_eq!(third.value(5), Some(2));
        assert_eq!(third.value(-5), Some(-2));
        let big = PointValue {
            minor_units: 1_000_000_000,
            per_points: 1,
        };
        assert_eq!(big.value(i64::MAX), None);
        assert_eq!(big.value(1_000_000_000), Some(1_000_000_000_000_000_000));
    }

    #[test]
    fn columns_round_trip_and_net_leaves_forfeited_out() {
        let flows = Flows::from_columns([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(Flows::from_columns(flows.columns()), flows);
        // 1 + 2 - 3 + 4 - 5 - 6 + 8 - 9 + 10 - 11, the 7 forfeited left out.
        assert_eq!(flows.net(), Some(-9));
        assert_eq!(flows.issued(), Some(3));
        let max = Flows {
            earned: i64::MAX,
            ..Flows::default()
        };
        assert_eq!(max.checked_add(&flows), None);
    }

    #[test]
    fn ranges_are_checked_and_named() {
        assert!(check_range(10, 10, "from", "to").is_ok());
        assert_eq!(
            check_range(10, 9, "from", "to")
                .expect_err("inverted")
                .field,
            "to"
        );
        let too_long = check_range(0, LIABILITY_DAYS_MAX, "from", "to").expect_err("long");
        assert_eq!(too_long.field, "to");
    }

    #[test]
    fn roll_forward_carries_closing_to_opening_and_fills_empty_days() {
        let mut days = BTreeMap::new();
        days.insert(
            5,
            Flows {
                earned: 100,
                ..Flows::default()
            },
        );
        days.insert(
            8,
            Flows {
                redeemed: 30,
                expired: 10,
                ..Flows::default()
            },
        );
        let mut values = BTreeMap::new();
        values.insert(
            0,
            PointValue {
                minor_units: 1,
                per_points: 1,
            },
        );
        values.insert(
            7,
            PointValue {
                minor_units: 2,
                per_points: 1,
            },
        );
        let (rows, all) = roll_forward(&days, &values, 6, 9).expect("rolls");
        assert_eq!(all, 60);
        let closings: Vec<i64> = rows.iter().map(|row| row.closing).collect();
        assert_eq!(closings, [100, 100, 60, 60]);
        assert_eq!(rows[0].opening, 100);
        assert_eq!(rows[0].money_closing, 100);
        assert_eq!(rows[1].money_closing, 200, "revalued from day 7");
        assert_eq!(rows[2].money_flows.redeemed, 60);
    }
}
