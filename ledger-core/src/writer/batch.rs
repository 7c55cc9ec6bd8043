//! The writer's two threads: decide (prepare a batch) and commit (fsync it).

use super::{
    Appended, BalanceAfter, CommandResult, DecideError, Decider, Emitted, Envelope, MemberPoints,
    Message, WriterConfig,
};
use crate::chain::Head;
use crate::error::{CommandError, StoreError};
use crate::ids::StreamName;
use crate::limits::{COMMAND_EVENTS_MAX, STREAM_VERSION_CACHE_ENTRIES_MAX};
use crate::pb;
use crate::store::{
    CF_CHAIN, CF_IDEMPOTENCY, CF_LOG, CF_STREAM_INDEX, OrderedBatch, Store, encode_head, keys,
};
use prost::Message as _;
use rocksdb::WriteBatch;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// A batch of fewer commands waits for the batch before it to be durable
/// before it is decided, and takes the commands that arrived meanwhile.
const BATCH_WAITS_BELOW_COMMANDS: usize = 256;

/// What the commit thread tells the decide thread.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// Sequence number of the last batch known durable.
    durable_seq: u64,
    /// Bumped after each failed write: batches of older generations fail.
    generation: u64,
    /// The commit thread has ended (its loop returned or panicked): no batch
    /// will become durable any more.
    commit_ended: bool,
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn read(&self) -> Progress {
        // A poisoned lock means the other thread panicked holding it; the
        // value itself (two integers) is still meaningful.
        *self
            .progress
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        let mut guard = self
            .progress
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        change(&mut guard);
        self.changed.notify_all();
    }

    /// Blocks until batch `seq` is durable, a write failed or the commit
    /// thread ended.
    fn wait_durable(&self, seq: u64, generation: u64) {
        let mut guard = self
            .progress
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while guard.durable_seq < seq && guard.generation == generation && !guard.commit_ended {
            guard = self
                .changed
                .wait(guard)
                .unwrap_or_else(|poison| poison.into_inner());
        }
    }
}

/// A decided batch on its way to the commit thread.
struct Ready {
    seq: u64,
    generation: u64,
    batch: WriteBatch,
    writes: usize,
    head: Head,
    /// Set when the tentative state went wrong mid-batch: the commit thread
    /// fails the batch as if its write had failed, so the state is reloaded.
    poisoned: Option<String>,
    replies: Vec<(oneshot::Sender<Vec<CommandResult>>, Vec<CommandResult>)>,
}

pub(super) fn spawn<D: Decider>(
    store: Store,
    decider: D,
    config: WriterConfig,
    head: Head,
    head_tx: watch::Sender<Head>,
    queue: mpsc::UnboundedReceiver<Message<D::Command>>,
    permits: Arc<Semaphore>,
) -> Result<Vec<std::thread::JoinHandle<()>>, StoreError> {
    let shared = Arc::new(Shared::default());
    // Capacity 1: at most one batch waits while another is being synced, so
    // the decide thread runs at most one batch ahead of durability.
    let (ready_tx, ready_rx) = sync_channel::<Ready>(1);
    let commit_store = store.clone();
    let commit_shared = shared.clone();
    let commit = std::thread::Builder::new()
        .name("ledger-commit".into())
        .spawn(move || commit_loop(commit_store, ready_rx, head_tx, commit_shared))
        .map_err(|error| StoreError::Corrupt {
            position: 0,
            reason: error.to_string(),
        })?;
    let mut state = DecideState {
        store,
        decider,
        config,
        head,
        versions: HashMap::new(),
        overlay: HashMap::new(),
        overlay_order: VecDeque::new(),
        shared,
        generation: 0,
        next_seq: 1,
        needs_reload: false,
        poisoned: None,
        record_buf: Vec::with_capacity(512),
        key_buf: Vec::with_capacity(160),
        emitted: Vec::with_capacity(COMMAND_EVENTS_MAX),
    };
    let decide = std::thread::Builder::new()
        .name("ledger-decide".into())
        .spawn(move || state.run(queue, ready_tx, permits))
        .map_err(|error| StoreError::Corrupt {
            position: 0,
            reason: error.to_string(),
        })?;
    Ok(vec![decide, commit])
}

/// Seconds each group commit's durable write (with its fsync) took.
pub const METRIC_FSYNC_SECONDS: &str = "ledger_writer_fsync_seconds";
/// Events made durable by each group commit.
pub const METRIC_BATCH_EVENTS: &str = "ledger_writer_batch_events";
/// Position of the last durable event.
pub const METRIC_HEAD_POSITION: &str = "ledger_head_position";
/// Commands waiting in the queue, as each batch leaves it.
pub const METRIC_QUEUE_DEPTH: &str = "ledger_writer_queue_depth";
/// Events made durable since the process started.
pub const METRIC_EVENTS_APPENDED: &str = "ledger_writer_events_appended_total";

fn commit_loop(
    store: Store,
    ready: Receiver<Ready>,
    head_tx: watch::Sender<Head>,
    shared: Arc<Shared>,
) {
    // However this loop ends, a decide thread waiting for a batch to be
    // durable must not wait forever: it goes on, and finds the channel
    // closed when it sends.
    struct Ended(Arc<Shared>);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.update(|progress| progress.commit_ended = true);
        }
    }
    let _ended = Ended(shared.clone());
    // A batch decided on top of a failed one fails with the same error, so
    // that its callers learn the cause too (a full disk, say).
    let mut last_failure: Option<CommandError> = None;
    for batch in ready {
        let generation = shared.read().generation;
        let outcome = if batch.generation != generation {
            Err(last_failure.clone().unwrap_or_else(|| {
                CommandError::Unavailable(
                    "an earlier group commit failed; nothing of this batch was written".into(),
                )
            }))
        } else if let Some(reason) = batch.poisoned {
            Err(CommandError::Unavailable(reason))
        } else if batch.writes == 0 {
            // Only replays and rejections already durable: nothing to sync,
            // but answering in order keeps replies behind the batches they
            // refer to.
            Ok(())
        } else {
            let started = std::time::Instant::now();
            let written = store
                .write_durable(batch.batch)
                .map_err(|error| CommandError::storage(&error));
            metrics::histogram!(METRIC_FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
            written
        };
        match outcome {
            Ok(()) => {
                if batch.writes > 0 {
                    let previous = head_tx.send_replace(batch.head);
                    metrics::gauge!(METRIC_HEAD_POSITION).set(batch.head.position as f64);
                    let events = batch.head.position - previous.position;
                    metrics::histogram!(METRIC_BATCH_EVENTS).record(events as f64);
                    metrics::counter!(METRIC_EVENTS_APPENDED).increment(events);
                }
                shared.update(|progress| progress.durable_seq = batch.seq);
                for (reply, results) in batch.replies {
                    // A caller that gave up waiting dropped its receiver; its
                    // command is durable all the same.
                    let _ = reply.send(results);
                }
            }
            Err(reason) => {
                if batch.generation == generation {
                    tracing::error!(%reason, seq = batch.seq, "group commit failed");
                    shared.update(|progress| progress.generation += 1);
                    last_failure = Some(reason.clone());
                }
                for (reply, results) in batch.replies {
                    let failed = results.into_iter().map(|_| Err(reason.clone())).collect();
                    // As above: a caller that left needs no answer.
                    let _ = reply.send(failed);
                }
            }
        }
    }
}

struct DecideState<D: Decider> {
    store: Store,
    decider: D,
    config: WriterConfig,
    /// Tentative head: includes batches not yet durable.
    head: Head,
    /// Tentative stream versions.
    versions: HashMap<StreamName, u64>,
    /// Idempotency entries of batches not yet known durable, by store key.
    overlay: HashMap<Vec<u8>, pb::IdempotencyEntry>,
    overlay_order: VecDeque<(u64, Vec<Vec<u8>>)>,
    shared: Arc<Shared>,
    generation: u64,
    next_seq: u64,
    needs_reload: bool,
    poisoned: Option<String>,
    record_buf: Vec<u8>,
    key_buf: Vec<u8>,
    emitted: Vec<Emitted>,
}

impl<D: Decider> DecideState<D> {
    fn run(
        &mut self,
        mut queue: mpsc::UnboundedReceiver<Message<D::Command>>,
        ready: SyncSender<Ready>,
        permits: Arc<Semaphore>,
    ) {
        let mut closing = false;
        while !closing {
            let Some(first) = queue.blocking_recv() else {
                break;
            };
            let mut submissions = Vec::new();
            let mut commands = 0usize;
            closing = self.drain(&mut queue, Some(first), &mut submissions, &mut commands);
            let small = BATCH_WAITS_BELOW_COMMANDS.min(self.config.batch_commands_max);
            if !closing && commands < small {
                // A small batch decided now would be written on its own
                // after the one in flight: wait for that one, and take
                // what arrived meanwhile. A group commit costs a WAL
                // write, an fsync and the writer's bookkeeping whatever
                // its size, so under many single commands fewer, larger
                // batches take less CPU per command (BENCHMARKS.md). A
                // large batch is decided at once, while the one before it
                // is written.
                self.shared.wait_durable(self.next_seq - 1, self.generation);
                let next = queue.try_recv().ok();
                closing = self.drain(&mut queue, next, &mut submissions, &mut commands);
            }
            if submissions.is_empty() {
                continue;
            }
            let ready_batch = self.decide_batch(submissions);
            let waiting = self
                .config
                .queue_commands_max
                .saturating_sub(permits.available_permits());
            metrics::gauge!(METRIC_QUEUE_DEPTH).set(waiting as f64);
            if ready.send(ready_batch).is_err() {
                tracing::error!("the commit thread is gone; the writer stops");
                break;
            }
        }
        permits.close();
    }

    /// Adds `next` and what else is queued to `submissions`, up to the
    /// batch limit; `commands` counts them. A submission is never split, so
    /// a batch may exceed the limit by less than one SubmitBatch. Returns
    /// whether the writer was asked to close.
    fn drain(
        &self,
        queue: &mut mpsc::UnboundedReceiver<Message<D::Command>>,
        mut next: Option<Message<D::Command>>,
        submissions: &mut Vec<super::Submission<D::Command>>,
        commands: &mut usize,
    ) -> bool {
        while let Some(message) = next.take() {
            match message {
                Message::Close => return true,
                Message::Submit(submission) => {
                    *commands += submission.commands.len();
                    submissions.push(submission);
                }
            }
            if *commands >= self.config.batch_commands_max {
                break;
            }
            next = queue.try_recv().ok();
        }
        false
    }

    /// Brings the tentative state in line with the commit thread's news.
    fn sync_with_commits(&mut self) {
        let progress = self.shared.read();
        if progress.generation != self.generation || self.needs_reload {
            self.generation = progress.generation;
            self.decider.discard();
            self.versions.clear();
            self.overlay.clear();
            self.overlay_order.clear();
            match self.store.head() {
                Ok(head) => {
                    self.head = head;
                    self.needs_reload = false;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot reload the head after a failed commit");
                    self.needs_reload = true;
                }
            }
            return;
        }
        while let Some((seq, _)) = self.overlay_order.front() {
            if *seq > progress.durable_seq {
                break;
            }
            if let Some((_, keys)) = self.overlay_order.pop_front() {
                for key in keys {
                    self.overlay.remove(&key);
                }
            }
        }
        let versions_full = self.versions.len() > STREAM_VERSION_CACHE_ENTRIES_MAX;
        if versions_full || self.decider.needs_trim() {
            // State of commands in flight exists only in memory: wait until
            // the last batch sent is durable before forgetting any of it.
            self.shared.wait_durable(self.next_seq - 1, self.generation);
            if self.shared.read().generation != self.generation {
                // That batch failed: the reset above handles it next time.
                return self.sync_with_commits();
            }
            if versions_full {
                self.versions.clear();
            }
            self.decider.trim(&self.store);
        }
    }

    fn decide_batch(&mut self, submissions: Vec<super::Submission<D::Command>>) -> Ready {
        self.sync_with_commits();
        let seq = self.next_seq;
        self.next_seq += 1;
        let recorded_at_us = self.config.clock.now_us();
        let mut batch = OrderedBatch::default();
        let mut writes = 0usize;
        let mut new_keys = Vec::new();
        let mut replies = Vec::with_capacity(submissions.len());
        for submission in submissions {
            // The commands now leave the queue: free their room in it.
            drop(submission.permit);
            let mut results = Vec::with_capacity(submission.commands.len());
            for (envelope, request_hash) in &submission.commands {
                let result = if self.needs_reload {
                    Err(CommandError::Unavailable(
                        "the store could not be read".into(),
                    ))
                } else {
                    self.decide_one(
                        envelope,
                        request_hash,
                        recorded_at_us,
                        &mut batch,
                        &mut new_keys,
                    )
                };
                if matches!(
                    result,
                    Ok(Appended {
                        replayed: false,
                        ..
                    })
                ) || matches!(result, Err(CommandError::Rejected(_)))
                {
                    writes += 1;
                }
                results.push(result);
            }
            replies.push((submission.reply, results));
        }
        if writes > 0 {
            if let Err(reason) = self.decider.stage(&mut batch) {
                tracing::error!(%reason, "the decider's rows could not be staged");
                self.poisoned.get_or_insert(reason);
            }
            batch.put(CF_CHAIN, keys::HEAD_KEY, encode_head(&self.head));
        }
        if !new_keys.is_empty() {
            self.overlay_order.push_back((seq, new_keys));
        }
        let poisoned = self.poisoned.take();
        Ready {
            seq,
            generation: self.generation,
            batch: batch.into_write_batch(&self.store),
            writes,
            head: self.head,
            poisoned,
            replies,
        }
    }

    fn decide_one(
        &mut self,
        envelope: &Envelope<D::Command>,
        request_hash: &[u8; 32],
        recorded_at_us: i64,
        batch: &mut OrderedBatch,
        new_keys: &mut Vec<Vec<u8>>,
    ) -> CommandResult {
        let idempotency_key =
            keys::idempotency_key(&envelope.program_id, &envelope.idempotency_key);
        if let Some(entry) = self.remembered(&idempotency_key)? {
            return replay(entry, request_hash, envelope);
        }
        let primary = self.decider.primary_stream(envelope);
        let primary_version = self.version(&primary, true)?;
        if let Some(expected) = envelope.expected_version
            && expected != primary_version
        {
            return Err(CommandError::VersionConflict {
                stream: primary.to_string(),
                expected,
                actual: primary_version,
            });
        }
        let mut emitted = std::mem::take(&mut self.emitted);
        emitted.clear();
        let decided = self
            .decider
            .decide(&self.store, envelope, recorded_at_us, &mut emitted);
        let outcome = match decided {
            Ok(points) => {
                let appended = self.append(
                    envelope,
                    request_hash,
                    recorded_at_us,
                    &primary,
                    &mut emitted,
                    batch,
                    points,
                );
                if let Err(error) = &appended {
                    // The decider already applied the command to its state:
                    // only failing the whole batch keeps state and log equal.
                    self.poisoned = Some(error.to_string());
                }
                appended
            }
            Err(DecideError::Store(error)) => Err(CommandError::Unavailable(error.to_string())),
            Err(DecideError::Rejected(rejection)) => Err(CommandError::Rejected(rejection)),
            Err(DecideError::StateLost(reason)) => {
                // Only failing the whole batch, and reloading, keeps state
                // and log equal.
                self.poisoned = Some(reason.clone());
                Err(CommandError::Unavailable(reason))
            }
        };
        self.emitted = emitted;
        let entry = match &outcome {
            Ok(appended) => pb::IdempotencyEntry {
                request_hash: request_hash.to_vec(),
                outcome: Some(pb::idempotency_entry::Outcome::Accepted(
                    pb::idempotency_entry::Accepted {
                        first_position: appended.first_position,
                        event_count: appended.event_count,
                        stream_version: appended.stream_version,
                        balance: appended.balance.map(|balance| {
                            pb::idempotency_entry::BalanceAfter {
                                balance: balance.points.balance,
                                pending: balance.points.pending,
                                debt: balance.points.debt,
                                position: balance.position,
                            }
                        }),
                    },
                )),
            },
            Err(CommandError::Rejected(rejection)) => pb::IdempotencyEntry {
                request_hash: request_hash.to_vec(),
                outcome: Some(pb::idempotency_entry::Outcome::Rejected(
                    pb::idempotency_entry::Rejected {
                        code: rejection.code.clone(),
                        message: rejection.message.clone(),
                        field: rejection.field.clone().unwrap_or_default(),
                    },
                )),
            },
            // Storage failures are not answers: a retry must try again.
            Err(_) => return outcome,
        };
        batch.put(CF_IDEMPOTENCY, &idempotency_key, entry.encode_to_vec());
        self.overlay.insert(idempotency_key.clone(), entry);
        new_keys.push(idempotency_key);
        outcome
    }

    fn remembered(&self, key: &[u8]) -> Result<Option<pb::IdempotencyEntry>, CommandError> {
        if let Some(entry) = self.overlay.get(key) {
            return Ok(Some(entry.clone()));
        }
        match self
            .store
            .db()
            .get_pinned_cf(self.store.cf(CF_IDEMPOTENCY), key)
        {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => pb::IdempotencyEntry::decode(bytes.as_ref())
                .map(Some)
                .map_err(|error| CommandError::Unavailable(format!("idempotency entry: {error}"))),
            Err(error) => Err(CommandError::Unavailable(error.to_string())),
        }
    }

    /// The tentative version of `stream`. `before_decision`: asked before
    /// the command is decided, so the decider may answer (its state then
    /// holds no event of this command); after, only the stream index may,
    /// the decider's state being ahead by the command's events.
    fn version(&mut self, stream: &StreamName, before_decision: bool) -> Result<u64, CommandError> {
        if let Some(version) = self.versions.get(stream) {
            return Ok(*version);
        }
        let unavailable =
            |error: &dyn std::fmt::Display| CommandError::Unavailable(error.to_string());
        let from_decider = if before_decision {
            self.decider
                .stream_version(&self.store, stream)
                .map_err(|error| unavailable(&error))?
        } else {
            None
        };
        let version = match from_decider {
            Some(version) => {
                debug_assert_eq!(
                    self.store.stream_version(stream).ok(),
                    Some(version),
                    "the decider's version of {stream} is the stream index's"
                );
                version
            }
            None => self
                .store
                .stream_version(stream)
                .map_err(|error| unavailable(&error))?,
        };
        self.versions.insert(stream.clone(), version);
        Ok(version)
    }

    /// Encodes, hashes and indexes a command's events into `batch`.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        envelope: &Envelope<D::Command>,
        request_hash: &[u8; 32],
        recorded_at_us: i64,
        primary: &StreamName,
        emitted: &mut Vec<Emitted>,
        batch: &mut OrderedBatch,
        points: Option<MemberPoints>,
    ) -> CommandResult {
        assert!(
            emitted.len() <= COMMAND_EVENTS_MAX,
            "a decision exceeded COMMAND_EVENTS_MAX"
        );
        // Load every stream's version before touching any state, so a failed
        // read leaves nothing of this command behind.
        for item in emitted.iter() {
            self.version(&item.stream, false)?;
        }
        let count = emitted.len() as u32;
        let first_position = if count == 0 {
            0
        } else {
            self.head.position + 1
        };
        let metadata: Vec<pb::MetadataEntry> = envelope
            .metadata
            .iter()
            .map(|(key, value)| pb::MetadataEntry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        let mut events = Vec::with_capacity(emitted.len());
        for (index, item) in emitted.drain(..).enumerate() {
            let position = self.head.position + 1;
            let version = self.versions.entry(item.stream.clone()).or_insert(0);
            *version += 1;
            let mut record = pb::EventRecord {
                position,
                stream: item.stream.as_str().to_owned(),
                stream_version: *version,
                program_id: envelope.program_id.as_str().to_owned(),
                occurred_at_us: item.occurred_at_us,
                recorded_at_us,
                idempotency_key: envelope.idempotency_key.as_str().to_owned(),
                principal: envelope.principal.clone(),
                metadata: metadata.clone(),
                command_event_index: index as u32,
                command_event_count: count,
                request_hash: if index == 0 {
                    request_hash.to_vec()
                } else {
                    Vec::new()
                },
                event: Some(item.event),
            };
            self.record_buf.clear();
            record
                .encode(&mut self.record_buf)
                .map_err(|error| CommandError::Unavailable(format!("record encoding: {error}")))?;
            let hash = self.head.hash.next(position, &self.record_buf);
            let position_key = keys::position_key(position);
            batch.put_in_order(self.store.cf(CF_LOG), position_key, &self.record_buf);
            batch.put_in_order(self.store.cf(CF_CHAIN), position_key, hash.0);
            keys::stream_key_into(&mut self.key_buf, &item.stream, *version);
            batch.put(CF_STREAM_INDEX, &self.key_buf, position_key);
            debug_assert_eq!(position, self.head.position + 1, "positions are contiguous");
            self.head = Head { position, hash };
            // The answer carries the event as encoded, without a copy.
            events.extend(record.event.take());
        }
        let stream_version = self.versions.get(primary).copied().unwrap_or(0);
        // The head is now the command's last event, or, when it appended
        // none, the state it was decided against.
        let balance = points.map(|points| BalanceAfter {
            points,
            position: self.head.position,
        });
        Ok(Appended {
            first_position,
            event_count: count,
            stream_version,
            replayed: false,
            balance,
            events,
        })
    }
}

/// The remembered answer for a key, if the request is the same one.
fn replay<C>(
    entry: pb::IdempotencyEntry,
    request_hash: &[u8; 32],
    envelope: &Envelope<C>,
) -> CommandResult {
    if entry.request_hash.as_slice() != request_hash.as_slice() {
        return Err(CommandError::IdempotencyKeyReused {
            key: envelope.idempotency_key.as_str().to_owned(),
        });
    }
    match entry.outcome {
        Some(pb::idempotency_entry::Outcome::Accepted(accepted)) => Ok(Appended {
            first_position: accepted.first_position,
            event_count: accepted.event_count,
            stream_version: accepted.stream_version,
            replayed: true,
            balance: accepted.balance.map(|balance| BalanceAfter {
                points: MemberPoints {
                    balance: balance.balance,
                    pending: balance.pending,
                    debt: balance.debt,
                },
                position: balance.position,
            }),
            events: Vec::new(),
        }),
        Some(pb::idempotency_entry::Outcome::Rejected(rejected)) => {
            Err(CommandError::Rejected(crate::error::Rejection {
                code: rejected.code,
                message: rejected.message,
                field: (!rejected.field.is_empty()).then_some(rejected.field),
            }))
        }
        None => Err(CommandError::Unavailable(
            "idempotency entry has no outcome".into(),
        )),
    }
}
