//! RocksDB key encodings. Integers are big-endian so that byte order is
//! numeric order and range scans walk positions and versions in order.

use crate::ids::{IdempotencyKey, ProgramId, StreamName};

/// Key of the log and chain column families: `be_u64(position)`.
pub fn position_key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// Reads a position key back.
pub fn parse_position_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Prefix of one stream in the stream index: `name || 0x00`.
pub fn stream_prefix(stream: &StreamName) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.as_str().len() + 9);
    key.extend_from_slice(stream.as_str().as_bytes());
    key.push(0);
    key
}

/// Stream index key: `name || 0x00 || be_u64(version)`.
pub fn stream_key(stream: &StreamName, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// Writes the stream index key into a reused buffer (hot path of the writer).
pub fn stream_key_into(out: &mut Vec<u8>, stream: &StreamName, version: u64) {
    out.clear();
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(&version.to_be_bytes());
}

/// Idempotency index key: `program_id || 0x00 || key`; keys are scoped to
/// their program.
pub fn idempotency_key(program_id: &ProgramId, key: &IdempotencyKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(program_id.as_str().len() + key.as_str().len() + 1);
    out.extend_from_slice(program_id.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_str().as_bytes());
    out
}

/// Key of the chain head in the chain column family. Four bytes, so it never
/// collides with an eight-byte position key.
pub const HEAD_KEY: &[u8] = b"head";
