//! The group-commit writer: the only path by which the log grows.
//!
//! Callers submit commands through a [`WriterHandle`]. A queue bounded by a
//! count of commands (a semaphore) answers [`CommandError::Overloaded`] at
//! once when full. Two threads do the work:
//!
//! - the **decide** thread drains up to `batch_commands_max` commands, checks
//!   each one's idempotency key and `expected_version`, asks the [`Decider`]
//!   for its events, and encodes, indexes and hashes them into ONE RocksDB
//!   `WriteBatch` together with the new chain head;
//! - the **commit** thread writes that batch with fsync and only then
//!   publishes the new head and answers every caller of the batch.
//!
//! While batch N is being synced, batch N+1 is already being decided against
//! the tentative state that N leaves, if it is large; a batch of fewer than
//! 256 commands first waits for N to be durable and takes the commands that
//! arrived meanwhile, so that many single commands share few fsyncs. If N's
//! write fails, N and every batch decided on top of it fail as a whole (a
//! generation counter marks them), and the decide thread throws its
//! in-memory state away and reloads it from the store before it decides
//! anything else: nothing is ever half applied.

mod batch;
pub use batch::{
    METRIC_BATCH_EVENTS, METRIC_EVENTS_APPENDED, METRIC_FSYNC_SECONDS, METRIC_HEAD_POSITION,
    METRIC_QUEUE_DEPTH,
};

use crate::chain::Head;
use crate::clock::Clock;
use crate::error::{CommandError, FieldError, FieldReason, Rejection, StoreError};
use crate::ids::{IdempotencyKey, ProgramId, StreamName};
use crate::limits::{
    FUTURE_SKEW_DEFAULT_US, METADATA_BYTES_MAX, METADATA_ENTRIES_MAX, SUBMIT_BATCH_COMMANDS_MAX,
    WRITER_BATCH_COMMANDS_DEFAULT, WRITER_QUEUE_COMMANDS_DEFAULT,
};
use crate::pb;
use crate::store::{OrderedBatch, Store};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

/// A command with everything the log records about its request.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<C> {
    /// Program the command belongs to; scopes the idempotency key.
    pub program_id: ProgramId,
    /// The client's key: the same key and request give the same answer.
    pub idempotency_key: IdempotencyKey,
    /// Business time of the command.
    pub occurred_at_us: i64,
    /// Who asked: the token's name, or `system`.
    pub principal: String,
    /// Free-form metadata (at most 16 entries, 1 KiB in all).
    pub metadata: Vec<(String, String)>,
    /// When set, the primary stream must be at exactly this version.
    pub expected_version: Option<u64>,
    /// What to do.
    pub command: C,
}

/// One event a decision produced, for one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The stream the event belongs to.
    pub stream: StreamName,
    /// Business time recorded for the event. Usually the command's
    /// `occurred_at`; a decider may record a later time (a member's clock
    /// never runs backwards), and replay applies the event at this time.
    pub occurred_at_us: i64,
    /// The payload.
    pub event: pb::Event,
}

/// Why a decision produced no events.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// A rule refused the command; remembered under its idempotency key.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// State could not be loaded; the command fails and is not remembered.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decider's in-memory state can no longer be trusted (a bug
    /// caught at run time): the whole batch fails as if its write had
    /// failed, and all state is reloaded from the store.
    #[error("decider state lost: {0}")]
    StateLost(String),
}

/// The state machine the writer drives: decides commands into events.
///
/// `decide` sees the tentative state left by every command decided before it,
/// including those of batches not yet durable, and updates that state itself
/// when it succeeds. `discard` drops all of it after a failed write.
pub trait Decider: Send + 'static {
    /// The commands it decides.
    type Command: Serialize + Send + 'static;

    /// The stream `expected_version` refers to.
    fn primary_stream(&self, envelope: &Envelope<Self::Command>) -> StreamName;

    /// Decides one command, pushing its events onto `out` (empty on entry).
    /// Returns the primary member's points after the command when the
    /// decider keeps a member's points (it answers the caller with them),
    /// `None` otherwise.
    fn decide(
        &mut self,
        store: &Store,
        envelope: &Envelope<Self::Command>,
        recorded_at_us: i64,
        out: &mut Vec<Emitted>,
    ) -> Result<Option<MemberPoints>, DecideError>;

    /// The version of `stream` (its last event's, 0 when it has none)
    /// including every command decided so far, when the decider keeps that
    /// stream's state; `None` has the writer read it from the stream index.
    /// Asked only before a command is decided: a decision applies its
    /// events to the decider's state before the writer appends them.
    fn stream_version(
        &mut self,
        _store: &Store,
        _stream: &StreamName,
    ) -> Result<Option<u64>, DecideError> {
        Ok(None)
    }

    /// Forgets all in-memory state; the next decisions reload it from the store.
    fn discard(&mut self);

    /// Adds the decider's own rows (snapshots, due indexes) for the commands
    /// decided since the last call to the batch that carries their events.
    /// An error fails the whole batch (its state is reloaded): rows the
    /// decider cannot do without could not be written.
    fn stage(&mut self, _batch: &mut OrderedBatch) -> Result<(), String> {
        Ok(())
    }

    /// True when the decider's caches have outgrown their bound.
    fn needs_trim(&self) -> bool {
        false
    }

    /// Shrinks the caches. Called only when every batch sent so far is
    /// durable, so no state that exists only in memory can be lost; what
    /// it writes to `store` must be rebuildable.
    fn trim(&mut self, _store: &Store) {}
}

/// A member's points as a decider knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberPoints {
    /// Available minus debt.
    pub balance: i64,
    /// Waiting for their pending period to end.
    pub pending: i64,
    /// Clawed back beyond the balance, paid off by later earns.
    pub debt: i64,
}

/// The primary member's points right after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalanceAfter {
    /// The figures.
    pub points: MemberPoints,
    /// The position they reflect: the command's last event, or the head the
    /// command was decided at when it appended none.
    pub position: u64,
}

/// The answer to an accepted command.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// Position of the command's first event (0 when it produced none).
    pub first_position: u64,
    /// Events the command produced, at contiguous positions.
    pub event_count: u32,
    /// Version of the primary stream after the command.
    pub stream_version: u64,
    /// True when this is the remembered answer to an earlier identical request.
    pub replayed: bool,
    /// The primary member's points right after the command: from the
    /// decider, or for a replay from the remembered entry. `None` when the
    /// decider keeps no member points (program commands, pass-through) or
    /// the entry was remembered before it held them.
    pub balance: Option<BalanceAfter>,
    /// The events as the log holds them, in order. Empty for a replayed
    /// answer: they are in the log at `first_position..=last_position()`.
    pub events: Vec<pb::Event>,
}

impl Appended {
    /// Position of the command's last event (0 when it produced none).
    pub fn last_position(&self) -> u64 {
        match self.event_count {
            0 => 0,
            count => self.first_position + u64::from(count) - 1,
        }
    }
}

/// The result of one command.
pub type CommandResult = Result<Appended, CommandError>;

/// Settings of a writer.
#[derive(Clone)]
pub struct WriterConfig {
    /// Commands that may wait in the queue.
    pub queue_commands_max: usize,
    /// Commands decided into one group commit.
    pub batch_commands_max: usize,
    /// How far ahead of the clock `occurred_at` may be.
    pub future_skew_us: i64,
    /// The engine's clock (recorded_at, future-skew check).
    pub clock: Arc<dyn Clock>,
}

impl WriterConfig {
    /// The documented defaults, on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        WriterConfig {
            queue_commands_max: WRITER_QUEUE_COMMANDS_DEFAULT,
            batch_commands_max: WRITER_BATCH_COMMANDS_DEFAULT,
            future_skew_us: FUTURE_SKEW_DEFAULT_US,
            clock,
        }
    }
}

struct Submission<C> {
    commands: Vec<(Envelope<C>, [u8; 32])>,
    reply: oneshot::Sender<Vec<CommandResult>>,
    // Released when the decide thread takes the submission off the queue.
    permit: OwnedSemaphorePermit,
}

enum Message<C> {
    Submit(Submission<C>),
    Close,
}

/// A cheap, cloneable way to submit commands and watch the head.
pub struct WriterHandle<C> {
    queue: mpsc::UnboundedSender<Message<C>>,
    permits: Arc<Semaphore>,
    head: watch::Receiver<Head>,
    clock: Arc<dyn Clock>,
    future_skew_us: i64,
}

impl<C> Clone for WriterHandle<C> {
    fn clone(&self) -> Self {
        WriterHandle {
            queue: self.queue.clone(),
            permits: self.permits.clone(),
            head: self.head.clone(),
            clock: self.clock.clone(),
            future_skew_us: self.future_skew_us,
        }
    }
}

impl<C: Serialize + Send + 'static> WriterHandle<C> {
    /// The checks `submit` makes before queueing (business time against
    /// the engine clock, metadata limits), for callers that decide without
    /// submitting (a dry run).
    pub fn check(&self, envelope: &Envelope<C>) -> Result<(), FieldError> {
        validate(envelope, self.clock.now_us(), self.future_skew_us)
    }

    /// Submits one command and waits until it is durable (or refused).
    pub async fn submit(&self, envelope: Envelope<C>) -> CommandResult {
        let mut results = self.submit_many(vec![envelope]).await?;
        results.pop().unwrap_or(Err(CommandError::Stopped))
    }

    /// Submits commands that are decided in order into the same group
    /// commit; each gets its own result. The outer error refuses them all
    /// (too many, queue full, writer stopped).
    pub async fn submit_many(
        &self,
        envelopes: Vec<Envelope<C>>,
    ) -> Result<Vec<CommandResult>, CommandError> {
        if envelopes.len() > SUBMIT_BATCH_COMMANDS_MAX {
            return Err(FieldError::new(
                "commands",
                FieldReason::TooMany {
                    count: envelopes.len(),
                    max: SUBMIT_BATCH_COMMANDS_MAX,
                },
            )
            .into());
        }
        if envelopes.is_empty() {
            return Ok(Vec::new());
        }
        let count = u32::try_from(envelopes.len()).map_err(|_| CommandError::Overloaded)?;
        let permit =
            self.permits
                .clone()
                .try_acquire_many_owned(count)
                .map_err(|error| match error {
                    tokio::sync::TryAcquireError::Closed => CommandError::Stopped,
                    tokio::sync::TryAcquireError::NoPermits => CommandError::Overloaded,
                })?;
        let now_us = self.clock.now_us();
        let mut results: Vec<Option<CommandResult>> = Vec::with_capacity(envelopes.len());
        let mut commands = Vec::with_capacity(envelopes.len());
        for (index, envelope) in envelopes.into_iter().enumerate() {
            // Validation and the request hash run on the caller's thread, not
            // the writer's: the writer's time is the engine's throughput.
            match validate(&envelope, now_us, self.future_skew_us)
                .map_err(CommandError::from)
                .and_then(|()| request_hash(&envelope))
            {
                Ok(hash) => {
                    results.push(None);
                    commands.push((envelope, hash));
                }
                Err(error) => {
                    debug_assert_eq!(results.len(), index, "one result slot per command");
                    results.push(Some(Err(error)));
                }
            }
        }
        if !commands.is_empty() {
            let (reply, answer) = oneshot::channel();
            let message = Message::Submit(Submission {
                commands,
                reply,
                permit,
            });
            self.queue
                .send(message)
                .map_err(|_| CommandError::Stopped)?;
            let mut decided = answer.await.map_err(|_| CommandError::Stopped)?.into_iter();
            for slot in results.iter_mut().filter(|slot| slot.is_none()) {
                *slot = Some(decided.next().unwrap_or(Err(CommandError::Stopped)));
            }
        }
        Ok(results
            .into_iter()
            .map(|slot| slot.unwrap_or(Err(CommandError::Stopped)))
            .collect())
    }

    /// The durable head, updated after each group commit.
    pub fn head(&self) -> watch::Receiver<Head> {
        self.head.clone()
    }

    /// Commands that may still enter the queue before it is full.
    pub fn queue_room(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Checks the envelope's own fields against the limits, naming the field.
fn validate<C>(envelope: &Envelope<C>, now_us: i64, future_skew_us: i64) -> Result<(), FieldError> {
    let latest_us = now_us.saturating_add(future_skew_us);
    if envelope.occurred_at_us > latest_us {
        return Err(FieldError::new(
            "occurred_at",
            FieldReason::Invalid(format!(
                "is {} us ahead of the engine clock, more than the allowed {future_skew_us} us",
                envelope.occurred_at_us.saturating_sub(now_us)
            )),
        ));
    }
    if envelope.occurred_at_us < 0 {
        return Err(FieldError::new(
            "occurred_at",
            FieldReason::Invalid("is before 1970-01-01T00:00:00Z".into()),
        ));
    }
    validate_metadata(&envelope.metadata)
}

/// Checks metadata against its limits (entries, bytes, empty keys).
pub fn validate_metadata(metadata: &[(String, String)]) -> Result<(), FieldError> {
    if metadata.len() > METADATA_ENTRIES_MAX {
        return Err(FieldError::new(
            "metadata",
            FieldReason::TooMany {
                count: metadata.len(),
                max: METADATA_ENTRIES_MAX,
            },
        ));
    }
    let mut total = 0usize;
    for (index, (key, value)) in metadata.iter().enumerate() {
        if key.is_empty() {
            return Err(FieldError::new(
                format!("metadata[{index}].key"),
                FieldReason::Missing,
            ));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > METADATA_BYTES_MAX {
        return Err(FieldError::new(
            "metadata",
            FieldReason::TooLong {
                len: total,
                max: METADATA_BYTES_MAX,
            },
        ));
    }
    Ok(())
}

/// SHA-256 of the canonical request: everything but the idempotency key and
/// the principal, encoded with bincode (deterministic for a given value).
fn request_hash<C: Serialize>(envelope: &Envelope<C>) -> Result<[u8; 32], CommandError> {
    let canonical = (
        envelope.program_id.as_str(),
        envelope.occurred_at_us,
        &envelope.metadata,
        envelope.expected_version,
        &envelope.command,
    );
    let bytes = bincode::serde::encode_to_vec(canonical, bincode::config::standard())
        .map_err(|error| CommandError::Unavailable(format!("request encoding: {error}")))?;
    Ok(Sha256::digest(&bytes).into())
}

/// A running writer. Dropping it without [`Writer::shutdown`] leaves its
/// threads to finish once every handle is gone.
pub struct Writer<C> {
    handle: WriterHandle<C>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<C: Serialize + Send + 'static> Writer<C> {
    /// Starts a writer over `store`, deciding with `decider`.
    pub fn start<D: Decider<Command = C>>(
        store: Store,
        decider: D,
        config: WriterConfig,
    ) -> Result<Writer<C>, StoreError> {
        let head = store.head()?;
        let (head_tx, head_rx) = watch::channel(head);
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(config.queue_commands_max));
        let handle = WriterHandle {
            queue: queue_tx,
            permits: permits.clone(),
            head: head_rx,
            clock: config.clock.clone(),
            future_skew_us: config.future_skew_us,
        };
        let threads = batch::spawn(store, decider, config, head, head_tx, queue_rx, permits)?;
        Ok(Writer { handle, threads })
    }

    /// A handle to submit commands.
    pub fn handle(&self) -> WriterHandle<C> {
        self.handle.clone()
    }

    /// Stops taking commands, decides and commits everything already queued,
    /// answers every caller, and waits for both threads to end.
    pub fn shutdown(self) {
        self.handle.permits.close();
        // The decide thread takes this after everything queued before it.
        // A send error means the thread is already gone, which is the goal.
        let _ = self.handle.queue.send(Message::Close);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a writer thread panicked during shutdown");
            }
        }
    }
}

/// A decider that appends the events it is given: the log with no domain
/// rules. Used by the log's tests and benchmarks, and by tools that import
/// records.
#[derive(Debug, Default)]
pub struct PassThrough;

/// Events to append, each to its stream; the first one's stream is primary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Append {
    /// Stream name and protobuf-encoded `Event` bytes of each event.
    pub events: Vec<(String, Vec<u8>)>,
}

impl Append {
    /// An append of `events`.
    pub fn new(events: impl IntoIterator<Item = (StreamName, pb::Event)>) -> Self {
        use prost::Message as _;
        Append {
            events: events
                .into_iter()
                .map(|(stream, event)| (stream.as_str().to_owned(), event.encode_to_vec()))
                .collect(),
        }
    }
}

impl Decider for PassThrough {
    type Command = Append;

    fn primary_stream(&self, envelope: &Envelope<Append>) -> StreamName {
        envelope
            .command
            .events
            .first()
            .and_then(|(name, _)| StreamName::parse("events[0].stream", name).ok())
            .unwrap_or_else(|| StreamName::program(&envelope.program_id))
    }

    fn decide(
        &mut self,
        _store: &Store,
        envelope: &Envelope<Append>,
        _recorded_at_us: i64,
        out: &mut Vec<Emitted>,
    ) -> Result<Option<MemberPoints>, DecideError> {
        use prost::Message as _;
        let events = &envelope.command.events;
        if events.is_empty() {
            return Err(Rejection::new("no_events", "an append needs at least one event").into());
        }
        if events.len() > crate::limits::COMMAND_EVENTS_MAX {
            return Err(
                Rejection::new("too_many_events", "more events than one command may make").into(),
            );
        }
        for (index, (name, bytes)) in events.iter().enumerate() {
            let field = format!("events[{index}]");
            let stream =
                StreamName::parse(&format!("{field}.stream"), name).map_err(|error| Rejection {
                    field: Some(error.field.clone()),
                    ..Rejection::new("invalid_stream", error.to_string())
                })?;
            let event = pb::Event::decode(bytes.as_slice()).map_err(|error| Rejection {
                field: Some(format!("{field}.event")),
                ..Rejection::new("invalid_event", error.to_string())
            })?;
            out.push(Emitted {
                stream,
                occurred_at_us: envelope.occurred_at_us,
                event,
            });
        }
        Ok(None)
    }

    fn discard(&mut self) {}
}
