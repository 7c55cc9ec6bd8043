//! Target `record`: arbitrary bytes as a stored log value, through the
//! decode path every reader of the log takes (`store::decode_record`, then
//! `record::event_from_record`).
//!
//! Properties, for any bytes:
//! - decoding never panics; bytes that are not an `EventRecord` are a
//!   `Corrupt` error at the position asked, and so is a record that claims
//!   another position;
//! - an event that does not decode is a field error whose path starts at
//!   `event`, naming what is wrong;
//! - what decodes re-encodes (the domain event back to its record form, in
//!   the same envelope) to bytes that decode to the same event, and those
//!   bytes are a fixed point: encoding the event decoded from them gives
//!   them again.

use super::Violation;
use ledger_core::error::StoreError;
use ledger_core::pb;
use ledger_core::record::event_from_record;
use ledger_core::store::decode_record;
use prost::Message;

/// What one input did, for the smoke test's coverage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes are not an `EventRecord`.
    NotARecord,
    /// A record whose event did not decode; the error named the field.
    BadEvent,
    /// A record whose event decoded and round-tripped.
    Event,
}

/// Runs one input; `Err` is a broken property.
pub fn check(data: &[u8]) -> Result<Outcome, Violation> {
    // The position a store would have read the bytes under: the one they
    // claim, so that the rest of the path is reached; the claim itself is
    // checked against another position below.
    let Ok(claimed) = pb::EventRecord::decode(data) else {
        return match decode_record(1, data) {
            Err(StoreError::Corrupt { position: 1, .. }) => Ok(Outcome::NotARecord),
            other => Err(Violation::new(format!(
                "bytes prost refuses decoded as {other:?}, not as a Corrupt error at position 1"
            ))),
        };
    };
    let position = claimed.position;
    let elsewhere = position.wrapping_add(1);
    if !matches!(decode_record(elsewhere, data), Err(StoreError::Corrupt { position, .. }) if position == elsewhere)
    {
        return Err(Violation::new(format!(
            "a record claiming position {} was accepted at position {elsewhere}",
            claimed.position
        )));
    }
    let record = decode_record(position, data)
        .map_err(|error| Violation::new(format!("the claimed position was refused: {error}")))?;
    let event = match event_from_record(&record) {
        Ok(event) => event,
        Err(error) if error.field == "event" || error.field.starts_with("event.") => {
            return Ok(Outcome::BadEvent);
        }
        Err(error) => {
            return Err(Violation::new(format!(
                "an event decode error names `{}`, not a path under `event`: {error}",
                error.field
            )));
        }
    };
    if event.occurred_at_us != record.occurred_at_us {
        return Err(Violation::new(
            "the event's business time is not the record's occurred_at_us",
        ));
    }
    let reencoded = pb::EventRecord {
        event: Some((&event.kind).into()),
        ..record
    }
    .encode_to_vec();
    let again = decode_record(position, &reencoded)
        .map_err(|error| Violation::new(format!("a re-encoded record does not decode: {error}")))?;
    let event_again = event_from_record(&again)
        .map_err(|error| Violation::new(format!("a re-encoded event does not decode: {error}")))?;
    if event_again != event {
        return Err(Violation::new(format!(
            "the re-encoded event decodes to another event:\n first {event:?}\nsecond {event_again:?}"
        )));
    }
    let fixed = pb::EventRecord {
        event: Some((&event_again.kind).into()),
        ..again
    }
    .encode_to_vec();
    if fixed != reencoded {
        return Err(Violation::new(
            "encoding the re-decoded event gives other bytes: the record form is not canonical",
        ));
    }
    Ok(Outcome::Event)
}
