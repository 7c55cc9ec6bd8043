//! Verification of the whole log from genesis.

use super::{CF_CHAIN, CF_LOG, Store, decode_record, keys};
use crate::chain::{ChainHash, Head};
use crate::error::StoreError;

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

impl Store {
    /// Recomputes the chain from genesis up to the head read at the start,
    /// calling `progress` after each chunk of records.
    ///
    /// Names the first position whose stored hash differs from the
    /// recomputed one, whose record does not decode or claims another
    /// position, or that is missing. Records appended while it runs are not
    /// checked (they are past the head it read).
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
        let mut hash = ChainHash::GENESIS;
        let mut next = 1u64;
        let mut log = snapshot.raw_iterator_cf(self.cf(CF_LOG));
        let mut chain = snapshot.raw_iterator_cf(self.cf(CF_CHAIN));
        log.seek(keys::position_key(1));
        chain.seek(keys::position_key(1));
        while next <= head.position {
            let mismatch = |reason: String| VerifyOutcome::Mismatch {
                position: next,
                reason,
            };
            let (Some(key), Some(bytes)) = (log.key(), log.value()) else {
                log.status()?;
                return Ok(mismatch("record is missing".into()));
            };
            if keys::parse_position_key(key) != Some(next) {
                return Ok(mismatch(
                    "record is missing (the log skips this position)".into(),
                ));
            }
            if let Err(error) = decode_record(next, bytes) {
                return Ok(mismatch(error.to_string()));
            }
            hash = hash.next(next, bytes);
            let stored = match (chain.key(), chain.value()) {
                (Some(chain_key), Some(value)) if chain_key == key => value,
                _ => return Ok(mismatch("no chain hash is stored".into())),
            };
            if stored != hash.0.as_slice() {
                return Ok(mismatch(format!(
                    "recomputed hash {} differs from the stored one",
                    hash.to_hex()
                )));
            }
            if next.is_multiple_of(crate::limits::READ_CHUNK_RECORDS as u64) {
                progress(VerifyProgress {
                    checked: next,
                    total: head.position,
                });
            }
            next += 1;
            log.next();
            chain.next();
        }
        log.status()?;
        chain.status()?;
        if log.key().is_some() {
            return Ok(VerifyOutcome::Mismatch {
                position: head.position + 1,
                reason: "a record lies past the head".into(),
            });
        }
        progress(VerifyProgress {
            checked: head.position,
            total: head.position,
        });
        if hash != head.hash {
            return Ok(VerifyOutcome::Mismatch {
                position: head.position,
                reason: "the stored head hash differs from the recomputed chain".into(),
            });
        }
        Ok(VerifyOutcome::Verified { head })
    }
}
