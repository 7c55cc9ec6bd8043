//! The tier view: each member's tier and since when, qualifying history per
//! day, tier history, and member counts per tier per program; progress and
//! what is still needed are computed at query time from that history and
//! the program's current rules, as of the time asked.
//!
//! Rows (inside the view's generation); `S` is the member's stream name and
//! `P` the program id (neither holds a zero byte):
//! - `'m' || S` -> [`TierMember`];
//! - `'q' || S || 0 || ordered(day)` -> [`QualifyingDay`]: base points and
//!   spend of that UTC day, net of returns (both measures, as the domain
//!   keeps them, so a rules change of measure reads the same history);
//! - `'h' || S || 0 || be_u64(position)` -> [`TierHistoryLine`];
//! - `'n' || P || 0 || tier` -> member count (i64) under the stored tier
//!   name (`""` is the lowest tier before any change);
//! - `'p' || P` -> the program's current
//!   [`ProgramRules`](ledger_core::domain::ProgramRules).

use crate::Answer;
use crate::error::{QueryError, ViewError};
use crate::event::LogEvent;
use crate::rows::{
    RowCache, RowWriter, ViewSnapshot, decode, keyed, prefixed, program_rules, push_i64_ordered,
    put_program_rules,
};
use crate::runtime::{Projection, ViewKind};
use ledger_core::domain::time::{day_of, start_of_day_us};
use ledger_core::domain::{EventKind, QualifyingMeasure, TierChangeReason};
use ledger_core::ids::{MemberId, ProgramId, StreamName};
use ledger_core::store::Store;
use serde::{Deserialize, Serialize};

/// Entries kept decoded between chunks, over the three caches; each is
/// trimmed after a chunk is written once it holds half of it
/// ([`crate::rows::trim_hot`]).
pub const CACHED_ENTRIES_MAX: usize = 50_000;

/// A member's tier row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TierMember {
    /// The program.
    pub program_id: String,
    /// The member.
    pub member_id: String,
    /// Enrolled.
    pub enrolled: bool,
    /// Stored tier name; "" = the lowest tier, never changed.
    pub tier: String,
    /// When the current tier was entered.
    pub tier_since_us: i64,
    /// Start of the current tier period (last change or review).
    pub period_start_us: i64,
    /// The member's business time after its last event.
    pub effective_at_us: i64,
}

/// Qualifying history of one UTC day, net of returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QualifyingDay {
    /// Base points of purchases.
    pub base_points: i64,
    /// Spend in minor units.
    pub spend_minor_units: i64,
}

/// One tier change or review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierHistoryLine {
    /// The event's position.
    pub position: u64,
    /// Tier before.
    pub from_tier: String,
    /// Tier after (equal to `from_tier` when a review kept it).
    pub to_tier: String,
    /// Why: "qualified", "period_end" or "return".
    pub reason: String,
    /// Qualifying measure in the window when decided.
    pub qualifying: i64,
    /// The member's business time of the change.
    pub effective_at_us: i64,
}

fn reason_name(reason: TierChangeReason) -> &'static str {
    match reason {
        TierChangeReason::Qualified => "qualified",
        TierChangeReason::PeriodEnd => "period_end",
        TierChangeReason::Return => "return",
    }
}

fn day_key(stream: &str, day: i64) -> Vec<u8> {
    let mut key = prefixed(b'q', stream);
    push_i64_ordered(&mut key, day);
    key
}

fn history_key(stream: &str, position: u64) -> Vec<u8> {
    let mut key = prefixed(b'h', stream);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

fn count_key(program_id: &str, tier: &str) -> Vec<u8> {
    let mut key = prefixed(b'n', program_id);
    key.extend_from_slice(tier.as_bytes());
    key
}

/// The tier projection.
#[derive(Default)]
pub struct TierProjection {
    members: RowCache<String, TierMember>,
    days: RowCache<(String, i64), QualifyingDay>,
    counts: RowCache<(String, String), i64>,
}

impl TierProjection {
    fn count(
        &mut self,
        rows: &RowWriter<'_>,
        program_id: &str,
        tier: &str,
        delta: i64,
        position: u64,
    ) -> Result<(), ViewError> {
        let count = self.counts.get_mut(
            rows,
            (program_id.to_owned(), tier.to_owned()),
            &count_key(program_id, tier),
            "tier count",
            || 0,
        )?;
        *count = count
            .checked_add(delta)
            .filter(|count| *count >= 0)
            .ok_or_else(|| {
                ViewError::event(position, format!("count of tier `{tier}` goes below zero"))
            })?;
        Ok(())
    }

    /// Adds to the member's qualifying history of `day`; `new`: the member
    /// has no row for that day yet.
    fn add_day(
        &mut self,
        rows: &RowWriter<'_>,
        stream: &str,
        (day, new): (i64, bool),
        base_points: i64,
        spend_minor_units: i64,
        position: u64,
    ) -> Result<(), ViewError> {
        let entry = self.days.get_mut_unless_new(
            rows,
            (stream.to_owned(), day),
            &day_key(stream, day),
            "qualifying day",
            new,
            QualifyingDay::default,
        )?;
        let overflow = || ViewError::event(position, "qualifying history overflows");
        entry.base_points = entry
            .base_points
            .checked_add(base_points)
            .ok_or_else(overflow)?;
        entry.spend_minor_units = entry
            .spend_minor_units
            .checked_add(spend_minor_units)
            .ok_or_else(overflow)?;
        Ok(())
    }
}

impl Projection for TierProjection {
    fn apply(&mut self, rows: &mut RowWriter<'_>, event: &LogEvent) -> Result<(), ViewError> {
        let position = event.position;
        let Some(member_id) = event.member_id() else {
            put_program_rules(rows, event);
            return Ok(());
        };
        let stream = event.stream.as_str();
        let member = self.members.get_mut_unless_new(
            rows,
            event.stream.clone(),
            &keyed(b'm', stream),
            "tier member",
            event.stream_version == 1,
            || TierMember {
                program_id: event.program_id.clone(),
                member_id: member_id.to_owned(),
                ..TierMember::default()
            },
        )?;
        let now_us = member.effective_at_us.max(event.event.occurred_at_us);
        // Days are the member's business time, which never goes back: a
        // day after the one of its last event has no row yet.
        let new_day = day_of(member.effective_at_us) < day_of(now_us);
        member.effective_at_us = now_us;
        match &event.event.kind {
            EventKind::MemberEnrolled(_) => {
                member.enrolled = true;
                member.tier_since_us = now_us;
                member.period_start_us = now_us;
                let tier = member.tier.clone();
                self.count(rows, &event.program_id, &tier, 1, position)?;
            }
            EventKind::TierChanged(changed) => {
                if changed.from_tier != changed.to_tier {
                    member.tier_since_us = now_us;
                }
                member.period_start_us = now_us;
                let from = std::mem::replace(&mut member.tier, changed.to_tier.clone());
                rows.put_value(
                    &history_key(stream, position),
                    &TierHistoryLine {
                        position,
                        from_tier: changed.from_tier.clone(),
                        to_tier: changed.to_tier.clone(),
                        reason: reason_name(changed.reason).to_owned(),
                        qualifying: changed.qualifying,
                        effective_at_us: now_us,
                    },
                );
                self.count(rows, &event.program_id, &from, -1, position)?;
                self.count(rows, &event.program_id, &changed.to_tier, 1, position)?;
            }
            EventKind::PointsEarned(earned) => {
                let (base, spend) = (earned.base_points.get(), earned.spend.minor_units);
                let day = (day_of(now_us), new_day);
                self.add_day(rows, stream, day, base, spend, position)?;
            }
            EventKind::EarnReversed(reversed) => {
                let base = reversed.base_points_reversed.get().saturating_neg();
                let spend = reversed.refund.minor_units.saturating_neg();
                let day = (day_of(now_us), new_day);
                self.add_day(rows, stream, day, base, spend, position)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self, rows: &mut RowWriter<'_>) {
        self.members
            .flush(|stream, member| rows.put_value(&keyed(b'm', stream), member));
        self.days
            .flush(|(stream, day), entry| rows.put_value(&day_key(stream, *day), entry));
        self.counts
            .flush(|(program, tier), count| rows.put_value(&count_key(program, tier), count));
        // Each cache at most half the bound after a trim: see `trim_hot`.
        self.members.trim(CACHED_ENTRIES_MAX / 2);
        self.days.trim(CACHED_ENTRIES_MAX / 2);
        self.counts.trim(CACHED_ENTRIES_MAX / 2);
    }

    fn reset(&mut self) {
        self.members.reset();
        self.days.reset();
        self.counts.reset();
    }
}

// ---------------------------------------------------------------------------
// Queries.

/// A member's tier and progress as of an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierStatus {
    /// Current tier (the lowest tier's name before any change).
    pub tier: String,
    /// When it was entered.
    pub tier_since_us: i64,
    /// Start of the current tier period.
    pub period_start_us: i64,
    /// When the period ends and the tier is reviewed (`None` in the lowest
    /// tier, which is never reviewed).
    pub period_end_us: Option<i64>,
    /// What thresholds measure: base points or spend in minor units.
    pub measure: QualifyingMeasure,
    /// The qualifying window as of the instant: `[start, end)`.
    pub window_start_us: i64,
    /// End of that window (exclusive).
    pub window_end_us: i64,
    /// Qualifying measure in that window.
    pub qualifying: i64,
    /// The next tier up, if any.
    pub next_tier: Option<String>,
    /// What is still needed in the window to reach it.
    pub needed_for_next: Option<i64>,
    /// What is still needed, in the window the period-end review measures,
    /// to keep the current tier (`None` in the lowest tier or a tier the
    /// rules no longer define).
    pub needed_to_keep: Option<i64>,
}

fn measure_between(
    view: &ViewSnapshot<'_>,
    stream: &str,
    measure: QualifyingMeasure,
    first_day: i64,
    end_day: i64,
) -> Result<i64, QueryError> {
    let mut total: i64 = 0;
    if first_day >= end_day {
        return Ok(0);
    }
    let prefix = prefixed(b'q', stream);
    let end = day_key(stream, end_day);
    view.scan(&prefix, &day_key(stream, first_day), false, |key, value| {
        if [prefix.as_slice(), key].concat() >= end {
            return Ok(false);
        }
        let day: QualifyingDay = decode(value, "qualifying day")?;
        total = total.saturating_add(match measure {
            QualifyingMeasure::Points => day.base_points,
            QualifyingMeasure::Spend => day.spend_minor_units,
        });
        Ok(true)
    })?;
    Ok(total)
}

fn member_row(view: &ViewSnapshot<'_>, stream: &StreamName) -> Result<TierMember, QueryError> {
    view.get_value(&keyed(b'm', stream.as_str()), "tier member")?
        .ok_or_else(|| QueryError::NotFound {
            what: format!("member {stream}"),
            position: view.position(),
        })
}

/// A member's tier and progress as of `as_of_us`, under the program's
/// current rules.
pub fn member_tier(
    store: &Store,
    program_id: &ProgramId,
    member_id: &MemberId,
    as_of_us: i64,
) -> Result<Answer<TierStatus>, QueryError> {
    let view = ViewSnapshot::take(store, ViewKind::Tier.tag())?;
    let stream = StreamName::member(program_id, member_id);
    let member = member_row(&view, &stream)?;
    let rules = program_rules(&view, program_id)?;
    let index = if member.tier.is_empty() {
        Some(0)
    } else {
        rules.tier_index(&member.tier)
    };
    let tier = if member.tier.is_empty() {
        rules.tier_name(0).to_owned()
    } else {
        member.tier.clone()
    };
    let measure = rules.measure();
    let (first_day, end_day) = rules.window_days(day_of(as_of_us).saturating_add(1));
    let qualifying = measure_between(&view, stream.as_str(), measure, first_day, end_day)?;
    let next = index
        .unwrap_or(0)
        .checked_add(1)
        .and_then(|next| rules.tiers().get(next));
    let reviewed = !rules.tiers().is_empty() && index != Some(0);
    let period_end_us = reviewed.then(|| rules.period_end_us(member.period_start_us));
    let needed_to_keep = match (index, period_end_us) {
        (Some(index), Some(period_end_us)) if index > 0 => {
            let (first, end) = rules.window_days(day_of(period_end_us));
            // Only days up to the instant asked about have happened.
            let so_far_end = end.min(day_of(as_of_us).saturating_add(1));
            let so_far = measure_between(&view, stream.as_str(), measure, first, so_far_end)?;
            let threshold = rules.tiers().get(index).map_or(0, |tier| tier.threshold);
            Some(threshold.saturating_sub(so_far).max(0))
        }
        _ => None,
    };
    Ok(Answer {
        position: view.position(),
        value: TierStatus {
            tier,
            tier_since_us: member.tier_since_us,
            period_start_us: member.period_start_us,
            period_end_us,
            measure,
            window_start_us: start_of_day_us(first_day),
            window_end_us: start_of_day_us(end_day),
            qualifying,
            next_tier: next.map(|tier| tier.name.clone()),
            needed_for_next: next.map(|tier| tier.threshold.saturating_sub(qualifying).max(0)),
            needed_to_keep,
        },
    })
}

/// A member's tier changes and reviews, newest first.
pub fn tier_history(
    store: &Store,
    program_id: &ProgramId,
    member_id: &MemberId,
) -> Result<Answer<Vec<TierHistoryLine>>, QueryError> {
    let view = ViewSnapshot::take(store, ViewKind::Tier.tag())?;
    let stream = StreamName::member(program_id, member_id);
    member_row(&view, &stream)?;
    let prefix = prefixed(b'h', stream.as_str());
    let mut start = prefix.clone();
    start.extend_from_slice(&u64::MAX.to_be_bytes());
    let mut lines = Vec::new();
    view.scan(&prefix, &start, true, |_, value| {
        lines.push(decode(value, "tier history")?);
        Ok(true)
    })?;
    Ok(Answer {
        position: view.position(),
        value: lines,
    })
}

/// Members per tier of a program: the rules' tiers lowest first (zero
/// counts included), then any tier name the rules no longer define that
/// members still hold.
pub fn tier_distribution(
    store: &Store,
    program_id: &ProgramId,
) -> Result<Answer<Vec<(String, i64)>>, QueryError> {
    let view = ViewSnapshot::take(store, ViewKind::Tier.tag())?;
    let rules = program_rules(&view, program_id)?;
    let mut counts: Vec<(String, i64)> = rules
        .tiers()
        .iter()
        .map(|tier| (tier.name.clone(), 0))
        .collect();
    if counts.is_empty() {
        counts.push((String::new(), 0));
    }
    let prefix = prefixed(b'n', program_id.as_str());
    view.scan(&prefix, &prefix, false, |name, value| {
        let count: i64 = decode(value, "tier count")?;
        let name = String::from_utf8_lossy(name);
        let name = if name.is_empty() {
            rules.tier_name(0).to_owned()
        } else {
            name.into_owned()
        };
        match counts.iter_mut().find(|(tier, _)| *tier == name) {
            Some((_, total)) => *total = total.saturating_add(count),
            None if count > 0 => counts.push((name, count)),
            None => {}
        }
        Ok(true)
    })?;
    Ok(Answer {
        position: view.position(),
        value: counts,
    })
}
