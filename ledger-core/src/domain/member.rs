//! The write-model state of one member, folded from its stream by `apply`.
//!
//! It holds what decisions need and nothing for display: open lots, debt,
//! pending points, the tier and its period, qualifying history per day (for
//! rolling windows and calendar years), purchases by order id (returns),
//! redemptions by id (cancellations) and the last activity (inactivity).
//! Fields are private; only `apply` changes them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lot::{
    FEFO_KEY_MAX, FEFO_KEY_MIN, FefoKey, Lot, LotDraw, MATURITY_KEY_MAX, MATURITY_KEY_MIN,
    MaturityKey, OpenLot,
};
use super::money::Money;
use super::points::Points;
use super::rules::{QualifyingMeasure, Rules};
use super::time::{US_PER_DAY, day_of};
use crate::ids::LotId;
use crate::limits::RECORD_RETENTION_DAYS;

/// A member's write-model state. `Member::default()` is the state before the
/// first event: not enrolled, nothing held.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Member {
    pub(super) enrolled: bool,
    /// Latest business time of the stream: decisions never run earlier.
    pub(super) clock_us: i64,
    pub(super) lots_created: u64,
    pub(super) lots: Lots,
    /// Available points minus debt, kept by event deltas and checked against
    /// the lots after every `apply`.
    pub(super) balance_points: Points,
    pub(super) pending_points: Points,
    pub(super) debt_points: Points,
    /// Current tier name; "" = the lowest tier (never changed).
    pub(super) tier: String,
    /// Tier secured at the last period review: returns never go below it.
    pub(super) tier_floor: String,
    pub(super) tier_since_us: i64,
    /// Start of the current tier period (last change or review).
    pub(super) tier_period_start_us: i64,
    pub(super) qualifying: BTreeMap<i64, QualifyingDay>,
    /// Purchases by order id. Not encoded: whoever keeps them elsewhere
    /// (the engine's record rows) encodes them.
    #[serde(skip)]
    pub(super) purchases: BTreeMap<String, Purchase>,
    /// Redemptions by redemption id; not encoded, as purchases.
    #[serde(skip)]
    pub(super) redemptions: BTreeMap<String, Redemption>,
    pub(super) last_activity_us: i64,
    /// The inactivity gaps that activities closed, as `(start, length)`:
    /// starts ascending, lengths strictly descending. A gap that starts
    /// later and lasts longer than one before it hides that one from every
    /// question asked (the longest gap since an instant), so it is dropped;
    /// the first gap starting at or after an instant is the longest since.
    /// This replaces a running maximum in every open redemption, which made
    /// each earn cost as much as the member's redemptions.
    pub(super) activity_gaps: Vec<(i64, i64)>,
    /// The purchases and redemptions are kept outside the member, as the
    /// engine's record rows, and `purchases` and `redemptions` hold only
    /// those read back for a decision or changed since they were last let
    /// go. An event about a record not held then changes the rest of the
    /// state only: the stored row is already the latest. See
    /// [`Member::keep_records_elsewhere`].
    #[serde(skip)]
    pub(super) records_elsewhere: bool,
}

/// A member's open lots, or the part of them held in memory, with their
/// orders: every held lot by first-expiring-first order, and every held
/// pending lot by the time it matures. Every decision asks when the
/// member's next due work is (`due_schedule`); the orders answer that
/// without a scan.
///
/// **Holding part of the lots.** A member with years of earns has more open
/// lots than memory should hold for it. Once the engine keeps them as rows
/// ([`Member::keep_lots_elsewhere`]), a member may hold only part of them:
/// every open lot before `fefo_held_below` in FEFO order, and every pending
/// lot before `pending_held_below` in maturity order, plus any other lot it
/// read or changed. The counts of all open and pending lots stay exact, so
/// a question about lots that are not held is recognised and answered with
/// [`LotsNeeded`]: the engine reads those lots and decides again. A
/// decision therefore never sees a partial answer.
///
/// The orders are derived from the lots alone, and nothing about the
/// holding is encoded: a `Lots` encodes as its two counts. The lots
/// themselves are encoded by whoever keeps them (the engine's snapshot or
/// rows), and a decoded `Lots` holds none until they are given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lots {
    by_id: BTreeMap<LotId, OpenLot>,
    /// The FEFO key of each held lot.
    fefo: BTreeSet<FefoKey>,
    /// The maturity key of each held pending lot.
    pending_by_time: BTreeSet<MaturityKey>,
    /// Open lots, held or not.
    open_count: u64,
    /// Pending lots, held or not.
    pending_count: u64,
    /// Every open lot whose FEFO key is below this is held.
    fefo_held_below: FefoKey,
    /// Every pending lot whose maturity key is below this is held.
    pending_held_below: MaturityKey,
    /// The lots are kept elsewhere too: closes are remembered (`closed`)
    /// until released, so that the keeper can drop their rows and a lot
    /// that is not held is not mistaken for an open one.
    elsewhere: bool,
    /// Lots closed since the last release, as created.
    closed: BTreeMap<LotId, Lot>,
    /// Lots looked up and found closed since the last release.
    absent: BTreeSet<LotId>,
}

impl Default for Lots {
    fn default() -> Self {
        Lots {
            by_id: BTreeMap::new(),
            fefo: BTreeSet::new(),
            pending_by_time: BTreeSet::new(),
            open_count: 0,
            pending_count: 0,
            fefo_held_below: FEFO_KEY_MAX,
            pending_held_below: MATURITY_KEY_MAX,
            elsewhere: false,
            closed: BTreeMap::new(),
            absent: BTreeSet::new(),
        }
    }
}

/// Lots that a decision needs and the member does not hold (see [`Lots`]):
/// the engine reads them from where it keeps them and decides again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LotsNeeded {
    /// Every open lot up to this FEFO key (lots expiring at one instant).
    FefoThrough(FefoKey),
    /// More of the FEFO order: available lots beyond those held, worth at
    /// least this many points (a draw).
    FefoPoints(Points),
    /// Every pending lot up to this maturity key.
    PendingThrough(MaturityKey),
    /// This lot, or the knowledge that it is closed.
    Lot(LotId),
    /// Every open lot (inactivity expires the whole balance).
    All,
}

impl Lots {
    /// Open lots, held or not.
    pub(super) fn open_count(&self) -> u64 {
        self.open_count
    }

    /// Lots held in memory.
    pub(super) fn held_count(&self) -> usize {
        self.by_id.len()
    }

    /// Open lots not held.
    fn unheld(&self) -> u64 {
        self.open_count.saturating_sub(self.by_id.len() as u64)
    }

    /// Pending lots not held.
    fn pending_unheld(&self) -> u64 {
        self.pending_count
            .saturating_sub(self.pending_by_time.len() as u64)
    }

    /// True when every open lot is held.
    pub(super) fn all_held(&self) -> bool {
        self.unheld() == 0
    }

    pub(super) fn is_empty(&self) -> bool {
        self.open_count == 0
    }

    /// A held lot.
    pub(super) fn get(&self, lot_id: LotId) -> Option<&OpenLot> {
        self.by_id.get(&lot_id)
    }

    /// The lot if it is open, `None` if it is closed, or what to read when
    /// the member cannot tell.
    pub(super) fn state(&self, lot_id: LotId) -> Result<Option<&OpenLot>, LotsNeeded> {
        match self.by_id.get(&lot_id) {
            Some(lot) => Ok(Some(lot)),
            None if self.all_held()
                || self.closed.contains_key(&lot_id)
                || self.absent.contains(&lot_id) =>
            {
                Ok(None)
            }
            None => Err(LotsNeeded::Lot(lot_id)),
        }
    }

    /// Held lots in lot id order.
    pub(super) fn values(&self) -> impl Iterator<Item = &OpenLot> {
        self.by_id.values()
    }

    /// Every open lot in lot id order, or what to read first.
    pub(super) fn all(&self) -> Result<impl Iterator<Item = &OpenLot>, LotsNeeded> {
        if self.all_held() {
            Ok(self.by_id.values())
        } else {
            Err(LotsNeeded::All)
        }
    }

    /// Held lots in FEFO order.
    pub(super) fn fefo(&self) -> impl Iterator<Item = &OpenLot> {
        self.fefo
            .iter()
            .filter_map(|(_, _, lot_id)| self.by_id.get(lot_id))
    }

    /// Opens a lot that was created or reopened (a cancel gives points
    /// back to a used-up lot).
    pub(super) fn open(&mut self, lot: OpenLot) {
        debug_assert!(
            !self.by_id.contains_key(&lot.lot_id()),
            "lots: an opened lot is not open already"
        );
        self.open_count += 1;
        if lot.is_pending() {
            self.pending_count += 1;
        }
        self.closed.remove(&lot.lot_id());
        self.absent.remove(&lot.lot_id());
        self.hold(lot);
    }

    /// Closes a held lot (no points left).
    pub(super) fn close(&mut self, lot_id: LotId) -> Option<OpenLot> {
        let lot = self.by_id.remove(&lot_id)?;
        self.unindex(&lot);
        self.open_count = self.open_count.saturating_sub(1);
        if lot.is_pending() {
            self.pending_count = self.pending_count.saturating_sub(1);
        }
        if self.elsewhere {
            self.closed.insert(lot_id, *lot.lot());
        }
        Some(lot)
    }

    /// Sets what is left of a held lot; false when it is not held.
    pub(super) fn set_remaining(&mut self, lot_id: LotId, remaining: Points) -> bool {
        match self.by_id.get_mut(&lot_id) {
            Some(lot) => {
                lot.set_remaining(remaining);
                true
            }
            None => false,
        }
    }

    /// Makes a held pending lot available; false when it is not held.
    pub(super) fn mature(&mut self, lot_id: LotId) -> bool {
        match self.by_id.get_mut(&lot_id) {
            Some(lot) => {
                if lot.is_pending() {
                    self.pending_by_time.remove(&lot.maturity_key());
                    self.pending_count = self.pending_count.saturating_sub(1);
                }
                lot.mature();
                true
            }
            None => false,
        }
    }

    /// The earliest time a pending lot matures. A lot not held matures at
    /// or after `pending_held_below`, which is the key of a lot not held
    /// (or of one read since), so the answer is exact or, rarely, early.
    pub(super) fn earliest_maturing_us(&self) -> Option<i64> {
        let held = self.pending_by_time.first().map(|(at_us, _)| *at_us);
        let unheld = (self.pending_unheld() > 0).then_some(self.pending_held_below.0);
        held.into_iter().chain(unheld).min()
    }

    /// The earliest time a lot expires, exact or early as above.
    pub(super) fn earliest_expiring_us(&self) -> Option<i64> {
        let expiring = |key: &FefoKey| (!key.0).then_some(key.1);
        let held = self.fefo.first().and_then(expiring);
        let unheld = if self.unheld() > 0 {
            expiring(&self.fefo_held_below)
        } else {
            None
        };
        held.into_iter().chain(unheld).min()
    }

    /// The pending lot of lowest id that matures at `at_us`, if any.
    pub(super) fn first_maturing_at(&self, at_us: i64) -> Result<Option<&OpenLot>, LotsNeeded> {
        let last: MaturityKey = (at_us, LotId::new(u64::MAX));
        let first = self
            .pending_by_time
            .range((at_us, LotId::new(0))..=last)
            .next();
        let known =
            self.pending_unheld() == 0 || first.map_or(last, |key| *key) < self.pending_held_below;
        if !known {
            return Err(LotsNeeded::PendingThrough(last));
        }
        Ok(first.and_then(|(_, lot_id)| self.by_id.get(lot_id)))
    }

    /// The lots that expire at `at_us`, in lot id order.
    pub(super) fn expiring_at(
        &self,
        at_us: i64,
    ) -> Result<impl Iterator<Item = &OpenLot>, LotsNeeded> {
        let last: FefoKey = (false, at_us, LotId::new(u64::MAX));
        if self.unheld() > 0 && last >= self.fefo_held_below {
            return Err(LotsNeeded::FefoThrough(last));
        }
        Ok(self
            .fefo
            .range((false, at_us, LotId::new(0))..=last)
            .filter_map(|(_, _, lot_id)| self.by_id.get(lot_id)))
    }

    /// Draws `amount` from the available lots, first-expiring first,
    /// skipping `skip`: the draws and what could not be drawn. The FEFO
    /// index, not a sort of every lot: a member with years of purchases has
    /// thousands of open lots, and a draw usually needs the first few.
    pub(super) fn draw_fefo(
        &self,
        amount: Points,
        skip: Option<LotId>,
    ) -> Result<(Vec<LotDraw>, Points), LotsNeeded> {
        let mut missing = amount.get();
        let mut draws = Vec::new();
        let unheld = self.unheld() > 0;
        for key in &self.fefo {
            if missing <= 0 {
                break;
            }
            if unheld && *key >= self.fefo_held_below {
                // Lots not held may come before this one.
                return Err(LotsNeeded::FefoPoints(Points::new(missing)));
            }
            let Some(lot) = self.by_id.get(&key.2) else {
                continue;
            };
            if lot.is_pending() || Some(lot.lot_id()) == skip {
                continue;
            }
            let take = missing.min(lot.remaining().get());
            draws.push(LotDraw {
                lot_id: lot.lot_id(),
                points: Points::new(take),
            });
            missing -= take;
        }
        if missing > 0 && unheld {
            return Err(LotsNeeded::FefoPoints(Points::new(missing)));
        }
        Ok((draws, Points::new(missing.max(0))))
    }

    /// Keeps closes in mind from now on (see [`Lots`]).
    pub(super) fn keep_elsewhere(&mut self, elsewhere: bool) {
        self.elsewhere = elsewhere;
        if !elsewhere {
            self.closed.clear();
            self.absent.clear();
        }
    }

    pub(super) fn elsewhere(&self) -> bool {
        self.elsewhere
    }

    /// A lot closed since the last release, as created.
    pub(super) fn closed(&self, lot_id: LotId) -> Option<&Lot> {
        self.closed.get(&lot_id)
    }

    /// Lots remembered as closed since the last release.
    pub(super) fn closed_count(&self) -> usize {
        self.closed.len() + self.absent.len()
    }

    /// Where held lots end in each order (see [`Lots`]).
    pub(super) fn held_below(&self) -> (FefoKey, MaturityKey) {
        (self.fefo_held_below, self.pending_held_below)
    }

    /// Holds `lot`, read back from where it is kept, unless it is held or
    /// known closed already (then the copy held, or the close, is newer).
    fn page_in_one(&mut self, lot: OpenLot) -> bool {
        let lot_id = lot.lot_id();
        if self.by_id.contains_key(&lot_id)
            || self.closed.contains_key(&lot_id)
            || self.absent.contains(&lot_id)
        {
            return false;
        }
        self.hold(lot);
        true
    }

    /// Holds `lots`, every open lot from `fefo_held_below` up to `next`
    /// (exclusive; `None`: to the end) in FEFO order as kept elsewhere.
    /// Returns how many were not held before.
    pub(super) fn page_in_fefo(
        &mut self,
        lots: impl IntoIterator<Item = OpenLot>,
        next: Option<FefoKey>,
    ) -> usize {
        let mut added = 0;
        for lot in lots {
            debug_assert!(
                lot.fefo_key() >= self.fefo_held_below,
                "paging: a page starts where the held lots end"
            );
            added += usize::from(self.page_in_one(lot));
        }
        self.fefo_held_below = self.fefo_held_below.max(next.unwrap_or(FEFO_KEY_MAX));
        if self.all_held() {
            self.fefo_held_below = FEFO_KEY_MAX;
            self.pending_held_below = MATURITY_KEY_MAX;
        }
        added
    }

    /// Holds `lots`, every pending lot from `pending_held_below` up to
    /// `next` (exclusive; `None`: to the end) in maturity order.
    pub(super) fn page_in_pending(
        &mut self,
        lots: impl IntoIterator<Item = OpenLot>,
        next: Option<MaturityKey>,
    ) -> usize {
        let mut added = 0;
        for lot in lots {
            debug_assert!(
                lot.maturity_key() >= self.pending_held_below,
                "paging: a page starts where the held pending lots end"
            );
            added += usize::from(self.page_in_one(lot));
        }
        self.pending_held_below = self
            .pending_held_below
            .max(next.unwrap_or(MATURITY_KEY_MAX));
        added
    }

    /// Holds lot `lot_id` as read back: open, or closed when `None`.
    pub(super) fn page_in_lot(&mut self, lot_id: LotId, lot: Option<OpenLot>) -> usize {
        match lot {
            Some(lot) => usize::from(self.page_in_one(lot)),
            None if self.by_id.contains_key(&lot_id) || self.closed.contains_key(&lot_id) => 0,
            None => usize::from(self.absent.insert(lot_id)),
        }
    }

    /// Holds every open lot, read back.
    pub(super) fn page_in_all(&mut self, lots: impl IntoIterator<Item = OpenLot>) -> usize {
        let mut added = 0;
        for lot in lots {
            added += usize::from(self.page_in_one(lot));
        }
        debug_assert!(self.all_held(), "paging: every open lot was given back");
        self.fefo_held_below = FEFO_KEY_MAX;
        self.pending_held_below = MATURITY_KEY_MAX;
        added
    }

    /// Lets go of the held lots beyond the first `keep` of each order, and
    /// forgets the closes remembered: the keeper holds all of it now.
    /// Returns how many lots were let go.
    pub(super) fn page_out(&mut self, keep: usize) -> usize {
        debug_assert!(
            self.elsewhere,
            "paging: lots are let go only when kept elsewhere"
        );
        let fefo_below = self
            .fefo
            .iter()
            .take_while(|key| **key < self.fefo_held_below)
            .nth(keep)
            .copied()
            .unwrap_or(self.fefo_held_below);
        let pending_below = self
            .pending_by_time
            .iter()
            .take_while(|key| **key < self.pending_held_below)
            .nth(keep)
            .copied()
            .unwrap_or(self.pending_held_below);
        let dropped: Vec<LotId> = self
            .by_id
            .values()
            .filter(|lot| {
                lot.fefo_key() >= fefo_below
                    && (!lot.is_pending() || lot.maturity_key() >= pending_below)
            })
            .map(OpenLot::lot_id)
            .collect();
        for lot_id in &dropped {
            if let Some(lot) = self.by_id.remove(lot_id) {
                self.unindex(&lot);
            }
        }
        if !dropped.is_empty() {
            self.fefo_held_below = fefo_below;
            self.pending_held_below = pending_below;
        }
        self.closed.clear();
        self.absent.clear();
        dropped.len()
    }

    fn hold(&mut self, lot: OpenLot) {
        self.index(&lot);
        self.by_id.insert(lot.lot_id(), lot);
    }

    fn index(&mut self, lot: &OpenLot) {
        if lot.is_pending() {
            self.pending_by_time.insert(lot.maturity_key());
        }
        self.fefo.insert(lot.fefo_key());
    }

    fn unindex(&mut self, lot: &OpenLot) {
        self.pending_by_time.remove(&lot.maturity_key());
        self.fefo.remove(&lot.fefo_key());
    }

    /// True when the orders are what a rebuild from the held lots gives,
    /// and the held lots fit the counts.
    pub(super) fn indexes_agree(&self) -> bool {
        let fefo: BTreeSet<FefoKey> = self.by_id.values().map(OpenLot::fefo_key).collect();
        let pending: BTreeSet<MaturityKey> = self
            .by_id
            .values()
            .filter(|lot| lot.is_pending())
            .map(OpenLot::maturity_key)
            .collect();
        fefo == self.fefo
            && pending == self.pending_by_time
            && self.by_id.len() as u64 <= self.open_count
            && self.pending_by_time.len() as u64 <= self.pending_count
    }
}

/// The counts are all a `Lots` encodes: the lots are the keeper's.
#[derive(Serialize, Deserialize)]
struct LotCounts {
    open_count: u64,
    pending_count: u64,
}

impl Serialize for Lots {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        LotCounts {
            open_count: self.open_count,
            pending_count: self.pending_count,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Lots {
    /// Decodes as holding no lot: every lot must be given back (see
    /// [`Member::page_in_all`] and the other `page_in` methods).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let counts = LotCounts::deserialize(deserializer)?;
        Ok(Lots {
            open_count: counts.open_count,
            pending_count: counts.pending_count,
            fefo_held_below: if counts.open_count > 0 {
                FEFO_KEY_MIN
            } else {
                FEFO_KEY_MAX
            },
            pending_held_below: if counts.pending_count > 0 {
                MATURITY_KEY_MIN
            } else {
                MATURITY_KEY_MAX
            },
            ..Lots::default()
        })
    }
}

/// Qualifying history of one UTC day, in both measures (the rules may switch
/// measure; history must serve either). Net of returns, so may be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QualifyingDay {
    /// Base points of purchases, net of reversed base points.
    pub base_points: i64,
    /// Spend in minor units, net of refunds.
    pub spend_minor_units: i64,
}

/// A remembered purchase, for returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The lot it created.
    pub lot_id: LotId,
    /// What was spent.
    pub spend: Money,
    /// Its base points.
    pub base_points: Points,
    /// All points it earned (the lot plus any debt it repaid).
    pub points: Points,
    /// When it was recorded (the member's effective time).
    pub purchased_at_us: i64,
    /// Sum of refunds so far, minor units.
    pub refunded_minor_units: i64,
    /// Points clawed back so far.
    pub points_reversed: Points,
    /// Base (qualifying) points taken back so far.
    pub base_points_reversed: Points,
}

/// A remembered redemption, for cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    /// When it was redeemed.
    pub redeemed_at_us: i64,
    /// Points redeemed.
    pub points: Points,
    /// The lots drawn (as created, so a closed lot can be reopened) and the
    /// points taken from each.
    pub draws: Vec<(Lot, Points)>,
    /// Cancelled already.
    pub cancelled: bool,
}

/// A kind of time-driven work. The order is the order in which work due at
/// the same instant is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DueKind {
    /// A pending lot becomes available.
    MaturePending,
    /// Lots reach their expiry.
    ExpireLot,
    /// The inactivity period ends.
    ExpireInactive,
    /// The tier period ends.
    EvaluateTier,
}

/// When each kind of work is next due for a member, for the engine's due
/// indexes. Each depends only on the member's state and the rules, so the
/// engine recomputes it after every command (and for every member after a
/// rules change that touches expiry or tiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DueSchedule {
    /// Earliest `available_at` of a pending lot.
    pub mature_pending_us: Option<i64>,
    /// Earliest `expires_at` of an open lot.
    pub expire_lot_us: Option<i64>,
    /// Last activity plus the inactivity period, while any lot is open.
    pub expire_inactive_us: Option<i64>,
    /// End of the tier period, while above the lowest tier.
    pub evaluate_tier_us: Option<i64>,
}

/// Where a member's tier name sits in the current rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TierPosition {
    /// Index in the rules' tiers; 0 for the lowest or an unknown name.
    pub index: usize,
    /// False when the name is not in the current rules (renamed or removed
    /// by a rules change): it earns like the lowest tier until reviewed.
    pub known: bool,
}

impl DueSchedule {
    /// The earliest due work, ties in `DueKind` order.
    pub fn next(&self) -> Option<(i64, DueKind)> {
        [
            self.mature_pending_us
                .map(|due| (due, DueKind::MaturePending)),
            self.expire_lot_us.map(|due| (due, DueKind::ExpireLot)),
            self.expire_inactive_us
                .map(|due| (due, DueKind::ExpireInactive)),
            self.evaluate_tier_us
                .map(|due| (due, DueKind::EvaluateTier)),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Member {
    /// Enrolled (explicitly or by a first earn).
    pub fn is_enrolled(&self) -> bool {
        self.enrolled
    }

    /// Spendable balance: available points minus debt (negative with debt).
    pub fn balance_points(&self) -> Points {
        self.balance_points
    }

    /// Points waiting for their pending period to end.
    pub fn pending_points(&self) -> Points {
        self.pending_points
    }

    /// Debt: clawed-back points that later earns pay off first.
    pub fn debt_points(&self) -> Points {
        self.debt_points
    }

    /// Available (not pending) points in open lots: the balance plus the
    /// debt it nets.
    pub fn available_points(&self) -> Points {
        Points::new(
            self.balance_points
                .get()
                .saturating_add(self.debt_points.get()),
        )
    }

    /// Available points of the held lots, summed from them (all of the
    /// available points when every lot is held).
    pub fn held_available_points(&self) -> Points {
        Points::new(
            self.lots
                .values()
                .filter(|lot| !lot.is_pending())
                .map(|lot| lot.remaining().get())
                .fold(0_i64, i64::saturating_add),
        )
    }

    /// What a redeem, debit or transfer may take now: the balance, never
    /// below zero.
    pub fn spendable_points(&self) -> Points {
        Points::new(self.balance_points.get().max(0))
    }

    /// The open lots held, by lot id: every open lot unless the engine
    /// keeps them elsewhere ([`Member::keep_lots_elsewhere`]).
    pub fn lots(&self) -> impl Iterator<Item = &OpenLot> {
        self.lots.values()
    }

    /// The open lots held, first-expiring first (ties by lot id,
    /// never-expiring lots last): [`OpenLot::fefo_key`] order.
    pub fn lots_fefo(&self) -> impl Iterator<Item = &OpenLot> {
        self.lots.fefo()
    }

    /// One open lot, if held.
    pub fn lot(&self, lot_id: LotId) -> Option<&OpenLot> {
        self.lots.get(lot_id)
    }

    /// How many lots are open, held or not.
    pub fn open_lot_count(&self) -> u64 {
        self.lots.open_count()
    }

    /// How many open lots are held in memory.
    pub fn held_lot_count(&self) -> usize {
        self.lots.held_count()
    }

    /// True when every open lot is held.
    pub fn holds_every_lot(&self) -> bool {
        self.lots.all_held()
    }

    /// How many entries the member's state holds in memory (open lots, the
    /// purchases and redemptions held, qualifying days, inactivity gaps):
    /// what encoding it costs grows with this.
    pub fn entry_count(&self) -> usize {
        self.lots.held_count()
            + self.purchases.len()
            + self.redemptions.len()
            + self.qualifying.len()
            + self.activity_gaps.len()
    }

    /// From now on, the member's lots may be let go
    /// ([`Member::release_lots`]) and read back (the `page_in_*` methods)
    /// by whoever keeps them as rows: the engine, so that a member's memory
    /// does not grow with its open lots. Until released, the lots closed
    /// are remembered ([`Member::closed_lot`]) so that the keeper can drop
    /// their rows. A decision that needs a lot not held says which
    /// ([`LotsNeeded`]) instead of deciding.
    pub fn keep_lots_elsewhere(&mut self) {
        self.lots.keep_elsewhere(true);
    }

    /// Marks the member as keeping its lots itself again, once it holds
    /// every one of them.
    pub fn keep_lots_here(&mut self) {
        debug_assert!(
            self.lots.all_held(),
            "lots are kept here only when all are held"
        );
        self.lots.keep_elsewhere(false);
    }

    /// True when the lots are kept elsewhere too.
    pub fn lots_kept_elsewhere(&self) -> bool {
        self.lots.elsewhere()
    }

    /// A lot closed since the lots were last released, as created.
    pub fn closed_lot(&self, lot_id: LotId) -> Option<&Lot> {
        self.lots.closed(lot_id)
    }

    /// How many lots are remembered as closed since the lots were last
    /// released (see [`Member::keep_lots_elsewhere`]).
    pub fn closed_lot_count(&self) -> usize {
        self.lots.closed_count()
    }

    /// Where the held lots end: every open lot before the first key (in
    /// FEFO order) and every pending lot before the second (in maturity
    /// order) is held. The next lots to read start there.
    pub fn lots_held_below(&self) -> (FefoKey, MaturityKey) {
        self.lots.held_below()
    }

    /// Holds `lots`, read back: every open lot from the first key of
    /// [`Member::lots_held_below`] up to `next` (exclusive; `None`: to the
    /// end) in FEFO order. Lots held already or closed since are kept as
    /// they are. Returns how many lots were added.
    pub fn page_in_fefo(
        &mut self,
        lots: impl IntoIterator<Item = OpenLot>,
        next: Option<FefoKey>,
    ) -> usize {
        self.lots.page_in_fefo(lots, next)
    }

    /// Holds `lots`, read back: every pending lot from the second key of
    /// [`Member::lots_held_below`] up to `next` in maturity order.
    pub fn page_in_pending(
        &mut self,
        lots: impl IntoIterator<Item = OpenLot>,
        next: Option<MaturityKey>,
    ) -> usize {
        self.lots.page_in_pending(lots, next)
    }

    /// Holds lot `lot_id` as read back: open, or closed when `None`.
    /// Returns how many lots became known (0 or 1).
    pub fn page_in_lot(&mut self, lot_id: LotId, lot: Option<OpenLot>) -> usize {
        self.lots.page_in_lot(lot_id, lot)
    }

    /// Holds every open lot, read back.
    pub fn page_in_all(&mut self, lots: impl IntoIterator<Item = OpenLot>) -> usize {
        self.lots.page_in_all(lots)
    }

    /// Lets go of the lots held beyond the first `keep` of each order (FEFO
    /// and maturity), and of the closes remembered: their keeper must hold
    /// every change by now. Returns how many lots were let go.
    pub fn release_lots(&mut self, keep: usize) -> usize {
        self.lots.page_out(keep)
    }

    /// From now on, the member's purchases and redemptions may be let go
    /// ([`Member::release_records`]) and read back ([`Member::hold_purchase`],
    /// [`Member::hold_redemption`]) by whoever keeps them: the engine, so
    /// that a member's memory does not grow with its history. A decision
    /// that refers to a record (a purchase's or return's order id, a
    /// redemption's or cancel's id) must find it held.
    pub fn keep_records_elsewhere(&mut self) {
        self.records_elsewhere = true;
    }

    /// Marks the member as holding every record it keeps (once they have
    /// all been read back): an event about a record not held is then a bug
    /// again, as for a member whose records were never kept elsewhere.
    pub fn keep_records_here(&mut self) {
        self.records_elsewhere = false;
    }

    /// Holds `purchase` of `order_id`, read back from where it was kept. A
    /// purchase already held is newer or the same, and stays; one made
    /// before [`Member::records_kept_since_us`] is not held, as a replay
    /// of the stream would have forgotten it.
    pub fn hold_purchase(&mut self, order_id: &str, purchase: Purchase) {
        if purchase.purchased_at_us >= self.records_kept_since_us()
            && !self.purchases.contains_key(order_id)
        {
            self.purchases.insert(order_id.to_owned(), purchase);
        }
    }

    /// Holds `redemption` of `redemption_id`, as [`Member::hold_purchase`].
    pub fn hold_redemption(&mut self, redemption_id: &str, redemption: Redemption) {
        if redemption.redeemed_at_us >= self.records_kept_since_us()
            && !self.redemptions.contains_key(redemption_id)
        {
            self.redemptions
                .insert(redemption_id.to_owned(), redemption);
        }
    }

    /// The purchases held, by order id.
    pub fn purchases(&self) -> impl Iterator<Item = (&str, &Purchase)> {
        self.purchases
            .iter()
            .map(|(id, purchase)| (id.as_str(), purchase))
    }

    /// The redemptions held, by redemption id.
    pub fn redemptions(&self) -> impl Iterator<Item = (&str, &Redemption)> {
        self.redemptions
            .iter()
            .map(|(id, redemption)| (id.as_str(), redemption))
    }

    /// How many purchases and redemptions are held.
    pub fn held_records(&self) -> usize {
        self.purchases.len() + self.redemptions.len()
    }

    /// Lets go of every purchase and redemption held, once they are kept
    /// elsewhere; returns how many there were.
    pub fn release_records(&mut self) -> usize {
        debug_assert!(
            self.records_elsewhere,
            "records are released only when kept elsewhere"
        );
        let released = self.held_records();
        self.purchases = BTreeMap::new();
        self.redemptions = BTreeMap::new();
        released
    }

    /// Records made before this instant are forgotten: as of the latest day
    /// of the member's clock, older than `RECORD_RETENTION_DAYS`. A record
    /// this old is never returnable or cancellable again, and replaying the
    /// stream keeps exactly the records made at or after it.
    pub fn records_kept_since_us(&self) -> i64 {
        day_of(self.clock_us)
            .saturating_sub(RECORD_RETENTION_DAYS)
            .saturating_mul(US_PER_DAY)
    }

    /// The longest gap between two activities that began at or after
    /// `since_us` (0 when none): for a redemption made at `since_us`, if it
    /// reached the inactivity period, the points would have expired had they
    /// not been redeemed, so a cancel gives them back expired.
    pub fn longest_inactive_gap_since(&self, since_us: i64) -> i64 {
        let first = self
            .activity_gaps
            .partition_point(|(start_us, _)| *start_us < since_us);
        self.activity_gaps
            .get(first)
            .map_or(0, |(_, length_us)| *length_us)
    }

    /// The id the next created lot gets.
    pub fn next_lot_id(&self) -> LotId {
        LotId::new(self.lots_created.saturating_add(1))
    }

    /// Current tier name as stored; "" means the lowest tier.
    pub fn tier(&self) -> &str {
        &self.tier
    }

    /// Current tier name resolved against `rules` ("" becomes the name of
    /// the lowest tier).
    pub fn tier_name<'a>(&'a self, rules: &'a Rules) -> &'a str {
        if self.tier.is_empty() {
            rules.tier_name(0)
        } else {
            &self.tier
        }
    }

    /// When the current tier was entered.
    pub fn tier_since_us(&self) -> i64 {
        self.tier_since_us
    }

    /// Start of the current tier period.
    pub fn tier_period_start_us(&self) -> i64 {
        self.tier_period_start_us
    }

    /// Last earn or redeem (or enrollment).
    pub fn last_activity_us(&self) -> i64 {
        self.last_activity_us
    }

    /// Latest business time seen on the stream.
    pub fn clock_us(&self) -> i64 {
        self.clock_us
    }

    /// A remembered purchase.
    pub fn purchase(&self, order_id: &str) -> Option<&Purchase> {
        self.purchases.get(order_id)
    }

    /// A remembered redemption.
    pub fn redemption(&self, redemption_id: &str) -> Option<&Redemption> {
        self.redemptions.get(redemption_id)
    }

    /// A purchase that a return at `now_us` may still refer to: remembered
    /// for `RECORD_RETENTION_DAYS`. Age, not pruning, decides, so the answer
    /// does not depend on when the state was last pruned.
    pub fn returnable_purchase(&self, order_id: &str, now_us: i64) -> Option<&Purchase> {
        self.purchases
            .get(order_id)
            .filter(|purchase| within_retention(purchase.purchased_at_us, now_us))
    }

    /// A redemption that a cancel at `now_us` may still refer to.
    pub fn cancellable_redemption(&self, redemption_id: &str, now_us: i64) -> Option<&Redemption> {
        self.redemptions
            .get(redemption_id)
            .filter(|redemption| within_retention(redemption.redeemed_at_us, now_us))
    }

    /// Qualifying measure over the days `[first_day, end_day)`.
    pub fn qualifying_between(
        &self,
        measure: QualifyingMeasure,
        first_day: i64,
        end_day: i64,
    ) -> i64 {
        if first_day >= end_day {
            return 0;
        }
        self.qualifying
            .range(first_day..end_day)
            .map(|(_, day)| match measure {
                QualifyingMeasure::Points => day.base_points,
                QualifyingMeasure::Spend => day.spend_minor_units,
            })
            .fold(0_i64, i64::saturating_add)
    }

    /// Qualifying measure of the window as of instant `as_of_us` (its day
    /// included), for tier progress.
    pub fn qualifying_as_of(&self, rules: &Rules, as_of_us: i64) -> i64 {
        let (first, end) = rules.window_days(day_of(as_of_us).saturating_add(1));
        self.qualifying_between(rules.measure(), first, end)
    }

    pub(super) fn tier_position(&self, rules: &Rules) -> TierPosition {
        tier_position_of(&self.tier, rules)
    }

    pub(super) fn tier_floor_position(&self, rules: &Rules) -> TierPosition {
        tier_position_of(&self.tier_floor, rules)
    }

    /// When each kind of time-driven work is next due under `rules`.
    pub fn due_schedule(&self, rules: &Rules) -> DueSchedule {
        let mature_pending_us = self.lots.earliest_maturing_us();
        let expire_lot_us = self.lots.earliest_expiring_us();
        let expire_inactive_us = match rules.inactivity_expiry_us() {
            Some(period_us) if !self.lots.is_empty() => {
                Some(self.last_activity_us.saturating_add(period_us))
            }
            _ => None,
        };
        let position = self.tier_position(rules);
        let reviewable =
            !rules.tiers().is_empty() && self.enrolled && (position.index > 0 || !position.known);
        let evaluate_tier_us = reviewable.then(|| rules.period_end_us(self.tier_period_start_us));
        DueSchedule {
            mature_pending_us,
            expire_lot_us,
            expire_inactive_us,
            evaluate_tier_us,
        }
    }

    /// The earliest time-driven work and when it is due. Deciding any
    /// command at a time at or after it does that work first.
    pub fn next_due(&self, rules: &Rules) -> Option<(i64, DueKind)> {
        self.due_schedule(rules).next()
    }
}

fn tier_position_of(name: &str, rules: &Rules) -> TierPosition {
    if name.is_empty() {
        return TierPosition {
            index: 0,
            known: true,
        };
    }
    match rules.tier_index(name) {
        Some(index) => TierPosition { index, known: true },
        None => TierPosition {
            index: 0,
            known: false,
        },
    }
}

/// True while a record made at `at_us` is remembered at `now_us`.
pub(super) fn within_retention(at_us: i64, now_us: i64) -> bool {
    now_us.saturating_sub(at_us) <= RECORD_RETENTION_DAYS * US_PER_DAY
}
