//! The input of a projection: one decoded log record.

use crate::error::ViewError;
use ledger_core::domain::Event;
use ledger_core::record::event_from_record;
use ledger_core::store::{StoredRecord, decode_record};

/// One record of the log, decoded for folding.
#[derive(Debug, Clone)]
pub struct LogEvent {
    /// Global position.
    pub position: u64,
    /// Stream name (`program/{p}` or `member/{p}/{m}`).
    pub stream: String,
    /// Version of the stream after this event.
    pub stream_version: u64,
    /// The program.
    pub program_id: String,
    /// Engine time it was recorded.
    pub recorded_at_us: i64,
    /// The event, with the command's business time.
    pub event: Event,
}

impl LogEvent {
    /// Decodes a stored record; a record that does not decode is an error at
    /// its position (a view never skips one).
    pub fn decode(stored: &StoredRecord) -> Result<LogEvent, ViewError> {
        LogEvent::decode_bytes(stored.position, &stored.bytes)
    }

    /// Decodes the record `bytes` stored at `position`, as
    /// [`LogEvent::decode`].
    pub fn decode_bytes(position: u64, bytes: &[u8]) -> Result<LogEvent, ViewError> {
        let record = decode_record(position, bytes)?;
        let event = event_from_record(&record)
            .map_err(|error| ViewError::event(position, error.to_string()))?;
        Ok(LogEvent {
            position,
            stream: record.stream,
            stream_version: record.stream_version,
            program_id: record.program_id,
            recorded_at_us: record.recorded_at_us,
            event,
        })
    }

    /// The member id when this is a member stream's event.
    pub fn member_id(&self) -> Option<&str> {
        let rest = self.stream.strip_prefix("member/")?;
        let (_, member) = rest.split_once('/')?;
        Some(member)
    }
}
