//! `ledgerd export`: the log as JSON Lines or CSV, by position or by
//! business time, with each record's exact stored bytes (base64) and chain
//! hash, so the chain can be checked from an export alone.

use anyhow::Context;
use base64::Engine as _;
use ledger_core::limits::READ_CHUNK_RECORDS;
use ledger_core::store::Store;
use serde::Serialize;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A header line, then one row per record.
    Csv,
}

/// Which records to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// First position (1 = the start).
    pub from_position: u64,
    /// Last position (`None` = the head).
    pub to_position: Option<u64>,
    /// Only records whose business time is at or after this (µs).
    pub from_us: Option<i64>,
    /// Only records whose business time is before this (µs).
    pub to_us: Option<i64>,
}

/// One exported record.
#[derive(Debug, Serialize)]
struct Row<'a> {
    position: u64,
    /// Chain hash at `position`, hex.
    hash: String,
    stream: &'a str,
    stream_version: u64,
    program_id: &'a str,
    occurred_at: String,
    recorded_at: String,
    idempotency_key: &'a str,
    principal: &'a str,
    /// The event's kind, e.g. `PointsEarned`.
    event: &'a str,
    /// The exact stored `EventRecord` bytes, base64 (standard alphabet).
    record: String,
}

/// RFC 3339 in UTC with microseconds.
pub fn rfc3339(us: i64) -> String {
    let time = if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    };
    humantime::format_rfc3339_micros(time).to_string()
}

/// Microseconds since the epoch of an RFC 3339 time given for `field`.
pub fn parse_time(field: &str, text: &str) -> anyhow::Result<i64> {
    let time = humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("{field}: `{text}` is not an RFC 3339 time"))?;
    let since = time
        .duration_since(UNIX_EPOCH)
        .with_context(|| format!("{field}: `{text}` is before 1970"))?;
    i64::try_from(since.as_micros()).with_context(|| format!("{field}: `{text}` is too late"))
}

/// The kind of an event, e.g. `PointsEarned` ("" for an event without one).
pub fn event_name(event: &ledger_core::pb::Event) -> &'static str {
    use ledger_core::pb::event::Kind;
    match event.kind.as_ref() {
        Some(Kind::ProgramDefined(_)) => "ProgramDefined",
        Some(Kind::ProgramRulesChanged(_)) => "ProgramRulesChanged",
        Some(Kind::MemberEnrolled(_)) => "MemberEnrolled",
        Some(Kind::PointsEarned(_)) => "PointsEarned",
        Some(Kind::PointsAwarded(_)) => "PointsAwarded",
        Some(Kind::PointsRedeemed(_)) => "PointsRedeemed",
        Some(Kind::RedemptionCancelled(_)) => "RedemptionCancelled",
        Some(Kind::EarnReversed(_)) => "EarnReversed",
        Some(Kind::PointsAdjusted(_)) => "PointsAdjusted",
        Some(Kind::PointsTransferred(_)) => "PointsTransferred",
        Some(Kind::PointsMatured(_)) => "PointsMatured",
        Some(Kind::PointsExpired(_)) => "PointsExpired",
        Some(Kind::TierChanged(_)) => "TierChanged",
        None => "",
    }
}

enum Sink<'a> {
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Json(&'a mut dyn Write),
}

/// Writes the selected records to `out`; calls `progress(position, last)`
/// after each chunk. Returns how many records were written.
pub fn export(
    store: &Store,
    format: Format,
    selection: Selection,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<u64> {
    let head = store.head()?.position;
    let last = selection.to_position.map_or(head, |to| to.min(head));
    let mut sink = match format {
        Format::Csv => Sink::Csv(Box::new(csv::Writer::from_writer(out))),
        Format::Jsonl => Sink::Json(out),
    };
    let mut written = 0u64;
    let mut next = selection.from_position.max(1);
    let mut json_out = Vec::new();
    while next <= last {
        let records = store.read_range(next, last, READ_CHUNK_RECORDS)?;
        if records.is_empty() {
            anyhow::bail!("position {next} is below the head but has no record");
        }
        for stored in &records {
            next = stored.position + 1;
            let record = stored.decode()?;
            let in_range = selection
                .from_us
                .is_none_or(|from| record.occurred_at_us >= from)
                && selection.to_us.is_none_or(|to| record.occurred_at_us < to);
            if !in_range {
                continue;
            }
            let row = Row {
                position: stored.position,
                hash: stored.hash.to_hex(),
                stream: &record.stream,
                stream_version: record.stream_version,
                program_id: &record.program_id,
                occurred_at: rfc3339(record.occurred_at_us),
                recorded_at: rfc3339(record.recorded_at_us),
                idempotency_key: &record.idempotency_key,
                principal: &record.principal,
                event: record.event.as_ref().map_or("", event_name),
                record: base64::engine::general_purpose::STANDARD.encode(&stored.bytes),
            };
            match &mut sink {
                Sink::Csv(csv) => csv.serialize(&row)?,
                Sink::Json(out) => {
                    json_out.clear();
                    serde_json::to_writer(&mut json_out, &row)?;
                    json_out.push(b'\n');
                    out.write_all(&json_out)?;
                }
            }
            written += 1;
        }
        progress(next - 1, last);
    }
    match &mut sink {
        Sink::Csv(csv) => csv.flush()?,
        Sink::Json(out) => out.flush()?,
    }
    Ok(written)
}
