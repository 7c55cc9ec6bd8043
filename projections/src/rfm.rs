//! The RFM view: per member, purchases and spend per reporting day; at query
//! time, recency, frequency and monetary value as of a date, scored 1 to 5
//! by quintile over the program's members, and the segment each member is
//! in.
//!
//! Rows (inside the view's generation); `S` is the member's stream name and
//! `P` the program id (neither holds a zero byte):
//! - `'m' || S` -> [`RfmMember`]: the program and member ids and one
//!   [`RfmDay`] per reporting day with a purchase or a return, sorted by
//!   day, so a row grows with the member's days of activity, not with its
//!   events. The row is created by the member's enrollment (explicit, or
//!   implicit with a first earn) or by its first purchase or return;
//! - `'p' || P` -> the program's current [`ProgramRules`].
//!
//! Member stream names are `member/{P}/{member_id}`, so the rows of one
//! program's members are contiguous and in member id order: every query
//! reads them with one scan.
//!
//! # The fold
//!
//! - A `PointsEarned` is one purchase: it adds 1 to the purchases of its
//!   day and its spend (minor units) to the day's spend.
//! - An `EarnReversed` subtracts its refund from the spend of the day of
//!   the return (not of the purchase); the purchase count stays.
//! - Nothing else is a purchase: awards, redemptions, transfers,
//!   adjustments, expiry and tier changes leave the rows as they are.
//!
//! An event's day is `rules.report_day_of(occurred_at_us)`: the business
//! time the command carried, in the reporting days of the program (its
//! `utc_offset_minutes`), under the rules in force when the event is
//! folded. The command's time is used rather than the member's clock (which
//! never runs backwards) so that a purchase recorded late counts on the
//! day it happened. A later change of the offset does not move days already
//! folded: the rows depend on the log alone, and a rebuild gives the same
//! bytes. A purchase or return in a program the log has not defined, or a
//! sum that overflows, stops the view at the event.
//!
//! # Queries
//!
//! Every query reads one [`ViewSnapshot`] and says the position it
//! reflects. The program's current rules give the as-of day and the window:
//! - as-of day `D = rules.report_day_of(as_of_us)`; the window is the
//!   `W = rules.rfm_window_days()` days ending with `D`, `D - W + 1 ..= D`.
//!   Activity on days after `D` is ignored. The window and the offset are
//!   those of the current rules, whatever the date asked.
//! - The **scored** members are the program's members with at least one
//!   purchase on or before `D`. Members without one are in no segment.
//! - **Recency** is `D` minus the day of the last purchase on or before
//!   `D` (0 = a purchase on `D`). **Frequency** is the number of purchases
//!   in the window. **Monetary** is the spend in the window minus the
//!   refunds of returns made in the window, in minor units; it may be
//!   negative (a return in the window of a purchase made before it).
//!
//! # Scores
//!
//! Each measure is scored 1..=5 by quintile (SQL's `NTILE(5)`): the `n`
//! scored members are ordered worst to best (recency: more days is worse;
//! frequency and monetary: smaller is worse), **ties broken by member id
//! ascending**, and the `k`-th of them (from 0) scores `1 + (5 * k) / n`.
//! Equal measures can therefore score differently; the tie rule makes the
//! answer a function of the view alone. With fewer than five members some
//! scores are not used (two members score 1 and 3).
//!
//! # Segments
//!
//! `fm = (f + m + 1) / 2`, the average of the frequency and monetary
//! scores rounded half up; then by recency score `r` (rows) and `fm`
//! (columns):
//!
//! | r \ fm | 1 | 2 | 3 | 4 | 5 |
//! |---|---|---|---|---|---|
//! | 5 | New | Potential Loyalist | Potential Loyalist | Champions | Champions |
//! | 4 | Promising | Potential Loyalist | Potential Loyalist | Loyal | Loyal |
//! | 3 | About to Sleep | About to Sleep | Need Attention | Loyal | Loyal |
//! | 2 | Hibernating | Hibernating | At Risk | At Risk | Can't Lose Them |
//! | 1 | Lost | Hibernating | At Risk | At Risk | Can't Lose Them |
//!
//! # Cost
//!
//! Scores are relative to the whole program, so every query, even for one
//! member, reads all the program's member rows once: a scan, a decode that
//! folds each row's days without building it, and three sorts.

use crate::Answer;
use crate::error::{QueryError, ViewError};
use crate::event::LogEvent;
use crate::rows::{
    RowCache, RowWriter, ViewSnapshot, decode_seed, keyed, program_rules, program_rules_key,
    put_program_rules,
};
use crate::runtime::{Projection, ViewKind};
use ledger_core::domain::time::civil_from_days;
use ledger_core::domain::{EventKind, ProgramRules, Rules};
use ledger_core::error::{FieldError, FieldReason};
use ledger_core::ids::{MemberId, ProgramId, StreamName};
use ledger_core::limits::STATEMENT_PAGE_LINES_MAX;
use ledger_core::store::Store;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Members kept decoded between chunks: at the bound, the cache is trimmed
/// after a chunk is written ([`crate::rows::trim_hot`]). Programs' rules
/// are cleared past it.
pub const CACHED_ENTRIES_MAX: usize = 50_000;

/// Members per segment page when the caller asks for 0.
pub const SEGMENT_PAGE_MEMBERS_DEFAULT: usize = 100;

/// Most members per segment page: the statement's page bound, so that
/// every paged answer of the ledger has the same limit.
pub const SEGMENT_PAGE_MEMBERS_MAX: usize = STATEMENT_PAGE_LINES_MAX;

/// A member's row: its purchase history by reporting day.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RfmMember {
    /// The program.
    pub program_id: String,
    /// The member.
    pub member_id: String,
    /// One entry per reporting day with a purchase or a return, by day.
    pub days: Vec<RfmDay>,
}

/// One reporting day of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RfmDay {
    /// Days since 1970-01-01 at the program's UTC offset.
    pub day: i64,
    /// Purchases made that day.
    pub purchases: i64,
    /// Spend of that day's purchases minus refunds of that day's returns,
    /// in minor units.
    pub spend_minor_units: i64,
}

impl RfmMember {
    /// Adds purchases and spend to `day`, keeping the days sorted.
    fn add(
        &mut self,
        day: i64,
        purchases: i64,
        spend_minor_units: i64,
        position: u64,
    ) -> Result<(), ViewError> {
        let overflow = || {
            ViewError::event(
                position,
                format!(
                    "purchases or spend of member {} on reporting day {day} overflow",
                    self.member_id
                ),
            )
        };
        match self.days.binary_search_by_key(&day, |entry| entry.day) {
            Ok(index) => {
                let Some(entry) = self.days.get_mut(index) else {
                    return Err(ViewError::event(position, "a found day is out of range"));
                };
                entry.purchases = entry
                    .purchases
                    .checked_add(purchases)
                    .ok_or_else(overflow)?;
                entry.spend_minor_units = entry
                    .spend_minor_units
                    .checked_add(spend_minor_units)
                    .ok_or_else(overflow)?;
            }
            Err(index) => self.days.insert(
                index,
                RfmDay {
                    day,
                    purchases,
                    spend_minor_units,
                },
            ),
        }
        Ok(())
    }
}

fn validated(raw: &ProgramRules, position: u64) -> Result<Rules, ViewError> {
    Rules::from_raw(raw)
        .map_err(|error| ViewError::event(position, format!("program rules refused: {error}")))
}

/// The RFM projection.
#[derive(Default)]
pub struct RfmProjection {
    members: RowCache<String, RfmMember>,
    /// Each program's rules as the events so far leave them.
    programs: HashMap<String, Rules>,
}

impl RfmProjection {
    /// The rules in force for `program_id`, read from its row on first use.
    fn rules(
        &mut self,
        rows: &RowWriter<'_>,
        program_id: &str,
        position: u64,
    ) -> Result<&Rules, ViewError> {
        if !self.programs.contains_key(program_id) {
            let raw: Option<ProgramRules> =
                rows.get_value(&program_rules_key(program_id), "program rules")?;
            let Some(raw) = raw else {
                return Err(ViewError::event(
                    position,
                    format!("a purchase or return in program `{program_id}`, which is not defined"),
                ));
            };
            let rules = validated(&raw, position)?;
            self.programs.insert(program_id.to_owned(), rules);
        }
        self.programs
            .get(program_id)
            .ok_or_else(|| ViewError::event(position, "program cache lost an entry"))
    }
}

impl Projection for RfmProjection {
    fn apply(&mut self, rows: &mut RowWriter<'_>, event: &LogEvent) -> Result<(), ViewError> {
        let position = event.position;
        if let Some(raw) = put_program_rules(rows, event) {
            let rules = validated(raw, position)?;
            self.programs.insert(event.program_id.clone(), rules);
            return Ok(());
        }
        let Some(member_id) = event.member_id() else {
            return Ok(());
        };
        let change = match &event.event.kind {
            EventKind::MemberEnrolled(_) => None,
            EventKind::PointsEarned(earned) => Some((1, earned.spend.minor_units)),
            EventKind::EarnReversed(reversed) => {
                let refund = reversed.refund.minor_units.checked_neg().ok_or_else(|| {
                    ViewError::event(position, "refund overflows when subtracted")
                })?;
                Some((0, refund))
            }
            _ => return Ok(()),
        };
        let day = match change {
            Some(_) => Some(
                self.rules(rows, &event.program_id, position)?
                    .report_day_of(event.event.occurred_at_us),
            ),
            None => None,
        };
        let member = self.members.get_mut_unless_new(
            rows,
            event.stream.clone(),
            &keyed(b'm', &event.stream),
            "rfm member",
            event.stream_version == 1,
            || RfmMember {
                program_id: event.program_id.clone(),
                member_id: member_id.to_owned(),
                days: Vec::new(),
            },
        )?;
        if let (Some((purchases, spend_minor_units)), Some(day)) = (change, day) {
            member.add(day, purchases, spend_minor_units, position)?;
        }
        Ok(())
    }

    fn flush(&mut self, rows: &mut RowWriter<'_>) {
        self.members
            .flush(|stream, member| rows.put_value_parts(&[b"m", stream.as_bytes()], member));
        self.members.trim(CACHED_ENTRIES_MAX);
        // Programs' rules are few, and read again at once when needed.
        if self.programs.len() > CACHED_ENTRIES_MAX {
            self.programs = HashMap::new();
        }
    }

    fn reset(&mut self) {
        // New maps, not `clear()`: a cleared map keeps its capacity.
        self.members.reset();
        self.programs = Default::default();
    }
}

// ---------------------------------------------------------------------------
// Segments.

/// A named RFM segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// Bought recently, often, and spent the most.
    Champions,
    /// Buy often and spend well, not the most recent.
    Loyal,
    /// Recent buyers with average frequency and spend.
    PotentialLoyalist,
    /// Bought very recently, little so far.
    New,
    /// Recent buyers who have spent little.
    Promising,
    /// Average recency, frequency and spend.
    NeedAttention,
    /// Below average recency, frequency and spend.
    AboutToSleep,
    /// Bought often and spent well, but long ago.
    AtRisk,
    /// The best buyers of the past, gone quiet.
    CantLoseThem,
    /// Long ago, seldom and little.
    Hibernating,
    /// The lowest scores in all three.
    Lost,
}

impl Segment {
    /// Every segment, best first (the order of [`SegmentSizes::sizes`]).
    pub const ALL: [Segment; 11] = [
        Segment::Champions,
        Segment::Loyal,
        Segment::PotentialLoyalist,
        Segment::New,
        Segment::Promising,
        Segment::NeedAttention,
        Segment::AboutToSleep,
        Segment::AtRisk,
        Segment::CantLoseThem,
        Segment::Hibernating,
        Segment::Lost,
    ];

    /// Its name in requests and answers (snake case).
    pub fn name(self) -> &'static str {
        match self {
            Segment::Champions => "champions",
            Segment::Loyal => "loyal",
            Segment::PotentialLoyalist => "potential_loyalist",
            Segment::New => "new",
            Segment::Promising => "promising",
            Segment::NeedAttention => "need_attention",
            Segment::AboutToSleep => "about_to_sleep",
            Segment::AtRisk => "at_risk",
            Segment::CantLoseThem => "cant_lose_them",
            Segment::Hibernating => "hibernating",
            Segment::Lost => "lost",
        }
    }

    /// Its name for people.
    pub fn label(self) -> &'static str {
        match self {
            Segment::Champions => "Champions",
            Segment::Loyal => "Loyal",
            Segment::PotentialLoyalist => "Potential Loyalist",
            Segment::New => "New",
            Segment::Promising => "Promising",
            Segment::NeedAttention => "Need Attention",
            Segment::AboutToSleep => "About to Sleep",
            Segment::AtRisk => "At Risk",
            Segment::CantLoseThem => "Can't Lose Them",
            Segment::Hibernating => "Hibernating",
            Segment::Lost => "Lost",
        }
    }

    /// The segment named `name` (see [`Segment::name`]), or an error naming
    /// `field` that lists the names.
    pub fn parse(field: &str, name: &str) -> Result<Segment, FieldError> {
        Segment::ALL
            .into_iter()
            .find(|segment| segment.name() == name)
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    FieldReason::Invalid(format!(
                        "unknown segment `{name}`; the segments are {}",
                        Segment::ALL.map(Segment::name).join(", ")
                    )),
                )
            })
    }

    /// The segment of scores `r`, `f` and `m` (see the table in the module
    /// documentation). Scores outside 1..=5 are taken as the nearest end.
    pub fn of(r: u8, f: u8, m: u8) -> Segment {
        let [r, f, m] = [r, f, m].map(|score| score.clamp(1, 5));
        let fm = (f + m).div_ceil(2);
        match (r, fm) {
            (1, 1) => Segment::Lost,
            (1..=2, 1..=2) => Segment::Hibernating,
            (1..=2, 3..=4) => Segment::AtRisk,
            (1..=2, _) => Segment::CantLoseThem,
            (3, 1..=2) => Segment::AboutToSleep,
            (3, 3) => Segment::NeedAttention,
            (3..=4, 4..=5) => Segment::Loyal,
            (4, 1) => Segment::Promising,
            (5, 1) => Segment::New,
            (4..=5, 2..=3) => Segment::PotentialLoyalist,
            // What is left: r = 5 with fm 4 or 5.
            _ => Segment::Champions,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

// ---------------------------------------------------------------------------
// Queries.

/// One member's RFM as of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRfm {
    /// The member.
    pub member_id: String,
    /// Reporting day of its last purchase on or before the as-of day.
    pub last_purchase_day: i64,
    /// Days from that purchase to the as-of day (0 = the same day).
    pub recency_days: i64,
    /// Purchases in the window.
    pub frequency: i64,
    /// Spend in the window net of refunds in the window, minor units (may
    /// be negative).
    pub monetary_minor_units: i64,
    /// Recency score, 1..=5 (5 = most recent).
    pub r: u8,
    /// Frequency score, 1..=5 (5 = most purchases).
    pub f: u8,
    /// Monetary score, 1..=5 (5 = most spend).
    pub m: u8,
    /// Its segment.
    pub segment: Segment,
}

/// Every scored member of a program as of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmScores {
    /// The as-of reporting day (days since 1970-01-01 at the program's UTC
    /// offset).
    pub as_of_day: i64,
    /// The window: the days `as_of_day - window_days + 1 ..= as_of_day`.
    pub window_days: u32,
    /// The currency of monetary values (ISO 4217).
    pub currency: String,
    /// The scored members, by member id.
    pub members: Vec<MemberRfm>,
}

/// How many members each segment holds as of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSizes {
    /// The as-of reporting day.
    pub as_of_day: i64,
    /// The window in days.
    pub window_days: u32,
    /// Members with a purchase on or before the as-of day (the sum of the
    /// sizes).
    pub scored: u64,
    /// The currency of monetary values (ISO 4217).
    pub currency: String,
    /// Members per segment, in [`Segment::ALL`] order, empty ones included.
    pub sizes: Vec<(Segment, u64)>,
}

/// One page of a segment's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPage {
    /// The as-of reporting day.
    pub as_of_day: i64,
    /// The window in days.
    pub window_days: u32,
    /// Members with a purchase on or before the as-of day.
    pub scored: u64,
    /// The currency of monetary values (ISO 4217).
    pub currency: String,
    /// The members, by member id.
    pub members: Vec<MemberRfm>,
    /// Token of the next page; empty on the last page.
    pub next_page_token: String,
}

/// The as-of day and the first day of the window.
#[derive(Debug, Clone, Copy)]
struct AsOf {
    as_of_day: i64,
    first_day: i64,
}

/// A member's measures as of a day, before scoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Measures {
    last_purchase_day: Option<i64>,
    frequency: i64,
    monetary_minor_units: i64,
}

impl AsOf {
    fn new(rules: &Rules, as_of_us: i64) -> AsOf {
        let as_of_day = rules.report_day_of(as_of_us);
        AsOf {
            as_of_day,
            first_day: as_of_day
                .saturating_sub(i64::from(rules.rfm_window_days()))
                .saturating_add(1),
        }
    }

    /// Folds one day (days come in increasing order).
    fn fold(self, measures: &mut Measures, day: &RfmDay) -> Option<()> {
        if day.day > self.as_of_day {
            return Some(());
        }
        if day.purchases > 0 {
            measures.last_purchase_day = Some(day.day);
        }
        if day.day >= self.first_day {
            measures.frequency = measures.frequency.checked_add(day.purchases)?;
            measures.monetary_minor_units = measures
                .monetary_minor_units
                .checked_add(day.spend_minor_units)?;
        }
        Some(())
    }
}

// An `RfmMember` row is read as a seed: its ids are skipped where they lie
// and its days are folded into `Measures` as they are decoded, so scanning
// a million rows allocates nothing per row. The seed reads the bytes the
// derived `Serialize` of `RfmMember` wrote (a struct is its fields in
// order), which a unit test checks against the derived `Deserialize`.
impl<'de> DeserializeSeed<'de> for AsOf {
    type Value = Measures;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Measures, D::Error> {
        deserializer.deserialize_struct("RfmMember", &["program_id", "member_id", "days"], self)
    }
}

impl<'de> Visitor<'de> for AsOf {
    type Value = Measures;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an RFM member row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Measures, A::Error> {
        let missing = |index| de::Error::invalid_length(index, &"an RFM member row");
        seq.next_element::<&str>()?.ok_or_else(|| missing(0))?;
        seq.next_element::<&str>()?.ok_or_else(|| missing(1))?;
        seq.next_element_seed(Days(self))?.ok_or_else(|| missing(2))
    }
}

/// The `days` field of a row, folded.
struct Days(AsOf);

impl<'de> DeserializeSeed<'de> for Days {
    type Value = Measures;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Measures, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Days {
    type Value = Measures;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("reporting days in increasing order")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Measures, A::Error> {
        let mut measures = Measures::default();
        let mut previous: Option<i64> = None;
        while let Some(day) = seq.next_element::<RfmDay>()? {
            if previous.is_some_and(|previous| previous >= day.day) {
                return Err(de::Error::custom("reporting days out of order"));
            }
            previous = Some(day.day);
            self.0
                .fold(&mut measures, &day)
                .ok_or_else(|| de::Error::custom("sums over the window overflow"))?;
        }
        Ok(measures)
    }
}

/// A scored member; its id is in [`Population::ids`].
#[derive(Debug, Clone, Copy)]
struct Scored {
    id_start: usize,
    id_end: usize,
    last_purchase_day: i64,
    recency_days: i64,
    frequency: i64,
    monetary_minor_units: i64,
    r: u8,
    f: u8,
    m: u8,
}

impl Scored {
    fn segment(&self) -> Segment {
        Segment::of(self.r, self.f, self.m)
    }
}

/// A program's scored members as of a day, by member id.
struct Population {
    as_of_day: i64,
    window_days: u32,
    /// Every scored member's id, one after another (one allocation, not
    /// one per member).
    ids: String,
    members: Vec<Scored>,
}

impl Population {
    /// Reads every member row of `program_id` and scores the members with a
    /// purchase on or before the as-of day.
    fn read(
        view: &ViewSnapshot<'_>,
        rules: &Rules,
        program_id: &ProgramId,
        as_of_us: i64,
    ) -> Result<Population, QueryError> {
        let as_of = AsOf::new(rules, as_of_us);
        let mut population = Population {
            as_of_day: as_of.as_of_day,
            window_days: rules.rfm_window_days(),
            ids: String::new(),
            members: Vec::new(),
        };
        // The prefix every `StreamName::member` of the program starts with.
        let prefix = keyed(b'm', &format!("member/{program_id}/"));
        view.scan(&prefix, &prefix, false, |member_id, value| {
            let measures = decode_seed(as_of, value, "rfm member")?;
            let Some(last_purchase_day) = measures.last_purchase_day else {
                return Ok(true);
            };
            let member_id = std::str::from_utf8(member_id)
                .map_err(|_| ViewError::row("rfm member", "member id is not UTF-8"))?;
            let id_start = population.ids.len();
            population.ids.push_str(member_id);
            population.members.push(Scored {
                id_start,
                id_end: population.ids.len(),
                last_purchase_day,
                recency_days: as_of.as_of_day.saturating_sub(last_purchase_day),
                frequency: measures.frequency,
                monetary_minor_units: measures.monetary_minor_units,
                r: 0,
                f: 0,
                m: 0,
            });
            Ok(true)
        })?;
        population.score();
        Ok(population)
    }

    /// Scores each measure by quintile. Members are in member id order, so
    /// sorting by (measure, index) breaks ties by member id.
    fn score(&mut self) {
        type Measure = fn(&Scored) -> i64;
        type SetScore = fn(&mut Scored, u8);
        let measures: [(Measure, SetScore); 3] = [
            // Recency: the earlier the last purchase, the worse.
            (
                |member| member.last_purchase_day,
                |member, score| member.r = score,
            ),
            (|member| member.frequency, |member, score| member.f = score),
            (
                |member| member.monetary_minor_units,
                |member, score| member.m = score,
            ),
        ];
        let mut order: Vec<(i64, usize)> = Vec::with_capacity(self.members.len());
        for (measure, set_score) in measures {
            order.clear();
            let by_measure = self.members.iter().map(measure).zip(0..);
            order.extend(by_measure);
            quintiles(&mut order, &mut self.members, set_score);
        }
    }

    fn id(&self, member: &Scored) -> &str {
        self.ids.get(member.id_start..member.id_end).unwrap_or("")
    }

    fn answer(&self, member: &Scored) -> MemberRfm {
        MemberRfm {
            member_id: self.id(member).to_owned(),
            last_purchase_day: member.last_purchase_day,
            recency_days: member.recency_days,
            frequency: member.frequency,
            monetary_minor_units: member.monetary_minor_units,
            r: member.r,
            f: member.f,
            m: member.m,
            segment: member.segment(),
        }
    }

    /// How many scored members have an id at or before `member_id`.
    fn up_to(&self, member_id: &str) -> usize {
        self.members
            .partition_point(|member| self.id(member) <= member_id)
    }
}

/// Sorts `order` (measure, index) worst first and gives the `k`-th of the
/// `n` members the score `1 + 5k / n`.
fn quintiles(
    order: &mut [(i64, usize)],
    members: &mut [Scored],
    mut set: impl FnMut(&mut Scored, u8),
) {
    order.sort_unstable();
    let n = order.len();
    for (k, (_, index)) in order.iter().enumerate() {
        let quintile = k.saturating_mul(5).checked_div(n).unwrap_or(0);
        let score = u8::try_from(quintile.saturating_add(1)).unwrap_or(5);
        if let Some(member) = members.get_mut(*index) {
            set(member, score);
        }
    }
}

fn snapshot(store: &Store) -> Result<ViewSnapshot<'_>, QueryError> {
    Ok(ViewSnapshot::take(store, ViewKind::Rfm.tag())?)
}

/// Every scored member of a program as of `as_of_us`, by member id. An
/// unknown program is [`QueryError::NotFound`].
pub fn score_program(
    store: &Store,
    program_id: &ProgramId,
    as_of_us: i64,
) -> Result<Answer<RfmScores>, QueryError> {
    let view = snapshot(store)?;
    let rules = program_rules(&view, program_id)?;
    let population = Population::read(&view, &rules, program_id, as_of_us)?;
    let members = population
        .members
        .iter()
        .map(|member| population.answer(member))
        .collect();
    Ok(Answer {
        position: view.position(),
        value: RfmScores {
            as_of_day: population.as_of_day,
            window_days: population.window_days,
            currency: rules.currency().code().to_owned(),
            members,
        },
    })
}

/// The number of members in each segment of a program as of `as_of_us`.
pub fn segment_sizes(
    store: &Store,
    program_id: &ProgramId,
    as_of_us: i64,
) -> Result<Answer<SegmentSizes>, QueryError> {
    let view = snapshot(store)?;
    let rules = program_rules(&view, program_id)?;
    let population = Population::read(&view, &rules, program_id, as_of_us)?;
    let mut sizes = Segment::ALL.map(|segment| (segment, 0u64));
    for member in &population.members {
        if let Some((_, size)) = sizes.get_mut(member.segment().index()) {
            *size = size.saturating_add(1);
        }
    }
    Ok(Answer {
        position: view.position(),
        value: SegmentSizes {
            as_of_day: population.as_of_day,
            window_days: population.window_days,
            scored: population.members.len() as u64,
            currency: rules.currency().code().to_owned(),
            sizes: sizes.to_vec(),
        },
    })
}

fn page_token(member_id: &str) -> String {
    member_id
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The member id a page token names; `None` for the empty token.
pub fn parse_page_token(token: &str) -> Result<Option<MemberId>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        FieldError::new(
            "page_token",
            FieldReason::Invalid("not a token returned by a segment page".into()),
        )
    };
    if !token.len().is_multiple_of(2) || !token.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let bytes = token
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    MemberId::parse("page_token", &text)
        .map(Some)
        .map_err(|_| bad())
}

/// A page of the members of `segment` as of `as_of_us`, by member id.
/// `page_size` 0 means [`SEGMENT_PAGE_MEMBERS_DEFAULT`]; more than
/// [`SEGMENT_PAGE_MEMBERS_MAX`] is an error naming `page_size`.
/// `page_token` is `""` for the first page, then the previous page's
/// `next_page_token`; a token this function did not return is an error
/// naming `page_token`. Pages continue after the last member id returned,
/// so a member whose segment changes between two calls may be listed twice
/// or not at all, as with any cursor over live data.
pub fn segment_members(
    store: &Store,
    program_id: &ProgramId,
    as_of_us: i64,
    segment: Segment,
    page_size: usize,
    page_token_in: &str,
) -> Result<Answer<SegmentPage>, QueryError> {
    if page_size > SEGMENT_PAGE_MEMBERS_MAX {
        return Err(FieldError::new(
            "page_size",
            FieldReason::OutOfRange {
                value: page_size as i128,
                min: 0,
                max: SEGMENT_PAGE_MEMBERS_MAX as i128,
            },
        )
        .into());
    }
    let page_size = match page_size {
        0 => SEGMENT_PAGE_MEMBERS_DEFAULT,
        size => size,
    };
    let after = parse_page_token(page_token_in)?;
    let view = snapshot(store)?;
    let rules = program_rules(&view, program_id)?;
    let population = Population::read(&view, &rules, program_id, as_of_us)?;
    let start = after.map_or(0, |member_id| population.up_to(member_id.as_str()));
    let mut members = Vec::new();
    let mut more = false;
    let in_segment = population
        .members
        .iter()
        .skip(start)
        .filter(|member| member.segment() == segment);
    for member in in_segment {
        if members.len() == page_size {
            more = true;
            break;
        }
        members.push(population.answer(member));
    }
    let next_page_token = match members.last() {
        Some(last) if more => page_token(&last.member_id),
        _ => String::new(),
    };
    Ok(Answer {
        position: view.position(),
        value: SegmentPage {
            as_of_day: population.as_of_day,
            window_days: population.window_days,
            scored: population.members.len() as u64,
            currency: rules.currency().code().to_owned(),
            members,
            next_page_token,
        },
    })
}

/// One member's RFM as of `as_of_us`, scored against the program's
/// members. [`QueryError::NotFound`] for an unknown program or member, and
/// for a known member with no purchase on or before the as-of day (the
/// message says so and names the day): such a member has no scores.
pub fn member_rfm(
    store: &Store,
    program_id: &ProgramId,
    member_id: &MemberId,
    as_of_us: i64,
) -> Result<Answer<MemberRfm>, QueryError> {
    let view = snapshot(store)?;
    let rules = program_rules(&view, program_id)?;
    let stream = StreamName::member(program_id, member_id);
    let known: Option<RfmMember> = view.get_value(&keyed(b'm', stream.as_str()), "rfm member")?;
    if known.is_none() {
        return Err(QueryError::NotFound {
            what: format!("member {stream}"),
            position: view.position(),
        });
    }
    let population = Population::read(&view, &rules, program_id, as_of_us)?;
    let found = population
        .up_to(member_id.as_str())
        .checked_sub(1)
        .and_then(|index| population.members.get(index))
        .filter(|member| population.id(member) == member_id.as_str());
    match found {
        Some(member) => Ok(Answer {
            position: view.position(),
            value: population.answer(member),
        }),
        None => {
            let date = civil_from_days(population.as_of_day);
            Err(QueryError::NotFound {
                what: format!(
                    "a purchase by member {stream} on or before {:04}-{:02}-{:02} \
                     (reporting day {})",
                    date.year, date.month, date.day, population.as_of_day
                ),
                position: view.position(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_of_the_segment_map() {
        use Segment::*;
        // Rows r = 1..=5, columns fm = 1..=5: the table of the module doc.
        let map = [
            [Lost, Hibernating, AtRisk, AtRisk, CantLoseThem],
            [Hibernating, Hibernating, AtRisk, AtRisk, CantLoseThem],
            [AboutToSleep, AboutToSleep, NeedAttention, Loyal, Loyal],
            [
                Promising,
                PotentialLoyalist,
                PotentialLoyalist,
                Loyal,
                Loyal,
            ],
            [
                New,
                PotentialLoyalist,
                PotentialLoyalist,
                Champions,
                Champions,
            ],
        ];
        let mut seen = std::collections::BTreeSet::new();
        for r in 1..=5u8 {
            for f in 1..=5u8 {
                for m in 1..=5u8 {
                    let fm = (f + m).div_ceil(2);
                    let expected = map[usize::from(r - 1)][usize::from(fm - 1)];
                    assert_eq!(Segment::of(r, f, m), expected, "r {r} f {f} m {m}");
                    seen.insert(expected);
                }
            }
        }
        assert_eq!(seen.len(), Segment::ALL.len(), "every segment is reachable");
        // fm rounds half up: (1 + 2 + 1) / 2 = 2.
        assert_eq!(Segment::of(1, 1, 2), Hibernating);
        assert_eq!(Segment::of(5, 3, 4), Champions);
        // Out-of-range scores are taken as the nearest end.
        assert_eq!(Segment::of(0, 0, 0), Lost);
        assert_eq!(Segment::of(9, 9, 9), Champions);
    }

    #[test]
    fn segment_names_parse_back_and_an_unknown_one_lists_them() {
        for (index, segment) in Segment::ALL.into_iter().enumerate() {
            assert_eq!(segment.index(), index);
            assert_eq!(Segment::parse("segment", segment.name()), Ok(segment));
        }
        assert_eq!(Segment::CantLoseThem.label(), "Can't Lose Them");
        assert_eq!(Segment::PotentialLoyalist.name(), "potential_loyalist");
        let error = Segment::parse("segment", "Champions").expect_err("names are snake case");
        assert_eq!(error.field, "segment");
        let message = error.to_string();
        for segment in Segment::ALL {
            assert!(message.contains(segment.name()), "{message}");
        }
    }

    fn scores_of(measures: &[i64]) -> Vec<u8> {
        let mut members: Vec<Scored> = measures
            .iter()
            .map(|_| Scored {
                id_start: 0,
                id_end: 0,
                last_purchase_day: 0,
                recency_days: 0,
                frequency: 0,
                monetary_minor_units: 0,
                r: 0,
                f: 0,
                m: 0,
            })
            .collect();
        let mut order: Vec<(i64, usize)> = measures.iter().copied().zip(0..).collect();
        quintiles(&mut order, &mut members, |member, score| member.f = score);
        members.iter().map(|member| member.f).collect()
    }

    #[test]
    fn quintiles_order_worst_first_and_break_ties_by_member_order() {
        assert_eq!(scores_of(&[]), Vec::<u8>::new());
        assert_eq!(scores_of(&[7]), vec![1]);
        assert_eq!(scores_of(&[7, 7]), vec![1, 3]);
        assert_eq!(scores_of(&[9, 1, 5]), vec![4, 1, 2]);
        assert_eq!(scores_of(&[1, 2, 3, 4, 5]), vec![1, 2, 3, 4, 5]);
        // Ten equal measures: member order alone decides, two per score.
        assert_eq!(scores_of(&[4; 10]), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        // Ties among unequal ones: 0s first, then the 3s in member order.
        assert_eq!(scores_of(&[3, 0, 3, 3, 0, 8, 3]), vec![2, 1, 3, 3, 1, 5, 4]);
        assert_eq!(scores_of(&[-5, 0, -9]), vec![2, 4, 1]);
    }

    fn row(days: &[(i64, i64, i64)]) -> Vec<u8> {
        crate::rows::encode(&RfmMember {
            program_id: "p".into(),
            member_id: "m".into(),
            days: days
                .iter()
                .map(|&(day, purchases, spend_minor_units)| RfmDay {
                    day,
                    purchases,
                    spend_minor_units,
                })
                .collect(),
        })
    }

    fn measures(days: &[(i64, i64, i64)], as_of_day: i64, window_days: i64) -> Measures {
        let as_of = AsOf {
            as_of_day,
            first_day: as_of_day - window_days + 1,
        };
        decode_seed(as_of, &row(days), "row").expect("decodes")
    }

    #[test]
    fn the_window_ends_with_the_as_of_day_and_starts_window_days_before() {
        // Window of 10 days ending on day 100: days 91..=100.
        let days = [
            (90, 1, 1),
            (91, 1, 10),
            (95, 0, -4),
            (100, 2, 100),
            (101, 1, 1_000),
        ];
        assert_eq!(
            measures(&days, 100, 10),
            Measures {
                last_purchase_day: Some(100),
                frequency: 3,
                monetary_minor_units: 106,
            }
        );
        // A day earlier: day 90 enters, days 100 and 101 are after it.
        assert_eq!(
            measures(&days, 99, 10),
            Measures {
                last_purchase_day: Some(91),
                frequency: 2,
                monetary_minor_units: 7,
            }
        );
        // A return alone is not a purchase; the refund still counts.
        assert_eq!(
            measures(&[(50, 0, -30)], 60, 30),
            Measures {
                last_purchase_day: None,
                frequency: 0,
                monetary_minor_units: -30,
            }
        );
        // Before the first purchase: not scored.
        assert_eq!(measures(&days, 89, 10).last_purchase_day, None);
        // Purchases before the window: scored, with nothing in the window.
        assert_eq!(
            measures(&days, 200, 10),
            Measures {
                last_purchase_day: Some(101),
                frequency: 0,
                monetary_minor_units: 0,
            }
        );
        // A one-day window holds the as-of day alone.
        assert_eq!(measures(&days, 100, 1).frequency, 2);
    }

    #[test]
    fn a_row_read_as_a_seed_reads_what_the_derived_decoder_reads() {
        let days = [(-3, 1, 5), (0, 2, -7), (12, 0, 9)];
        let decoded: RfmMember = crate::rows::decode(&row(&days), "row").expect("decodes");
        assert_eq!(decoded.days.len(), 3);
        let folded = measures(&days, 12, 100);
        assert_eq!(folded.last_purchase_day, Some(0));
        assert_eq!(folded.frequency, 3);
        assert_eq!(folded.monetary_minor_units, 7);
        let unordered = decode_seed(
            AsOf {
                as_of_day: 0,
                first_day: 0,
            },
            &row(&[(5, 1, 1), (5, 1, 1)]),
            "row",
        );
        assert!(unordered.is_err(), "days must increase: {unordered:?}");
        let overflow = decode_seed(
            AsOf {
                as_of_day: 10,
                first_day: 0,
            },
            &row(&[(1, 1, i64::MAX), (2, 1, 1)]),
            "row",
        );
        assert!(overflow.is_err(), "sums are checked: {overflow:?}");
        let truncated = row(&days);
        let cut = decode_seed(
            AsOf {
                as_of_day: 0,
                first_day: 0,
            },
            &truncated[..truncated.len() - 1],
            "row",
        );
        assert!(cut.is_err(), "{cut:?}");
    }

    #[test]
    fn days_stay_sorted_and_overflow_is_an_event_error() {
        let mut member = RfmMember::default();
        for (day, spend) in [(5, 10), (1, 20), (9, 30), (5, -4)] {
            member.add(day, 1, spend, 7).expect("adds");
        }
        assert_eq!(
            member.days,
            vec![
                RfmDay {
                    day: 1,
                    purchases: 1,
                    spend_minor_units: 20
                },
                RfmDay {
                    day: 5,
                    purchases: 2,
                    spend_minor_units: 6
                },
                RfmDay {
                    day: 9,
                    purchases: 1,
                    spend_minor_units: 30
                },
            ]
        );
        let error = member.add(9, 0, i64::MAX, 42).expect_err("overflows");
        assert!(
            matches!(error, ViewError::Event { position: 42, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn page_tokens_round_trip_and_bad_ones_name_the_field() {
        let token = page_token("ann-01");
        let parsed = parse_page_token(&token).expect("parses");
        assert_eq!(parsed.as_ref().map(MemberId::as_str), Some("ann-01"));
        assert_eq!(parse_page_token(""), Ok(None));
        for bad in ["0", "zz", "+1", "2f", "ff", "c3"] {
            let error = parse_page_token(bad).expect_err("refused");
            assert_eq!(error.field, "page_token", "{bad:?}");
        }
    }
}
