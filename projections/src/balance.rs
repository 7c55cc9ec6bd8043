//! The balance view: per member the available, pending and debt points and
//! lifetime totals; every lot with what is left of it and its expiry;
//! statement lines; the balance as of any past time.
//!
//! Rows (inside the view's generation, see [`crate::rows`]); `S` is the
//! member's stream name, which holds no zero byte:
//! - `'m' || S` -> [`MemberBalance`];
//! - `'l' || S || 0 || be_u64(lot_id)` -> [`LotRow`], kept after the lot is
//!   used up (a cancelled redemption can open it again, and the history of
//!   a lot is worth showing);
//! - `'s' || S || 0 || ordered(effective_at_us) || be_u64(position)` ->
//!   [`StatementLine`]. A member's effective time never goes backwards, so
//!   this order is also the log order, and the balance as of a time is one
//!   seek to the last line at or before it;
//! - `'t' || P` -> [`ProgramTotals`]: the sum of the program's member rows
//!   (what the liability view's closing figure is checked against);
//! - `'x' || P || 0 || ordered(expires_at_us) || M || 0 || be_u64(lot_id)`
//!   -> points left (i64) in a lot that expires, while it has any: the
//!   expiry calendar of the program (`P` the program id, `M` the member id).
//!
//! The fold mirrors the domain's `apply` from the events alone (every event
//! carries its resolved lots and draws); it checks after every event that
//! available + pending - debt equals the lifetime totals' sum, and stops on
//! an event that draws from a lot it does not hold or more than is left.

use crate::Answer;
use crate::error::{QueryError, ViewError};
use crate::event::LogEvent;
use crate::rows::{
    RowCache, RowWriter, ViewSnapshot, decode, i64_ordered, push_i64_ordered, read_i64_ordered,
    trim_hot,
};
use crate::runtime::{Projection, ViewKind};
use ledger_core::domain::{EventKind, ExpiryReason, Lot, LotDraw, Points, ReturnPolicy};
use ledger_core::error::{FieldError, FieldReason};
use ledger_core::ids::{MemberId, ProgramId, StreamName};
use ledger_core::limits::STATEMENT_PAGE_LINES_MAX;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Members kept decoded between chunks: at the bound, the cache is trimmed
/// after a chunk is written ([`crate::rows::trim_hot`]; rows on disk are
/// the truth).
pub const CACHED_MEMBERS_MAX: usize = 50_000;

/// Statement lines per page when the caller asks for 0.
pub const STATEMENT_PAGE_LINES_DEFAULT: usize = 100;

/// Lifetime totals of a member's points, each the sum of what its events
/// moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lifetime {
    /// Purchase points (including any part that paid off debt).
    pub earned: i64,
    /// Bonus points awarded.
    pub awarded: i64,
    /// Redeemed, net of cancelled redemptions.
    pub redeemed: i64,
    /// Expired (including points of cancelled redemptions that came back
    /// expired).
    pub expired: i64,
    /// Clawed back by returns: drawn from lots, plus any shortfall carried as
    /// debt.
    pub reversed: i64,
    /// Return shortfalls the program absorbed (not taken from the member).
    pub forfeited: i64,
    /// Operator adjustments, signed.
    pub adjusted: i64,
    /// Received from other members.
    pub transferred_in: i64,
    /// Sent to other members.
    pub transferred_out: i64,
}

impl Lifetime {
    /// What the member's points (available + pending - debt) must be:
    /// earned + awarded - redeemed - expired - reversed + adjusted +
    /// transferred in - transferred out (`None` if it overflows).
    pub fn net(&self) -> Option<i64> {
        self.earned
            .checked_add(self.awarded)?
            .checked_sub(self.redeemed)?
            .checked_sub(self.expired)?
            .checked_sub(self.reversed)?
            .checked_add(self.adjusted)?
            .checked_add(self.transferred_in)?
            .checked_sub(self.transferred_out)
    }
}

/// A member's balance row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberBalance {
    /// The program.
    pub program_id: String,
    /// The member.
    pub member_id: String,
    /// Enrolled (explicitly or by a first earn).
    pub enrolled: bool,
    /// Points in available lots.
    pub available: i64,
    /// Points in lots still pending.
    pub pending: i64,
    /// Clawed-back points that later earns pay off first.
    pub debt: i64,
    /// Lifetime totals.
    pub lifetime: Lifetime,
    /// Lots with points left.
    pub open_lots: u64,
    /// Lots ever created (the last lot id).
    pub lots_created: u64,
    /// The member's business time after its last event.
    pub effective_at_us: i64,
    /// Its stream's version.
    pub stream_version: u64,
    /// Position of its last event.
    pub last_position: u64,
}

impl MemberBalance {
    /// Spendable balance: available minus debt (negative with debt).
    pub fn balance(&self) -> i64 {
        self.available.saturating_sub(self.debt)
    }

    fn total(&self) -> Option<i64> {
        self.available
            .checked_add(self.pending)?
            .checked_sub(self.debt)
    }
}

/// The sum of a program's member rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProgramTotals {
    /// Members with a row (enrolled, or touched by an event).
    pub members: u64,
    /// Points in available lots.
    pub available: i64,
    /// Points in pending lots.
    pub pending: i64,
    /// Debt.
    pub debt: i64,
}

impl ProgramTotals {
    /// What the program owes in points: available + pending - debt.
    pub fn outstanding(&self) -> Option<i64> {
        self.available
            .checked_add(self.pending)?
            .checked_sub(self.debt)
    }
}

/// A lot and what is left of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotRow {
    /// Member-local id, from 1.
    pub lot_id: u64,
    /// Points it was created with.
    pub points: i64,
    /// Points left (0: used up or expired).
    pub remaining: i64,
    /// When it was earned or received.
    pub earned_at_us: i64,
    /// When its points became (or become) available.
    pub available_at_us: i64,
    /// When it expires; `None` = never.
    pub expires_at_us: Option<i64>,
    /// Still pending.
    pub pending: bool,
}

/// What a statement line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineKind {
    /// A purchase earned points.
    Earned,
    /// Bonus points.
    Awarded,
    /// A redemption.
    Redeemed,
    /// A cancelled redemption.
    RedemptionCancelled,
    /// A return clawed points back.
    Reversed,
    /// An operator adjustment.
    Adjusted,
    /// Points received from another member.
    TransferredIn,
    /// Points sent to another member.
    TransferredOut,
    /// Pending points became available.
    Matured,
    /// Points expired.
    Expired,
}

impl LineKind {
    /// Its name as shown to callers.
    pub fn name(self) -> &'static str {
        match self {
            LineKind::Earned => "earned",
            LineKind::Awarded => "awarded",
            LineKind::Redeemed => "redeemed",
            LineKind::RedemptionCancelled => "redemption_cancelled",
            LineKind::Reversed => "reversed",
            LineKind::Adjusted => "adjusted",
            LineKind::TransferredIn => "transferred_in",
            LineKind::TransferredOut => "transferred_out",
            LineKind::Matured => "matured",
            LineKind::Expired => "expired",
        }
    }
}

/// One line of a member's statement: one event that moved points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    /// The event's log position.
    pub position: u64,
    /// What happened.
    pub kind: LineKind,
    /// Signed change of the member's points (available + pending - debt);
    /// 0 when points only became available.
    pub points: i64,
    /// Balance (available - debt) after the event.
    pub balance_after: i64,
    /// Pending points after the event.
    pub pending_after: i64,
    /// Debt after the event.
    pub debt_after: i64,
    /// Business time the command carried.
    pub occurred_at_us: i64,
    /// The member's business time when it was applied (never earlier than
    /// the line before).
    pub effective_at_us: i64,
    /// The caller's reference: order, redemption or transfer id, or the lot.
    pub reference: String,
    /// Why: the award's or adjustment's reason, the expiry's cause, the other
    /// member of a transfer.
    pub reason: String,
}

/// A [`StatementLine`] borrowing its text, for writing without copying
/// it: serde encodes `&str` exactly as `String`, field for field.
#[derive(Serialize)]
struct LineOut<'a> {
    position: u64,
    kind: LineKind,
    points: i64,
    balance_after: i64,
    pending_after: i64,
    debt_after: i64,
    occurred_at_us: i64,
    effective_at_us: i64,
    reference: &'a str,
    reason: &'a str,
}

struct Cached {
    row: MemberBalance,
    /// Lots read or created in this chunk, by id; dropped once written.
    lots: HashMap<u64, LotRow>,
    /// Lots changed in this chunk.
    dirty_lots: Vec<u64>,
    /// In the projection's dirty list.
    listed: bool,
    /// Counted in its program's members (its row was stored, or this chunk
    /// counted it).
    counted: bool,
    /// Found cached since it was read or last kept by a trim.
    hit: bool,
}

/// The balance projection.
#[derive(Default)]
pub struct BalanceProjection {
    members: HashMap<String, Cached>,
    /// Members changed in this chunk.
    dirty: Vec<String>,
    /// Program totals, by program id.
    programs: RowCache<String, ProgramTotals>,
}

fn member_key(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + stream.len());
    key.push(b'm');
    key.extend_from_slice(stream.as_bytes());
    key
}

fn member_prefix(kind: u8, stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + stream.len() + 16);
    key.push(kind);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

fn lot_key(stream: &str, lot_id: u64) -> Vec<u8> {
    let mut key = member_prefix(b'l', stream);
    key.extend_from_slice(&lot_id.to_be_bytes());
    key
}

fn program_key(program_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + program_id.len());
    key.push(b't');
    key.extend_from_slice(program_id.as_bytes());
    key
}

fn expiry_prefix(program_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + program_id.len() + 8);
    key.push(b'x');
    key.extend_from_slice(program_id.as_bytes());
    key.push(0);
    key
}

fn expiry_key(program_id: &str, expires_at_us: i64, member_id: &str, lot_id: u64) -> Vec<u8> {
    let mut key = expiry_prefix(program_id);
    push_i64_ordered(&mut key, expires_at_us);
    key.extend_from_slice(member_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&lot_id.to_be_bytes());
    key
}

fn line_key(stream: &str, effective_at_us: i64, position: u64) -> Vec<u8> {
    let mut key = member_prefix(b's', stream);
    push_i64_ordered(&mut key, effective_at_us);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// Checked arithmetic on a view quantity, an error at `position` otherwise.
fn checked(value: Option<i64>, what: &str, position: u64) -> Result<i64, ViewError> {
    value.ok_or_else(|| ViewError::event(position, format!("{what} overflows")))
}

/// One event folded into one member.
struct Fold<'c, 'r, 'a> {
    member: &'c mut Cached,
    rows: &'r RowWriter<'a>,
    stream: &'c str,
    position: u64,
    now_us: i64,
}

impl Fold<'_, '_, '_> {
    fn lot(&mut self, lot_id: u64) -> Result<&mut LotRow, ViewError> {
        let entry = match self.member.lots.entry(lot_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let stored: Option<LotRow> =
                    self.rows.get_value(&lot_key(self.stream, lot_id), "lot")?;
                let Some(stored) = stored else {
                    return Err(ViewError::event(
                        self.position,
                        format!("lot {lot_id} of {} is not in the view", self.stream),
                    ));
                };
                entry.insert(stored)
            }
        };
        if !self.member.dirty_lots.contains(&lot_id) {
            self.member.dirty_lots.push(lot_id);
        }
        Ok(entry)
    }

    fn create_lot(&mut self, lot: &Lot) -> Result<(), ViewError> {
        let position = self.position;
        let lot_id = lot.lot_id.get();
        // Lot ids are contiguous from 1 per member, so a new lot can only be
        // the next one: no lookup needed to know it is new.
        if Some(lot_id) != self.member.row.lots_created.checked_add(1) {
            return Err(ViewError::event(
                position,
                format!(
                    "lot {lot_id} of {} is not the next lot after {}",
                    self.stream, self.member.row.lots_created
                ),
            ));
        }
        self.member.row.lots_created = lot_id;
        let pending = lot.available_at_us > self.now_us;
        let points = lot.points.get();
        let row = &mut self.member.row;
        if pending {
            row.pending = checked(row.pending.checked_add(points), "pending", position)?;
        } else {
            row.available = checked(row.available.checked_add(points), "available", position)?;
        }
        if points > 0 {
            row.open_lots += 1;
        }
        self.member.lots.insert(
            lot_id,
            LotRow {
                lot_id,
                points,
                remaining: points,
                earned_at_us: lot.earned_at_us,
                available_at_us: lot.available_at_us,
                expires_at_us: lot.expires_at_us,
                pending,
            },
        );
        self.member.dirty_lots.push(lot_id);
        Ok(())
    }

    /// Takes drawn points out of their lots; returns their sum.
    fn take(&mut self, draws: &[LotDraw]) -> Result<i64, ViewError> {
        let position = self.position;
        let mut total: i64 = 0;
        for draw in draws {
            let points = draw.points.get();
            let stream = self.stream;
            let lot = self.lot(draw.lot_id.get())?;
            if points <= 0 || points > lot.remaining {
                return Err(ViewError::event(
                    position,
                    format!(
                        "draws {points} from lot {} of {stream}, which holds {}",
                        lot.lot_id, lot.remaining
                    ),
                ));
            }
            lot.remaining -= points;
            let (pending, closed) = (lot.pending, lot.remaining == 0);
            let row = &mut self.member.row;
            if pending {
                row.pending -= points;
            } else {
                row.available -= points;
            }
            if closed {
                row.open_lots -= 1;
            }
            total = checked(total.checked_add(points), "drawn points", position)?;
        }
        Ok(total)
    }

    fn repay(&mut self, repaid: Points) -> Result<(), ViewError> {
        let repaid = repaid.get();
        let row = &mut self.member.row;
        if repaid < 0 || repaid > row.debt {
            return Err(ViewError::event(
                self.position,
                format!("repays {repaid} of a debt of {}", row.debt),
            ));
        }
        row.debt -= repaid;
        Ok(())
    }

    fn restore(&mut self, draws: &[LotDraw]) -> Result<(), ViewError> {
        let position = self.position;
        for draw in draws {
            let points = draw.points.get();
            let lot = self.lot(draw.lot_id.get())?;
            let reopened = lot.remaining == 0;
            lot.remaining = checked(lot.remaining.checked_add(points), "lot remaining", position)?;
            if lot.remaining > lot.points || lot.pending {
                return Err(ViewError::event(
                    position,
                    format!(
                        "restores {points} to lot {} beyond what it held",
                        lot.lot_id
                    ),
                ));
            }
            let row = &mut self.member.row;
            row.available = checked(row.available.checked_add(points), "available", position)?;
            if reopened {
                row.open_lots += 1;
            }
        }
        Ok(())
    }

    fn mature(&mut self, lot_id: u64, points: i64) -> Result<(), ViewError> {
        let position = self.position;
        let lot = self.lot(lot_id)?;
        if !lot.pending || lot.remaining != points {
            return Err(ViewError::event(
                position,
                format!("matures lot {lot_id}, which is not pending with {points} points"),
            ));
        }
        lot.pending = false;
        let row = &mut self.member.row;
        row.pending -= points;
        row.available = checked(row.available.checked_add(points), "available", position)?;
        Ok(())
    }
}

fn sum(draws: &[LotDraw]) -> i64 {
    draws
        .iter()
        .map(|draw| draw.points.get())
        .fold(0, i64::saturating_add)
}

fn add(total: &mut i64, points: i64, what: &str, position: u64) -> Result<(), ViewError> {
    *total = checked(total.checked_add(points), what, position)?;
    Ok(())
}

impl BalanceProjection {
    fn load(
        &mut self,
        rows: &RowWriter<'_>,
        event: &LogEvent,
        member_id: &str,
    ) -> Result<&mut Cached, ViewError> {
        // Looked up by reference first: most events find their member cached,
        // and the key is cloned only to insert.
        if let Some(member) = self.members.get_mut(&event.stream) {
            member.hit = true;
        } else {
            // A stream's first event: no row yet, and no read to learn it.
            let stored: Option<MemberBalance> = if event.stream_version == 1 {
                rows.debug_assert_absent::<MemberBalance>(
                    &member_key(&event.stream),
                    "member balance",
                );
                None
            } else {
                rows.get_value(&member_key(&event.stream), "member balance")?
            };
            let counted = stored.is_some();
            let row = stored.unwrap_or_else(|| MemberBalance {
                program_id: event.program_id.clone(),
                member_id: member_id.to_owned(),
                ..MemberBalance::default()
            });
            self.members.insert(
                event.stream.clone(),
                Cached {
                    row,
                    lots: HashMap::new(),
                    dirty_lots: Vec::new(),
                    listed: false,
                    counted,
                    hit: false,
                },
            );
        }
        let member = self
            .members
            .get_mut(&event.stream)
            .ok_or_else(|| ViewError::event(event.position, "member cache lost an entry"))?;
        if !member.listed {
            member.listed = true;
            self.dirty.push(event.stream.clone());
        }
        Ok(member)
    }
}

impl Projection for BalanceProjection {
    fn apply(&mut self, rows: &mut RowWriter<'_>, event: &LogEvent) -> Result<(), ViewError> {
        let Some(member_id) = event.member_id() else {
            return Ok(());
        };
        let position = event.position;
        let member = self.load(rows, event, member_id)?;
        let before = member.row.total();
        let parts_before = (member.row.available, member.row.pending, member.row.debt);
        let newly_counted = !std::mem::replace(&mut member.counted, true);
        let now_us = member.row.effective_at_us.max(event.event.occurred_at_us);
        member.row.effective_at_us = now_us;
        member.row.stream_version = event.stream_version;
        member.row.last_position = position;
        let stream = event.stream.as_str();
        let mut fold = Fold {
            member,
            rows,
            stream,
            position,
            now_us,
        };
        let line = match &event.event.kind {
            EventKind::ProgramDefined(_) | EventKind::ProgramRulesChanged(_) => None,
            EventKind::TierChanged(_) => None,
            EventKind::MemberEnrolled(_) => {
                fold.member.row.enrolled = true;
                None
            }
            EventKind::PointsEarned(e) => {
                fold.repay(e.debt_repaid)?;
                fold.create_lot(&e.lot)?;
                let lifetime = &mut fold.member.row.lifetime;
                add(&mut lifetime.earned, e.points.get(), "earned", position)?;
                Some((
                    LineKind::Earned,
                    Cow::Borrowed(e.order_id.as_str()),
                    Cow::Borrowed(""),
                ))
            }
            EventKind::PointsAwarded(e) => {
                fold.repay(e.debt_repaid)?;
                fold.create_lot(&e.lot)?;
                let lifetime = &mut fold.member.row.lifetime;
                add(&mut lifetime.awarded, e.points.get(), "awarded", position)?;
                Some((
                    LineKind::Awarded,
                    Cow::Borrowed(""),
                    Cow::Borrowed(e.reason.as_str()),
                ))
            }
            EventKind::PointsRedeemed(e) => {
                let drawn = fold.take(&e.draws)?;
                if drawn != e.points.get() {
                    return Err(ViewError::event(
                        position,
                        format!("redeems {} but draws {drawn}", e.points),
                    ));
                }
                let lifetime = &mut fold.member.row.lifetime;
                add(&mut lifetime.redeemed, drawn, "redeemed", position)?;
                Some((
                    LineKind::Redeemed,
                    Cow::Borrowed(e.redemption_id.as_str()),
                    Cow::Borrowed(""),
                ))
            }
            EventKind::RedemptionCancelled(e) => {
                fold.restore(&e.restored)?;
                let lifetime = &mut fold.member.row.lifetime;
                add(
                    &mut lifetime.redeemed,
                    -e.points.get(),
                    "redeemed",
                    position,
                )?;
                add(&mut lifetime.expired, sum(&e.expired), "expired", position)?;
                Some((
                    LineKind::RedemptionCancelled,
                    Cow::Borrowed(e.redemption_id.as_str()),
                    Cow::Borrowed(""),
                ))
            }
            EventKind::EarnReversed(e) => {
                let drawn = fold.take(&e.draws)?;
                let shortfall = e.shortfall_points.get();
                let row = &mut fold.member.row;
                let taken = if e.shortfall_policy == ReturnPolicy::Debt {
                    add(&mut row.debt, shortfall, "debt", position)?;
                    checked(drawn.checked_add(shortfall), "reversed", position)?
                } else {
                    add(
                        &mut row.lifetime.forfeited,
                        shortfall,
                        "forfeited",
                        position,
                    )?;
                    drawn
                };
                add(&mut row.lifetime.reversed, taken, "reversed", position)?;
                Some((
                    LineKind::Reversed,
                    Cow::Borrowed(e.order_id.as_str()),
                    Cow::Borrowed(""),
                ))
            }
            EventKind::PointsAdjusted(e) => {
                fold.repay(e.debt_repaid)?;
                if let Some(lot) = &e.lot {
                    fold.create_lot(lot)?;
                }
                let drawn = fold.take(&e.draws)?;
                let signed = if e.lot.is_some() {
                    e.points.get()
                } else {
                    -drawn
                };
                let lifetime = &mut fold.member.row.lifetime;
                add(&mut lifetime.adjusted, signed, "adjusted", position)?;
                Some((
                    LineKind::Adjusted,
                    Cow::Borrowed(""),
                    Cow::Borrowed(e.reason.as_str()),
                ))
            }
            EventKind::PointsTransferred(e) => {
                if e.draws.is_empty() {
                    fold.repay(e.debt_repaid)?;
                    for lot in &e.lots {
                        fold.create_lot(lot)?;
                    }
                    let lifetime = &mut fold.member.row.lifetime;
                    add(
                        &mut lifetime.transferred_in,
                        e.points.get(),
                        "transferred_in",
                        position,
                    )?;
                    Some((
                        LineKind::TransferredIn,
                        Cow::Borrowed(e.transfer_id.as_str()),
                        Cow::Owned(format!("from {}", e.from_member_id)),
                    ))
                } else {
                    let drawn = fold.take(&e.draws)?;
                    let lifetime = &mut fold.member.row.lifetime;
                    add(
                        &mut lifetime.transferred_out,
                        drawn,
                        "transferred_out",
                        position,
                    )?;
                    Some((
                        LineKind::TransferredOut,
                        Cow::Borrowed(e.transfer_id.as_str()),
                        Cow::Owned(format!("to {}", e.to_member_id)),
                    ))
                }
            }
            EventKind::PointsMatured(e) => {
                fold.mature(e.lot_id.get(), e.points.get())?;
                Some((
                    LineKind::Matured,
                    Cow::Owned(format!("lot {}", e.lot_id.get())),
                    Cow::Borrowed(""),
                ))
            }
            EventKind::PointsExpired(e) => {
                let drawn = fold.take(&e.draws)?;
                let lifetime = &mut fold.member.row.lifetime;
                add(&mut lifetime.expired, drawn, "expired", position)?;
                let reason = match e.reason {
                    ExpiryReason::Lot => "lot expiry",
                    ExpiryReason::Inactivity => "inactivity",
                };
                Some((LineKind::Expired, Cow::Borrowed(""), Cow::Borrowed(reason)))
            }
        };
        let row = &fold.member.row;
        let after = row.total();
        if after.is_none() || after != row.lifetime.net() || row.debt < 0 || row.pending < 0 {
            return Err(ViewError::event(
                position,
                format!(
                    "points do not add up for {stream}: available {} + pending {} - debt {} \
                     against lifetime totals {:?}",
                    row.available, row.pending, row.debt, row.lifetime
                ),
            ));
        }
        if let Some((kind, reference, reason)) = line {
            let points = checked(
                after.zip(before).and_then(|(a, b)| a.checked_sub(b)),
                "statement points",
                position,
            )?;
            let line = LineOut {
                position,
                kind,
                points,
                balance_after: row.balance(),
                pending_after: row.pending,
                debt_after: row.debt,
                occurred_at_us: event.event.occurred_at_us,
                effective_at_us: now_us,
                reference: &reference,
                reason: &reason,
            };
            rows.put_value_parts(
                &[
                    b"s",
                    stream.as_bytes(),
                    &[0],
                    &i64_ordered(now_us),
                    &position.to_be_bytes(),
                ],
                &line,
            );
        }
        let parts_after = (row.available, row.pending, row.debt);
        let totals = self.programs.get_mut(
            rows,
            event.program_id.clone(),
            &program_key(&event.program_id),
            "program totals",
            ProgramTotals::default,
        )?;
        if newly_counted {
            totals.members += 1;
        }
        let moved = |total: i64, before: i64, after: i64, what: &str| {
            checked(
                after
                    .checked_sub(before)
                    .and_then(|delta| total.checked_add(delta)),
                what,
                position,
            )
        };
        totals.available = moved(totals.available, parts_before.0, parts_after.0, "available")?;
        totals.pending = moved(totals.pending, parts_before.1, parts_after.1, "pending")?;
        totals.debt = moved(totals.debt, parts_before.2, parts_after.2, "debt")?;
        Ok(())
    }

    fn flush(&mut self, rows: &mut RowWriter<'_>) {
        for stream in self.dirty.drain(..) {
            let Some(member) = self.members.get_mut(&stream) else {
                continue;
            };
            member.listed = false;
            rows.put_value_parts(&[b"m", stream.as_bytes()], &member.row);
            for lot_id in member.dirty_lots.drain(..) {
                if let Some(lot) = member.lots.get(&lot_id) {
                    rows.put_value_parts(
                        &[b"l", stream.as_bytes(), &[0], &lot_id.to_be_bytes()],
                        lot,
                    );
                    if let Some(expires_at_us) = lot.expires_at_us {
                        let key = expiry_key(
                            &member.row.program_id,
                            expires_at_us,
                            &member.row.member_id,
                            lot_id,
                        );
                        if lot.remaining > 0 {
                            rows.put_value(&key, &lot.remaining);
                        } else {
                            rows.delete(&key);
                        }
                    }
                }
            }
            // Lots are read back from their rows when an event draws from
            // them again: a member's open lots grow with every earn, and
            // keeping them decoded made the cache grow with the log.
            if !member.lots.is_empty() {
                member.lots = HashMap::new();
            }
        }
        self.programs
            .flush(|program_id, totals| rows.put_value(&program_key(program_id), totals));
        trim_hot(&mut self.members, CACHED_MEMBERS_MAX, |member| {
            std::mem::take(&mut member.hit)
        });
    }

    fn reset(&mut self) {
        self.members.clear();
        self.dirty.clear();
        self.programs.reset();
    }
}

// ---------------------------------------------------------------------------
// Queries. Each reads one snapshot and says the position it reflects.

fn snapshot(store: &ledger_core::store::Store) -> Result<ViewSnapshot<'_>, QueryError> {
    Ok(ViewSnapshot::take(store, ViewKind::Balance.tag())?)
}

fn member_row(view: &ViewSnapshot<'_>, stream: &StreamName) -> Result<MemberBalance, QueryError> {
    view.get_value(&member_key(stream.as_str()), "member balance")?
        .ok_or_else(|| QueryError::NotFound {
            what: format!("member {stream}"),
            position: view.position(),
        })
}

/// A member's balance row.
pub fn get_balance(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
    member_id: &MemberId,
) -> Result<Answer<MemberBalance>, QueryError> {
    let view = snapshot(store)?;
    let stream = StreamName::member(program_id, member_id);
    Ok(Answer {
        position: view.position(),
        value: member_row(&view, &stream)?,
    })
}

/// The sum of a program's member rows (zeros when it has none).
pub fn program_totals(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
) -> Result<Answer<ProgramTotals>, QueryError> {
    let view = snapshot(store)?;
    Ok(Answer {
        position: view.position(),
        value: view
            .get_value(&program_key(program_id.as_str()), "program totals")?
            .unwrap_or_default(),
    })
}

/// Points due to expire, from the program's open lots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// The instant the horizons count from.
    pub as_of_us: i64,
    /// Points in lots whose expiry is at or before `as_of_us` and which the
    /// scheduler has not expired yet.
    pub overdue: i64,
    /// `(days, points)`: points in lots expiring after `as_of_us` and at or
    /// before `as_of_us + days`, for each horizon asked, in the order asked.
    pub within: Vec<(u32, i64)>,
    /// Members with points expiring by the longest horizon (overdue
    /// included).
    pub members: u64,
    /// The members with the most points expiring by the longest horizon
    /// (overdue included), most first, then by member id.
    pub top: Vec<ExpiringMember>,
}

/// A member's points expiring by a horizon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringMember {
    /// The member.
    pub member_id: String,
    /// Points expiring.
    pub points: i64,
    /// The earliest expiry among them.
    pub first_expiry_us: i64,
    /// Lots they are in.
    pub lots: u64,
}

/// Points of `program_id` due to expire within each of `horizons_days` of
/// `as_of_us`, and the `top` members by points expiring within the longest
/// horizon. One scan of the program's expiry calendar up to that horizon.
pub fn expiring_points(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
    as_of_us: i64,
    horizons_days: &[u32],
    top: usize,
) -> Result<Answer<Expiring>, QueryError> {
    let view = snapshot(store)?;
    let longest = horizons_days.iter().copied().max().unwrap_or(0);
    let until_us = ledger_core::domain::time::add_days_us(as_of_us, i64::from(longest));
    let prefix = expiry_prefix(program_id.as_str());
    let mut overdue: i64 = 0;
    let mut within = vec![0i64; horizons_days.len()];
    let mut by_member: HashMap<String, (i64, i64, u64)> = HashMap::new();
    let overflow = || ViewError::row("expiry calendar", "points overflow");
    view.scan(&prefix, &prefix, false, |rest, value| {
        let (Some(expires_bytes), Some(member_and_lot)) = (rest.get(..8), rest.get(8..)) else {
            return Err(ViewError::row("expiry calendar", "key too short"));
        };
        let expires_at_us = read_i64_ordered(expires_bytes)
            .ok_or_else(|| ViewError::row("expiry calendar", "bad time"))?;
        if expires_at_us > until_us {
            return Ok(false);
        }
        let points: i64 = decode(value, "expiring lot")?;
        if expires_at_us <= as_of_us {
            overdue = overdue.checked_add(points).ok_or_else(overflow)?;
        }
        for (total, days) in within.iter_mut().zip(horizons_days) {
            let horizon = ledger_core::domain::time::add_days_us(as_of_us, i64::from(*days));
            if expires_at_us > as_of_us && expires_at_us <= horizon {
                *total = total.checked_add(points).ok_or_else(overflow)?;
            }
        }
        let member_len = member_and_lot.len().saturating_sub(9);
        let member = String::from_utf8_lossy(member_and_lot.get(..member_len).unwrap_or(&[]));
        let entry = by_member
            .entry(member.into_owned())
            .or_insert((0, expires_at_us, 0));
        entry.0 = entry.0.checked_add(points).ok_or_else(overflow)?;
        entry.2 += 1;
        Ok(true)
    })?;
    let mut members: Vec<ExpiringMember> = by_member
        .into_iter()
        .map(
            |(member_id, (points, first_expiry_us, lots))| ExpiringMember {
                member_id,
                points,
                first_expiry_us,
                lots,
            },
        )
        .collect();
    let member_count = members.len() as u64;
    members.sort_by(|a, b| {
        b.points
            .cmp(&a.points)
            .then_with(|| a.member_id.cmp(&b.member_id))
    });
    members.truncate(top);
    Ok(Answer {
        position: view.position(),
        value: Expiring {
            as_of_us,
            overdue,
            within: horizons_days.iter().copied().zip(within).collect(),
            members: member_count,
            top: members,
        },
    })
}

/// A member's lots by lot id: open ones only, or every lot ever created.
pub fn list_lots(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
    member_id: &MemberId,
    include_closed: bool,
) -> Result<Answer<Vec<LotRow>>, QueryError> {
    let view = snapshot(store)?;
    let stream = StreamName::member(program_id, member_id);
    member_row(&view, &stream)?;
    let prefix = member_prefix(b'l', stream.as_str());
    let mut lots = Vec::new();
    view.scan(&prefix, &prefix, false, |_, value| {
        let lot: LotRow = decode(value, "lot")?;
        if include_closed || lot.remaining > 0 {
            lots.push(lot);
        }
        Ok(true)
    })?;
    Ok(Answer {
        position: view.position(),
        value: lots,
    })
}

/// One page of a statement, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementPage {
    /// The lines, newest first.
    pub lines: Vec<StatementLine>,
    /// Token of the next (older) page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The statement position a `page_token` names (a `next_page_token` this
/// view returned); any other text is an error naming `page_token`.
pub fn parse_page_token(token: &str) -> Result<(i64, u64), FieldError> {
    let bad = || {
        FieldError::new(
            "page_token",
            FieldReason::Invalid("not a token returned by a statement page".into()),
        )
    };
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| {
        token
            .get(range)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .ok_or_else(bad)
    };
    let effective = read_i64_ordered(&number(0..16)?.to_be_bytes()).ok_or_else(bad)?;
    Ok((effective, number(16..32)?))
}

fn page_token(line: &StatementLine) -> String {
    let mut key = Vec::with_capacity(16);
    push_i64_ordered(&mut key, line.effective_at_us);
    let effective = u64::from_be_bytes(key.try_into().unwrap_or([0; 8]));
    format!("{effective:016x}{:016x}", line.position)
}

/// A page of a member's statement, newest line first. `page_size` 0 means
/// [`STATEMENT_PAGE_LINES_DEFAULT`]; more than [`STATEMENT_PAGE_LINES_MAX`]
/// is an error naming `page_size`. `page_token` is the previous page's
/// `next_page_token`.
pub fn statement(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
    member_id: &MemberId,
    page_size: usize,
    page_token_in: Option<&str>,
) -> Result<Answer<StatementPage>, QueryError> {
    if page_size > STATEMENT_PAGE_LINES_MAX {
        return Err(FieldError::new(
            "page_size",
            FieldReason::OutOfRange {
                value: page_size as i128,
                min: 0,
                max: STATEMENT_PAGE_LINES_MAX as i128,
            },
        )
        .into());
    }
    let page_size = if page_size == 0 {
        STATEMENT_PAGE_LINES_DEFAULT
    } else {
        page_size
    };
    let start_after = page_token_in.map(parse_page_token).transpose()?;
    let view = snapshot(store)?;
    let stream = StreamName::member(program_id, member_id);
    member_row(&view, &stream)?;
    let prefix = member_prefix(b's', stream.as_str());
    let start = match start_after {
        // The greatest key below the last line returned.
        Some((effective, position)) => {
            line_key(stream.as_str(), effective, position.saturating_sub(1))
        }
        None => {
            let mut key = prefix.clone();
            key.extend_from_slice(&[0xff; 16]);
            key
        }
    };
    let mut lines = Vec::new();
    let mut more = false;
    view.scan(&prefix, &start, true, |_, value| {
        if lines.len() == page_size {
            more = true;
            return Ok(false);
        }
        lines.push(decode::<StatementLine>(value, "statement line")?);
        Ok(true)
    })?;
    let next_page_token = if more {
        lines.last().map(page_token)
    } else {
        None
    };
    Ok(Answer {
        position: view.position(),
        value: StatementPage {
            lines,
            next_page_token,
        },
    })
}

/// A member's points as of a past instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceAsOf {
    /// The instant asked for.
    pub at_us: i64,
    /// Balance (available - debt) then.
    pub balance: i64,
    /// Pending points then.
    pub pending: i64,
    /// Debt then.
    pub debt: i64,
    /// Position of the last event at or before the instant (0: none).
    pub as_of_position: u64,
}

/// A member's points right after the event at `position` (the last
/// statement line at or before it; zeros before the first). Reads lines
/// newest first, so a recent position costs one or two reads.
pub fn balance_at_position(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
    member_id: &MemberId,
    position: u64,
) -> Result<Answer<BalanceAsOf>, QueryError> {
    let view = snapshot(store)?;
    let stream = StreamName::member(program_id, member_id);
    let prefix = member_prefix(b's', stream.as_str());
    let mut start = prefix.clone();
    start.extend_from_slice(&[0xff; 16]);
    let mut found = BalanceAsOf {
        at_us: 0,
        balance: 0,
        pending: 0,
        debt: 0,
        as_of_position: 0,
    };
    view.scan(&prefix, &start, true, |_, value| {
        let line: StatementLine = decode(value, "statement line")?;
        if line.position > position {
            return Ok(true);
        }
        found = BalanceAsOf {
            at_us: line.effective_at_us,
            balance: line.balance_after,
            pending: line.pending_after,
            debt: line.debt_after,
            as_of_position: line.position,
        };
        Ok(false)
    })?;
    Ok(Answer {
        position: view.position(),
        value: found,
    })
}

/// A member's balance as of `at_us` (the member's business time), read from
/// the last statement line at or before it.
pub fn balance_as_of(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
    member_id: &MemberId,
    at_us: i64,
) -> Result<Answer<BalanceAsOf>, QueryError> {
    let view = snapshot(store)?;
    let stream = StreamName::member(program_id, member_id);
    member_row(&view, &stream)?;
    let prefix = member_prefix(b's', stream.as_str());
    let start = line_key(stream.as_str(), at_us, u64::MAX);
    let mut found = BalanceAsOf {
        at_us,
        balance: 0,
        pending: 0,
        debt: 0,
        as_of_position: 0,
    };
    view.scan(&prefix, &start, true, |_, value| {
        let line: StatementLine = decode(value, "statement line")?;
        found = BalanceAsOf {
            at_us,
            balance: line.balance_after,
            pending: line.pending_after,
            debt: line.debt_after,
            as_of_position: line.position,
        };
        Ok(false)
    })?;
    Ok(Answer {
        position: view.position(),
        value: found,
    })
}

/// The balance rows of a program's members, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalanceTotals {
    /// Members with a balance row (a member has one from its first event).
    pub members: u64,
    /// Of those, the enrolled ones.
    pub enrolled: u64,
    /// Members whose debt is above zero.
    pub members_in_debt: u64,
    /// Points in available lots.
    pub available: i64,
    /// Points in lots still pending.
    pub pending: i64,
    /// Debt.
    pub debt: i64,
    /// Open lots.
    pub open_lots: u64,
    /// Each lifetime total, summed over the members.
    pub lifetime: Lifetime,
}

impl BalanceTotals {
    /// Available + pending - debt: what the lifetime totals' net must equal
    /// (`None` if it overflows).
    pub fn total(&self) -> Option<i64> {
        self.available
            .checked_add(self.pending)?
            .checked_sub(self.debt)
    }

    fn add(&mut self, row: &MemberBalance) -> Option<()> {
        self.members = self.members.checked_add(1)?;
        self.enrolled = self.enrolled.checked_add(u64::from(row.enrolled))?;
        self.members_in_debt = self.members_in_debt.checked_add(u64::from(row.debt > 0))?;
        self.available = self.available.checked_add(row.available)?;
        self.pending = self.pending.checked_add(row.pending)?;
        self.debt = self.debt.checked_add(row.debt)?;
        self.open_lots = self.open_lots.checked_add(row.open_lots)?;
        let (sum, one) = (&mut self.lifetime, &row.lifetime);
        sum.earned = sum.earned.checked_add(one.earned)?;
        sum.awarded = sum.awarded.checked_add(one.awarded)?;
        sum.redeemed = sum.redeemed.checked_add(one.redeemed)?;
        sum.expired = sum.expired.checked_add(one.expired)?;
        sum.reversed = sum.reversed.checked_add(one.reversed)?;
        sum.forfeited = sum.forfeited.checked_add(one.forfeited)?;
        sum.adjusted = sum.adjusted.checked_add(one.adjusted)?;
        sum.transferred_in = sum.transferred_in.checked_add(one.transferred_in)?;
        sum.transferred_out = sum.transferred_out.checked_add(one.transferred_out)?;
        Some(())
    }
}

/// The prefix of every row of `kind` of a program's members: member streams
/// are `member/{program}/{member}`, and the trailing `/` keeps a program
/// whose id extends another's out of the scan.
fn program_prefix(kind: u8, program_id: &ProgramId) -> Vec<u8> {
    let mut prefix = vec![kind];
    prefix.extend_from_slice(format!("member/{program_id}/").as_bytes());
    prefix
}

/// Sums the balance rows of every member of `program_id`, from one snapshot
/// (one scan of the members' rows). A sum that would overflow is an error,
/// never a wrapped figure.
pub fn balance_totals(
    store: &ledger_core::store::Store,
    program_id: &ProgramId,
) -> Result<Answer<BalanceTotals>, QueryError> {
    let view = snapshot(store)?;
    let prefix = program_prefix(b'm', program_id);
    let mut totals = BalanceTotals::default();
    view.scan(&prefix, &prefix, false, |_, value| {
        let row: MemberBalance = decode(value, "member balance")?;
        totals
            .add(&row)
            .ok_or_else(|| ViewError::row("balance totals", "the sum overflows"))?;
        Ok(true)
    })?;
    Ok(Answer {
        position: view.position(),
        value: totals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Folder;
    use ledger_core::domain::{
        Command, Currency, LotExpiry, LotExpiryRule, Member, Money, ProgramRules, Rules,
        ShortfallPolicy, apply, decide,
    };
    use ledger_core::store::Store;

    const T_US: i64 = 1_750_000_000_000_000;
    const DAY_US: i64 = 86_400_000_000;

    fn rules(pending_days: u32) -> Rules {
        let mut raw = ProgramRules::basic("USD");
        raw.pending_days = pending_days;
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(30)),
        });
        raw.return_policy = ShortfallPolicy::Debt;
        Rules::from_raw(&raw).expect("rules")
    }

    fn purchase(order_id: &str, dollars: i64) -> Command {
        Command::RecordPurchase {
            order_id: order_id.into(),
            spend: Money::new(
                dollars * 100,
                Currency::from_code("USD", "spend").expect("USD"),
            ),
            tags: vec![],
        }
    }

    /// Decides `(program, member, command, time)` in order with the pure
    /// domain and folds the events into a fresh store's balance view.
    fn folded(
        commands: Vec<(&str, &str, Command, i64)>,
        rules: &Rules,
    ) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let events = decided(commands, rules);
        let mut folder = Folder::open(&store, ViewKind::Balance, 1).expect("folder");
        folder.apply_chunk(&store, &events).expect("folded");
        folder.activate(&store).expect("activated");
        (dir, store)
    }

    /// The events of `(program, member, command, time)` decided in order
    /// with the pure domain, at positions from 1.
    fn decided(commands: Vec<(&str, &str, Command, i64)>, rules: &Rules) -> Vec<LogEvent> {
        let mut members: HashMap<String, (Member, u64)> = HashMap::new();
        let mut events = Vec::new();
        for (program, member, command, at_us) in commands {
            let stream = format!("member/{program}/{member}");
            let (state, version) = members.entry(stream.clone()).or_default();
            for event in decide(state, &command, rules, at_us).expect("decided") {
                apply(state, &event);
                *version += 1;
                events.push(LogEvent {
                    position: events.len() as u64 + 1,
                    stream: stream.clone(),
                    stream_version: *version,
                    program_id: program.to_owned(),
                    recorded_at_us: at_us,
                    event,
                });
            }
        }
        events
    }

    /// A row's key and value.
    type Row = (Box<[u8]>, Box<[u8]>);

    /// Every row of the views family, keys and values.
    fn view_rows(store: &Store) -> Vec<Row> {
        store
            .db()
            .iterator_cf(
                store.cf(ledger_core::store::CF_VIEWS),
                rocksdb::IteratorMode::Start,
            )
            .map(|row| row.expect("row"))
            .collect()
    }

    /// Goal: the view keeps no member's lots decoded after a chunk is
    /// written, so its memory does not grow with the lots members hold;
    /// later chunks read the lots they draw from back from their rows, and
    /// the rows come out as a single chunk writes them.
    #[test]
    fn lots_are_read_back_from_their_rows_after_every_chunk() {
        let rules = rules(0);
        let redeem = |id: &str, points| Command::Redeem {
            redemption_id: id.into(),
            points: Points::new(points),
        };
        let events = decided(
            vec![
                ("p", "a", purchase("o1", 100), T_US),
                ("p", "a", purchase("o2", 50), T_US + DAY_US),
                // Draws all of o1's lot and part of o2's, in a later chunk.
                ("p", "a", redeem("r1", 120), T_US + 2 * DAY_US),
                (
                    "p",
                    "a",
                    Command::CancelRedemption {
                        redemption_id: "r1".into(),
                    },
                    T_US + 3 * DAY_US,
                ),
                (
                    "p",
                    "a",
                    Command::RecordReturn {
                        order_id: "o2".into(),
                        refund: Money::new(
                            2_500,
                            Currency::from_code("USD", "refund").expect("USD"),
                        ),
                    },
                    T_US + 4 * DAY_US,
                ),
                ("p", "a", redeem("r2", 30), T_US + 5 * DAY_US),
            ],
            &rules,
        );
        let space = crate::rows::Space {
            tag: ViewKind::Balance.tag(),
            generation: 1,
        };
        let one_by_one = tempfile::tempdir().expect("tempdir");
        let store = Store::open(one_by_one.path()).expect("store");
        let mut projection = BalanceProjection::default();
        for event in &events {
            let mut rows = RowWriter::new(&store, space);
            projection.apply(&mut rows, event).expect("applied");
            projection.flush(&mut rows);
            let checkpoint = crate::rows::Checkpoint {
                position: event.position,
                recorded_at_us: event.recorded_at_us,
            };
            rows.commit(checkpoint).expect("written");
            let decoded: usize = projection.members.values().map(|m| m.lots.len()).sum();
            assert_eq!(decoded, 0, "lots decoded after position {}", event.position);
        }
        let at_once = tempfile::tempdir().expect("tempdir");
        let whole = Store::open(at_once.path()).expect("store");
        let mut folder = Folder::open(&whole, ViewKind::Balance, 1).expect("folder");
        folder.apply_chunk(&whole, &events).expect("folded");
        assert_eq!(view_rows(&store), view_rows(&whole));
    }

    fn program(id: &str) -> ProgramId {
        ProgramId::parse("program_id", id).expect("program id")
    }

    #[test]
    fn balance_totals_sum_one_programs_members_and_match_their_lifetime_totals() {
        let rules = rules(10);
        let (_dir, store) = folded(
            vec![
                ("p", "a", purchase("o1", 100), T_US),
                (
                    "p",
                    "a",
                    Command::AwardPoints {
                        reason: "birthday".into(),
                        points: Points::new(10),
                    },
                    T_US + DAY_US,
                ),
                ("p", "b", purchase("o2", 50), T_US),
                (
                    "p",
                    "b",
                    Command::Redeem {
                        redemption_id: "r1".into(),
                        points: Points::new(50),
                    },
                    T_US + 11 * DAY_US,
                ),
                // Already spent: the whole claw-back becomes debt.
                (
                    "p",
                    "b",
                    Command::RecordReturn {
                        order_id: "o2".into(),
                        refund: Money::new(
                            5_000,
                            Currency::from_code("USD", "refund").expect("USD"),
                        ),
                    },
                    T_US + 12 * DAY_US,
                ),
                // Another program whose id extends the first one's.
                ("pp", "c", purchase("o3", 500), T_US),
            ],
            &rules,
        );
        let totals = balance_totals(&store, &program("p")).expect("totals");
        let value = totals.value;
        assert_eq!(totals.position, 10, "every event folded");
        assert_eq!(
            (value.members, value.enrolled, value.members_in_debt),
            (2, 2, 1)
        );
        assert_eq!((value.available, value.pending, value.debt), (10, 100, 50));
        assert_eq!(value.open_lots, 2);
        let lifetime = value.lifetime;
        assert_eq!(
            (
                lifetime.earned,
                lifetime.awarded,
                lifetime.redeemed,
                lifetime.reversed
            ),
            (150, 10, 50, 50)
        );
        assert_eq!(value.total(), Some(60));
        assert_eq!(lifetime.net(), value.total());
        let other = balance_totals(&store, &program("pp"))
            .expect("totals")
            .value;
        assert_eq!((other.members, other.pending), (1, 500));
        let none = balance_totals(&store, &program("q")).expect("totals").value;
        assert_eq!(none, BalanceTotals::default());
    }

    #[test]
    fn expiring_points_sum_the_window_and_rank_members_by_points_then_id() {
        let rules = rules(0);
        let (_dir, store) = folded(
            vec![
                ("p", "a", purchase("o1", 100), T_US),
                ("p", "a", purchase("o2", 20), T_US + 10 * DAY_US),
                ("p", "b", purchase("o3", 100), T_US),
                (
                    "p",
                    "b",
                    Command::Redeem {
                        redemption_id: "r1".into(),
                        points: Points::new(40),
                    },
                    T_US + DAY_US,
                ),
                ("p", "d", purchase("o4", 100), T_US + 40 * DAY_US),
                ("p", "e", purchase("o5", 60), T_US),
                ("pp", "c", purchase("o6", 500), T_US),
            ],
            &rules,
        );
        let p = program("p");
        let from = T_US + 20 * DAY_US;
        let answer = expiring_points(&store, &p, from, &[25], 2)
            .expect("expiring")
            .value;
        assert_eq!((answer.within, answer.overdue), (vec![(25, 240)], 0));
        assert_eq!(answer.members, 3);
        let ranked: Vec<(&str, i64, u64)> = answer
            .top
            .iter()
            .map(|member| (member.member_id.as_str(), member.points, member.lots))
            .collect();
        assert_eq!(ranked, [("a", 120, 2), ("b", 60, 1)]);
        assert_eq!(answer.top[0].first_expiry_us, T_US + 30 * DAY_US);
        let all = expiring_points(&store, &p, from, &[25], 10)
            .expect("expiring")
            .value;
        let ids: Vec<&str> = all.top.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "e"], "ties go to the smaller member id");
        let none = expiring_points(&store, &p, from, &[25], 0)
            .expect("expiring")
            .value;
        assert_eq!((none.within[0].1, none.top.len()), (240, 0));
        // Later, the lots of day 30 are overdue (the scheduler has not run)
        // and only a's second lot is still ahead.
        let later = expiring_points(&store, &p, T_US + 35 * DAY_US, &[10, 40], 10)
            .expect("expiring")
            .value;
        assert_eq!(later.within, vec![(10, 20), (40, 120)]);
        assert_eq!(later.overdue, 220);
        assert_eq!(later.top[0].first_expiry_us, T_US + 30 * DAY_US);
    }

    #[test]
    fn page_tokens_round_trip_and_bad_ones_name_the_field() {
        let line = StatementLine {
            position: 77,
            kind: LineKind::Earned,
            points: 5,
            balance_after: 5,
            pending_after: 0,
            debt_after: 0,
            occurred_at_us: -3,
            effective_at_us: -3,
            reference: String::new(),
            reason: String::new(),
        };
        assert_eq!(parse_page_token(&page_token(&line)), Ok((-3, 77)));
        for bad in ["", "zz", &"g".repeat(32), &"0".repeat(31)] {
            let error = parse_page_token(bad).expect_err("refused");
            assert_eq!(error.field, "page_token", "{bad:?}");
        }
    }

    #[test]
    fn borrowed_lines_encode_exactly_as_owned_ones() {
        let owned = StatementLine {
            position: 9,
            kind: LineKind::TransferredIn,
            points: 12,
            balance_after: 30,
            pending_after: 1,
            debt_after: 2,
            occurred_at_us: 100,
            effective_at_us: 101,
            reference: "t-1".into(),
            reason: "from bob".into(),
        };
        let borrowed = LineOut {
            position: 9,
            kind: LineKind::TransferredIn,
            points: 12,
            balance_after: 30,
            pending_after: 1,
            debt_after: 2,
            occurred_at_us: 100,
            effective_at_us: 101,
            reference: "t-1",
            reason: "from bob",
        };
        assert_eq!(crate::rows::encode(&borrowed), crate::rows::encode(&owned));
    }
}
