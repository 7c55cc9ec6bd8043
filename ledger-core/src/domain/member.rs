//! The write-model state of one member, folded from its stream by `apply`.
//!
//! It holds what decisions need and nothing for display: open lots, debt,
//! pending points, the tier and its period, qualifying history per day (for
//! rolling windows and calendar years), purchases by order id (returns),
//! redemptions by id (cancellations) and the last activity (inactivity).
//! Fields are private; only `apply` changes them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lot::{Lot, OpenLot};
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
    pub(super) purchases: BTreeMap<String, Purchase>,
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

/// A member's open lots by id, with two due-time indexes: pending lots by
/// the time they mature, and lots that expire by their expiry time. Every
/// decision asks when the member's next due work is (`due_schedule`); the
/// indexes answer that without a scan of every lot.
///
/// The indexes are derived from the lots alone. They are not encoded: a
/// `Lots` encodes exactly as its map of lots did, and decoding rebuilds the
/// indexes, so snapshots keep their format. Only these methods change the
/// lots, and each keeps the indexes equal to what a rebuild would give.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Lots {
    by_id: BTreeMap<LotId, OpenLot>,
    /// `(available_at_us, lot id)` of each pending lot.
    pending_by_time: BTreeSet<(i64, LotId)>,
    /// `(expires_at_us, lot id)` of each lot that expires.
    expiring_by_time: BTreeSet<(i64, LotId)>,
}

impl Lots {
    fn from_map(by_id: BTreeMap<LotId, OpenLot>) -> Self {
        let mut lots = Lots {
            by_id: BTreeMap::new(),
            pending_by_time: BTreeSet::new(),
            expiring_by_time: BTreeSet::new(),
        };
        for (_, lot) in by_id {
            lots.insert(lot);
        }
        lots
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub(super) fn get(&self, lot_id: LotId) -> Option<&OpenLot> {
        self.by_id.get(&lot_id)
    }

    /// Open lots in lot id order.
    pub(super) fn values(&self) -> impl Iterator<Item = &OpenLot> {
        self.by_id.values()
    }

    /// Opens `lot` (replacing an open lot of the same id).
    pub(super) fn insert(&mut self, lot: OpenLot) {
        if let Some(replaced) = self.by_id.remove(&lot.lot_id()) {
            self.unindex(&replaced);
        }
        self.index(&lot);
        self.by_id.insert(lot.lot_id(), lot);
    }

    /// Closes a lot.
    pub(super) fn remove(&mut self, lot_id: LotId) -> Option<OpenLot> {
        let lot = self.by_id.remove(&lot_id)?;
        self.unindex(&lot);
        Some(lot)
    }

    /// Sets what is left of an open lot; false when it is not open.
    pub(super) fn set_remaining(&mut self, lot_id: LotId, remaining: Points) -> bool {
        match self.by_id.get_mut(&lot_id) {
            Some(lot) => {
                lot.set_remaining(remaining);
                true
            }
            None => false,
        }
    }

    /// Makes a pending lot available; false when it is not open.
    pub(super) fn mature(&mut self, lot_id: LotId) -> bool {
        match self.by_id.get_mut(&lot_id) {
            Some(lot) => {
                if lot.is_pending() {
                    self.pending_by_time
                        .remove(&(lot.lot().available_at_us, lot_id));
                }
                lot.mature();
                true
            }
            None => false,
        }
    }

    /// The earliest time a pending lot matures.
    pub(super) fn earliest_maturing_us(&self) -> Option<i64> {
        self.pending_by_time.first().map(|(at_us, _)| *at_us)
    }

    /// The earliest time a lot expires.
    pub(super) fn earliest_expiring_us(&self) -> Option<i64> {
        self.expiring_by_time.first().map(|(at_us, _)| *at_us)
    }

    /// The pending lot of lowest id that matures at `at_us`.
    pub(super) fn first_maturing_at(&self, at_us: i64) -> Option<&OpenLot> {
        self.pending_by_time
            .range((at_us, LotId::new(0))..=(at_us, LotId::new(u64::MAX)))
            .next()
            .and_then(|(_, lot_id)| self.by_id.get(lot_id))
    }

    /// The lots that expire at `at_us`, in lot id order.
    pub(super) fn expiring_at(&self, at_us: i64) -> impl Iterator<Item = &OpenLot> {
        self.expiring_by_time
            .range((at_us, LotId::new(0))..=(at_us, LotId::new(u64::MAX)))
            .filter_map(|(_, lot_id)| self.by_id.get(lot_id))
    }

    /// Open lots first-expiring first: expiring lots by `(expires_at_us,
    /// lot id)` from the expiry index, then the lots that never expire by
    /// lot id, which is [`OpenLot::fefo_key`] order. Lazy, so a draw that
    /// the first few lots cover reads only those.
    pub(super) fn fefo(&self) -> impl Iterator<Item = &OpenLot> {
        let expiring = self
            .expiring_by_time
            .iter()
            .filter_map(|(_, lot_id)| self.by_id.get(lot_id));
        let never = self
            .by_id
            .values()
            .filter(|lot| lot.expires_at_us().is_none());
        expiring.chain(never)
    }

    fn index(&mut self, lot: &OpenLot) {
        if lot.is_pending() {
            self.pending_by_time
                .insert((lot.lot().available_at_us, lot.lot_id()));
        }
        if let Some(expires_at_us) = lot.expires_at_us() {
            self.expiring_by_time.insert((expires_at_us, lot.lot_id()));
        }
    }

    fn unindex(&mut self, lot: &OpenLot) {
        self.pending_by_time
            .remove(&(lot.lot().available_at_us, lot.lot_id()));
        if let Some(expires_at_us) = lot.expires_at_us() {
            self.expiring_by_time.remove(&(expires_at_us, lot.lot_id()));
        }
    }

    /// True when the indexes are what a rebuild from the lots gives.
    pub(super) fn indexes_agree(&self) -> bool {
        let rebuilt = Lots::from_map(self.by_id.clone());
        rebuilt.pending_by_time == self.pending_by_time
            && rebuilt.expiring_by_time == self.expiring_by_time
    }
}

impl Serialize for Lots {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.by_id.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Lots {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Lots::from_map)
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

    /// Sum of available (not pending) open lots, recomputed from the lots.
    pub fn available_points(&self) -> Points {
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

    /// Open lots by lot id.
    pub fn lots(&self) -> impl Iterator<Item = &OpenLot> {
        self.lots.values()
    }

    /// Open lots first-expiring first (ties by lot id, never-expiring lots
    /// last): [`OpenLot::fefo_key`] order.
    pub fn lots_fefo(&self) -> impl Iterator<Item = &OpenLot> {
        self.lots.fefo()
    }

    /// One open lot.
    pub fn lot(&self, lot_id: LotId) -> Option<&OpenLot> {
        self.lots.get(lot_id)
    }

    /// How many lots are open.
    pub fn open_lot_count(&self) -> usize {
        self.lots.len()
    }

    /// How many entries the member's state keeps (open lots, the purchases
    /// and redemptions held, qualifying days, inactivity gaps): what
    /// encoding it costs grows with this.
    pub fn entry_count(&self) -> usize {
        self.lots.len()
            + self.purchases.len()
            + self.redemptions.len()
            + self.qualifying.len()
            + self.activity_gaps.len()
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
