//! The projection runtime: one worker thread per view, each folding the log
//! into its rows from its checkpoint, then following the live head.
//!
//! - A worker reads records after its checkpoint, folds them with its
//!   [`Projection`], and writes the rows and the new checkpoint in one batch
//!   (a *chunk*: up to [`CHUNK_EVENTS_MAX`] events, or fewer when it reaches
//!   the head). A restart resumes from the checkpoint. Chunks are written
//!   without the WAL (rows are rebuildable, and the log's group commits
//!   then neither carry nor wait for them): a crash loses the chunks
//!   written since the views' memtable was last flushed, rows and
//!   checkpoint together, and they are folded again.
//! - The workers share the records they read: at the head they fold the
//!   same commits within milliseconds of each other, and a record one has
//!   read and decoded is taken by the others from [`RecentEvents`] (a few
//!   thousand events), not read and decoded again.
//! - An event the projection cannot fold stops the worker: the chunk holding
//!   it is not written, and the status names the position and the error. No
//!   event is ever skipped.
//! - A storage failure that may pass (a full disk, an IO error) does not stop
//!   it: the chunk is folded again after a backoff that doubles from
//!   [`RETRY_BACKOFF_MIN`] up to [`RETRY_BACKOFF_MAX`], and the status says
//!   `Retrying` with the position, the error and the attempts so far.
//! - Read-your-writes: each view publishes the position its committed rows
//!   reflect; [`Runtime::wait_for`] waits for a position, up to a deadline.
//! - At the head, a worker woken by a new group commit lets more arrive for
//!   up to [`LIVE_LINGER_DEFAULT`] before it folds them, unless a reader is
//!   waiting for the view or [`LIVE_LINGER_EVENTS_MAX`] events are behind:
//!   a chunk then folds several commits, and a member's row changed by each
//!   is written once. A reader that waits cuts the linger short, so
//!   read-your-writes costs no more than before.
//! - Rebuild: a second worker folds the log from position 0 into the next
//!   generation while the first keeps serving. Once it has caught up, the
//!   first stops, the second catches up to where the first stopped and
//!   switches the active generation in the same write as its rows; the old
//!   generation is deleted in that write too. Queries read the old rows until
//!   that write, the new ones after it.

use crate::balance::BalanceProjection;
use crate::error::{QueryError, ViewError};
use crate::event::LogEvent;
use crate::liability::LiabilityProjection;
use crate::recent::{Piece, RECENT_EVENTS_MAX, RecentEvents};
use crate::rfm::RfmProjection;
use crate::rows::{
    self, Checkpoint, RowWriter, Space, active_generation, delete_other_generations, set_active,
};
use crate::tier::TierProjection;
use ledger_core::chain::Head;
use ledger_core::clock::Clock;
use ledger_core::error::{FieldError, FieldReason};
use ledger_core::store::Store;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Most events folded into one chunk (one write of rows and checkpoint).
pub const CHUNK_EVENTS_MAX: usize = 65_536;

/// Longest a worker at the head waits for more commits before it folds
/// what it was woken for, when no reader waits for the view.
pub const LIVE_LINGER_DEFAULT: Duration = Duration::from_millis(10);
/// A worker at the head folds at once when this many events are behind.
pub const LIVE_LINGER_EVENTS_MAX: u64 = 4_096;

/// First wait of a worker after a storage failure that may pass.
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between two attempts: the view resumes within this much of
/// the storage coming back (space freed, RocksDB recovered).
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The wait before attempt `attempts + 1`: doubling, capped.
fn retry_backoff(attempts: u32) -> Duration {
    // 2^7 x 10 ms already exceeds the cap, so the shift never overflows.
    let doublings = attempts.saturating_sub(1).min(7);
    RETRY_BACKOFF_MIN
        .saturating_mul(1 << doublings)
        .min(RETRY_BACKOFF_MAX)
}

/// Whether a worker goes on after `error`: a storage failure that may pass
/// is retried; an event or a row it cannot fold, or stored data that fails
/// a check, stops the view.
fn retryable(error: &ViewError) -> bool {
    matches!(error, ViewError::Store(store) if store.is_transient())
}

/// The readers waiting for one view, and how long its worker lingers: see
/// [`LIVE_LINGER_DEFAULT`].
struct Readers {
    waiting: AtomicUsize,
    arrived: Notify,
    linger_us: Arc<AtomicU64>,
}

impl Readers {
    fn new(linger_us: Arc<AtomicU64>) -> Readers {
        Readers {
            waiting: AtomicUsize::new(0),
            arrived: Notify::new(),
            linger_us,
        }
    }

    /// Counts a reader until the guard is dropped, and wakes the worker if
    /// it lingers.
    fn enter(&self) -> ReaderGuard<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // Stored as a permit if the worker is not lingering yet: its next
        // linger then ends at once.
        self.arrived.notify_one();
        ReaderGuard(self)
    }
}

struct ReaderGuard<'a>(&'a Readers);

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fold of the log into rows: `(view state, event) -> view writes`.
///
/// `apply` may keep rows it rewrites often (a member's balance) in its own
/// cache and write them in `flush`, which the runtime calls once per chunk;
/// what it writes must depend on the events only, never on where chunks
/// end, so that a rebuild is byte-equal to an incremental build.
pub trait Projection: Send {
    /// Folds one event; reads of earlier chunks' rows go through `rows`.
    fn apply(&mut self, rows: &mut RowWriter<'_>, event: &LogEvent) -> Result<(), ViewError>;
    /// Writes every cached row changed in this chunk into `rows`.
    fn flush(&mut self, rows: &mut RowWriter<'_>);
    /// Forgets every cache (the chunk was not written).
    fn reset(&mut self);
}

/// The views this runtime builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    /// Balances, lots, statements: see [`crate::balance`].
    Balance,
    /// Tiers, progress, history, distribution: see [`crate::tier`].
    Tier,
    /// Points owed per program and day: see [`crate::liability`].
    Liability,
    /// Recency, frequency, monetary and segments: see [`crate::rfm`].
    Rfm,
}

impl ViewKind {
    /// Every view, in start order.
    pub const ALL: [ViewKind; 4] = [
        ViewKind::Balance,
        ViewKind::Tier,
        ViewKind::Liability,
        ViewKind::Rfm,
    ];

    /// Its name (status, `ledgerd rebuild --projection`).
    pub fn name(self) -> &'static str {
        match self {
            ViewKind::Balance => "balance",
            ViewKind::Tier => "tier",
            ViewKind::Liability => "liability",
            ViewKind::Rfm => "rfm",
        }
    }

    /// Its one-byte tag in the views column family.
    pub fn tag(self) -> u8 {
        match self {
            ViewKind::Balance => b'b',
            ViewKind::Tier => b't',
            ViewKind::Liability => b'l',
            ViewKind::Rfm => b'f',
        }
    }

    /// The view named `name`, or an error naming `field`.
    pub fn parse(field: &str, name: &str) -> Result<ViewKind, FieldError> {
        ViewKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    FieldReason::Invalid(format!(
                        "unknown projection `{name}`; the projections are {}",
                        ViewKind::ALL.map(ViewKind::name).join(", ")
                    )),
                )
            })
    }

    fn projection(self) -> Box<dyn Projection> {
        match self {
            ViewKind::Balance => Box::new(BalanceProjection::default()),
            ViewKind::Tier => Box::new(TierProjection::default()),
            ViewKind::Liability => Box::new(LiabilityProjection::default()),
            ViewKind::Rfm => Box::new(RfmProjection::default()),
        }
    }
}

/// A view's fold at one generation: the projection and its checkpoint.
pub struct Folder {
    kind: ViewKind,
    projection: Box<dyn Projection>,
    space: Space,
    checkpoint: Checkpoint,
}

impl Folder {
    /// Opens `generation` of `kind` at its stored checkpoint (position 0
    /// for a new generation, which a rebuild fills).
    pub fn open(store: &Store, kind: ViewKind, generation: u32) -> Result<Folder, ViewError> {
        let space = Space {
            tag: kind.tag(),
            generation,
        };
        Ok(Folder {
            kind,
            projection: kind.projection(),
            space,
            checkpoint: rows::checkpoint(store, space)?,
        })
    }

    /// The last position applied and written.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// The generation it writes.
    pub fn generation(&self) -> u32 {
        self.space.generation
    }

    /// Folds records after the checkpoint, up to `up_to` and at most
    /// [`CHUNK_EVENTS_MAX`], and writes them as one chunk. Returns how many
    /// were applied; on failure nothing of the chunk is written and the
    /// error names the position that failed.
    pub fn step(&mut self, store: &Store, up_to: u64) -> Result<usize, (u64, ViewError)> {
        let events = read_chunk(store, self.checkpoint.position + 1, up_to)?;
        self.apply_chunk(store, &events)
    }

    /// [`Folder::step`], taking the records other workers have read already
    /// from `recent`.
    pub fn step_shared(
        &mut self,
        store: &Store,
        up_to: u64,
        recent: &RecentEvents,
    ) -> Result<usize, (u64, ViewError)> {
        let pieces = recent.read(store, self.checkpoint.position + 1, up_to)?;
        self.apply_events(store, pieces.iter().flat_map(Piece::events))
    }

    /// Folds `events` (the records right after the checkpoint, in order)
    /// and writes them as one chunk, as [`Folder::step`] does.
    pub fn apply_chunk(
        &mut self,
        store: &Store,
        events: &[LogEvent],
    ) -> Result<usize, (u64, ViewError)> {
        self.apply_events(store, events)
    }

    fn apply_events<'a>(
        &mut self,
        store: &Store,
        events: impl IntoIterator<Item = &'a LogEvent>,
    ) -> Result<usize, (u64, ViewError)> {
        let mut rows = RowWriter::new(store, self.space);
        let mut last = None;
        let mut count = 0;
        for (expected, event) in (self.checkpoint.position + 1..).zip(events) {
            last = Some(event);
            count += 1;
            let applied = if event.position == expected {
                self.projection.apply(&mut rows, event)
            } else {
                Err(ViewError::event(
                    expected,
                    format!("chunk skips to position {}", event.position),
                ))
            };
            if let Err(error) = applied {
                self.projection.reset();
                return Err((expected, error));
            }
        }
        let Some(last) = last else {
            return Ok(0);
        };
        self.projection.flush(&mut rows);
        let checkpoint = Checkpoint {
            position: last.position,
            recorded_at_us: last.recorded_at_us,
        };
        if let Err(error) = rows.commit(checkpoint) {
            self.projection.reset();
            return Err((self.checkpoint.position + 1, error));
        }
        self.checkpoint = checkpoint;
        Ok(count)
    }

    /// Makes this generation the active one and deletes every other, in one
    /// write.
    pub fn activate(&mut self, store: &Store) -> Result<(), ViewError> {
        // Rows are written without the WAL: they reach disk before the
        // logged switch to them.
        store.flush_cf(ledger_core::store::CF_VIEWS)?;
        let mut batch = rocksdb::WriteBatch::default();
        set_active(store, &mut batch, self.kind.tag(), self.space.generation);
        delete_other_generations(store, &mut batch, self.kind.tag(), self.space.generation);
        store.write_relaxed(batch)?;
        Ok(())
    }
}

/// Reads and decodes records `from..=up_to`, at most [`CHUNK_EVENTS_MAX`];
/// an error names the position that could not be read or decoded.
pub fn read_chunk(store: &Store, from: u64, up_to: u64) -> Result<Vec<LogEvent>, (u64, ViewError)> {
    read_events(store, from, up_to, CHUNK_EVENTS_MAX)
}

/// Reads and decodes records `from..=up_to`, at most `max` (at least one
/// when `from <= up_to`: a durable position without a record is an error).
pub(crate) fn read_events(
    store: &Store,
    from: u64,
    up_to: u64,
    max: usize,
) -> Result<Vec<LogEvent>, (u64, ViewError)> {
    let mut events = Vec::new();
    let mut next = from;
    // Decoded straight from RocksDB's buffers: no copy of each record, and
    // no read of the chain, which folding does not check.
    store
        .visit_records(from, up_to, max, |position, bytes| {
            events.push(LogEvent::decode_bytes(position, bytes)?);
            next = position + 1;
            Ok::<_, ViewError>(())
        })
        .map_err(|error| (next, error))?;
    if next <= up_to && events.len() < max {
        return Err((
            next,
            ViewError::event(next, "a durable position has no record"),
        ));
    }
    Ok(events)
}

/// What a worker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Folding records behind the head.
    CatchingUp,
    /// At the head, waiting for new records.
    Live,
    /// Stopped on an event it could not fold (or stored data that fails a
    /// check); the view stays at its checkpoint.
    Failed {
        /// The position that failed.
        position: u64,
        /// Why.
        error: String,
    },
    /// The store refused the chunk starting at `position` (a full disk, an
    /// IO error): the worker tries again after a backoff. The view stays at
    /// its checkpoint meanwhile and catches up once a write succeeds.
    Retrying {
        /// The first position of the chunk that was not written.
        position: u64,
        /// The last failure.
        error: String,
        /// Failed attempts in a row.
        attempts: u32,
    },
    /// Stopped on request.
    Stopped,
}

/// A worker's last report.
#[derive(Debug, Clone)]
struct Report {
    checkpoint: Checkpoint,
    state: WorkerState,
    /// True once its generation is the active one.
    active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    /// Switch to this generation once the checkpoint is at least this.
    Activate {
        at_least: u64,
    },
    Stop,
}

struct Worker {
    generation: u32,
    control: watch::Sender<Control>,
    report: watch::Receiver<Report>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(
        store: Store,
        head: watch::Receiver<Head>,
        folder: Folder,
        applied: Arc<watch::Sender<u64>>,
        readers: Arc<Readers>,
        recent: Arc<RecentEvents>,
        active: bool,
    ) -> Result<Worker, ViewError> {
        let (control_tx, control_rx) = watch::channel(Control::Run);
        let (report_tx, report_rx) = watch::channel(Report {
            checkpoint: folder.checkpoint(),
            state: WorkerState::CatchingUp,
            active,
        });
        let generation = folder.generation();
        let name = format!("view-{}-{generation}", folder.kind.name());
        let handle = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let run = WorkerRun {
                    store,
                    head,
                    control: control_rx,
                    report: report_tx,
                    applied,
                    readers,
                    recent,
                    folder,
                    active,
                    attempts: 0,
                };
                run.run(&handle);
            })
            .map_err(|error| ViewError::row("worker", format!("cannot start: {error}")))?;
        Ok(Worker {
            generation,
            control: control_tx,
            report: report_rx,
            thread: Some(thread),
        })
    }

    fn report(&self) -> Report {
        self.report.borrow().clone()
    }

    /// Stops the thread and waits for it; returns its last report.
    async fn stop(mut self) -> Report {
        self.control.send_replace(Control::Stop);
        if let Some(thread) = self.thread.take() {
            // A panicked worker has stopped too; its last report stands.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.report()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The thread ends on its own once it sees Stop (or the sender gone).
        self.control.send_replace(Control::Stop);
    }
}

/// The last position each view's active rows reflect, labelled by view.
pub const METRIC_VIEW_CHECKPOINT: &str = "ledger_projection_checkpoint";

struct WorkerRun {
    store: Store,
    head: watch::Receiver<Head>,
    control: watch::Receiver<Control>,
    report: watch::Sender<Report>,
    applied: Arc<watch::Sender<u64>>,
    readers: Arc<Readers>,
    recent: Arc<RecentEvents>,
    folder: Folder,
    active: bool,
    /// Failed attempts in a row at the current position.
    attempts: u32,
}

impl WorkerRun {
    fn set_state(&self, state: WorkerState) {
        let checkpoint = self.folder.checkpoint();
        let active = self.active;
        self.report.send_if_modified(|report| {
            let changed =
                report.state != state || report.checkpoint != checkpoint || report.active != active;
            *report = Report {
                checkpoint,
                state,
                active,
            };
            changed
        });
        if active {
            metrics::gauge!(METRIC_VIEW_CHECKPOINT, "view" => self.folder.kind.name())
                .set(checkpoint.position as f64);
            self.applied.send_if_modified(|applied| {
                let moved = *applied < checkpoint.position;
                *applied = (*applied).max(checkpoint.position);
                moved
            });
        }
    }

    fn run(mut self, handle: &tokio::runtime::Handle) {
        let mut head_open = true;
        loop {
            let control = *self.control.borrow_and_update();
            match control {
                Control::Stop => {
                    self.set_state(WorkerState::Stopped);
                    return;
                }
                Control::Activate { at_least }
                    if !self.active && self.folder.checkpoint().position >= at_least =>
                {
                    if let Err(error) = self.folder.activate(&self.store) {
                        let position = self.folder.checkpoint().position + 1;
                        if retryable(&error) && self.back_off(handle, position, error) {
                            continue;
                        }
                        self.fail_unless_stopping(position);
                        return;
                    }
                    self.attempts = 0;
                    self.active = true;
                    tracing::info!(
                        view = self.folder.kind.name(),
                        generation = self.folder.generation(),
                        position = self.folder.checkpoint().position,
                        "rebuilt view is now active"
                    );
                }
                Control::Run | Control::Activate { .. } => {}
            }
            let head = self.head.borrow_and_update().position;
            if self.folder.checkpoint().position < head {
                self.set_state(WorkerState::CatchingUp);
                match self.folder.step_shared(&self.store, head, &self.recent) {
                    Ok(_) => self.attempts = 0,
                    Err((position, error)) if retryable(&error) => {
                        if !self.back_off(handle, position, error) {
                            self.fail_unless_stopping(position);
                            return;
                        }
                    }
                    Err((position, error)) => {
                        self.fail(position, error);
                        return;
                    }
                }
                continue;
            }
            self.set_state(WorkerState::Live);
            let control = &mut self.control;
            let head_rx = &mut self.head;
            let control_open = handle.block_on(async {
                tokio::select! {
                    changed = head_rx.changed(), if head_open => {
                        head_open = changed.is_ok();
                        true
                    }
                    changed = control.changed() => changed.is_ok(),
                }
            });
            if !control_open {
                // The runtime is gone: nobody will read this view's reports.
                return;
            }
            self.linger(handle);
        }
    }

    /// Woken at the head: lets more commits arrive before folding, unless
    /// this is a rebuild's worker (it must reach the head to switch), a
    /// reader waits, or many events are behind already. See
    /// [`LIVE_LINGER_DEFAULT`].
    fn linger(&mut self, handle: &tokio::runtime::Handle) {
        let linger = Duration::from_micros(self.readers.linger_us.load(Ordering::Relaxed));
        let behind = self
            .head
            .borrow()
            .position
            .saturating_sub(self.folder.checkpoint().position);
        if !self.active
            || *self.control.borrow() != Control::Run
            || linger.is_zero()
            || behind == 0
            || behind >= LIVE_LINGER_EVENTS_MAX
            || self.readers.waiting.load(Ordering::SeqCst) > 0
        {
            return;
        }
        let control = &mut self.control;
        let arrived = &self.readers.arrived;
        handle.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = arrived.notified() => {}
                // Handled at the top of the loop.
                _ = control.changed() => {}
            }
        });
    }

    /// Waits out the backoff after a transient failure at `position`, in
    /// the `Retrying` state. Returns false when the worker must end instead
    /// (the runtime is gone); a stop request ends the wait early and is
    /// handled at the top of the loop.
    fn back_off(
        &mut self,
        handle: &tokio::runtime::Handle,
        position: u64,
        error: ViewError,
    ) -> bool {
        self.attempts = self.attempts.saturating_add(1);
        let delay = retry_backoff(self.attempts);
        if self.attempts == 1 {
            tracing::warn!(
                view = self.folder.kind.name(),
                position,
                %error,
                "view write failed; retrying until the storage is back"
            );
        }
        self.set_state(WorkerState::Retrying {
            position,
            error: error.to_string(),
            attempts: self.attempts,
        });
        let control = &mut self.control;
        handle.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(delay) => true,
                changed = control.changed() => changed.is_ok(),
            }
        })
    }

    /// The worker ends while retrying: stopped on request, or failed.
    fn fail_unless_stopping(&self, position: u64) {
        if *self.control.borrow() == Control::Stop {
            self.set_state(WorkerState::Stopped);
        } else {
            self.fail(
                position,
                ViewError::row("worker", "the runtime went away while retrying"),
            );
        }
    }

    fn fail(&self, position: u64, error: ViewError) {
        tracing::error!(
            view = self.folder.kind.name(),
            position,
            %error,
            "view stopped on an event it cannot fold"
        );
        self.set_state(WorkerState::Failed {
            position,
            error: error.to_string(),
        });
    }
}

/// The status of one view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// Its name.
    pub name: &'static str,
    /// The active generation.
    pub generation: u32,
    /// The last position its rows reflect.
    pub checkpoint: u64,
    /// The log head.
    pub head: u64,
    /// Events behind the head.
    pub lag_events: u64,
    /// How long ago the oldest event not yet applied was recorded, µs (0
    /// when at the head).
    pub lag_us: i64,
    /// What its worker is doing.
    pub state: WorkerState,
    /// A rebuild in progress: its generation and checkpoint.
    pub rebuild: Option<(u32, u64)>,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildOutcome {
    /// The new active generation.
    pub generation: u32,
    /// The position its rows reflected when it became active.
    pub position: u64,
}

struct Slot {
    kind: ViewKind,
    applied: Arc<watch::Sender<u64>>,
    readers: Arc<Readers>,
    worker: Mutex<Option<Worker>>,
    rebuilding: Mutex<Option<(u32, watch::Receiver<Report>)>>,
    rebuild_lock: tokio::sync::Mutex<()>,
}

/// The running views of one store.
pub struct Runtime {
    store: Store,
    head: watch::Receiver<Head>,
    clock: Arc<dyn Clock>,
    slots: Vec<Slot>,
    linger_us: Arc<AtomicU64>,
    recent: Arc<RecentEvents>,
}

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Runtime {
    /// Starts a worker for each of `kinds` at its active generation (the
    /// first start creates generation 1), after deleting leftovers of an
    /// interrupted rebuild. Must be called inside a tokio runtime.
    pub fn start(
        store: Store,
        head: watch::Receiver<Head>,
        clock: Arc<dyn Clock>,
        kinds: &[ViewKind],
    ) -> Result<Runtime, ViewError> {
        let mut slots = Vec::with_capacity(kinds.len());
        let linger_us = Arc::new(AtomicU64::new(
            u64::try_from(LIVE_LINGER_DEFAULT.as_micros()).unwrap_or(u64::MAX),
        ));
        let recent = Arc::new(RecentEvents::new(RECENT_EVENTS_MAX));
        for &kind in kinds {
            let active = active_generation(&store, kind.tag())?;
            let generation = active.unwrap_or(1);
            let mut batch = rocksdb::WriteBatch::default();
            set_active(&store, &mut batch, kind.tag(), generation);
            delete_other_generations(&store, &mut batch, kind.tag(), generation);
            match store.write_relaxed(batch) {
                Ok(()) => {}
                // A server restarted on a full disk still serves reads: the
                // pointer is already there, and the rows of an interrupted
                // rebuild are only garbage (no query reads them, and the next
                // rebuild deletes them before it starts).
                Err(error) if active.is_some() && error.is_transient() => {
                    tracing::warn!(
                        view = kind.name(),
                        %error,
                        "leftovers of an interrupted rebuild stay until the store takes writes"
                    );
                }
                Err(error) => return Err(error.into()),
            }
            let folder = Folder::open(&store, kind, generation)?;
            let applied = Arc::new(watch::channel(folder.checkpoint().position).0);
            let readers = Arc::new(Readers::new(linger_us.clone()));
            let worker = Worker::spawn(
                store.clone(),
                head.clone(),
                folder,
                applied.clone(),
                readers.clone(),
                recent.clone(),
                true,
            )?;
            slots.push(Slot {
                kind,
                applied,
                readers,
                worker: Mutex::new(Some(worker)),
                rebuilding: Mutex::new(None),
                rebuild_lock: tokio::sync::Mutex::new(()),
            });
        }
        Ok(Runtime {
            store,
            head,
            clock,
            slots,
            linger_us,
            recent,
        })
    }

    /// Sets how long workers at the head wait for more commits when no
    /// reader waits ([`LIVE_LINGER_DEFAULT`] until set; zero folds each
    /// commit as it comes).
    pub fn set_live_linger(&self, linger: Duration) {
        self.linger_us.store(
            u64::try_from(linger.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The store the views live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The log head as last published by the writer.
    pub fn head(&self) -> u64 {
        self.head.borrow().position
    }

    fn slot(&self, kind: ViewKind) -> Result<&Slot, QueryError> {
        self.slots
            .iter()
            .find(|slot| slot.kind == kind)
            .ok_or_else(|| {
                QueryError::Invalid(FieldError::new(
                    "projection",
                    FieldReason::Invalid(format!("projection `{}` is not running", kind.name())),
                ))
            })
    }

    /// The position `kind`'s committed rows reflect.
    pub fn position(&self, kind: ViewKind) -> Result<u64, QueryError> {
        Ok(*self.slot(kind)?.applied.borrow())
    }

    /// Waits until `kind` reflects `min_position`, at most `timeout`, and
    /// returns the position it reflects then (lower on timeout). A
    /// `min_position` beyond the head is an error naming `min_position`: no
    /// write has returned it.
    pub async fn wait_for(
        &self,
        kind: ViewKind,
        min_position: u64,
        timeout: Duration,
    ) -> Result<u64, QueryError> {
        let slot = self.slot(kind)?;
        let head = self.head();
        if min_position > head {
            return Err(QueryError::Invalid(FieldError::new(
                "min_position",
                FieldReason::OutOfRange {
                    value: i128::from(min_position),
                    min: 0,
                    max: i128::from(head),
                },
            )));
        }
        let mut applied = slot.applied.subscribe();
        // A reader waiting ends the worker's linger.
        let _reader = (*applied.borrow() < min_position).then(|| slot.readers.enter());
        let report = lock(&slot.worker)
            .as_ref()
            .map(|worker| worker.report.clone());
        // A view that cannot get there (failed, stopped, or not running)
        // answers at once, like one that times out: from the rows as they
        // stand, saying their position.
        let halted = async move {
            if let Some(mut report) = report {
                let _ = report
                    .wait_for(|report| {
                        matches!(
                            report.state,
                            WorkerState::Failed { .. } | WorkerState::Stopped
                        )
                    })
                    .await;
            }
        };
        tokio::select! {
            _ = applied.wait_for(|at| *at >= min_position) => {}
            () = halted => {}
            () = tokio::time::sleep(timeout) => {}
        }
        Ok(*slot.applied.borrow())
    }

    /// Waits until every view reflects `position` (for health at start).
    pub async fn wait_all(&self, position: u64) {
        for slot in &self.slots {
            let mut applied = slot.applied.subscribe();
            let _reader = (*applied.borrow() < position).then(|| slot.readers.enter());
            // A closed channel means the runtime is stopping.
            let _ = applied.wait_for(|at| *at >= position).await;
        }
    }

    /// Waits, at most `timeout`, until `kind`'s worker is at the head or
    /// has stopped (failed or on request), and returns its status then.
    pub async fn wait_settled(
        &self,
        kind: ViewKind,
        timeout: Duration,
    ) -> Result<ProjectionStatus, QueryError> {
        let slot = self.slot(kind)?;
        let _reader = slot.readers.enter();
        let report = lock(&slot.worker)
            .as_ref()
            .map(|worker| worker.report.clone());
        if let Some(mut report) = report {
            let head = self.head.clone();
            let settled = report.wait_for(|report| match report.state {
                WorkerState::CatchingUp => false,
                WorkerState::Live => report.checkpoint.position >= head.borrow().position,
                // A view retrying a storage failure cannot get further now.
                WorkerState::Retrying { .. }
                | WorkerState::Failed { .. }
                | WorkerState::Stopped => true,
            });
            // On timeout the status says how far it got.
            let _ = tokio::time::timeout(timeout, settled).await;
        }
        Ok(self.slot_status(slot))
    }

    /// The status of every view.
    pub fn status(&self) -> Vec<ProjectionStatus> {
        self.slots
            .iter()
            .map(|slot| self.slot_status(slot))
            .collect()
    }

    /// The status of one view.
    pub fn status_of(&self, kind: ViewKind) -> Result<ProjectionStatus, QueryError> {
        Ok(self.slot_status(self.slot(kind)?))
    }

    fn slot_status(&self, slot: &Slot) -> ProjectionStatus {
        let head = self.head();
        let (generation, report) = match lock(&slot.worker).as_ref() {
            Some(worker) => (worker.generation, worker.report()),
            None => (
                0,
                Report {
                    checkpoint: Checkpoint::default(),
                    state: WorkerState::Stopped,
                    active: false,
                },
            ),
        };
        let checkpoint = report.checkpoint.position;
        let lag_events = head.saturating_sub(checkpoint);
        let lag_us = if lag_events == 0 {
            0
        } else {
            // The oldest event not applied yet: how long it has waited.
            match self.store.read_range(checkpoint + 1, checkpoint + 1, 1) {
                Ok(records) => records
                    .first()
                    .and_then(|stored| stored.decode().ok())
                    .map_or(0, |record| {
                        self.clock
                            .now_us()
                            .saturating_sub(record.recorded_at_us)
                            .max(0)
                    }),
                Err(_) => 0,
            }
        };
        let rebuild = lock(&slot.rebuilding)
            .as_ref()
            .map(|(generation, report)| (*generation, report.borrow().checkpoint.position));
        ProjectionStatus {
            name: slot.kind.name(),
            generation,
            checkpoint,
            head,
            lag_events,
            lag_us,
            state: report.state,
            rebuild,
        }
    }

    /// Rebuilds `kind` from position 0 into a new generation while the
    /// current one keeps answering, then switches to it. One rebuild per
    /// view at a time; a second call waits for the first.
    pub async fn rebuild(&self, kind: ViewKind) -> Result<RebuildOutcome, QueryError> {
        let slot = self.slot(kind)?;
        let _one_at_a_time = slot.rebuild_lock.lock().await;
        let current = lock(&slot.worker)
            .as_ref()
            .map_or(0, |worker| worker.generation);
        let generation = current
            .checked_add(1)
            .ok_or_else(|| ViewError::row("active generation", "no generation after u32::MAX"))?;
        // Leftovers of an interrupted rebuild into the same generation.
        let mut batch = rocksdb::WriteBatch::default();
        delete_other_generations(&self.store, &mut batch, kind.tag(), current);
        self.store.write_relaxed(batch).map_err(ViewError::from)?;
        let folder = Folder::open(&self.store, kind, generation)?;
        let shadow = Worker::spawn(
            self.store.clone(),
            self.head.clone(),
            folder,
            slot.applied.clone(),
            slot.readers.clone(),
            self.recent.clone(),
            false,
        )?;
        *lock(&slot.rebuilding) = Some((generation, shadow.report.clone()));
        let result = self.switch_to(slot, shadow).await;
        *lock(&slot.rebuilding) = None;
        result
    }

    async fn switch_to(&self, slot: &Slot, shadow: Worker) -> Result<RebuildOutcome, QueryError> {
        let failed = |report: &Report| match &report.state {
            WorkerState::Failed { position, error } => Some(ViewError::event(*position, error)),
            _ => None,
        };
        // 1. The new generation catches up with the head.
        let mut report_rx = shadow.report.clone();
        let mut head_rx = self.head.clone();
        loop {
            let report = report_rx.borrow_and_update().clone();
            if let Some(error) = failed(&report) {
                shadow.stop().await;
                return Err(error.into());
            }
            if report.checkpoint.position >= head_rx.borrow_and_update().position {
                break;
            }
            tokio::select! {
                changed = report_rx.changed() => if changed.is_err() { break },
                _ = head_rx.changed() => {}
            }
        }
        // 2. The old worker stops where it is; the new one catches up to it
        //    and switches the active generation.
        let old = lock(&slot.worker).take();
        let old_checkpoint = match old {
            Some(old) => old.stop().await.checkpoint.position,
            None => 0,
        };
        shadow.control.send_replace(Control::Activate {
            at_least: old_checkpoint,
        });
        let activated = report_rx
            .wait_for(|report| report.active || failed(report).is_some())
            .await
            .map(|report| report.clone());
        match activated {
            Ok(report) if report.active => {
                let outcome = RebuildOutcome {
                    generation: shadow.generation,
                    position: report.checkpoint.position,
                };
                *lock(&slot.worker) = Some(shadow);
                Ok(outcome)
            }
            other => {
                // The old generation is still the active one: restart it.
                shadow.stop().await;
                let folder = Folder::open(
                    &self.store,
                    slot.kind,
                    current_generation(slot, &self.store)?,
                )?;
                let worker = Worker::spawn(
                    self.store.clone(),
                    self.head.clone(),
                    folder,
                    slot.applied.clone(),
                    slot.readers.clone(),
                    self.recent.clone(),
                    true,
                )?;
                *lock(&slot.worker) = Some(worker);
                Err(match other {
                    Ok(report) => failed(&report)
                        .unwrap_or_else(|| ViewError::row("rebuild", "stopped before switching")),
                    Err(_) => ViewError::row("rebuild", "worker ended before switching"),
                }
                .into())
            }
        }
    }

    /// Stops every worker after its current chunk (rows already written stay).
    pub async fn stop(&self) {
        for slot in &self.slots {
            let worker = lock(&slot.worker).take();
            if let Some(worker) = worker {
                worker.stop().await;
            }
        }
    }
}

fn current_generation(slot: &Slot, store: &Store) -> Result<u32, ViewError> {
    Ok(active_generation(store, slot.kind.tag())?.unwrap_or(1))
}

/// Brings `kind`'s active rows up to the head with no server running, as a
/// start would: folds the records after its checkpoint (or builds the view
/// from position 0 when it has never been built), calling `progress(checkpoint,
/// head)` after each chunk. Returns the position reached.
pub fn catch_up_offline(
    store: &Store,
    kind: ViewKind,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ViewError> {
    let Some(generation) = active_generation(store, kind.tag())? else {
        return rebuild_offline(store, kind, progress).map(|outcome| outcome.position);
    };
    let mut folder = Folder::open(store, kind, generation)?;
    let head = store.head()?.position;
    progress(folder.checkpoint().position, head);
    while folder.checkpoint().position < head {
        folder.step(store, head).map_err(|(_, error)| error)?;
        progress(folder.checkpoint().position, head);
    }
    Ok(folder.checkpoint().position)
}

/// Rebuilds `kind` from position 0 with no server running: folds the whole
/// log into a new generation, calling `progress(checkpoint, head)` after
/// each chunk, then makes it active. An interrupted rebuild leaves the old
/// generation active; the next start deletes the partial one.
pub fn rebuild_offline(
    store: &Store,
    kind: ViewKind,
    mut progress: impl FnMut(u64, u64),
) -> Result<RebuildOutcome, ViewError> {
    let current = active_generation(store, kind.tag())?.unwrap_or(0);
    let generation = current
        .checked_add(1)
        .ok_or_else(|| ViewError::row("active generation", "no generation after u32::MAX"))?;
    let mut batch = rocksdb::WriteBatch::default();
    delete_other_generations(store, &mut batch, kind.tag(), current);
    store.write_relaxed(batch)?;
    let mut folder = Folder::open(store, kind, generation)?;
    let head = store.head()?.position;
    progress(0, head);
    // Reading and decoding run one chunk ahead of folding, on their own
    // thread: the log is immutable, so nothing the fold writes can change
    // what is read.
    std::thread::scope(|scope| {
        let (chunks_tx, chunks_rx) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            let mut next = 1;
            while next <= head {
                let chunk = read_chunk(store, next, head);
                if let Ok(events) = &chunk {
                    next += events.len() as u64;
                }
                let failed = chunk.is_err();
                if chunks_tx.send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        for chunk in chunks_rx {
            let events = chunk.map_err(|(_, error)| error)?;
            folder
                .apply_chunk(store, &events)
                .map_err(|(_, error)| error)?;
            progress(folder.checkpoint().position, head);
        }
        Ok::<(), ViewError>(())
    })?;
    if folder.checkpoint().position < head {
        return Err(ViewError::event(
            folder.checkpoint().position + 1,
            "the log ended before the head",
        ));
    }
    folder.activate(store)?;
    Ok(RebuildOutcome {
        generation,
        position: folder.checkpoint().position,
    })
}

/// The digest of `kind`'s active rows and checkpoint (see [`rows::digest`]).
pub fn view_digest(store: &Store, kind: ViewKind) -> Result<[u8; 32], ViewError> {
    let generation = active_generation(store, kind.tag())?.unwrap_or(1);
    rows::digest(
        store,
        Space {
            tag: kind.tag(),
            generation,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::error::StoreError;

    #[test]
    fn the_retry_backoff_doubles_up_to_its_cap() {
        assert_eq!(retry_backoff(1), RETRY_BACKOFF_MIN);
        assert_eq!(retry_backoff(2), RETRY_BACKOFF_MIN * 2);
        assert_eq!(retry_backoff(3), RETRY_BACKOFF_MIN * 4);
        assert_eq!(retry_backoff(8), RETRY_BACKOFF_MAX);
        assert_eq!(retry_backoff(u32::MAX), RETRY_BACKOFF_MAX);
    }

    #[test]
    fn storage_failures_are_retried_and_bad_events_are_not() {
        let full = ViewError::Store(StoreError::DiskFull {
            available_bytes: 0,
            reserve_bytes: 1,
        });
        assert!(retryable(&full));
        assert!(retryable(&ViewError::Store(StoreError::Injected)));
        assert!(!retryable(&ViewError::event(3, "lot 9 is unknown")));
        assert!(!retryable(&ViewError::row("balance", "does not decode")));
        assert!(!retryable(&ViewError::Store(StoreError::Corrupt {
            position: 3,
            reason: "x".into(),
        })));
    }
}
