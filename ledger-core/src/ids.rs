//! Identifiers with their invariants checked at construction.

use crate::error::{FieldError, FieldReason};
use crate::limits::{IDEMPOTENCY_KEY_BYTES_MAX, MEMBER_ID_BYTES_MAX, PROGRAM_ID_BYTES_MAX};
use serde::{Deserialize, Serialize};
use std::fmt;

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'@' | b'-')
}

/// Checks `value` against an alphabet and a length bound, naming `field`.
fn check(field: &str, value: &str, max: usize, allowed: fn(u8) -> bool) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, FieldReason::Missing));
    }
    if value.len() > max {
        return Err(FieldError::new(
            field,
            FieldReason::TooLong {
                len: value.len(),
                max,
            },
        ));
    }
    if let Some(offset) = value.bytes().position(|b| !allowed(b)) {
        return Err(FieldError::new(field, FieldReason::BadCharacter { offset }));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and names `field` in the error.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
                check(field, value, $max, $allowed)?;
                Ok($name(value.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(value: String) -> Result<Self, FieldError> {
                check(stringify!($name), &value, $max, $allowed)?;
                Ok($name(value))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

id_type!(
    /// A loyalty program (tenant): 1..=64 bytes of `[A-Za-z0-9._:@-]`.
    ProgramId,
    PROGRAM_ID_BYTES_MAX,
    is_id_byte
);
id_type!(
    /// A member of one program: 1..=128 bytes of `[A-Za-z0-9._:@-]`.
    MemberId,
    MEMBER_ID_BYTES_MAX,
    is_id_byte
);
id_type!(
    /// A client's idempotency key, scoped to its program: 1..=128 bytes of
    /// visible ASCII.
    IdempotencyKey,
    IDEMPOTENCY_KEY_BYTES_MAX,
    |b: u8| b.is_ascii_graphic()
);

/// A lot: a member-local sequence number from 1, assigned when the lot is
/// created. 0 is never a lot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LotId(u64);

impl LotId {
    /// Wraps a raw lot number (from the log or a test).
    pub const fn new(value: u64) -> Self {
        LotId(value)
    }

    /// The raw lot number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id after this one, or `None` when the sequence is exhausted.
    pub fn checked_next(self) -> Option<LotId> {
        self.0.checked_add(1).map(LotId)
    }
}

impl fmt::Display for LotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A log stream: one per program and one per member.
///
/// Its name is `program/{program_id}` or `member/{program_id}/{member_id}`;
/// `/` is outside the id alphabet, so names are unambiguous, and neither name
/// contains a zero byte, which the stream index uses as a separator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamName(String);

impl StreamName {
    /// The stream of a program.
    pub fn program(program_id: &ProgramId) -> Self {
        StreamName(format!("program/{program_id}"))
    }

    /// The stream of a member.
    pub fn member(program_id: &ProgramId, member_id: &MemberId) -> Self {
        StreamName(format!("member/{program_id}/{member_id}"))
    }

    /// Parses a stream name as written in records and requests.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                FieldReason::Invalid(
                    "must be program/{program_id} or member/{program_id}/{member_id}".into(),
                ),
            )
        };
        let mut parts = value.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("program"), Some(program), None, None) => {
                Ok(StreamName::program(&ProgramId::parse(field, program)?))
            }
            (Some("member"), Some(program), Some(member), None) => Ok(StreamName::member(
                &ProgramId::parse(field, program)?,
                &MemberId::parse(field, member)?,
            )),
            _ => Err(bad()),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a member's stream.
    pub fn is_member(&self) -> bool {
        self.0.starts_with("member/")
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_limits_name_the_field() {
        assert!(MemberId::parse("member_id", "alice@example.com").is_ok());
        let empty = MemberId::parse("member_id", "").unwrap_err();
        assert_eq!(empty.reason, FieldReason::Missing);
        assert_eq!(empty.field, "member_id");
        let long = "a".repeat(MEMBER_ID_BYTES_MAX + 1);
        let too_long = MemberId::parse("member_id", &long).unwrap_err();
        assert_eq!(too_long.reason, FieldReason::TooLong { len: 129, max: 128 });
        let bad = MemberId::parse("member_id", "ab/c").unwrap_err();
        assert_eq!(bad.reason, FieldReason::BadCharacter { offset: 2 });
        assert!(MemberId::parse("member_id", &"a".repeat(MEMBER_ID_BYTES_MAX)).is_ok());
    }

    #[test]
    fn idempotency_key_refuses_spaces_and_controls() {
        assert!(IdempotencyKey::parse("idempotency_key", "order-1/retry#2").is_ok());
        assert!(IdempotencyKey::parse("idempotency_key", "a b").is_err());
        assert!(IdempotencyKey::parse("idempotency_key", "a\0").is_err());
    }

    #[test]
    fn stream_names_round_trip() {
        let program = ProgramId::parse("p", "coffee").unwrap();
        let member = MemberId::parse("m", "m-1").unwrap();
        let stream = StreamName::member(&program, &member);
        assert_eq!(stream.as_str(), "member/coffee/m-1");
        assert_eq!(StreamName::parse("s", stream.as_str()).unwrap(), stream);
        assert_eq!(
            StreamName::parse("s", "program/coffee").unwrap(),
            StreamName::program(&program)
        );
        assert!(StreamName::parse("s", "member/coffee").is_err());
        assert!(StreamName::parse("s", "member/coffee/a/b").is_err());
    }
}
