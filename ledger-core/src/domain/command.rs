//! Commands: imperative requests, validated field by field before any rule
//! is consulted. Time is not a field: `decide` takes the command's business
//! time (`occurred_at`) as `now_us`.

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::money::Money;
use super::points::Points;
use super::rules::{ProgramRules, Rules};
use super::text::check_text;
use crate::error::FieldReason;
use crate::ids::MemberId;
use crate::limits::{
    POINTS_PER_COMMAND_MAX, PURCHASE_TAGS_MAX, REASON_BYTES_MAX, REFERENCE_BYTES_MAX,
    SPEND_MINOR_UNITS_MAX, TAG_BYTES_MAX,
};

/// A command about one member. The engine submits the four system commands
/// from its due indexes; each of them runs *all* work due up to its time, in
/// due-time order, because a lot that matures and expires, or expires by lot
/// and by inactivity, must be handled in time order whichever index fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Enroll explicitly.
    Enroll,
    /// Record a purchase: earns points (enrolling the member on first earn).
    RecordPurchase {
        /// The caller's order id, unique per member; the key for returns.
        order_id: String,
        /// What was spent, in the program's currency.
        spend: Money,
        /// Tags for campaign conditions (category, channel, store...).
        tags: Vec<String>,
    },
    /// Award bonus points (birthday, referral, goodwill).
    AwardPoints {
        /// Why; required.
        reason: String,
        /// 1..=`POINTS_PER_COMMAND_MAX`.
        points: Points,
    },
    /// Redeem points; never overdraws.
    Redeem {
        /// The caller's reference, unique per member; the key for cancels.
        redemption_id: String,
        /// 1..=`POINTS_PER_COMMAND_MAX`, at least the program minimum.
        points: Points,
    },
    /// Cancel a redemption: points go back to the lots they came from.
    CancelRedemption {
        /// The redemption to cancel.
        redemption_id: String,
    },
    /// Record a (partial) return of a purchase: claws points back.
    RecordReturn {
        /// The returned order.
        order_id: String,
        /// Refund, in the purchase's currency.
        refund: Money,
    },
    /// Operator adjustment, signed.
    AdjustPoints {
        /// Why; required.
        reason: String,
        /// Non-zero, at most `POINTS_PER_COMMAND_MAX` either way.
        points: Points,
    },
    /// System: make pending lots available when their time has come.
    MaturePending,
    /// System: expire lots whose expiry has come.
    ExpireLots,
    /// System: expire the whole balance after inactivity.
    ExpireInactive,
    /// System: review the tier at the end of its period.
    EvaluateTier,
}

/// Move points between two members of one program (`decide_transfer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferPoints {
    /// The caller's reference.
    pub transfer_id: String,
    /// Sender.
    pub from_member_id: MemberId,
    /// Receiver; not the sender.
    pub to_member_id: MemberId,
    /// 1..=`POINTS_PER_COMMAND_MAX`, only available points.
    pub points: Points,
}

/// A command about a program's rules (`decide_program`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProgramCommand {
    /// Define a new program.
    DefineProgram {
        /// Its rules.
        rules: ProgramRules,
    },
    /// Replace a program's rules (for commands decided after it).
    ChangeRules {
        /// The new rules, complete.
        rules: ProgramRules,
    },
}

impl Command {
    /// True for the four scheduler commands.
    pub fn is_system(&self) -> bool {
        matches!(
            self,
            Self::MaturePending | Self::ExpireLots | Self::ExpireInactive | Self::EvaluateTier
        )
    }

    /// Field checks that need no member state: lengths, ranges, currency.
    pub fn validate(&self, rules: &Rules) -> Result<(), DomainError> {
        match self {
            Self::RecordPurchase {
                order_id,
                spend,
                tags,
            } => {
                check_text("order_id", order_id, REFERENCE_BYTES_MAX)?;
                check_money("spend", spend, rules)?;
                check_tags(tags)
            }
            Self::AwardPoints { reason, points } => {
                check_text("reason", reason, REASON_BYTES_MAX)?;
                Points::for_command(points.get(), "points").map(drop)
            }
            Self::Redeem {
                redemption_id,
                points,
            } => {
                check_text("redemption_id", redemption_id, REFERENCE_BYTES_MAX)?;
                Points::for_command(points.get(), "points").map(drop)
            }
            Self::CancelRedemption { redemption_id } => Ok(check_text(
                "redemption_id",
                redemption_id,
                REFERENCE_BYTES_MAX,
            )?),
            Self::RecordReturn { order_id, refund } => {
                check_text("order_id", order_id, REFERENCE_BYTES_MAX)?;
                // The currency is checked against the purchase, not the
                // program, once the purchase is found.
                check_amount("refund.minor_units", refund.minor_units)
            }
            Self::AdjustPoints { reason, points } => {
                check_text("reason", reason, REASON_BYTES_MAX)?;
                check_adjustment(*points)
            }
            Self::Enroll
            | Self::MaturePending
            | Self::ExpireLots
            | Self::ExpireInactive
            | Self::EvaluateTier => Ok(()),
        }
    }
}

impl TransferPoints {
    /// Field checks that need no member state.
    pub fn validate(&self) -> Result<(), DomainError> {
        check_text("transfer_id", &self.transfer_id, REFERENCE_BYTES_MAX)?;
        if self.from_member_id == self.to_member_id {
            return Err(DomainError::invalid(
                "to_member_id",
                FieldReason::SameAs {
                    other: "from_member_id",
                },
            ));
        }
        Points::for_command(self.points.get(), "points").map(drop)
    }
}

/// Purchases in another currency are rejected, never converted.
fn check_money(field: &'static str, money: &Money, rules: &Rules) -> Result<(), DomainError> {
    if money.currency != rules.currency() {
        return Err(DomainError::invalid(
            format!("{field}.currency"),
            FieldReason::WrongCurrency {
                expected: rules.currency().code().to_owned(),
                actual: money.currency.code().to_owned(),
            },
        ));
    }
    check_amount(
        if field == "spend" {
            "spend.minor_units"
        } else {
            "refund.minor_units"
        },
        money.minor_units,
    )
}

fn check_amount(field: &'static str, minor_units: i64) -> Result<(), DomainError> {
    if (1..=SPEND_MINOR_UNITS_MAX).contains(&minor_units) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            FieldReason::OutOfRange {
                value: minor_units.into(),
                min: 1,
                max: SPEND_MINOR_UNITS_MAX.into(),
            },
        ))
    }
}

fn check_tags(tags: &[String]) -> Result<(), DomainError> {
    if tags.len() > PURCHASE_TAGS_MAX {
        return Err(DomainError::invalid(
            "tags",
            FieldReason::TooMany {
                count: tags.len(),
                max: PURCHASE_TAGS_MAX,
            },
        ));
    }
    for (index, tag) in tags.iter().enumerate() {
        check_text(format!("tags[{index}]"), tag, TAG_BYTES_MAX)?;
    }
    Ok(())
}

fn check_adjustment(points: Points) -> Result<(), DomainError> {
    let value = points.get();
    if value == 0 {
        Err(DomainError::invalid("points", FieldReason::Zero))
    } else if (-POINTS_PER_COMMAND_MAX..=POINTS_PER_COMMAND_MAX).contains(&value) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "points",
            FieldReason::OutOfRange {
                value: value.into(),
                min: (-POINTS_PER_COMMAND_MAX).into(),
                max: POINTS_PER_COMMAND_MAX.into(),
            },
        ))
    }
}
