//! Lots: the unit of earning, consumption and expiry.
//!
//! Every earn creates a lot; redemptions, debits, transfers and returns draw
//! points from lots; expiry expires what is left of a lot. A member's state
//! keeps only open lots (points left > 0).

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::points::Points;
use crate::ids::LotId;

/// A lot's place in first-expiring-first order: `(never expires, expiry
/// time or 0, lot id)`. Lots that expire come first, earliest expiry
/// first; the lots that never expire come last; ties go to the older lot.
pub type FefoKey = (bool, i64, LotId);
/// The first FEFO key: no lot lies before it.
pub const FEFO_KEY_MIN: FefoKey = (false, i64::MIN, LotId::new(0));
/// The last FEFO key: every lot lies before it.
pub const FEFO_KEY_MAX: FefoKey = (true, i64::MAX, LotId::new(u64::MAX));

/// A pending lot's place in maturity order: `(available_at_us, lot id)`.
pub type MaturityKey = (i64, LotId);
/// The first maturity key.
pub const MATURITY_KEY_MIN: MaturityKey = (i64::MIN, LotId::new(0));
/// The last maturity key.
pub const MATURITY_KEY_MAX: MaturityKey = (i64::MAX, LotId::new(u64::MAX));

/// A lot as created, field for field `pointsledger.v1.Lot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Member-local sequence number, from 1.
    pub lot_id: LotId,
    /// Points the lot was created with.
    pub points: Points,
    /// When the lot was earned (or received, for a transfer).
    pub earned_at_us: i64,
    /// When its points become redeemable (end of the pending period).
    pub available_at_us: i64,
    /// The first microsecond at which it is expired; `None` = never
    /// (`0` in the proto: no real lot expires at the epoch).
    pub expires_at_us: Option<i64>,
}

impl Lot {
    /// Its place in first-expiring-first order.
    pub fn fefo_key(&self) -> FefoKey {
        (
            self.expires_at_us.is_none(),
            self.expires_at_us.unwrap_or(0),
            self.lot_id,
        )
    }

    /// Its place in maturity order (meaningful while it is pending).
    pub fn maturity_key(&self) -> MaturityKey {
        (self.available_at_us, self.lot_id)
    }

    /// True when it was created pending: it has, or had, a place in
    /// maturity order.
    pub fn was_pending(&self) -> bool {
        self.available_at_us > self.earned_at_us
    }
}

/// Points taken from (or given back to) one lot, field for field
/// `pointsledger.v1.LotDraw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotDraw {
    /// The lot.
    pub lot_id: LotId,
    /// Points taken or given back, > 0.
    pub points: Points,
}

/// The id after `lot_id`, or an overflow error.
pub(super) fn next_lot_id(lot_id: LotId) -> Result<LotId, DomainError> {
    lot_id
        .checked_next()
        .ok_or(DomainError::Overflow { quantity: "lot_id" })
}

/// A lot in a member's state: its creation record, what is left of it, and
/// whether it is still pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenLot {
    lot: Lot,
    remaining: Points,
    pending: bool,
}

impl OpenLot {
    pub(super) fn new(lot: Lot, remaining: Points, pending: bool) -> Self {
        Self {
            lot,
            remaining,
            pending,
        }
    }

    /// The lot as created.
    pub fn lot(&self) -> &Lot {
        &self.lot
    }

    /// Its id.
    pub fn lot_id(&self) -> LotId {
        self.lot.lot_id
    }

    /// Points left in it (> 0 while it is in a member's state).
    pub fn remaining(&self) -> Points {
        self.remaining
    }

    /// True until it matures (pending points cannot be spent).
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// When it expires, if ever.
    pub fn expires_at_us(&self) -> Option<i64> {
        self.lot.expires_at_us
    }

    /// First-expiring-first order: earliest expiry first, never-expiring
    /// lots last, ties by lot id (oldest first).
    pub fn fefo_key(&self) -> FefoKey {
        self.lot.fefo_key()
    }

    /// Its place in maturity order (meaningful while it is pending).
    pub fn maturity_key(&self) -> MaturityKey {
        self.lot.maturity_key()
    }

    pub(super) fn set_remaining(&mut self, remaining: Points) {
        self.remaining = remaining;
    }

    pub(super) fn mature(&mut self) {
        self.pending = false;
    }
}
