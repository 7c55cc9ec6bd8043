//! The check shared by every caller-supplied text that is not an id: order,
//! redemption, transfer and campaign references, reasons, tags and names.

use crate::error::{FieldError, FieldReason};

/// Checks caller text: 1..=`max` bytes and no control characters, which
/// would corrupt exports and logs. Ids have their own, stricter alphabet
/// (`crate::ids`).
pub(super) fn check_text(
    field: impl Into<String>,
    value: &str,
    max: usize,
) -> Result<(), FieldError> {
    let reason = if value.is_empty() {
        FieldReason::Missing
    } else if value.len() > max {
        FieldReason::TooLong {
            len: value.len(),
            max,
        }
    } else if let Some((offset, _)) = value.char_indices().find(|(_, c)| c.is_control()) {
        FieldReason::BadCharacter { offset }
    } else {
        return Ok(());
    };
    Err(FieldError::new(field, reason))
}
