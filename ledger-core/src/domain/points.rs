//! Points: a signed 64-bit integer with checked arithmetic only. Overflow is
//! an error value, never a wrap and never a panic.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use crate::error::FieldReason;
use crate::limits::{POINTS_PER_COMMAND_MAX, POINTS_PER_COMMAND_MIN};

/// An amount of points. Signed, because adjustments are signed; balances may
/// be negative only through debt.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Points(i64);

impl Points {
    /// No points.
    pub const ZERO: Points = Points(0);

    /// Wraps a raw amount.
    pub const fn new(value: i64) -> Self {
        Self(value)
    }

    /// The raw amount.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// `self + other`, or an overflow error naming `quantity`.
    pub fn checked_add(self, other: Points, quantity: &'static str) -> Result<Points, DomainError> {
        self.0
            .checked_add(other.0)
            .map(Points)
            .ok_or(DomainError::Overflow { quantity })
    }

    /// `self - other`, or an overflow error naming `quantity`.
    pub fn checked_sub(self, other: Points, quantity: &'static str) -> Result<Points, DomainError> {
        self.0
            .checked_sub(other.0)
            .map(Points)
            .ok_or(DomainError::Overflow { quantity })
    }

    /// `-self`, or an overflow error for `i64::MIN`.
    pub fn checked_neg(self, quantity: &'static str) -> Result<Points, DomainError> {
        self.0
            .checked_neg()
            .map(Points)
            .ok_or(DomainError::Overflow { quantity })
    }

    /// True when strictly above zero.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Checks an amount named by a command: 1..=`POINTS_PER_COMMAND_MAX`.
    pub fn for_command(value: i64, field: &'static str) -> Result<Points, DomainError> {
        if (POINTS_PER_COMMAND_MIN..=POINTS_PER_COMMAND_MAX).contains(&value) {
            Ok(Points(value))
        } else {
            Err(DomainError::invalid(
                field,
                FieldReason::OutOfRange {
                    value: value.into(),
                    min: POINTS_PER_COMMAND_MIN.into(),
                    max: POINTS_PER_COMMAND_MAX.into(),
                },
            ))
        }
    }

    /// Sum of amounts, or an overflow error naming `quantity`.
    pub fn checked_sum(
        values: impl IntoIterator<Item = Points>,
        quantity: &'static str,
    ) -> Result<Points, DomainError> {
        values
            .into_iter()
            .try_fold(Points::ZERO, |sum, value| sum.checked_add(value, quantity))
    }

    /// `self + other` for folds over already-decided events (`apply`): the
    /// sums were checked when decided, so overflow here means a corrupt log.
    /// It is asserted in debug builds and saturates in release builds rather
    /// than panicking on log input.
    pub(super) fn add_decided(self, other: Points, invariant: &'static str) -> Points {
        let sum = self.0.checked_add(other.0);
        debug_assert!(
            sum.is_some(),
            "{invariant}: sum checked at decide time overflowed"
        );
        Points(self.0.saturating_add(other.0))
    }

    /// `self - other` for folds over already-decided events; see `add_decided`.
    pub(super) fn sub_decided(self, other: Points, invariant: &'static str) -> Points {
        let difference = self.0.checked_sub(other.0);
        debug_assert!(
            difference.is_some(),
            "{invariant}: difference checked at decide time overflowed"
        );
        Points(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
