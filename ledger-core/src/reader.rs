//! Async reads of the log: a bounded range, or a subscription that catches up
//! and then follows the live head.
//!
//! Both read in chunks on tokio's blocking pool and hand records over a
//! bounded channel, so a slow consumer slows its reader, never the writer.
//! A subscription keeps one cursor (`next`): it reads `next..=head` for every
//! head it sees and then waits for the next head. Catch-up and the live tail
//! are the same loop, so there is no switch-over at which a record could be
//! skipped or sent twice.

use crate::chain::Head;
use crate::error::StoreError;
use crate::limits::READ_CHUNK_RECORDS;
use crate::store::{Store, StoredRecord};
use tokio::sync::{mpsc, watch};

/// Records in order, or the error that ended the stream.
pub type RecordStream = mpsc::Receiver<Result<StoredRecord, StoreError>>;

/// Streams records `from..=to` (bounded by the head at the time of reading).
pub fn read_range(store: Store, head: watch::Receiver<Head>, from: u64, to: u64) -> RecordStream {
    spawn_reader(store, head, from, Some(to))
}

/// Streams every record from `from` on: first the durable log, then each new
/// record as its group commit becomes durable. Ends when the receiver is
/// dropped or the writer stops.
pub fn subscribe(store: Store, head: watch::Receiver<Head>, from: u64) -> RecordStream {
    spawn_reader(store, head, from, None)
}

fn spawn_reader(
    store: Store,
    mut head: watch::Receiver<Head>,
    from: u64,
    until: Option<u64>,
) -> RecordStream {
    let (tx, rx) = mpsc::channel(READ_CHUNK_RECORDS);
    tokio::spawn(async move {
        let mut next = from.max(1);
        loop {
            let durable = head.borrow_and_update().position;
            let last = until.map_or(durable, |to| to.min(durable));
            if next <= last {
                let chunk_store = store.clone();
                let chunk = tokio::task::spawn_blocking(move || {
                    chunk_store.read_range(next, last, READ_CHUNK_RECORDS)
                })
                .await
                .unwrap_or_else(|error| {
                    Err(StoreError::Corrupt {
                        position: next,
                        reason: error.to_string(),
                    })
                });
                let records = match chunk {
                    Ok(records) if records.is_empty() => Err(StoreError::Corrupt {
                        position: next,
                        reason: "a durable position has no record".into(),
                    }),
                    other => other,
                };
                match records {
                    Ok(records) => {
                        for record in records {
                            debug_assert_eq!(
                                record.position, next,
                                "reader positions are contiguous"
                            );
                            next = record.position + 1;
                            if tx.send(Ok(record)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        // The consumer may be gone; then nobody needs the error.
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                }
                continue;
            }
            if until.is_some() {
                // A bounded read ends at `to` or at the head it found.
                return;
            }
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    });
    rx
}
