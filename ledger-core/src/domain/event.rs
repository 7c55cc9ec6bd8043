//! Events: immutable facts, past tense. `EventKind` maps 1:1 onto the
//! `pointsledger.v1.Event` oneof and each payload struct field for field onto
//! its message, so `record.rs` can convert both ways without loss.
//! `Event::occurred_at_us` is `EventRecord.occurred_at_us` (the envelope),
//! which `apply` needs for activity, history and tier periods.
//!
//! Events carry resolved numbers (points, multipliers, lots, expiry dates):
//! `apply` never consults rules, so a rules change never rewrites history.

use serde::{Deserialize, Serialize};

use super::lot::{Lot, LotDraw};
use super::money::Money;
use super::points::Points;
use super::rules::{ProgramRules, ReturnPolicy};
use crate::ids::{LotId, MemberId};

/// One event with the business time of the command that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Business time the command carried (`EventRecord.occurred_at_us`).
    /// Every event of one command has the same.
    pub occurred_at_us: i64,
    /// What happened.
    pub kind: EventKind,
}

/// The `pointsledger.v1.Event` oneof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A program was defined (program stream).
    ProgramDefined(ProgramDefined),
    /// A program's rules were replaced (program stream).
    ProgramRulesChanged(ProgramRulesChanged),
    /// A member was enrolled.
    MemberEnrolled(MemberEnrolled),
    /// A purchase earned points.
    PointsEarned(PointsEarned),
    /// Bonus points were awarded.
    PointsAwarded(PointsAwarded),
    /// Points were redeemed.
    PointsRedeemed(PointsRedeemed),
    /// A redemption was cancelled.
    RedemptionCancelled(RedemptionCancelled),
    /// A return clawed points back.
    EarnReversed(EarnReversed),
    /// An operator adjusted points.
    PointsAdjusted(PointsAdjusted),
    /// Points moved between two members (one event in each stream).
    PointsTransferred(PointsTransferred),
    /// A pending lot became available.
    PointsMatured(PointsMatured),
    /// Points expired.
    PointsExpired(PointsExpired),
    /// The member's tier changed (or was reviewed and kept).
    TierChanged(TierChanged),
}

/// `pointsledger.v1.ProgramDefined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramDefined {
    /// The full rules.
    pub rules: ProgramRules,
}

/// `pointsledger.v1.ProgramRulesChanged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRulesChanged {
    /// The full new rules; they apply to commands decided after this event.
    pub rules: ProgramRules,
}

/// `pointsledger.v1.MemberEnrolled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEnrolled {
    /// True when enrolled implicitly by a first earn.
    pub implicit: bool,
}

/// `pointsledger.v1.PointsEarned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsEarned {
    /// The caller's order id (the key for returns).
    pub order_id: String,
    /// What was spent.
    pub spend: Money,
    /// Purchase tags (campaign conditions).
    pub tags: Vec<String>,
    /// Points from the earn rate alone.
    pub base_points: Points,
    /// The member's tier multiplier used.
    pub tier_multiplier_bps: i64,
    /// Campaigns that applied.
    pub campaigns: Vec<AppliedCampaign>,
    /// Total points earned (base x multipliers + bonuses).
    pub points: Points,
    /// The new lot: `points - debt_repaid` points.
    pub lot: Lot,
    /// Qualifying measure credited toward tiers (base points or spend in
    /// minor units, per the rules' measure).
    pub qualifying_points: i64,
    /// Debt paid off before the lot was created.
    pub debt_repaid: Points,
}

/// `pointsledger.v1.AppliedCampaign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCampaign {
    /// The campaign.
    pub campaign_id: String,
    /// Its multiplier, 0 for a flat bonus.
    pub multiplier_bps: i64,
    /// Its flat bonus, 0 for a multiplier.
    pub bonus_points: Points,
}

/// `pointsledger.v1.PointsAwarded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsAwarded {
    /// Why (birthday, referral, goodwill...).
    pub reason: String,
    /// Points awarded.
    pub points: Points,
    /// The new lot: `points - debt_repaid` points.
    pub lot: Lot,
    /// Debt paid off before the lot was created.
    pub debt_repaid: Points,
}

/// `pointsledger.v1.PointsRedeemed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsRedeemed {
    /// The caller's reference (reward, order).
    pub redemption_id: String,
    /// Points redeemed.
    pub points: Points,
    /// Lots consumed, first-expiring first.
    pub draws: Vec<LotDraw>,
}

/// `pointsledger.v1.RedemptionCancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionCancelled {
    /// The cancelled redemption.
    pub redemption_id: String,
    /// All points of the redemption (`restored + expired`).
    pub points: Points,
    /// Points returned to their lots, which are open again.
    pub restored: Vec<LotDraw>,
    /// Points whose lots expired meanwhile: they come back expired.
    pub expired: Vec<LotDraw>,
}

/// `pointsledger.v1.EarnReversed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarnReversed {
    /// The returned order.
    pub order_id: String,
    /// The refund.
    pub refund: Money,
    /// Points clawed back (drawn + shortfall).
    pub points: Points,
    /// Drawn from the purchase's own lot, then other lots first-expiring
    /// first.
    pub draws: Vec<LotDraw>,
    /// What could not be drawn.
    pub shortfall_points: Points,
    /// What happened to the shortfall.
    pub shortfall_policy: ReturnPolicy,
    /// Qualifying measure taken back (base points or minor units).
    pub qualifying_points_reversed: i64,
    /// Base points taken back, whatever the measure (tier history keeps
    /// both measures).
    pub base_points_reversed: Points,
}

/// `pointsledger.v1.PointsAdjusted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsAdjusted {
    /// Why (operator note).
    pub reason: String,
    /// Signed: positive creates `lot`, negative consumes `draws`.
    pub points: Points,
    /// The lot created by a credit.
    pub lot: Option<Lot>,
    /// Lots consumed by a debit, first-expiring first.
    pub draws: Vec<LotDraw>,
    /// Debt paid off by a credit before its lot was created.
    pub debt_repaid: Points,
}

/// `pointsledger.v1.PointsTransferred`. The sender's copy has `draws` (and
/// no `lots`); the receiver's copy has `lots` (one per drawn lot that still
/// holds points after debt) and `debt_repaid`, and no `draws`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsTransferred {
    /// The caller's reference.
    pub transfer_id: String,
    /// Sender.
    pub from_member_id: MemberId,
    /// Receiver.
    pub to_member_id: MemberId,
    /// Points moved.
    pub points: Points,
    /// Sender: lots drawn.
    pub draws: Vec<LotDraw>,
    /// Receiver: lots created, each keeping its drawn lot's expiry.
    pub lots: Vec<Lot>,
    /// Receiver: debt paid off from the points received.
    pub debt_repaid: Points,
}

/// `pointsledger.v1.PointsMatured`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsMatured {
    /// The lot that became available.
    pub lot_id: LotId,
    /// Its points at that moment.
    pub points: Points,
}

/// `pointsledger.v1.ExpiryReason`, without UNSPECIFIED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpiryReason {
    /// The lots reached their own expiry.
    Lot,
    /// The whole balance expired after inactivity.
    Inactivity,
}

/// `pointsledger.v1.PointsExpired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsExpired {
    /// Why.
    pub reason: ExpiryReason,
    /// Points expired.
    pub points: Points,
    /// The lots expired, by lot id.
    pub draws: Vec<LotDraw>,
}

/// `pointsledger.v1.TierChangeReason`, without UNSPECIFIED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TierChangeReason {
    /// The threshold of a higher tier was met.
    Qualified,
    /// A tier period ended (the tier may be kept: `from_tier == to_tier`).
    PeriodEnd,
    /// A return took the member below the tier reached this period.
    Return,
}

/// `pointsledger.v1.TierChanged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChanged {
    /// Tier before.
    pub from_tier: String,
    /// Tier after (equal to `from_tier` when a period review kept it).
    pub to_tier: String,
    /// Why.
    pub reason: TierChangeReason,
    /// Qualifying measure in the window when decided.
    pub qualifying: i64,
}

impl EventKind {
    /// The event's name as in the proto, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ProgramDefined(_) => "ProgramDefined",
            Self::ProgramRulesChanged(_) => "ProgramRulesChanged",
            Self::MemberEnrolled(_) => "MemberEnrolled",
            Self::PointsEarned(_) => "PointsEarned",
            Self::PointsAwarded(_) => "PointsAwarded",
            Self::PointsRedeemed(_) => "PointsRedeemed",
            Self::RedemptionCancelled(_) => "RedemptionCancelled",
            Self::EarnReversed(_) => "EarnReversed",
            Self::PointsAdjusted(_) => "PointsAdjusted",
            Self::PointsTransferred(_) => "PointsTransferred",
            Self::PointsMatured(_) => "PointsMatured",
            Self::PointsExpired(_) => "PointsExpired",
            Self::TierChanged(_) => "TierChanged",
        }
    }
}
