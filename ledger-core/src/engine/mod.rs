//! The command engine: the domain's `decide`/`apply` driven by the writer.
//!
//! [`LedgerDecider`] is the [`Decider`] of a real ledger. It keeps the write
//! model in memory (programs, and members in a bounded cache), loads a
//! member on a miss from its snapshot plus any later events of its stream,
//! and stages, in the same batch as the events:
//! - the snapshot of a member a batch changed, once its stream has grown by
//!   [`SNAPSHOT_EVERY_EVENTS`] since the last one (`snapshots` family);
//! - the member's next due time (`due` family), which the [`scheduler`]
//!   scans to submit time-driven system commands through the same writer.
//!
//! Snapshots are bincode and rebuildable: a snapshot whose format version
//! differs is ignored and the member is rebuilt from its stream.

pub mod scheduler;

use crate::domain::{self, Command, Member, Program, ProgramCommand, Rules, TransferPoints};
use crate::error::{CommandError, Rejection, StoreError};
use crate::ids::{MemberId, ProgramId, StreamName};
use crate::record;
use crate::store::{CF_DUE, CF_SNAPSHOTS, Store, keys};
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
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

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
#[derive(Deserialize)]
struct Snapshot {
    format_version: u32,
    stream_version: u64,
    member: Member,
}

/// The same fields borrowed, for encoding without cloning the member: serde
/// encodes `&Member` exactly as `Member`.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    format_version: u32,
    stream_version: u64,
    member: &'a Member,
}

struct Cached {
    member: Member,
    stream_version: u64,
    /// Stream version of the stored snapshot (0: none).
    snapshot_version: u64,
    /// The due entry currently stored for this member.
    due: Option<(i64, u8)>,
    /// Decided for again since it was loaded or last trimmed: a trim keeps
    /// these.
    used: bool,
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
}

impl Default for LedgerDecider {
    fn default() -> Self {
        LedgerDecider {
            programs: HashMap::new(),
            members: HashMap::new(),
            dirty: HashSet::new(),
            snapshot_every_events: SNAPSHOT_EVERY_EVENTS,
            snapshot_entries_per_event: SNAPSHOT_ENTRIES_PER_EVENT,
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
        for stored in store.read_stream(&stream, 1, usize::MAX)? {
            let record = stored.decode()?;
            let event =
                record::event_from_record(&record).map_err(|e| store_error(e, stored.position))?;
            domain::apply_program(&mut program, &event);
        }
        let program = Arc::new(program);
        self.programs.insert(program_id.clone(), program.clone());
        Ok(program)
    }

    fn load_member(&mut self, store: &Store, stream: &StreamName) -> Result<(), DecideError> {
        match self.members.get_mut(stream) {
            Some(cached) => cached.used = true,
            None => {
                let cached = load_cached(store, stream, true)?;
                self.members.insert(stream.clone(), cached);
            }
        }
        Ok(())
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
        for event in events {
            domain::apply(&mut cached.member, &event);
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
        // In place: the cached member becomes the state after the events,
        // and a rejection leaves it as it was.
        let events = domain::decide_in_place(&mut cached.member, command, rules, now_us).map_err(
            |error| match error {
                domain::InPlaceError::Rejected(error) => DecideError::from(Rejection::from(error)),
                domain::InPlaceError::StateLost(error) => {
                    DecideError::StateLost(format!("{stream}: {error}"))
                }
            },
        )?;
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
        let (Some(sender), Some(receiver)) = (self.members.get(&from), self.members.get(&to))
        else {
            return Err(store_error("member not loaded", 0));
        };
        let (sent, received) =
            domain::decide_transfer(&sender.member, &receiver.member, transfer, rules, now_us)
                .map_err(Rejection::from)?;
        let sender_points = self.emit(&from, sent, out);
        self.emit(&to, received, out);
        Ok(sender_points)
    }
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
/// when `use_snapshot`, else by replaying the whole stream.
fn load_cached(
    store: &Store,
    stream: &StreamName,
    use_snapshot: bool,
) -> Result<Cached, DecideError> {
    let snapshot = if use_snapshot {
        store
            .db()
            .get_pinned_cf(store.cf(CF_SNAPSHOTS), stream.as_str().as_bytes())
            .map_err(StoreError::from)?
    } else {
        None
    };
    let snapshot = snapshot.and_then(|bytes| {
        bincode::serde::decode_from_slice::<Snapshot, _>(&bytes, bincode::config::standard())
            .ok()
            .map(|(snapshot, _)| snapshot)
            .filter(|snapshot| snapshot.format_version == SNAPSHOT_FORMAT_VERSION)
    });
    let (mut member, mut stream_version) = match snapshot {
        Some(snapshot) => (snapshot.member, snapshot.stream_version),
        None => (Member::default(), 0),
    };
    let snapshot_version = stream_version;
    // Events after the snapshot: none when snapshots are current, all of them
    // when the snapshot is missing or of an older format.
    for stored in store.read_stream(stream, stream_version + 1, usize::MAX)? {
        let record = stored.decode()?;
        let event =
            record::event_from_record(&record).map_err(|e| store_error(e, stored.position))?;
        domain::apply(&mut member, &event);
        stream_version = record.stream_version;
    }
    let due = match store
        .db()
        .get_pinned_cf(store.cf(CF_DUE), member_due_key(stream))
        .map_err(StoreError::from)?
    {
        Some(value) if value.len() == 9 => {
            let due_us = keys::parse_position_key(&value[..8]).unwrap_or(0);
            Some((due_us as i64, value[8]))
        }
        Some(_) => return Err(store_error(format!("bad due entry for {stream}"), 0)),
        None => None,
    };
    Ok(Cached {
        member,
        stream_version,
        snapshot_version,
        due,
        used: false,
    })
}

/// A member's write-model state as the writer loads it: its snapshot plus
/// any later events of its stream.
pub fn load_member(
    store: &Store,
    program_id: &ProgramId,
    member_id: &MemberId,
) -> Result<Member, DecideError> {
    Ok(load_cached(store, &StreamName::member(program_id, member_id), true)?.member)
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

    fn discard(&mut self) {
        self.programs.clear();
        self.members.clear();
        self.dirty.clear();
    }

    fn stage(&mut self, store: &Store, batch: &mut rocksdb::WriteBatch) {
        for stream in self.dirty.drain() {
            let Some(cached) = self.members.get_mut(&stream) else {
                continue;
            };
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
                    batch.delete_cf(store.cf(CF_DUE), due_key(due_us, kind, &stream));
                }
                match next_due {
                    Some((due_us, kind)) => {
                        // The value is the stream version the entry was made
                        // at: the scheduler's idempotency key includes it,
                        // so an entry that recurs at the same instant after
                        // new events is a new command, not a replay.
                        batch.put_cf(
                            store.cf(CF_DUE),
                            due_key(due_us, kind, &stream),
                            cached.stream_version.to_be_bytes(),
                        );
                        let mut value = (due_us.max(0) as u64).to_be_bytes().to_vec();
                        value.push(kind);
                        batch.put_cf(store.cf(CF_DUE), member_due_key(&stream), value);
                    }
                    None => batch.delete_cf(store.cf(CF_DUE), member_due_key(&stream)),
                }
                cached.due = next_due;
            }
            let interval = snapshot_interval(
                &cached.member,
                self.snapshot_every_events,
                self.snapshot_entries_per_event,
            );
            if cached.stream_version - cached.snapshot_version < interval {
                continue;
            }
            let snapshot = SnapshotRef {
                format_version: SNAPSHOT_FORMAT_VERSION,
                stream_version: cached.stream_version,
                member: &cached.member,
            };
            match bincode::serde::encode_to_vec(&snapshot, bincode::config::standard()) {
                Ok(bytes) => {
                    batch.put_cf(store.cf(CF_SNAPSHOTS), stream.as_str().as_bytes(), bytes);
                    cached.snapshot_version = cached.stream_version;
                }
                // Without a snapshot the member is replayed from its stream on
                // the next load: slower, never wrong.
                Err(error) => tracing::error!(%error, %stream, "snapshot encoding failed"),
            }
        }
    }

    fn needs_trim(&self) -> bool {
        self.members.len() > MEMBER_CACHE_ENTRIES_MAX
    }

    /// Keeps the members decided for more than once since they were loaded
    /// or last trimmed, when they are at most half the bound (so the hot
    /// members of a skewed population stay loaded), else forgets every
    /// member.
    fn trim(&mut self) {
        self.members
            .retain(|_, cached| std::mem::take(&mut cached.used));
        if self.members.len() > MEMBER_CACHE_ENTRIES_MAX / 2 {
            self.members = HashMap::new();
        }
        self.dirty.clear();
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
