//! Errors at the crate's boundaries.
//!
//! Validation errors name the field and the limit; rule rejections are values
//! remembered under their idempotency key; storage failures are separate.

use std::fmt;

/// Why a field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldReason {
    /// The field is required and absent or empty.
    Missing,
    /// Longer than allowed.
    TooLong {
        /// Length seen, in bytes.
        len: usize,
        /// Maximum, in bytes.
        max: usize,
    },
    /// More entries than allowed.
    TooMany {
        /// Entries seen.
        count: usize,
        /// Maximum entries.
        max: usize,
    },
    /// A byte outside the field's alphabet.
    BadCharacter {
        /// Byte offset of the first bad character.
        offset: usize,
    },
    /// A number outside its range.
    OutOfRange {
        /// Value seen.
        value: i128,
        /// Smallest allowed.
        min: i128,
        /// Largest allowed.
        max: i128,
    },
    /// Anything else, said in words.
    Invalid(String),
}

impl fmt::Display for FieldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldReason::Missing => write!(f, "is required"),
            FieldReason::TooLong { len, max } => write!(f, "is {len} bytes, more than {max}"),
            FieldReason::TooMany { count, max } => {
                write!(f, "has {count} entries, more than {max}")
            }
            FieldReason::BadCharacter { offset } => {
                write!(f, "has a character outside its alphabet at byte {offset}")
            }
            FieldReason::OutOfRange { value, min, max } => {
                write!(f, "is {value}, outside {min}..={max}")
            }
            FieldReason::Invalid(why) => f.write_str(why),
        }
    }
}

/// A request field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {reason}")]
pub struct FieldError {
    /// Path of the field, e.g. `metadata[3].key`.
    pub field: String,
    /// What is wrong with it.
    pub reason: FieldReason,
}

impl FieldError {
    /// A field error for `field`.
    pub fn new(field: impl Into<String>, reason: FieldReason) -> Self {
        FieldError {
            field: field.into(),
            reason,
        }
    }
}

/// A command refused by a rule of the program (insufficient points, ...).
///
/// Rejections are remembered under the command's idempotency key, so a retry
/// gets the same answer even after the state changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// Stable snake_case code, e.g. `insufficient_points`.
    pub code: String,
    /// Human explanation.
    pub message: String,
    /// The request field the rejection is about (e.g. `spend.currency`).
    pub field: Option<String>,
}

impl Rejection {
    /// A rejection with a code and a message, about no particular field.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }
}

/// Failures of the RocksDB store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// RocksDB reported an error (IO, disk full, corruption it detected).
    #[error("storage: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// Stored bytes that do not decode or break an invariant of the format.
    #[error("corrupt store at position {position}: {reason}")]
    Corrupt {
        /// Log position, or 0 when not about one record.
        position: u64,
        /// What was found.
        reason: String,
    },
    /// A write failure injected by a test through [`crate::store::WriteFaults`].
    #[error("injected write failure")]
    Injected,
}

/// Why one command was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Bad input; the command never reached the writer.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A rule of the program refused it.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// The idempotency key was used before with a different request.
    #[error("idempotency key `{key}` was already used for a different request")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// `expected_version` did not match the stream.
    #[error("stream `{stream}` is at version {actual}, not the expected {expected}")]
    VersionConflict {
        /// Stream name.
        stream: String,
        /// Version the caller expected.
        expected: u64,
        /// Version found.
        actual: u64,
    },
    /// The writer's queue is full; retry later.
    #[error("overloaded: the writer queue is full")]
    Overloaded,
    /// The group commit holding this command failed; nothing of it was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The writer has stopped (shutdown).
    #[error("the writer has stopped")]
    Stopped,
}
