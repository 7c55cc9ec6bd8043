//! The one place where engine errors become gRPC statuses.
//!
//! Bad input -> INVALID_ARGUMENT with a `google.rpc.BadRequest` detail naming
//! the field; unknown program or member -> NOT_FOUND; other rule rejections
//! -> FAILED_PRECONDITION; idempotency key reused -> ALREADY_EXISTS; version mismatch ->
//! ABORTED; queue full -> RESOURCE_EXHAUSTED; storage failure -> UNAVAILABLE
//! (details logged, not returned); a full disk -> UNAVAILABLE saying so, since
//! a retry succeeds once space is freed. Never INTERNAL for bad input.

use ledger_core::error::{CommandError, FieldError, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// INVALID_ARGUMENT naming `field`.
pub fn invalid_field(error: &FieldError) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(error.field.clone(), error.reason.to_string());
    Status::with_error_details(Code::InvalidArgument, error.to_string(), details)
}

/// What a caller is told when a write was refused for a full disk. Free
/// byte counts and paths stay in the server log.
pub const DISK_FULL_MESSAGE: &str = "storage is full: the ledger's disk has no room for new writes, nothing of this command \
     was written; reads still work; retry later";

/// A storage failure: logged in full, answered as UNAVAILABLE.
pub fn storage(error: &StoreError) -> Status {
    match error {
        _ if error.is_disk_full() => {
            tracing::error!(%error, "write refused: disk full");
            Status::unavailable(DISK_FULL_MESSAGE)
        }
        StoreError::Corrupt { .. } => {
            tracing::error!(%error, "stored data is corrupt");
            Status::internal("stored data failed an integrity check; see the server log")
        }
        _ => {
            tracing::error!(%error, "storage failure");
            Status::unavailable("storage is unavailable; retry later")
        }
    }
}

/// Maps a query's error.
pub fn query(error: &projections::QueryError) -> Status {
    match error {
        projections::QueryError::Invalid(field) => invalid_field(field),
        projections::QueryError::NotFound { .. } => Status::not_found(error.to_string()),
        projections::QueryError::View(projections::ViewError::Store(store)) => storage(store),
        projections::QueryError::View(view) => {
            tracing::error!(%view, "a view row failed to read");
            Status::internal("a view row failed an integrity check; see the server log")
        }
        _ => Status::unavailable(error.to_string()),
    }
}

/// Rule rejections that mean "no such member or program": NOT_FOUND, even
/// when the rejection names the field (`program_id`) it is about.
const NOT_FOUND_CODES: [&str; 3] = ["unknown_program", "program_not_defined", "not_enrolled"];

/// Maps one command's error.
pub fn command(error: &CommandError) -> Status {
    match error {
        CommandError::Invalid(field) => invalid_field(field),
        CommandError::Rejected(rejection) if NOT_FOUND_CODES.contains(&rejection.code.as_str()) => {
            Status::not_found(rejection.to_string())
        }
        CommandError::Rejected(rejection) => match &rejection.field {
            Some(field) => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(field.clone(), rejection.message.clone());
                Status::with_error_details(Code::InvalidArgument, rejection.to_string(), details)
            }
            None => Status::failed_precondition(rejection.to_string()),
        },
        CommandError::IdempotencyKeyReused { .. } => Status::already_exists(error.to_string()),
        CommandError::VersionConflict { .. } => Status::aborted(error.to_string()),
        CommandError::Overloaded => Status::resource_exhausted(error.to_string()),
        CommandError::Unavailable(reason) => {
            tracing::error!(%reason, "command failed in storage");
            Status::unavailable("storage is unavailable; retry later")
        }
        CommandError::DiskFull(reason) => {
            tracing::error!(%reason, "command refused: disk full");
            Status::unavailable(DISK_FULL_MESSAGE)
        }
        CommandError::Stopped => Status::unavailable("the server is shutting down"),
        // CommandError is non-exhaustive: a new kind must be mapped here
        // before it can reach a client as anything but UNAVAILABLE.
        _ => Status::unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::error::FieldReason;

    #[test]
    fn invalid_field_names_the_field_in_a_bad_request_detail() {
        let status = invalid_field(&FieldError::new("member_id", FieldReason::Missing));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_details_bad_request().expect("BadRequest detail");
        assert_eq!(details.field_violations[0].field, "member_id");
    }

    #[test]
    fn each_command_error_has_its_code() {
        let cases = [
            (CommandError::Overloaded, Code::ResourceExhausted),
            (
                CommandError::IdempotencyKeyReused { key: "k".into() },
                Code::AlreadyExists,
            ),
            (
                CommandError::VersionConflict {
                    stream: "s".into(),
                    expected: 1,
                    actual: 2,
                },
                Code::Aborted,
            ),
            (CommandError::Unavailable("disk".into()), Code::Unavailable),
            (
                CommandError::DiskFull("disk full".into()),
                Code::Unavailable,
            ),
            (
                CommandError::Rejected(ledger_core::error::Rejection {
                    field: Some("program_id".into()),
                    ..ledger_core::error::Rejection::new("unknown_program", "x")
                }),
                Code::NotFound,
            ),
            (
                CommandError::Rejected(ledger_core::error::Rejection::new("not_enrolled", "x")),
                Code::NotFound,
            ),
            (
                CommandError::Rejected(ledger_core::error::Rejection {
                    field: Some("spend.currency".into()),
                    ..ledger_core::error::Rejection::new("invalid_field", "x")
                }),
                Code::InvalidArgument,
            ),
            (
                CommandError::Rejected(ledger_core::error::Rejection::new(
                    "insufficient_points",
                    "x",
                )),
                Code::FailedPrecondition,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(command(&error).code(), code, "{error}");
        }
    }

    #[test]
    fn a_full_disk_is_unavailable_and_says_so() {
        let refused = StoreError::DiskFull {
            available_bytes: 1,
            reserve_bytes: 2,
        };
        for status in [storage(&refused), command(&CommandError::storage(&refused))] {
            assert_eq!(status.code(), Code::Unavailable);
            assert_eq!(status.message(), DISK_FULL_MESSAGE);
        }
        let other = command(&CommandError::storage(&StoreError::Injected));
        assert_eq!(other.code(), Code::Unavailable);
        assert_ne!(other.message(), DISK_FULL_MESSAGE);
    }
}
