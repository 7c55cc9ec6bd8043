//! The domain's error type: validation errors name the field and the limit
//! (a [`FieldError`], as everywhere in the crate); rule rejections are their
//! own variants. Each variant has a stable snake_case [`DomainError::code`],
//! which the engine stores under an idempotency key (as a [`Rejection`]) so
//! that a retry gets the same answer.

use super::member::LotsNeeded;
use crate::error::{FieldError, FieldReason, Rejection};

/// Why a decision was refused. Nothing was decided when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A command or rules field is invalid: bad input, never a rule. The
    /// field path is e.g. `points` or `tiers[2].threshold`.
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    /// Checked arithmetic overflowed: the result would not fit an i64.
    #[error("arithmetic overflow computing {quantity}")]
    Overflow {
        /// What was being computed, e.g. `balance_points`.
        quantity: &'static str,
    },
    /// The command needs an enrolled member and this one is not enrolled.
    #[error("member `{field}` is not enrolled")]
    NotEnrolled {
        /// Which member of the command: `member_id`, `to_member_id`, ...
        field: &'static str,
    },
    /// `Enroll` for a member who is already enrolled.
    #[error("member is already enrolled")]
    AlreadyEnrolled,
    /// A redeem, debit adjustment or transfer asks for more than the member
    /// can spend (available points minus debt). A redeem never overdraws.
    #[error("insufficient points: {available} available, {requested} requested")]
    InsufficientPoints {
        /// Points the member could spend now (never negative).
        available: i64,
        /// Points the command asked for.
        requested: i64,
    },
    /// A redeem below the program's minimum.
    #[error("redeem of {requested} points is below the minimum of {minimum}")]
    BelowMinimumRedeem {
        /// The program's `min_redeem_points`.
        minimum: i64,
        /// Points the command asked for.
        requested: i64,
    },
    /// A return names an order this member has no (remembered) purchase for.
    #[error("unknown order `{order_id}`")]
    UnknownOrder {
        /// The order id of the return.
        order_id: String,
    },
    /// A purchase reuses the order id of a remembered purchase.
    #[error("order `{order_id}` was already recorded")]
    DuplicateOrder {
        /// The reused order id.
        order_id: String,
    },
    /// The refunds of one order would exceed what was spent on it.
    #[error(
        "refund of {refund_minor_units} exceeds spend {spend_minor_units} \
         (already refunded {refunded_minor_units})"
    )]
    RefundExceedsSpend {
        /// Spend of the purchase, minor units.
        spend_minor_units: i64,
        /// Sum of earlier refunds of it, minor units.
        refunded_minor_units: i64,
        /// This refund, minor units.
        refund_minor_units: i64,
    },
    /// A cancellation names a redemption this member has no (remembered)
    /// record of.
    #[error("unknown redemption `{redemption_id}`")]
    UnknownRedemption {
        /// The redemption id of the cancellation.
        redemption_id: String,
    },
    /// A redeem reuses the id of a remembered redemption.
    #[error("redemption `{redemption_id}` was already recorded")]
    DuplicateRedemption {
        /// The reused redemption id.
        redemption_id: String,
    },
    /// A redemption can be cancelled once.
    #[error("redemption `{redemption_id}` is already cancelled")]
    RedemptionAlreadyCancelled {
        /// The redemption id.
        redemption_id: String,
    },
    /// `DefineProgram` for a program that already has rules.
    #[error("program is already defined")]
    ProgramAlreadyDefined,
    /// `ChangeRules` (or a member command) for a program without rules.
    #[error("program is not defined")]
    ProgramNotDefined,
    /// The time-driven work due before the command (maturing, expiring)
    /// is more than one command may record (`COMMAND_EVENTS_MAX`). The
    /// scheduler's commands do it a part at a time; a command asked with a
    /// new key once they have is decided.
    #[error("the member has more due work than one command may record; retry once it is done")]
    DueWorkBehind,
    /// The decision needs lots that the member does not hold in memory
    /// (the engine keeps them as rows; see `Member::keep_lots_elsewhere`).
    /// Never an answer: the engine reads them and decides again.
    #[error("the decision needs lots the member does not hold: {needed:?}")]
    LotsNotHeld {
        /// What to read.
        needed: LotsNeeded,
        /// For a transfer: true when the receiver needs them, false for the
        /// sender (and for every other command's one member).
        receiver: bool,
    },
}

impl From<LotsNeeded> for DomainError {
    fn from(needed: LotsNeeded) -> Self {
        DomainError::LotsNotHeld {
            needed,
            receiver: false,
        }
    }
}

impl DomainError {
    /// Stable snake_case code of the variant: stored with rejected commands
    /// and sent to clients, so it never changes once released.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidField(_) => "invalid_field",
            Self::Overflow { .. } => "overflow",
            Self::NotEnrolled { .. } => "not_enrolled",
            Self::AlreadyEnrolled => "already_enrolled",
            Self::InsufficientPoints { .. } => "insufficient_points",
            Self::BelowMinimumRedeem { .. } => "below_minimum_redeem",
            Self::UnknownOrder { .. } => "unknown_order",
            Self::DuplicateOrder { .. } => "duplicate_order",
            Self::RefundExceedsSpend { .. } => "refund_exceeds_spend",
            Self::UnknownRedemption { .. } => "unknown_redemption",
            Self::DuplicateRedemption { .. } => "duplicate_redemption",
            Self::RedemptionAlreadyCancelled { .. } => "redemption_already_cancelled",
            Self::ProgramAlreadyDefined => "program_already_defined",
            Self::ProgramNotDefined => "program_not_defined",
            Self::DueWorkBehind => "due_work_behind",
            Self::LotsNotHeld { .. } => "lots_not_held",
        }
    }

    /// Shorthand for [`DomainError::InvalidField`].
    pub fn invalid(field: impl Into<String>, reason: FieldReason) -> Self {
        Self::InvalidField(FieldError::new(field, reason))
    }

    /// True for bad input (the field is named), false for rule rejections.
    pub fn is_validation(&self) -> bool {
        matches!(self, Self::InvalidField(_))
    }
}

/// The form the engine stores under an idempotency key and answers with.
///
/// Only bad input names a field: the server answers a rejection that names
/// a field as INVALID_ARGUMENT and any other as FAILED_PRECONDITION, so a
/// rule rejection such as `insufficient_points` or `not_enrolled` carries
/// no field (the message says which member or reference it is about).
impl From<DomainError> for Rejection {
    fn from(error: DomainError) -> Self {
        let message = error.to_string();
        let code = error.code();
        let field = match error {
            DomainError::InvalidField(invalid) => Some(invalid.field),
            _ => None,
        };
        Rejection {
            code: code.to_owned(),
            message,
            field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_unique_snake_case() {
        let all = [
            DomainError::invalid("points", FieldReason::Missing),
            DomainError::Overflow { quantity: "points" },
            DomainError::NotEnrolled { field: "member_id" },
            DomainError::AlreadyEnrolled,
            DomainError::InsufficientPoints {
                available: 0,
                requested: 1,
            },
            DomainError::BelowMinimumRedeem {
                minimum: 2,
                requested: 1,
            },
            DomainError::UnknownOrder {
                order_id: "o".to_owned(),
            },
            DomainError::DuplicateOrder {
                order_id: "o".to_owned(),
            },
            DomainError::RefundExceedsSpend {
                spend_minor_units: 1,
                refunded_minor_units: 1,
                refund_minor_units: 1,
            },
            DomainError::UnknownRedemption {
                redemption_id: "r".to_owned(),
            },
            DomainError::DuplicateRedemption {
                redemption_id: "r".to_owned(),
            },
            DomainError::RedemptionAlreadyCancelled {
                redemption_id: "r".to_owned(),
            },
            DomainError::ProgramAlreadyDefined,
            DomainError::ProgramNotDefined,
            DomainError::DueWorkBehind,
            DomainError::LotsNotHeld {
                needed: LotsNeeded::All,
                receiver: false,
            },
        ];
        let mut codes: Vec<&str> = all.iter().map(DomainError::code).collect();
        for code in &codes {
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code} is snake_case"
            );
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "codes are unique");
        assert_eq!(all[0].to_string(), "field `points` is required");
        assert!(all[0].is_validation());
        assert!(!all[4].is_validation());
    }

    #[test]
    fn rejections_keep_the_code_and_name_only_invalid_fields() {
        let invalid = Rejection::from(DomainError::invalid(
            "spend.currency",
            FieldReason::UnknownCurrency {
                code: "XXX".to_owned(),
            },
        ));
        assert_eq!(invalid.code, "invalid_field");
        assert_eq!(invalid.field.as_deref(), Some("spend.currency"));
        assert_eq!(
            invalid.message,
            "field `spend.currency` is `XXX`, not an ISO 4217 currency the ledger knows"
        );
        let rule = Rejection::from(DomainError::InsufficientPoints {
            available: 3,
            requested: 5,
        });
        assert_eq!(rule.code, "insufficient_points");
        assert_eq!(
            rule.message,
            "insufficient points: 3 available, 5 requested"
        );
        assert_eq!(rule.field, None);
        let not_enrolled = Rejection::from(DomainError::NotEnrolled {
            field: "to_member_id",
        });
        assert_eq!(not_enrolled.code, "not_enrolled");
        assert_eq!(not_enrolled.field, None);
    }
}
