//! Errors of the views: storage, a row that does not decode, an event a
//! projection cannot fold, and bad query input.

use ledger_core::error::{FieldError, StoreError};

/// Why a view could not be read or written, or an event not folded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row does not decode or breaks the view's format.
    #[error("view row {what}: {reason}")]
    Row {
        /// Which row.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An event the projection cannot fold: the view stops before it.
    #[error("event at position {position}: {reason}")]
    Event {
        /// Its log position.
        position: u64,
        /// Why it cannot be folded.
        reason: String,
    },
}

impl ViewError {
    /// A row error.
    pub fn row(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ViewError::Row {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// An event error.
    pub fn event(position: u64, reason: impl Into<String>) -> Self {
        ViewError::Event {
            position,
            reason: reason.into(),
        }
    }
}

impl From<rocksdb::Error> for ViewError {
    fn from(error: rocksdb::Error) -> Self {
        ViewError::Store(StoreError::Rocks(error))
    }
}

/// Why a query was not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Bad input, naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// No such member or program in the view at the position it reflects.
    #[error("{what} not found (view at position {position})")]
    NotFound {
        /// What was looked for.
        what: String,
        /// The position the view reflects.
        position: u64,
    },
    /// The view could not be read.
    #[error(transparent)]
    View(#[from] ViewError),
}
