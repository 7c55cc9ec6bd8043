//! Verification of the whole log from genesis.

use super::{CF_CHAIN, CF_LOG, Store, decode_record, keys};
use crate::chain::{ChainHash, Head};
use crate::error::StoreError;
use rocksdb::ReadOptions;
use std::ops::Range;
use std::sync::mpsc;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// Every record decodes, sits at its position, and its recomputed hash
    /// equals the stored one; the head matches the last record.
    Verified {
        /// The head that was verified.
        head: Head,
    },
    /// The first position whose record or hash does not match.
    Mismatch {
        /// First bad position.
        position: u64,
        /// What did not match.
        reason: String,
    },
}

/// Progress of a verification, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// Records checked so far.
    pub checked: u64,
    /// Head position at the start of the verification.
    pub total: u64,
}

/// Records one scan chunk carries from the reading thread, through the
/// decoding one, to the checking one.
const SCAN_CHUNK_RECORDS: usize = crate::limits::READ_CHUNK_RECORDS;
/// Chunks read ahead of the decoding, and decoded ahead of the check.
const SCAN_CHUNKS_AHEAD: usize = 4;
/// RocksDB's readahead for the two sequential scans.
const SCAN_READAHEAD_BYTES: usize = 2 << 20;

/// One record as the reading thread found it, its bytes in the chunk's
/// buffer.
struct Scanned {
    /// The position its log key names (`None`: a key that names none).
    position: Option<u64>,
    record: Range<usize>,
    /// The chain hash stored under the same key, if the chain has that key
    /// where the log has it.
    hash: Option<Range<usize>>,
    /// Why the record does not decode, or claims another position than its
    /// key's, as the decoding thread found (so that the checking thread
    /// only hashes).
    undecodable: Option<String>,
}

/// Consecutive records, in log order, and how the scan ended after them.
#[derive(Default)]
struct ScanChunk {
    records: Vec<Scanned>,
    bytes: Vec<u8>,
    /// Set on the last chunk: the log ended early (`Ok(false)`: no more
    /// records; an error: the iterator failed), or the head was reached
    /// (`Ok(true)` when a record lies past it).
    end: Option<Result<bool, StoreError>>,
}

impl ScanChunk {
    fn push(&mut self, position: Option<u64>, record: &[u8], hash: Option<&[u8]>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(record);
        let record = start..self.bytes.len();
        let hash = hash.map(|hash| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(hash);
            start..self.bytes.len()
        });
        self.records.push(Scanned {
            position,
            record,
            hash,
            undecodable: None,
        });
    }

    /// Decodes every record, noting why one does not. A key that names no
    /// position is reported as a missing record, not decoded.
    fn decode(&mut self) {
        for entry in &mut self.records {
            if let Some(position) = entry.position {
                entry.undecodable = decode_record(position, &self.bytes[entry.record.clone()])
                    .err()
                    .map(|error| error.to_string());
            }
        }
    }
}

impl Store {
    /// Recomputes the chain from genesis up to the head read at the start,
    /// calling `progress` after each chunk of records.
    ///
    /// Names the first position whose stored hash differs from the
    /// recomputed one, whose record does not decode or claims another
    /// position, or that is missing. Records appended while it runs are not
    /// checked (they are past the head it read).
    ///
    /// Three threads in a pipeline of chunks: one reads the log and the
    /// chain, one decodes each record, the caller's hashes them in order.
    /// Reading and decoding on one thread took three times as long as the
    /// hashing (`perf`); apart, the three share two cores about evenly.
    pub fn verify(
        &self,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<VerifyOutcome, StoreError> {
        // One snapshot for the head and both iterators: records appended
        // while we run are invisible, so "a record past the head" below is a
        // real finding, not a race with the writer.
        let snapshot = self.db.snapshot();
        let head = match snapshot.get_pinned_cf(self.cf(CF_CHAIN), keys::HEAD_KEY)? {
            None => Head::default(),
            Some(bytes) => super::decode_head(&bytes)?,
        };
        let (chunks, scanned) = mpsc::sync_channel::<ScanChunk>(SCAN_CHUNKS_AHEAD);
        let (decoded_chunks, decoded) = mpsc::sync_channel::<ScanChunk>(SCAN_CHUNKS_AHEAD);
        let cannot_start = |what: &str, error: std::io::Error| StoreError::Corrupt {
            position: 0,
            reason: format!("cannot start the {what} thread: {error}"),
        };
        std::thread::scope(|scope| {
            let snapshot = &snapshot;
            std::thread::Builder::new()
                .name("ledger-verify-read".into())
                .spawn_scoped(scope, move || self.scan(snapshot, head.position, &chunks))
                .map_err(|error| cannot_start("reading", error))?;
            std::thread::Builder::new()
                .name("ledger-verify-decode".into())
                .spawn_scoped(scope, move || {
                    // Ends when the reader has sent its last chunk, or when
                    // the checker hangs up; either way it drops `scanned`,
                    // which stops a reader still sending.
                    for mut chunk in scanned {
                        chunk.decode();
                        if decoded_chunks.send(chunk).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|error| cannot_start("decoding", error))?;
            // Returning drops `decoded`: the decoder, then the reader, stop.
            check_scanned(&decoded, head, &mut progress)
        })
    }

    /// The reading side of [`Store::verify`]: sends `head_position` records
    /// (fewer if the log ends first) in chunks, then how the scan ended.
    /// Stops when the checking side hangs up.
    fn scan(
        &self,
        snapshot: &rocksdb::SnapshotWithThreadMode<'_, rocksdb::DB>,
        head_position: u64,
        chunks: &mpsc::SyncSender<ScanChunk>,
    ) {
        let options = || {
            let mut options = ReadOptions::default();
            // A scan of the whole log would evict what the server reads.
            options.fill_cache(false);
            options.set_readahead_size(SCAN_READAHEAD_BYTES);
            options
        };
        let mut log = snapshot.raw_iterator_cf_opt(self.cf(CF_LOG), options());
        let mut chain = snapshot.raw_iterator_cf_opt(self.cf(CF_CHAIN), options());
        log.seek(keys::position_key(1));
        chain.seek(keys::position_key(1));
        let mut chunk = ScanChunk::default();
        let mut read = 0u64;
        let end = loop {
            if read == head_position {
                break log.status().map(|()| log.key().is_some());
            }
            let (Some(key), Some(record)) = (log.key(), log.value()) else {
                break log.status().map(|()| false);
            };
            let hash = match (chain.key(), chain.value()) {
                (Some(chain_key), Some(value)) if chain_key == key => Some(value),
                _ => None,
            };
            chunk.push(keys::parse_position_key(key), record, hash);
            read += 1;
            log.next();
            chain.next();
            if chunk.records.len() == SCAN_CHUNK_RECORDS
                && chunks.send(std::mem::take(&mut chunk)).is_err()
            {
                return;
            }
        };
        let end = end.and_then(|past_head| chain.status().map(|()| past_head));
        chunk.end = Some(end.map_err(StoreError::from));
        // The checking side may have stopped at a mismatch already.
        let _ = chunks.send(chunk);
    }
}

/// The checking side of [`Store::verify`].
fn check_scanned(
    scanned: &mpsc::Receiver<ScanChunk>,
    head: Head,
    progress: &mut impl FnMut(VerifyProgress),
) -> Result<VerifyOutcome, StoreError> {
    let mut hash = ChainHash::GENESIS;
    let mut next = 1u64;
    let mismatch = |position: u64, reason: String| Ok(VerifyOutcome::Mismatch { position, reason });
    loop {
        let Ok(chunk) = scanned.recv() else {
            return Err(StoreError::Corrupt {
                position: next,
                reason: "the reading or decoding thread stopped".into(),
            });
        };
        for entry in &chunk.records {
            if entry.position != Some(next) {
                return mismatch(
                    next,
                    "record is missing (the log skips this position)".into(),
                );
            }
            let bytes = &chunk.bytes[entry.record.clone()];
            if let Some(reason) = &entry.undecodable {
                return mismatch(next, reason.clone());
            }
            hash = hash.next(next, bytes);
            let Some(stored) = entry.hash.clone() else {
                return mismatch(next, "no chain hash is stored".into());
            };
            if chunk.bytes[stored] != hash.0 {
                return mismatch(
                    next,
                    format!(
                        "recomputed hash {} differs from the stored one",
                        hash.to_hex()
                    ),
                );
            }
            if next.is_multiple_of(crate::limits::READ_CHUNK_RECORDS as u64) {
                progress(VerifyProgress {
                    checked: next,
                    total: head.position,
                });
            }
            next += 1;
        }
        match chunk.end {
            None => continue,
            Some(Err(error)) => return Err(error),
            Some(Ok(_)) if next <= head.position => {
                return mismatch(next, "record is missing".into());
            }
            Some(Ok(true)) => {
                return mismatch(head.position + 1, "a record lies past the head".into());
            }
            Some(Ok(false)) => break,
        }
    }
    progress(VerifyProgress {
        checked: head.position,
        total: head.position,
    });
    if hash != head.hash {
        return mismatch(
            head.position,
            "the stored head hash differs from the recomputed chain".into(),
        );
    }
    Ok(VerifyOutcome::Verified { head })
}
