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
    /// An enum left at its UNSPECIFIED value.
    Unspecified,
    /// Zero where only a non-zero amount means anything.
    Zero,
    /// Not an ISO 4217 code the ledger knows.
    UnknownCurrency {
        /// The code given.
        code: String,
    },
    /// A currency other than the one required: money is never converted.
    WrongCurrency {
        /// The required ISO 4217 code.
        expected: String,
        /// The ISO 4217 code given.
        actual: String,
    },
    /// Not strictly greater than the previous entry's value.
    NotIncreasing {
        /// The previous entry's value.
        previous: i64,
        /// This entry's value.
        value: i64,
    },
    /// Repeats an earlier entry's value.
    Duplicate {
        /// The repeated value.
        value: String,
    },
    /// Names a tier the rules do not define.
    UnknownTier {
        /// The tier name given.
        name: String,
    },
    /// Set together with a field it excludes.
    Excludes {
        /// The other field.
        other: &'static str,
    },
    /// Not after another field's value.
    NotAfter {
        /// The other field.
        other: &'static str,
    },
    /// May not change once the program is defined.
    Immutable,
    /// Equal to a field it must differ from.
    SameAs {
        /// The other field.
        other: &'static str,
    },
    /// The command would earn more points than one command may carry.
    TooManyPoints {
        /// The limit, `POINTS_PER_COMMAND_MAX`.
        max: i64,
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
            FieldReason::Unspecified => write!(f, "must be specified"),
            FieldReason::Zero => write!(f, "must not be zero"),
            FieldReason::UnknownCurrency { code } => {
                write!(f, "is `{code}`, not an ISO 4217 currency the ledger knows")
            }
            FieldReason::WrongCurrency { expected, actual } => {
                write!(f, "is {actual}, but {expected} is required")
            }
            FieldReason::NotIncreasing { previous, value } => {
                write!(f, "is {value}, not above the previous {previous}")
            }
            FieldReason::Duplicate { value } => write!(f, "repeats `{value}`"),
            FieldReason::UnknownTier { name } => write!(f, "names the unknown tier `{name}`"),
            FieldReason::Excludes { other } => write!(f, "cannot be set together with `{other}`"),
            FieldReason::NotAfter { other } => write!(f, "must be after `{other}`"),
            FieldReason::Immutable => write!(f, "cannot change once the program is defined"),
            FieldReason::SameAs { other } => write!(f, "must differ from `{other}`"),
            FieldReason::TooManyPoints { max } => write!(f, "would earn more than {max} points"),
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

    /// The same error about the field at `prefix.` its path (`prefix`
    /// alone for an error about the whole value): for a nested message.
    pub fn within(self, prefix: &str) -> Self {
        let field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        FieldError::new(field, self.reason)
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
    /// RocksDB reported an error (IO, corruption it detected).
    #[error("storage: {0}")]
    Rocks(rocksdb::Error),
    /// The store's free-space guard refused a write before it reached
    /// RocksDB: the data directory's filesystem has less free space than the
    /// reserve (`limits::DISK_FREE_LOG_RESERVE_BYTES_DEFAULT` for the log).
    /// Nothing was written; writes go through again once space is freed.
    #[error(
        "disk full: {available_bytes} bytes free in the data directory, below the reserve of \
         {reserve_bytes} bytes; nothing was written"
    )]
    DiskFull {
        /// Free space seen, in bytes.
        available_bytes: u64,
        /// The reserve the write needed, in bytes.
        reserve_bytes: u64,
    },
    /// RocksDB itself ran out of space (in a write, a memtable flush or the
    /// MANIFEST). It then refuses every write (its background error) until it
    /// recovers by itself, which it does once enough space is free again.
    #[error("disk full: {0}")]
    NoSpace(rocksdb::Error),
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

/// RocksDB's text for its `kNoSpace` subcode, which it also gives to a
/// failed write while its no-space background error lasts. The Rust binding
/// exposes the code (`IOError`) but not the subcode, so the text is matched.
const ROCKSDB_NO_SPACE: &str = "No space left on device";

impl From<rocksdb::Error> for StoreError {
    fn from(error: rocksdb::Error) -> Self {
        if error.kind() == rocksdb::ErrorKind::IOError && error.as_ref().contains(ROCKSDB_NO_SPACE)
        {
            StoreError::NoSpace(error)
        } else {
            StoreError::Rocks(error)
        }
    }
}

impl StoreError {
    /// True for a full disk, whether the guard or RocksDB found it.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. } | StoreError::NoSpace(_))
    }

    /// True when the same operation may succeed later without anything
    /// being repaired: a full disk, an IO error, an injected failure. Stored
    /// data that fails a check, or a RocksDB corruption, is not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::DiskFull { .. } | StoreError::NoSpace(_) | StoreError::Injected => true,
            StoreError::Rocks(error) => matches!(
                error.kind(),
                rocksdb::ErrorKind::IOError
                    | rocksdb::ErrorKind::Busy
                    | rocksdb::ErrorKind::TryAgain
                    | rocksdb::ErrorKind::TimedOut
                    | rocksdb::ErrorKind::Incomplete
                    | rocksdb::ErrorKind::Aborted
            ),
            StoreError::Corrupt { .. } => false,
        }
    }
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
    /// The group commit holding this command was refused because the disk
    /// is full; nothing of it was written. A retry succeeds once space is
    /// freed, with no restart.
    #[error("storage full: {0}")]
    DiskFull(String),
    /// The writer has stopped (shutdown).
    #[error("the writer has stopped")]
    Stopped,
}

impl CommandError {
    /// The error of a command whose group commit failed with `error`.
    pub fn storage(error: &StoreError) -> CommandError {
        if error.is_disk_full() {
            CommandError::DiskFull(error.to_string())
        } else {
            CommandError::Unavailable(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_within_a_message_names_the_whole_path() {
        let error = FieldError::new("currency", FieldReason::Missing).within("spend");
        assert_eq!(error.field, "spend.currency");
        assert_eq!(error.reason, FieldReason::Missing);
        let error = error.within("event.points_earned");
        assert_eq!(error.field, "event.points_earned.spend.currency");
        let whole = FieldError::new("", FieldReason::Missing).within("rules");
        assert_eq!(whole.field, "rules");
    }
}
