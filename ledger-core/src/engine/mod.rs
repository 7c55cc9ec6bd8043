//! The command engine: the domain's `decide`/`apply` driven by the writer.
//!
//! [`LedgerDecider`] is the [`Decider`] of a real ledger. It keeps the write
//! model in memory (programs, and members in a bounded cache), loads a
//! member on a miss from its snapshot plus any later events of its stream,
//! and stages, in the same batch as the events:
//! - the snapshot of a member a batch changed, once its stream has grown by
//!   [`SNAPSHOT_EVERY_EVENTS`] since the last one (`snapshots` family);
//! - the member's next due time (`due` family), which the [`scheduler`]
//!   scans to submit time-driven system commands through the same writer;
//! - the rows of the purchases and redemptions those commands made or
//!   changed (`snapshots` family, beside the member's snapshot).
//!
//! A member's purchases and redemptions are kept as rows, not in its cached
//! state: they grow with every earn and redeem, and only a return or a
//! cancel (or a duplicate check) reads one back. A decision that refers to
//! one reads its row first; the records held since are let go once the
//! batches that wrote them are durable and more than [`RECORDS_HELD_MAX`]
//! are held.
//!
//! Snapshots are bincode and rebuildable: a snapshot whose format version
//! differs is ignored and the member is rebuilt from its stream.

mod lots;
pub mod scheduler;

pub use lots::{LOT_WINDOW_LOTS, LOTS_INLINE_MAX};

use crate::domain::{
    self, Command, LotsNeeded, Member, OpenLot, Program, ProgramCommand, Rules, TransferPoints,
};
use crate::error::{CommandError, Rejection, StoreError};
use crate::ids::LotId;
use crate::ids::{MemberId, ProgramId, StreamName};
use crate::record;
use crate::store::{CF_DUE, CF_SNAPSHOTS, OrderedBatch, Store, keys};
use crate::writer::{DecideError, Decider, Emitted, Envelope, MemberPoints};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Members kept in memory before the cache is trimmed. Each costs a few KiB
/// however small (its B-tree nodes); at 50,000 a server that had populated
/// 1,000,000 members held 523 MiB, at 25,000 it holds 450-462 MiB. A miss
/// costs a snapshot read and the stream's tail (see BENCHMARKS.md).
pub const MEMBER_CACHE_ENTRIES_MAX: usize = 25_000;
/// A member's snapshot is rewritten once its stream has grown by this many
/// events since the last one, or by [`snapshot_interval`]'s larger figure
/// for a member with a large state. Loading replays at most that many
/// events after the snapshot; writing a snapshot at every batch instead
/// costs more than the events themselves for members with a long history.
pub const SNAPSHOT_EVERY_EVENTS: u64 = 32;
/// Entries of a member's state (see [`Member::entry_count`]) per event of
/// the snapshot interval: a member with 40,000 lots and purchases is
/// snapshotted every 10,000 events, so encoding its snapshot costs about
/// four entries per event, whatever its size, and a load replays no more
/// events than a quarter of what the snapshot held.
pub const SNAPSHOT_ENTRIES_PER_EVENT: u64 = 4;

/// Events between two snapshots of `member`: at least `every_events`, and
/// proportional to the member's size beyond that, so that the cost of
/// snapshots per event stays bounded for members with years of history.
pub fn snapshot_interval(member: &Member, every_events: u64, entries_per_event: u64) -> u64 {
    let entries = u64::try_from(member.entry_count()).unwrap_or(u64::MAX);
    every_events.max(entries / entries_per_event.max(1))
}
/// Bumped whenever [`Member`]'s shape changes: older snapshots are ignored.
/// Version 3: purchases and redemptions are record rows, and a snapshot
/// holds only those held when it was written. Version 4: a snapshot holds
/// no record, and its lots only when the member is not paged.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 4;
/// Open lots held in memory, over every cached member, before the paged
/// members let go of all but the first [`LOT_WINDOW_LOTS`] of each order
/// (their rows are the truth) and, if that is not enough, the members
/// holding the most are forgotten. About 250 bytes each with their orders.
pub const LOTS_HELD_MAX: usize = 200_000;
/// Purchases and redemptions held in memory, over every cached member,
/// before they are let go (their rows are the truth). About 200 bytes
/// each; a skewed population's hot members make hundreds of purchases a
/// minute, which before this bound grew the cache by tens of MiB a minute.
pub const RECORDS_HELD_MAX: usize = 50_000;

/// What the engine's member cache holds, by `kind`: `members`, `entries`
/// (their open lots, held records, qualifying days and inactivity gaps:
/// [`Member::entry_count`]) and `records` (the purchases and redemptions
/// among them). Set at each batch.
pub const METRIC_CACHE_ENTRIES: &str = "ledger_engine_cache_entries";

/// What the cached members hold, kept by each decision's change and summed
/// afresh at each trim.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    /// Purchases and redemptions.
    records: usize,
    /// Open lots, and the closes that paged members remember.
    lots: usize,
    /// Every entry of their state ([`Member::entry_count`]).
    entries: usize,
}

impl Held {
    /// What `member` holds.
    fn of(member: &Member) -> Held {
        Held {
            records: member.held_records(),
            lots: member.held_lot_count() + member.closed_lot_count(),
            entries: member.entry_count(),
        }
    }

    /// Replaces `before` of one member by `after`.
    fn moved(&mut self, before: Held, after: Held) {
        self.records = (self.records + after.records).saturating_sub(before.records);
        self.lots = (self.lots + after.lots).saturating_sub(before.lots);
        self.entries = (self.entries + after.entries).saturating_sub(before.entries);
    }

    fn add(&mut self, other: Held) {
        self.records += other.records;
        self.lots += other.lots;
        self.entries += other.entries;
    }
}

/// The kind of a record row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Record {
    /// A purchase, by order id.
    Purchase,
    /// A redemption, by redemption id.
    Redemption,
}

impl Record {
    /// Its byte in the row's key.
    fn tag(self) -> u8 {
        match self {
            Record::Purchase => b'p',
            Record::Redemption => b'r',
        }
    }

    fn from_tag(tag: u8) -> Option<Record> {
        match tag {
            b'p' => Some(Record::Purchase),
            b'r' => Some(Record::Redemption),
            _ => None,
        }
    }
}

/// Prefix of a member's rows in the `snapshots` family: `S || 0`, then a
/// kind byte: `p` and `r` for its records, `F`, `L` and `M` for its lots
/// when it is paged (`lots.rs`). The member's snapshot's key is `S`
/// itself, and a stream name holds no zero byte, so the two never meet.
fn member_rows_prefix(stream: &StreamName) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.as_str().len() + 2 + 32);
    key.extend_from_slice(stream.as_str().as_bytes());
    key.push(0);
    key
}

/// A record row's key: `S || 0 || kind || id` -> bincode
/// [`domain::Purchase`] (kind `p`, by order id) or [`domain::Redemption`]
/// (kind `r`, by redemption id), as of the latest event about it.
fn record_key(stream: &StreamName, kind: Record, id: &str) -> Vec<u8> {
    let mut key = member_rows_prefix(stream);
    key.push(kind.tag());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The record an event makes or changes, as `(kind, id)`.
fn event_record(kind: &domain::EventKind) -> Option<(Record, &str)> {
    match kind {
        domain::EventKind::PointsEarned(earned) => Some((Record::Purchase, &earned.order_id)),
        domain::EventKind::EarnReversed(reversed) => Some((Record::Purchase, &reversed.order_id)),
        domain::EventKind::PointsRedeemed(redeemed) => {
            Some((Record::Redemption, &redeemed.redemption_id))
        }
        domain::EventKind::RedemptionCancelled(cancelled) => {
            Some((Record::Redemption, &cancelled.redemption_id))
        }
        _ => None,
    }
}

/// The record a command refers to, as `(kind, id)`: the order of a
/// purchase (a duplicate?) or return, the redemption of a redeem (a
/// duplicate?) or cancel.
fn command_record(command: &Command) -> Option<(Record, &str)> {
    match command {
        Command::RecordPurchase { order_id, .. } | Command::RecordReturn { order_id, .. } => {
            Some((Record::Purchase, order_id))
        }
        Command::Redeem { redemption_id, .. } | Command::CancelRedemption { redemption_id } => {
            Some((Record::Redemption, redemption_id))
        }
        _ => None,
    }
}

/// Holds the record `(kind, id)` of `member`, read back from its row,
/// unless it is held already or has no row.
fn hold_record(
    store: &Store,
    stream: &StreamName,
    member: &mut Member,
    (kind, id): (Record, &str),
) -> Result<(), DecideError> {
    let held = match kind {
        Record::Purchase => member.purchase(id).is_some(),
        Record::Redemption => member.redemption(id).is_some(),
    };
    if held {
        return Ok(());
    }
    let key = record_key(stream, kind, id);
    match store
        .db()
        .get_pinned_cf(store.cf(CF_SNAPSHOTS), &key)
        .map_err(StoreError::from)?
    {
        Some(bytes) => hold_row(stream, member, (kind, id), &bytes),
        None => Ok(()),
    }
}

/// Holds the record `(kind, id)` of `member` decoded from its row's bytes.
fn hold_row(
    stream: &StreamName,
    member: &mut Member,
    (kind, id): (Record, &str),
    bytes: &[u8],
) -> Result<(), DecideError> {
    let config = bincode::config::standard();
    let bad = |error: bincode::error::DecodeError| {
        store_error(format!("record {id:?} of {stream}: {error}"), 0)
    };
    match kind {
        Record::Purchase => {
            let (purchase, _) = bincode::serde::decode_from_slice(bytes, config).map_err(bad)?;
            member.hold_purchase(id, purchase);
        }
        Record::Redemption => {
            let (redemption, _) = bincode::serde::decode_from_slice(bytes, config).map_err(bad)?;
            member.hold_redemption(id, redemption);
        }
    }
    Ok(())
}

/// Stages the row of a record `member` holds.
fn stage_record(
    batch: &mut OrderedBatch,
    stream: &StreamName,
    member: &Member,
    (kind, id): (Record, &str),
) -> Result<(), String> {
    let config = bincode::config::standard();
    let bytes = match kind {
        Record::Purchase => member
            .purchase(id)
            .map(|purchase| bincode::serde::encode_to_vec(purchase, config)),
        Record::Redemption => member
            .redemption(id)
            .map(|redemption| bincode::serde::encode_to_vec(redemption, config)),
    };
    match bytes {
        Some(Ok(bytes)) => {
            batch.put(CF_SNAPSHOTS, record_key(stream, kind, id), bytes);
            Ok(())
        }
        Some(Err(error)) => Err(format!("record {id:?} of {stream}: {error}")),
        // Forgotten in the same batch (older than the retention period): its
        // row is never read as returnable or cancellable again.
        None => Ok(()),
    }
}

/// A command of the ledger, as the writer receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerCommand {
    /// Define a program or change its rules (the program's stream).
    Program(ProgramCommand),
    /// A command about one member (the member's stream).
    Member {
        /// The member.
        member_id: MemberId,
        /// What to do.
        command: Command,
    },
    /// Move points between two members (one event in each stream).
    Transfer(TransferPoints),
}

/// A member snapshot as stored: the state after `stream_version` events.
/// The member encodes without its lots and records (see [`Member`]): a
/// member that keeps its lots here has them in `lots`, every open one; a
/// paged member has `None`, its lots being rows.
#[derive(Deserialize)]
struct Snapshot {
    format_version: u32,
    stream_version: u64,
    member: Member,
    lots: Option<Vec<OpenLot>>,
}

/// The same fields borrowed, for encoding without cloning the member: serde
/// encodes `&Member` exactly as `Member`, and a list of borrowed lots as a
/// list of lots.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    format_version: u32,
    stream_version: u64,
    member: &'a Member,
    lots: Option<Vec<&'a OpenLot>>,
}

struct Cached {
    member: Member,
    stream_version: u64,
    /// Stream version of the stored snapshot (0: none).
    snapshot_version: u64,
    /// The due entry currently stored for this member.
    due: Option<(i64, u8)>,
    /// Decided for again since it was loaded or since the last trim (of
    /// any bound): the members bound keeps these, and the lots bound
    /// forgets them last.
    used: bool,
    /// Loaded for the writer's version lookup of the command about to be
    /// decided ([`Decider::stream_version`]): that decision is its first,
    /// not a use again.
    loaded_for_version: bool,
    /// Records changed since the last `stage`, as `(kind, id)`.
    touched: Vec<(Record, String)>,
    /// Loaded without a snapshot, so it holds every record and their rows
    /// may be missing (a store written before records were rows): the next
    /// `stage` writes them all, and a trim must not let them go before.
    unwritten_records: bool,
    /// Its lots are rows (`lots.rs`), and its snapshot is written with
    /// every batch that changes it.
    paged: bool,
    /// Lots changed since the last `stage` of a paged member.
    touched_lots: Vec<(LotId, lots::LotTouch)>,
    /// A snapshot was there but could not be used: lot rows written under
    /// it may remain, and the next `stage` deletes them first.
    stale_lot_rows: bool,
    /// Built by replaying its whole stream (no snapshot: a new member, or
    /// one whose snapshot was lost) and no record let go since: it holds
    /// every record a row could give back, so a record it does not hold
    /// has no row either, and deciding needs no lookup to know it.
    holds_every_record: bool,
}

impl Cached {
    /// The member's snapshot at its stream version.
    fn encode_snapshot(&self) -> Result<Vec<u8>, bincode::error::EncodeError> {
        let snapshot = SnapshotRef {
            format_version: SNAPSHOT_FORMAT_VERSION,
            stream_version: self.stream_version,
            member: &self.member,
            lots: (!self.paged).then(|| self.member.lots().collect()),
        };
        bincode::serde::encode_to_vec(&snapshot, bincode::config::standard())
    }

    /// Stages the snapshot of a member about to be forgotten whose stored
    /// snapshot is behind its stream, so that loading it again reads one
    /// row instead of replaying the events since (each in its own block of
    /// the log). A paged member's snapshot is always current, and a member
    /// whose rows are not all written yet gets none: its next load replays.
    fn stage_forgotten(&self, stream: &StreamName, batch: &mut OrderedBatch) {
        if self.stream_version == self.snapshot_version
            || self.paged
            || self.unwritten_records
            || self.stale_lot_rows
        {
            return;
        }
        match self.encode_snapshot() {
            Ok(bytes) => batch.put(CF_SNAPSHOTS, stream.as_str().as_bytes(), bytes),
            Err(error) => tracing::error!(%error, %stream, "snapshot encoding failed"),
        }
    }

    /// Notes the lots `events` changed, for a paged member's rows.
    fn note_lots<'e>(&mut self, events: impl IntoIterator<Item = &'e domain::Event>) {
        if self.paged {
            for event in events {
                lots::event_lots(&event.kind, &mut self.touched_lots);
            }
        }
    }
}

/// The decider of a real ledger: programs and members in memory.
pub struct LedgerDecider {
    programs: HashMap<ProgramId, Arc<Program>>,
    members: HashMap<StreamName, Cached>,
    /// Members changed since the last `stage`, with their program and id.
    dirty: HashSet<StreamName>,
    /// See [`SNAPSHOT_EVERY_EVENTS`].
    snapshot_every_events: u64,
    /// See [`SNAPSHOT_ENTRIES_PER_EVENT`].
    snapshot_entries_per_event: u64,
    /// What the cached members hold (as of their last decision).
    held: Held,
    /// See [`RECORDS_HELD_MAX`].
    records_held_max: usize,
    /// See [`LOTS_HELD_MAX`].
    lots_held_max: usize,
    /// Lots held past which the next durable point trims: the bound, or
    /// more after a trim that kept more (see [`LedgerDecider::trim_lots`]),
    /// so that members decided for in turn are not trimmed at every batch.
    lots_trim_at: usize,
    /// See [`LOTS_INLINE_MAX`].
    lots_inline_max: u64,
    /// See [`LOT_WINDOW_LOTS`].
    lot_window: usize,
    /// See [`MEMBER_CACHE_ENTRIES_MAX`].
    members_max: usize,
}

impl Default for LedgerDecider {
    fn default() -> Self {
        LedgerDecider {
            programs: HashMap::new(),
            members: HashMap::new(),
            dirty: HashSet::new(),
            snapshot_every_events: SNAPSHOT_EVERY_EVENTS,
            snapshot_entries_per_event: SNAPSHOT_ENTRIES_PER_EVENT,
            held: Held::default(),
            records_held_max: RECORDS_HELD_MAX,
            lots_held_max: LOTS_HELD_MAX,
            lots_trim_at: LOTS_HELD_MAX,
            lots_inline_max: LOTS_INLINE_MAX,
            lot_window: LOT_WINDOW_LOTS,
            members_max: MEMBER_CACHE_ENTRIES_MAX,
        }
    }
}

fn store_error(error: impl std::fmt::Display, position: u64) -> DecideError {
    DecideError::Store(StoreError::Corrupt {
        position,
        reason: error.to_string(),
    })
}

/// Prefix of the time-ordered due entries in the `due` family.
pub const DUE_BY_TIME_PREFIX: u8 = b't';
/// Prefix of the per-member due entries (which time-ordered key a member has).
pub const DUE_BY_MEMBER_PREFIX: u8 = b'm';

/// Time-ordered due key: `'t' || be_u64(due_us) || kind || member stream`
/// -> `be_u64(stream_version)` when the entry was made. A scan of the `'t'`
/// prefix walks due work in due-time order.
pub fn due_key(due_us: i64, kind: u8, stream: &StreamName) -> Vec<u8> {
    let mut key = Vec::with_capacity(10 + stream.as_str().len());
    key.push(DUE_BY_TIME_PREFIX);
    // Due times before 1970 do not occur (business time is validated to be
    // after the epoch); clamping keeps the key order total regardless.
    key.extend_from_slice(&(due_us.max(0) as u64).to_be_bytes());
    key.push(kind);
    key.extend_from_slice(stream.as_str().as_bytes());
    key
}

/// Per-member due key: `'m' || member stream` -> `be_u64(due_us) || kind`.
fn member_due_key(stream: &StreamName) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + stream.as_str().len());
    key.push(DUE_BY_MEMBER_PREFIX);
    key.extend_from_slice(stream.as_str().as_bytes());
    key
}

impl LedgerDecider {
    /// An engine with empty caches.
    pub fn new() -> Self {
        LedgerDecider::default()
    }

    /// An engine that snapshots a member every `events` events (at least 1),
    /// whatever the member's size: tests use small values so that loads from
    /// a snapshot plus a tail of events are exercised.
    pub fn with_snapshot_every_events(events: u64) -> Self {
        LedgerDecider {
            snapshot_every_events: events.max(1),
            snapshot_entries_per_event: u64::MAX,
            ..LedgerDecider::default()
        }
    }

    /// The same engine keeping at most `members` members cached: tests use
    /// small values so that trims are exercised.
    pub fn with_member_cache_max(self, members: usize) -> Self {
        LedgerDecider {
            members_max: members,
            ..self
        }
    }

    /// The same engine letting go of the records held once more than
    /// `records` are (0: after every batch): tests use small values so that
    /// returns and cancels read their records back from rows.
    pub fn with_records_held_max(self, records: usize) -> Self {
        LedgerDecider {
            records_held_max: records,
            ..self
        }
    }

    /// The same engine paging the lots of members with more than `inline`
    /// open lots, keeping `window` of each order after letting go of lots
    /// once more than `held` are held (0: after every batch), and
    /// forgetting members past it as past [`LOTS_HELD_MAX`]: tests use
    /// small values so that lots are read back from their rows and members
    /// are loaded again.
    pub fn with_lot_paging(self, inline: u64, window: usize, held: usize) -> Self {
        LedgerDecider {
            lots_inline_max: inline,
            lot_window: window,
            lots_held_max: held,
            lots_trim_at: held,
            ..self
        }
    }

    fn program(
        &mut self,
        store: &Store,
        program_id: &ProgramId,
    ) -> Result<Arc<Program>, DecideError> {
        if let Some(program) = self.programs.get(program_id) {
            return Ok(program.clone());
        }
        let stream = StreamName::program(program_id);
        let mut program = Program::default();
        for (position, bytes) in store.read_stream_records(&stream, 1, usize::MAX)? {
            let record = crate::store::decode_record(position, &bytes)?;
            let event = record::event_from_record(&record).map_err(|e| store_error(e, position))?;
            domain::apply_program(&mut program, &event);
        }
        let program = Arc::new(program);
        self.programs.insert(program_id.clone(), program.clone());
        Ok(program)
    }

    fn load_member(&mut self, store: &Store, stream: &StreamName) -> Result<(), DecideError> {
        match self.members.get_mut(stream) {
            Some(cached) if cached.loaded_for_version => cached.loaded_for_version = false,
            Some(cached) => cached.used = true,
            None => {
                self.load_into_cache(store, stream, false)?;
            }
        }
        Ok(())
    }

    /// Loads a member that is not cached into the cache, and returns its
    /// stream version. `for_version`: see [`Cached::loaded_for_version`].
    fn load_into_cache(
        &mut self,
        store: &Store,
        stream: &StreamName,
        for_version: bool,
    ) -> Result<u64, DecideError> {
        let mut cached = load_cached(store, stream, true)?;
        cached.loaded_for_version = for_version;
        let version = cached.stream_version;
        self.held.add(Held::of(&cached.member));
        self.members.insert(stream.clone(), cached);
        Ok(version)
    }

    /// Notes what `events`, just applied to `cached`, changed in its
    /// records and lots, and what it holds now (it held `before`).
    fn note_changes(held: &mut Held, cached: &mut Cached, before: Held, events: &[domain::Event]) {
        for event in events {
            if let Some((kind, id)) = event_record(&event.kind) {
                cached.touched.push((kind, id.to_owned()));
            }
        }
        cached.note_lots(events);
        held.moved(before, Held::of(&cached.member));
    }

    /// Applies `events` to the cached member and emits them on its stream.
    /// Returns the member's points after them.
    fn emit(
        &mut self,
        stream: &StreamName,
        events: Vec<domain::Event>,
        out: &mut Vec<Emitted>,
    ) -> Option<MemberPoints> {
        let Some(cached) = self.members.get_mut(stream) else {
            debug_assert!(false, "a member is loaded before its events are emitted");
            return None;
        };
        let held_before = Held::of(&cached.member);
        for event in &events {
            domain::apply(&mut cached.member, event);
        }
        Self::note_changes(&mut self.held, cached, held_before, &events);
        for event in events {
            cached.stream_version += 1;
            out.push(Emitted {
                stream: stream.clone(),
                occurred_at_us: event.occurred_at_us,
                event: crate::pb::Event::from(&event.kind),
            });
        }
        self.dirty.insert(stream.clone());
        Some(member_points(&cached.member))
    }

    fn decide_member(
        &mut self,
        store: &Store,
        program_id: &ProgramId,
        member_id: &MemberId,
        command: &Command,
        now_us: i64,
        out: &mut Vec<Emitted>,
    ) -> Result<Option<MemberPoints>, DecideError> {
        let program = self.program(store, program_id)?;
        let rules = defined_rules(&program, program_id)?;
        let stream = StreamName::member(program_id, member_id);
        self.load_member(store, &stream)?;
        let cached = self
            .members
            .get_mut(&stream)
            .ok_or_else(|| store_error("member not loaded", 0))?;
        let held_before = Held::of(&cached.member);
        let decided = decide_paging(
            store,
            &stream,
            cached.holds_every_record,
            &mut cached.member,
            command,
            rules,
            now_us,
        );
        let events = match decided {
            Ok(events) => events,
            Err(error) => {
                Self::note_changes(&mut self.held, cached, held_before, &[]);
                return Err(error);
            }
        };
        Self::note_changes(&mut self.held, cached, held_before, &events);
        cached.stream_version += events.len() as u64;
        for event in events {
            out.push(Emitted {
                stream: stream.clone(),
                occurred_at_us: event.occurred_at_us,
                event: crate::pb::Event::from(&event.kind),
            });
        }
        let points = member_points(&cached.member);
        self.dirty.insert(stream);
        Ok(Some(points))
    }

    fn decide_transfer(
        &mut self,
        store: &Store,
        program_id: &ProgramId,
        transfer: &TransferPoints,
        now_us: i64,
        out: &mut Vec<Emitted>,
    ) -> Result<Option<MemberPoints>, DecideError> {
        let program = self.program(store, program_id)?;
        let rules = defined_rules(&program, program_id)?;
        let from = StreamName::member(program_id, &transfer.from_member_id);
        let to = StreamName::member(program_id, &transfer.to_member_id);
        self.load_member(store, &from)?;
        self.load_member(store, &to)?;
        let (sent, received) = loop {
            let (Some(sender), Some(receiver)) = (self.members.get(&from), self.members.get(&to))
            else {
                return Err(store_error("member not loaded", 0));
            };
            match domain::decide_transfer(&sender.member, &receiver.member, transfer, rules, now_us)
            {
                Ok(decided) => break decided,
                Err(domain::DomainError::LotsNotHeld { needed, receiver }) => {
                    let stream = if receiver { &to } else { &from };
                    let Some(cached) = self.members.get_mut(stream) else {
                        return Err(store_error("member not loaded", 0));
                    };
                    let held_before = Held::of(&cached.member);
                    let read = lots::page_in(store, stream, &mut cached.member, needed);
                    self.held.moved(held_before, Held::of(&cached.member));
                    if !read? {
                        return Err(lots_unread(stream, needed));
                    }
                }
                Err(error) => return Err(Rejection::from(error).into()),
            }
        };
        let sender_points = self.emit(&from, sent, out);
        self.emit(&to, received, out);
        Ok(sender_points)
    }
}

/// Decides `command` in place on `member`, after reading back the record
/// it refers to (unless the member `holds_every_record`: most purchases
/// name a new order id, whose lookup would find nothing) and, as often as
/// the decision asks, the lots it needs.
/// Each read holds more of the member's lots, so the loop ends: at the
/// latest once every lot is held, when no decision asks again.
fn decide_paging(
    store: &Store,
    stream: &StreamName,
    holds_every_record: bool,
    member: &mut Member,
    command: &Command,
    rules: &Rules,
    now_us: i64,
) -> Result<Vec<domain::Event>, DecideError> {
    if let Some(record) = command_record(command) {
        if !holds_every_record {
            hold_record(store, stream, member, record)?;
        } else if cfg!(debug_assertions) {
            let mut probe = member.clone();
            let held = probe.held_records();
            hold_record(store, stream, &mut probe, record)?;
            debug_assert_eq!(
                probe.held_records(),
                held,
                "{stream} holds every record, yet a row gave back {record:?}"
            );
        }
    }
    loop {
        // In place: the member becomes the state after the events, and a
        // rejection (or a need for lots) leaves it as it was.
        match domain::decide_in_place(member, command, rules, now_us) {
            Ok(events) => return Ok(events),
            Err(domain::InPlaceError::NeedsLots(needed)) => {
                if !lots::page_in(store, stream, member, needed)? {
                    return Err(lots_unread(stream, needed));
                }
            }
            Err(domain::InPlaceError::Rejected(error)) => {
                return Err(DecideError::from(Rejection::from(error)));
            }
            Err(domain::InPlaceError::StateLost(error)) => {
                return Err(DecideError::StateLost(format!("{stream}: {error}")));
            }
        }
    }
}

/// A decision asked for lots that reading gave nothing more of: the rows
/// and the member's counts disagree.
fn lots_unread(stream: &StreamName, needed: LotsNeeded) -> DecideError {
    store_error(
        format!("{stream}: a decision needs lots that its rows do not hold: {needed:?}"),
        0,
    )
}

/// A member's points as the answer to a command gives them.
fn member_points(member: &Member) -> MemberPoints {
    MemberPoints {
        balance: member.balance_points().get(),
        pending: member.pending_points().get(),
        debt: member.debt_points().get(),
    }
}

/// The rules of a defined program; commands for an undefined one are refused
/// naming `program_id`.
fn defined_rules<'a>(
    program: &'a Program,
    program_id: &ProgramId,
) -> Result<&'a Rules, DecideError> {
    program.rules().ok_or_else(|| {
        Rejection {
            field: Some("program_id".into()),
            ..Rejection::new(
                "unknown_program",
                format!("program `{program_id}` is not defined"),
            )
        }
        .into()
    })
}

/// Loads a member: from its snapshot plus any later events of its stream
/// when `use_snapshot`, else by replaying the whole stream. A paged member
/// is its snapshot and the first lots of each order; its snapshot is
/// written with every batch that changes it, so it has no later events
/// (if it has, it is replayed from its stream instead).
fn load_cached(
    store: &Store,
    stream: &StreamName,
    use_snapshot: bool,
) -> Result<Cached, DecideError> {
    let bytes = if use_snapshot {
        store
            .db()
            .get_pinned_cf(store.cf(CF_SNAPSHOTS), stream.as_str().as_bytes())
            .map_err(StoreError::from)?
    } else {
        None
    };
    let found = bytes.is_some();
    let snapshot = bytes.and_then(|bytes| {
        bincode::serde::decode_from_slice::<Snapshot, _>(&bytes, bincode::config::standard())
            .ok()
            .map(|(snapshot, _)| snapshot)
            .filter(|snapshot| snapshot.format_version == SNAPSHOT_FORMAT_VERSION)
    });
    let unwritten_records = use_snapshot && snapshot.is_none();
    // A snapshot that cannot be read may have had lot rows written under
    // it; a missing one never had (a paged member always has one).
    let stale_lot_rows = found && snapshot.is_none();
    // Without a snapshot the member is its whole stream replayed, which
    // keeps exactly the records a row could still give back
    // ([`Member::hold_purchase`] refuses older ones).
    let holds_every_record = snapshot.is_none();
    let (mut member, mut stream_version, paged) = match snapshot {
        Some(Snapshot {
            member,
            stream_version,
            lots: Some(lots),
            ..
        }) => {
            let mut member = member;
            member.page_in_all(lots);
            (member, stream_version, false)
        }
        Some(Snapshot {
            member,
            stream_version,
            lots: None,
            ..
        }) => (member, stream_version, true),
        None => (Member::default(), 0, false),
    };
    if use_snapshot {
        member.keep_records_elsewhere();
    }
    let snapshot_version = stream_version;
    // Events after the snapshot: none when snapshots are current, all of them
    // when the snapshot is missing or of an older format. Versions have no
    // gaps, so one point lookup of the next version says whether there are
    // any; the stream index's bloom filters answer most such lookups without
    // a read, where a range read builds an iterator over every level.
    let tail = if store.stream_has_version(stream, stream_version + 1)? {
        store.read_stream_records(stream, stream_version + 1, usize::MAX)?
    } else {
        Vec::new()
    };
    if paged {
        if !tail.is_empty() {
            // Its lot rows may be ahead of the snapshot: replay the stream
            // and write every row again.
            tracing::warn!(%stream, "a paged member's snapshot is behind its stream; replaying it");
            let mut cached = load_cached(store, stream, false)?;
            cached.member.keep_records_elsewhere();
            cached.unwritten_records = true;
            cached.stale_lot_rows = true;
            return Ok(cached);
        }
        member.keep_lots_elsewhere();
        lots::page_in_windows(store, stream, &mut member)?;
    }
    for (position, bytes) in tail {
        let record = crate::store::decode_record(position, &bytes)?;
        let event = record::event_from_record(&record).map_err(|e| store_error(e, position))?;
        if let domain::EventKind::RedemptionCancelled(cancelled) = &event.kind {
            // Reopening a lot that closed since takes the lot as the
            // redemption recorded it: the row has it (its draws never
            // change). Other events about a record not held change only
            // the rest of the state, the row being the latest already.
            hold_record(
                store,
                stream,
                &mut member,
                (Record::Redemption, &cancelled.redemption_id),
            )?;
        }
        domain::apply(&mut member, &event);
        stream_version = record.stream_version;
    }
    // Due entries are written with a member's events: a member with no
    // snapshot and no event (a new one) has none, and most loads under a
    // growing population are of new members, whose lookup found nothing
    // after a search of every level.
    let due = if !found && stream_version == 0 {
        debug_assert!(
            matches!(stored_due(store, stream), Ok(None)),
            "{stream} has no event, yet a due entry"
        );
        None
    } else {
        stored_due(store, stream)?
    };
    Ok(Cached {
        member,
        stream_version,
        snapshot_version,
        due,
        used: false,
        loaded_for_version: false,
        touched: Vec::new(),
        unwritten_records,
        paged,
        touched_lots: Vec::new(),
        stale_lot_rows,
        holds_every_record,
    })
}

/// The due entry stored for `stream`'s member: when, and of what kind.
fn stored_due(store: &Store, stream: &StreamName) -> Result<Option<(i64, u8)>, DecideError> {
    match store
        .db()
        .get_pinned_cf(store.cf(CF_DUE), member_due_key(stream))
        .map_err(StoreError::from)?
    {
        Some(value) if value.len() == 9 => {
            let due_us = keys::parse_position_key(&value[..8]).unwrap_or(0);
            Ok(Some((due_us as i64, value[8])))
        }
        Some(_) => Err(store_error(format!("bad due entry for {stream}"), 0)),
        None => Ok(None),
    }
}

/// A member's write-model state as the writer loads it: its snapshot plus
/// any later events of its stream, and every record row it still keeps
/// (see [`Member::hold_purchase`]), so that it equals the state a replay
/// of its stream gives.
pub fn load_member(
    store: &Store,
    program_id: &ProgramId,
    member_id: &MemberId,
) -> Result<Member, DecideError> {
    let stream = StreamName::member(program_id, member_id);
    let mut member = load_cached(store, &stream, true)?.member;
    if member.lots_kept_elsewhere() {
        member.page_in_all(lots::read_all(store, &stream)?);
        member.keep_lots_here();
    }
    let prefix = member_rows_prefix(&stream);
    let rows = store.db().iterator_cf(
        store.cf(CF_SNAPSHOTS),
        rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
    );
    for row in rows {
        let (key, value) = row.map_err(StoreError::from)?;
        let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
            break;
        };
        let bad = |reason: &str| store_error(format!("record row of {stream}: {reason}"), 0);
        let (tag, id) = rest.split_first().ok_or_else(|| bad("empty key"))?;
        if lots::is_lot_row(*tag) {
            continue;
        }
        let kind = Record::from_tag(*tag).ok_or_else(|| bad(&format!("unknown kind {tag}")))?;
        let id = std::str::from_utf8(id).map_err(|_| bad("id is not UTF-8"))?;
        hold_row(&stream, &mut member, (kind, id), &value)?;
    }
    member.keep_records_here();
    Ok(member)
}

/// Decides `envelope` against the durable state and returns the events it
/// would append, writing nothing: the answer to a `dry_run`. Commands still
/// queued in the writer are not seen; idempotency is not consulted.
pub fn dry_run(
    store: &Store,
    envelope: &Envelope<LedgerCommand>,
) -> Result<Vec<Emitted>, CommandError> {
    let mut decider = LedgerDecider::new();
    if let Some(expected) = envelope.expected_version {
        let stream = decider.primary_stream(envelope);
        let actual = store
            .stream_version(&stream)
            .map_err(|error| CommandError::Unavailable(error.to_string()))?;
        if actual != expected {
            return Err(CommandError::VersionConflict {
                stream: stream.to_string(),
                expected,
                actual,
            });
        }
    }
    let mut out = Vec::new();
    match decider.decide(store, envelope, envelope.occurred_at_us, &mut out) {
        Ok(_) => Ok(out),
        Err(DecideError::Rejected(rejection)) => Err(CommandError::Rejected(rejection)),
        Err(DecideError::Store(error)) => Err(CommandError::Unavailable(error.to_string())),
        // The decider was made for this dry run alone and is dropped here.
        Err(DecideError::StateLost(reason)) => Err(CommandError::Unavailable(reason)),
    }
}

/// A member's state rebuilt from its whole stream, ignoring snapshots: what
/// an auditor's replay gives.
pub fn replay_member(
    store: &Store,
    program_id: &ProgramId,
    member_id: &MemberId,
) -> Result<Member, DecideError> {
    Ok(load_cached(store, &StreamName::member(program_id, member_id), false)?.member)
}

impl Decider for LedgerDecider {
    type Command = LedgerCommand;

    fn primary_stream(&self, envelope: &Envelope<LedgerCommand>) -> StreamName {
        match &envelope.command {
            LedgerCommand::Program(_) => StreamName::program(&envelope.program_id),
            LedgerCommand::Member { member_id, .. } => {
                StreamName::member(&envelope.program_id, member_id)
            }
            LedgerCommand::Transfer(transfer) => {
                StreamName::member(&envelope.program_id, &transfer.from_member_id)
            }
        }
    }

    fn decide(
        &mut self,
        store: &Store,
        envelope: &Envelope<LedgerCommand>,
        _recorded_at_us: i64,
        out: &mut Vec<Emitted>,
    ) -> Result<Option<MemberPoints>, DecideError> {
        let now_us = envelope.occurred_at_us;
        match &envelope.command {
            LedgerCommand::Program(command) => {
                let program = self.program(store, &envelope.program_id)?;
                let events =
                    domain::decide_program(&program, command, now_us).map_err(Rejection::from)?;
                let mut next = (*program).clone();
                let stream = StreamName::program(&envelope.program_id);
                for event in events {
                    domain::apply_program(&mut next, &event);
                    out.push(Emitted {
                        stream: stream.clone(),
                        occurred_at_us: event.occurred_at_us,
                        event: crate::pb::Event::from(&event.kind),
                    });
                }
                self.programs
                    .insert(envelope.program_id.clone(), Arc::new(next));
                Ok(None)
            }
            LedgerCommand::Member { member_id, command } => {
                self.decide_member(store, &envelope.program_id, member_id, command, now_us, out)
            }
            LedgerCommand::Transfer(transfer) => {
                self.decide_transfer(store, &envelope.program_id, transfer, now_us, out)
            }
        }
    }

    /// A member stream's version from its cached state, loading the member
    /// on a miss: the decision that follows needs it loaded anyway, and the
    /// load finds the version by point lookups (snapshot, next version),
    /// where the writer's own lookup builds an iterator over every level of
    /// the stream index.
    fn stream_version(
        &mut self,
        store: &Store,
        stream: &StreamName,
    ) -> Result<Option<u64>, DecideError> {
        if !stream.is_member() {
            return Ok(None);
        }
        if let Some(cached) = self.members.get(stream) {
            return Ok(Some(cached.stream_version));
        }
        self.load_into_cache(store, stream, true).map(Some)
    }

    fn discard(&mut self) {
        self.programs.clear();
        self.members.clear();
        self.dirty.clear();
        self.held = Held::default();
    }

    fn stage(&mut self, batch: &mut OrderedBatch) -> Result<(), String> {
        for stream in self.dirty.drain() {
            let Some(cached) = self.members.get_mut(&stream) else {
                continue;
            };
            if cached.unwritten_records {
                let member = &cached.member;
                let purchases = member.purchases().map(|(id, _)| (Record::Purchase, id));
                let redemptions = member.redemptions().map(|(id, _)| (Record::Redemption, id));
                for record in purchases.chain(redemptions) {
                    stage_record(batch, &stream, member, record)?;
                }
                cached.unwritten_records = false;
                cached.touched.clear();
            }
            cached.touched.sort_unstable();
            cached.touched.dedup();
            for (kind, id) in cached.touched.drain(..) {
                stage_record(batch, &stream, &cached.member, (kind, &id))?;
            }
            // Lots: a member past the inline bound becomes paged, all its
            // lots written as rows; a paged member writes the lots changed.
            let rewritten = std::mem::take(&mut cached.stale_lot_rows);
            if rewritten {
                lots::clear_lot_rows(batch, &stream);
            }
            if cached.paged {
                lots::stage_touched(batch, &stream, &cached.member, &mut cached.touched_lots)?;
            } else if cached.member.open_lot_count() > self.lots_inline_max {
                lots::stage_all(batch, &stream, &cached.member)?;
                let before = Held::of(&cached.member);
                cached.member.keep_lots_elsewhere();
                self.held.moved(before, Held::of(&cached.member));
                cached.paged = true;
                cached.touched_lots.clear();
            }
            let program_id = stream_program(&stream);
            let next_due = program_id
                .and_then(|program_id| self.programs.get(&program_id))
                .and_then(|program| {
                    program
                        .rules()
                        .and_then(|rules| cached.member.next_due(rules))
                })
                .map(|(due_us, kind)| (due_us, kind as u8));
            if next_due != cached.due {
                if let Some((due_us, kind)) = cached.due {
                    batch.delete(CF_DUE, due_key(due_us, kind, &stream));
                }
                match next_due {
                    Some((due_us, kind)) => {
                        // The value is the stream version the entry was made
                        // at: the scheduler's idempotency key includes it,
                        // so an entry that recurs at the same instant after
                        // new events is a new command, not a replay.
                        batch.put(
                            CF_DUE,
                            due_key(due_us, kind, &stream),
                            cached.stream_version.to_be_bytes(),
                        );
                        let mut value = (due_us.max(0) as u64).to_be_bytes().to_vec();
                        value.push(kind);
                        batch.put(CF_DUE, member_due_key(&stream), value);
                    }
                    None => batch.delete(CF_DUE, member_due_key(&stream)),
                }
                cached.due = next_due;
            }
            // A paged member's rows are always the latest, so its snapshot
            // must be too: it is written with every batch that changes it.
            let interval = snapshot_interval(
                &cached.member,
                self.snapshot_every_events,
                self.snapshot_entries_per_event,
            );
            let due_for_snapshot = cached.paged
                || rewritten
                || cached.stream_version - cached.snapshot_version >= interval;
            if !due_for_snapshot {
                continue;
            }
            match cached.encode_snapshot() {
                Ok(bytes) => {
                    batch.put(CF_SNAPSHOTS, stream.as_str().as_bytes(), bytes);
                    cached.snapshot_version = cached.stream_version;
                }
                // A paged member's lot rows are ahead of its old snapshot:
                // the batch must not be written without the new one.
                Err(error) if cached.paged => {
                    return Err(format!("snapshot of {stream}: {error}"));
                }
                // Without a snapshot the member is replayed from its stream on
                // the next load: slower, never wrong.
                Err(error) => tracing::error!(%error, %stream, "snapshot encoding failed"),
            }
        }
        for (kind, count) in [
            ("members", self.members.len()),
            ("entries", self.held.entries),
            ("records", self.held.records),
            ("lots", self.held.lots),
        ] {
            metrics::gauge!(METRIC_CACHE_ENTRIES, "kind" => kind).set(count as f64);
        }
        Ok(())
    }

    fn needs_trim(&self) -> bool {
        self.members.len() > self.members_max
            || self.held.records > self.records_held_max
            || self.held.lots > self.lots_trim_at
    }

    /// Over the member bound: keeps the members decided for more than once
    /// since they were loaded or last trimmed (the hot members of a skewed
    /// population), and of those at most half the bound, the largest: they
    /// cost the most to load again. Forgetting every member instead, when
    /// more than half were used again, made the next seconds reload the
    /// largest members one after another, and stalled the writer. Over the
    /// records bound: lets go of every record held, their rows being
    /// durable now, and forgets the members whose rows may not all be
    /// written yet. Over the lots bound: see [`LedgerDecider::trim_lots`].
    fn trim(&mut self, store: &Store) {
        let started = std::time::Instant::now();
        let before = (self.members.len(), self.held);
        // Snapshots of the members forgotten, written together at the end.
        let mut forgotten = OrderedBatch::default();
        let mut forget_unless = |keep: bool, stream: &StreamName, cached: &Cached| {
            if !keep {
                cached.stage_forgotten(stream, &mut forgotten);
            }
            keep
        };
        if self.members.len() > self.members_max {
            self.members
                .retain(|stream, cached| forget_unless(cached.used, stream, cached));
            let keep = self.members_max / 2;
            if self.members.len() > keep {
                let mut sizes: Vec<usize> = self
                    .members
                    .values()
                    .map(|cached| cached.member.entry_count())
                    .collect();
                // The `keep`-th largest size: members larger stay.
                let (_, smallest_kept, _) = sizes.select_nth_unstable_by(keep, |a, b| b.cmp(a));
                let smallest_kept = *smallest_kept;
                self.members.retain(|stream, cached| {
                    forget_unless(cached.member.entry_count() > smallest_kept, stream, cached)
                });
            }
        }
        if self.held.records > self.records_held_max {
            // Their rows may not all be written: no snapshot for these.
            self.members.retain(|_, cached| !cached.unwritten_records);
            for cached in self.members.values_mut() {
                cached.member.release_records();
                cached.holds_every_record = false;
            }
        }
        if self.held.lots > self.lots_trim_at {
            self.trim_lots(&mut forgotten);
        }
        let snapshots = forgotten.len();
        if snapshots > 0 {
            // Every batch sent is durable, so no snapshot staged in one can
            // land after these and be older. Losing them (a crash, a full
            // disk) costs replays on the next loads, never state: no fsync.
            if let Err(error) = store.write_relaxed(forgotten.into_write_batch(store)) {
                tracing::warn!(%error, snapshots, "snapshots of forgotten members not written");
            }
        }
        let mut held = Held::default();
        for cached in self.members.values_mut() {
            held.add(Held::of(&cached.member));
            cached.used = false;
        }
        self.held = held;
        self.lots_trim_at = held
            .lots
            .saturating_add(self.lots_held_max / 4)
            .clamp(self.lots_held_max, self.lots_held_max.saturating_mul(2));
        self.dirty.clear();
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            members = before.0,
            members_kept = self.members.len(),
            lots = before.1.lots,
            lots_kept = self.held.lots,
            records = before.1.records,
            records_kept = self.held.records,
            snapshots,
            "member cache trimmed"
        );
    }
}

impl LedgerDecider {
    /// Over the lots bound: the paged members let go of their lots beyond
    /// the first [`LOT_WINDOW_LOTS`] of each order, their rows being
    /// durable now; then, if the members still hold more than three
    /// quarters of the bound, members that keep their lots inline and
    /// were not decided for since the last trim are forgotten, those
    /// holding the most first, until half of it is held. Members decided
    /// for since are forgotten too, the same way, only past twice the
    /// bound, and down to the bound: forgetting the members a workload
    /// keeps deciding for (10,000 of them, each with up to 32 lots, in
    /// `benches/writer.rs`) made each batch load a tenth of them again,
    /// and cut that bench's rate to a third. Until the members hold more
    /// than what a trim kept and a quarter of the bound, the next trim
    /// waits. A paged member is kept: it holds its windows only, and it
    /// is paged because it is busy. A forgotten member holds at most
    /// [`LOTS_INLINE_MAX`] lots and loads again from its snapshot.
    fn trim_lots(&mut self, forgotten: &mut OrderedBatch) {
        let mut candidates: Vec<(bool, usize, StreamName)> = Vec::new();
        let mut total = 0;
        for (stream, cached) in &mut self.members {
            if cached.paged {
                debug_assert!(
                    cached.touched_lots.is_empty(),
                    "every changed lot is staged before a trim"
                );
                cached.member.release_lots(self.lot_window);
            }
            let lots = Held::of(&cached.member).lots;
            total += lots;
            // A member whose record rows may be missing stays until its
            // next batch writes them.
            if !cached.paged && !cached.unwritten_records {
                candidates.push((cached.used, lots, stream.clone()));
            }
        }
        if total <= self.lots_held_max / 4 * 3 {
            return;
        }
        // Not used again first (false < true), then the most lots.
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut goal = self.lots_held_max / 2;
        let mut forgetting_used = false;
        for (used, lots, stream) in candidates {
            if used && !forgetting_used {
                if total <= self.lots_held_max.saturating_mul(2) {
                    break;
                }
                forgetting_used = true;
                goal = self.lots_held_max;
            }
            if total <= goal {
                break;
            }
            if let Some(cached) = self.members.remove(&stream) {
                cached.stage_forgotten(&stream, forgotten);
            }
            total -= lots;
        }
    }
}

/// The program of a member stream name (`member/{program}/{member}`).
fn stream_program(stream: &StreamName) -> Option<ProgramId> {
    let mut parts = stream.as_str().split('/');
    match (parts.next(), parts.next()) {
        (Some("member"), Some(program)) => ProgramId::parse("stream", program).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Money, ProgramRules, Rules};
    use crate::ids::IdempotencyKey;

    /// Decides `envelope` at `at_us`, writes what it staged durably, and
    /// trims the cache if it is over a bound, as the writer does.
    fn decide_and_write(
        store: &Store,
        decider: &mut LedgerDecider,
        envelope: &Envelope<LedgerCommand>,
        at_us: i64,
    ) -> Result<Option<MemberPoints>, DecideError> {
        let mut out = Vec::new();
        let points = decider.decide(store, envelope, at_us, &mut out);
        let mut batch = OrderedBatch::default();
        decider.stage(&mut batch).expect("staged");
        store
            .write_durable(batch.into_write_batch(store))
            .expect("written");
        if decider.needs_trim() {
            decider.trim(store);
        }
        points
    }

    fn member_stream(member: &str) -> StreamName {
        StreamName::member(
            &ProgramId::parse("program_id", "p").expect("program id"),
            &MemberId::parse("member_id", member).expect("member id"),
        )
    }

    fn envelope(member: &str, order: &str, at_us: i64) -> Envelope<LedgerCommand> {
        Envelope {
            program_id: ProgramId::parse("program_id", "p").expect("program id"),
            idempotency_key: IdempotencyKey::parse("idempotency_key", order).expect("key"),
            occurred_at_us: at_us,
            principal: "test".into(),
            metadata: vec![],
            expected_version: None,
            command: LedgerCommand::Member {
                member_id: MemberId::parse("member_id", member).expect("member id"),
                command: Command::RecordPurchase {
                    order_id: order.into(),
                    spend: Money::new(
                        1_000,
                        crate::domain::Currency::from_code("USD", "spend").expect("USD"),
                    ),
                    tags: vec![],
                },
            },
        }
    }

    /// Goal: a trim over the member bound keeps at most half of it, the
    /// largest of the members used again, and never forgets every member.
    /// Method: a decider bounded to 4 members, 5 members used twice, one
    /// of them much larger; decided directly, without a writer.
    #[test]
    fn a_trim_keeps_the_largest_members_used_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut decider = LedgerDecider::new().with_member_cache_max(4);
        let at_us = 1_800_000_000_000_000;
        let mut define = envelope("x", "define", at_us);
        define.command = LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules: ProgramRules::basic("USD"),
        });
        let mut out = Vec::new();
        decider
            .decide(&store, &define, at_us, &mut out)
            .expect("defined");
        let mut purchases = 0;
        let mut purchase = |decider: &mut LedgerDecider, member: &str| {
            purchases += 1;
            let mut out = Vec::new();
            let envelope = envelope(member, &format!("o{purchases}"), at_us);
            decider
                .decide(&store, &envelope, at_us, &mut out)
                .expect("purchase");
        };
        for _ in 0..20 {
            purchase(&mut decider, "big");
        }
        for member in ["a", "b", "c", "d"] {
            purchase(&mut decider, member);
            purchase(&mut decider, member);
        }
        assert!(decider.needs_trim());
        decider.trim(&store);
        let kept: Vec<&str> = decider
            .members
            .keys()
            .map(|stream| stream.as_str())
            .collect();
        assert!(
            kept.contains(&"member/p/big"),
            "the largest stays: {kept:?}"
        );
        assert!(
            !kept.is_empty() && kept.len() <= 2,
            "at most half: {kept:?}"
        );
        assert!(!decider.needs_trim());
    }

    /// Goal: a member with many open lots holds a window of them, however
    /// many it has, and reads the others back from their rows when a
    /// decision needs them, also after a restart. Method: a decider paging
    /// past 8 lots with windows of 4, letting go after every batch; each
    /// decision staged and written as the writer does (without the log:
    /// the member stays cached or loads from its snapshot, whose stream has
    /// no later event); 300 purchases, then a redeem that needs most of
    /// the lots.
    #[test]
    fn a_paged_member_holds_a_window_of_its_lots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        // Over 9 lots held the member goes back to its windows; an inline
        // member (at most 8) is never over it, so it is never forgotten
        // (this harness writes no events to load it again from).
        let paging = || LedgerDecider::new().with_lot_paging(8, 4, 9);
        let mut decider = paging();
        let at_us = 1_800_000_000_000_000;
        let mut define = envelope("x", "define", at_us);
        define.command = LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules: ProgramRules::basic("USD"),
        });
        let decide_and_write = |decider: &mut LedgerDecider, envelope: &Envelope<LedgerCommand>| {
            decide_and_write(&store, decider, envelope, at_us)
        };
        decide_and_write(&mut decider, &define).expect("defined");
        let stream = member_stream("hot");
        let mut most_held = 0;
        for order in 0..300 {
            let purchase = envelope("hot", &format!("o{order}"), at_us);
            decide_and_write(&mut decider, &purchase).expect("purchase");
            most_held = most_held.max(decider.members[&stream].member.held_lot_count());
        }
        let member = &decider.members[&stream].member;
        assert_eq!(member.open_lot_count(), 300);
        assert!(
            most_held <= 2 * 4 + 1,
            "at most the two windows and the newest lot are held: {most_held}"
        );
        // Ten points a lot: 2,500 points take 250 lots, read back in pages.
        let balance = member.balance_points().get();
        let mut redeem = envelope("hot", "r1", at_us);
        redeem.command = LedgerCommand::Member {
            member_id: MemberId::parse("member_id", "hot").expect("member id"),
            command: Command::Redeem {
                redemption_id: "r1".into(),
                points: crate::domain::Points::new(2_500),
            },
        };
        let after = decide_and_write(&mut decider, &redeem).expect("redeemed");
        assert_eq!(after.map(|points| points.balance), Some(balance - 2_500));
        let member = &decider.members[&stream].member;
        assert_eq!(member.open_lot_count(), 50);
        assert!(member.held_lot_count() <= 2 * 4, "let go after the batch");
        // A restart: loaded from its snapshot and the first lots of its rows.
        // (The program is decided again: without a writer, its stream was
        // never written.)
        let mut restarted = paging();
        decide_and_write(&mut restarted, &define).expect("defined");
        let mut again = redeem.clone();
        again.idempotency_key = IdempotencyKey::parse("idempotency_key", "r2").expect("key");
        if let LedgerCommand::Member { command, .. } = &mut again.command {
            *command = Command::Redeem {
                redemption_id: "r2".into(),
                points: crate::domain::Points::new(400),
            };
        }
        let after = decide_and_write(&mut restarted, &again).expect("redeemed after a restart");
        assert_eq!(after.map(|points| points.balance), Some(balance - 2_900));
        let member = &restarted.members[&stream].member;
        assert_eq!(member.open_lot_count(), 10);
        assert!(member.held_lot_count() <= 2 * 4);
    }

    /// Goal: over the lots bound, members whose lots are inline and that
    /// were not decided for since the last trim are forgotten, those that
    /// were only past twice the bound, and a paged member is kept. Method:
    /// a paged member, then six members of five inline lots each, one
    /// after another, under a bound of 24 lots; then two members in turn,
    /// seven lots each, under a bound of 8; then five members in turn,
    /// three lots each, under a bound of 4. After every batch the lots the
    /// cached members hold are counted. (That a forgotten member loads
    /// again whole is the model tests' part, `tests/engine_model.rs`: this
    /// harness writes no events to load it from.)
    #[test]
    fn over_the_lots_bound_idle_inline_members_are_forgotten_first() {
        let at_us = 1_800_000_000_000_000;
        let mut define = envelope("x", "define", at_us);
        define.command = LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules: ProgramRules::basic("USD"),
        });
        let held = |decider: &LedgerDecider| {
            let held: usize = decider
                .members
                .values()
                .map(|c| c.member.held_lot_count() + c.member.closed_lot_count())
                .sum();
            assert_eq!(held, decider.held.lots, "the count matches the members");
            held
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut decider = LedgerDecider::new().with_lot_paging(8, 4, 24);
        decide_and_write(&store, &mut decider, &define, at_us).expect("defined");
        for order in 0..12 {
            let purchase = envelope("hot", &format!("hot-{order}"), at_us);
            decide_and_write(&store, &mut decider, &purchase, at_us).expect("purchase");
        }
        let hot = member_stream("hot");
        assert!(decider.members[&hot].paged, "12 lots are past the 8 inline");
        let mut fewest_cached = usize::MAX;
        for member in 0..6 {
            let name = format!("m{member}");
            for order in 0..5 {
                let purchase = envelope(&name, &format!("{name}-{order}"), at_us);
                decide_and_write(&store, &mut decider, &purchase, at_us).expect("purchase");
                assert!(held(&decider) <= 48, "past twice the bound");
                assert!(
                    decider.members.contains_key(&hot),
                    "the paged member is kept"
                );
                if order > 0 {
                    let kept = decider.members.contains_key(&member_stream(&name));
                    assert!(
                        kept,
                        "{name}, decided for again, is kept under twice the bound"
                    );
                }
                fewest_cached = fewest_cached.min(decider.members.len());
            }
        }
        assert!(fewest_cached < 7, "an idle inline member was forgotten");

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut decider = LedgerDecider::new().with_lot_paging(8, 4, 8);
        decide_and_write(&store, &mut decider, &define, at_us).expect("defined");
        for round in 0..7 {
            for name in ["a", "b"] {
                let purchase = envelope(name, &format!("{name}-{round}"), at_us);
                decide_and_write(&store, &mut decider, &purchase, at_us).expect("purchase");
                assert!(held(&decider) <= 16, "past twice the bound");
                if round > 0 {
                    assert_eq!(
                        decider.members.len(),
                        2,
                        "both, decided for in turn, are kept"
                    );
                }
            }
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut decider = LedgerDecider::new().with_lot_paging(8, 4, 4);
        decide_and_write(&store, &mut decider, &define, at_us).expect("defined");
        let mut fewest_cached = usize::MAX;
        for round in 0..3 {
            for member in 0..5 {
                let name = format!("m{member}");
                let purchase = envelope(&name, &format!("{name}-{round}"), at_us);
                decide_and_write(&store, &mut decider, &purchase, at_us).expect("purchase");
                assert!(held(&decider) <= 8, "past twice the bound");
                if round > 0 {
                    fewest_cached = fewest_cached.min(decider.members.len());
                }
            }
        }
        assert!(
            fewest_cached < 5,
            "members decided for in turn were forgotten"
        );
    }

    /// Goal: a member's snapshot interval is the fixed one until its state
    /// is large, then grows with it. Method: a member given 1,000 purchases
    /// through the domain (each keeps a lot and a purchase, and all fall on
    /// one qualifying day).
    #[test]
    fn snapshot_interval_grows_with_the_member() {
        let rules = Rules::try_from(ProgramRules::basic("USD")).expect("basic rules");
        let mut member = Member::default();
        assert_eq!(snapshot_interval(&member, 32, 4), 32);
        let at_us = 1_800_000_000_000_000;
        for order in 0..1_000 {
            let command = Command::RecordPurchase {
                order_id: format!("o-{order}"),
                spend: Money::new(10_00, rules.currency()),
                tags: vec![],
            };
            for event in domain::decide(&member, &command, &rules, at_us).expect("purchase") {
                domain::apply(&mut member, &event);
            }
        }
        assert_eq!(member.entry_count(), 2_001);
        assert_eq!(snapshot_interval(&member, 32, 4), 500);
        assert_eq!(snapshot_interval(&member, 32, u64::MAX), 32);
        assert_eq!(snapshot_interval(&member, 1_000, 4), 1_000);
    }
}
