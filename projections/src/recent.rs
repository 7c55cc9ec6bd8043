//! The records the view workers read last, decoded once for all of them.
//!
//! At the head the four workers fold the same commits within milliseconds
//! of each other, and each read and decoded every record for itself: about
//! a seventh of each view's CPU under `batch` (BENCHMARKS.md). A worker now
//! takes what another has read already from here, and reads and decodes
//! only the rest. The log never changes below the durable head, so a record
//! read once is the record for every reader.
//!
//! Chunks are kept whole, never overlapping, up to [`RECENT_EVENTS_MAX`]
//! events; past that the lowest positions go first (the workers move
//! forward). A chunk larger than the bound, read while catching up, is not
//! kept.

use crate::error::ViewError;
use crate::event::LogEvent;
use crate::runtime::{CHUNK_EVENTS_MAX, lock, read_events};
use ledger_core::store::Store;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Most decoded events kept for the workers to share: several chunks at
/// the head under `batch` (a group commit of 1,000 purchases is about 1,000
/// events), a few MiB.
pub const RECENT_EVENTS_MAX: usize = 8_192;

/// Consecutive records of the log, as one worker read them.
pub struct Piece {
    events: Arc<[LogEvent]>,
    range: Range<usize>,
}

impl Piece {
    /// The records of this piece, in position order.
    pub fn events(&self) -> &[LogEvent] {
        // The range is within the chunk by construction.
        self.events.get(self.range.clone()).unwrap_or(&[])
    }
}

#[derive(Default)]
struct Held {
    /// First position of each chunk -> the chunk.
    chunks: BTreeMap<u64, Arc<[LogEvent]>>,
    events: usize,
}

impl Held {
    /// The kept chunk holding `position`, if any.
    fn holding(&self, position: u64) -> Option<(u64, &Arc<[LogEvent]>)> {
        let (&first, chunk) = self.chunks.range(..=position).next_back()?;
        (position - first < chunk.len() as u64).then_some((first, chunk))
    }

    /// The first position of the first kept chunk after `position`.
    fn next_after(&self, position: u64) -> Option<u64> {
        self.chunks
            .range(position + 1..)
            .next()
            .map(|(&first, _)| first)
    }

    /// Keeps `chunk` (starting at `first`) unless it is too large or meets
    /// a chunk kept meanwhile; then forgets the lowest chunks beyond the
    /// bound.
    fn keep(&mut self, first: u64, chunk: &Arc<[LogEvent]>, max_events: usize) {
        let Some(last) = (chunk.len() as u64)
            .checked_sub(1)
            .and_then(|extra| first.checked_add(extra))
        else {
            return;
        };
        let meets = self.holding(first).is_some()
            || self.next_after(first).is_some_and(|next| next <= last);
        if chunk.len() > max_events || meets {
            return;
        }
        self.chunks.insert(first, chunk.clone());
        self.events += chunk.len();
        while self.events > max_events {
            let Some((_, lowest)) = self.chunks.pop_first() else {
                break;
            };
            self.events -= lowest.len();
        }
    }
}

/// What [`RecentEvents::read`] finds at a position.
enum Found {
    /// A kept chunk holds it.
    Kept(Piece),
    /// Nothing does: read from the store up to this position, where the
    /// next kept chunk begins (or the end of the read).
    ReadUpTo(u64),
}

/// The decoded records the workers of one runtime share.
pub struct RecentEvents {
    held: Mutex<Held>,
    max_events: usize,
}

impl RecentEvents {
    /// Keeps at most `max_events` events.
    pub fn new(max_events: usize) -> RecentEvents {
        RecentEvents {
            held: Mutex::new(Held::default()),
            max_events,
        }
    }

    /// Records `from..=up_to`, at most [`CHUNK_EVENTS_MAX`] of them, in
    /// order: those kept here as they are, the rest read from `store`,
    /// decoded and kept. An error names the position that could not be read
    /// or decoded.
    pub fn read(
        &self,
        store: &Store,
        from: u64,
        up_to: u64,
    ) -> Result<Vec<Piece>, (u64, ViewError)> {
        let mut pieces = Vec::new();
        let mut next = from;
        let mut taken = 0;
        while next <= up_to && taken < CHUNK_EVENTS_MAX {
            let want = usize::try_from(up_to - next + 1)
                .unwrap_or(usize::MAX)
                .min(CHUNK_EVENTS_MAX - taken);
            let found = {
                let held = lock(&self.held);
                match held.holding(next) {
                    Some((first, chunk)) => {
                        let start = (next - first) as usize;
                        let end = chunk.len().min(start + want);
                        Found::Kept(Piece {
                            events: chunk.clone(),
                            range: start..end,
                        })
                    }
                    None => Found::ReadUpTo(
                        held.next_after(next)
                            .map_or(up_to, |kept| up_to.min(kept - 1)),
                    ),
                }
            };
            let piece = match found {
                Found::Kept(piece) => piece,
                Found::ReadUpTo(read_up_to) => {
                    let events: Arc<[LogEvent]> =
                        read_events(store, next, read_up_to, want)?.into();
                    lock(&self.held).keep(next, &events, self.max_events);
                    let range = 0..events.len();
                    Piece { events, range }
                }
            };
            debug_assert_eq!(
                piece.events().first().map(|event| event.position),
                Some(next),
                "a piece starts where asked, with at least one record"
            );
            let count = piece.range.len();
            next += count as u64;
            taken += count;
            pieces.push(piece);
        }
        Ok(pieces)
    }

    #[cfg(test)]
    fn kept(&self) -> Vec<(u64, usize)> {
        lock(&self.held)
            .chunks
            .iter()
            .map(|(&first, chunk)| (first, chunk.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::read_chunk;
    use ledger_core::clock::ManualClock;
    use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId, StreamName};
    use ledger_core::pb;
    use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig};

    const T0_US: i64 = 1_750_000_000_000_000;

    /// A store whose log holds `count` enrolment events of one member, at
    /// positions 1..=count (stream versions the same). The directory comes
    /// first: bound first, it is dropped last, after the store has closed.
    async fn log_of(count: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let config = WriterConfig::with_clock(Arc::new(ManualClock::new(T0_US)));
        let writer = Writer::start(store.clone(), PassThrough, config).expect("writer");
        let program = ProgramId::parse("program_id", "p").expect("program");
        let member = MemberId::parse("member_id", "ann").expect("member");
        for index in 0..count {
            let enrolled = pb::Event {
                kind: Some(pb::event::Kind::MemberEnrolled(pb::MemberEnrolled {
                    implicit: false,
                })),
            };
            let envelope = Envelope {
                program_id: program.clone(),
                idempotency_key: IdempotencyKey::parse("idempotency_key", &format!("k{index}"))
                    .expect("key"),
                occurred_at_us: T0_US,
                principal: "test".into(),
                metadata: vec![],
                expected_version: None,
                command: Append::new([(StreamName::member(&program, &member), enrolled)]),
            };
            writer.handle().submit(envelope).await.expect("append");
        }
        writer.shutdown();
        (dir, store)
    }

    fn positions(pieces: &[Piece]) -> Vec<Vec<u64>> {
        pieces
            .iter()
            .map(|piece| piece.events().iter().map(|event| event.position).collect())
            .collect()
    }

    /// The events of `pieces` as text, to compare with a plain read.
    fn text(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .flat_map(Piece::events)
            .map(|event| format!("{event:?}"))
            .collect()
    }

    fn read_alone(store: &Store, from: u64, up_to: u64) -> Vec<String> {
        read_chunk(store, from, up_to)
            .expect("read")
            .iter()
            .map(|event| format!("{event:?}"))
            .collect()
    }

    #[tokio::test]
    async fn a_second_reader_takes_what_the_first_read() {
        let (_dir, store) = log_of(10).await;
        let recent = RecentEvents::new(RECENT_EVENTS_MAX);
        let first = recent.read(&store, 1, 10).expect("first read");
        assert_eq!(positions(&first), vec![(1..=10).collect::<Vec<_>>()]);
        assert_eq!(recent.kept(), vec![(1, 10)]);
        let second = recent.read(&store, 4, 10).expect("second read");
        assert_eq!(positions(&second), vec![(4..=10).collect::<Vec<_>>()]);
        assert!(
            Arc::ptr_eq(&first[0].events, &second[0].events),
            "the second read is the first one's chunk, not a new read"
        );
        assert_eq!(text(&second), read_alone(&store, 4, 10));
        // Asked for less than a kept chunk holds, a reader gets only that.
        let part = recent.read(&store, 2, 3).expect("part");
        assert_eq!(positions(&part), vec![vec![2, 3]]);
    }

    #[tokio::test]
    async fn a_read_fills_the_gaps_around_kept_chunks_without_overlapping_them() {
        let (_dir, store) = log_of(12).await;
        let recent = RecentEvents::new(RECENT_EVENTS_MAX);
        let middle = recent.read(&store, 5, 8).expect("middle");
        let whole = recent.read(&store, 3, 12).expect("whole");
        assert_eq!(
            positions(&whole),
            vec![vec![3, 4], vec![5, 6, 7, 8], vec![9, 10, 11, 12]]
        );
        assert!(Arc::ptr_eq(&middle[0].events, &whole[1].events));
        assert_eq!(recent.kept(), vec![(3, 2), (5, 4), (9, 4)]);
        assert_eq!(text(&whole), read_alone(&store, 3, 12));
    }

    #[tokio::test]
    async fn past_the_bound_the_lowest_chunks_go_and_a_larger_chunk_is_not_kept() {
        let (_dir, store) = log_of(12).await;
        let recent = RecentEvents::new(5);
        recent.read(&store, 1, 3).expect("read");
        recent.read(&store, 4, 6).expect("read");
        assert_eq!(
            recent.kept(),
            vec![(4, 3)],
            "six events are over the bound of five"
        );
        let large = recent.read(&store, 7, 12).expect("read");
        assert_eq!(positions(&large), vec![(7..=12).collect::<Vec<_>>()]);
        assert_eq!(recent.kept(), vec![(4, 3)], "six events are never kept");
    }

    #[tokio::test]
    async fn a_durable_position_without_a_record_is_an_error_at_that_position() {
        let (_dir, store) = log_of(3).await;
        let recent = RecentEvents::new(RECENT_EVENTS_MAX);
        let (position, error) = match recent.read(&store, 2, 5) {
            Err(failure) => failure,
            Ok(pieces) => panic!("read {:?}", positions(&pieces)),
        };
        assert_eq!(position, 4);
        assert!(error.to_string().contains("no record"), "{error}");
        assert_eq!(recent.kept(), vec![], "nothing of a failed read is kept");
    }
}
