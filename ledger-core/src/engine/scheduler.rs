//! Time-driven work: maturing pending points, lot expiry, inactivity expiry
//! and tier period ends.
//!
//! The engine keeps, for every member, one entry in the `due` family: the
//! earliest time at which something is due for it, written in the same batch
//! as the events that set it. The scheduler scans that family in key order
//! (due-time order), and submits for each entry due by "now" the member's
//! system command through the ordinary writer, with `occurred_at` = the due
//! time and principal `system`. The domain's system commands do everything
//! due up to their time, so one entry per member is enough, and a server that
//! was stopped for a month catches up in due-time order when it starts.
//!
//! The results are ordinary events; a replay reads them and never runs the
//! scheduler. Each submission's idempotency key is derived from the entry,
//! so submitting the same due entry twice applies it once.

use super::{DUE_BY_TIME_PREFIX, LedgerCommand, due_key};
use crate::clock::Clock;
use crate::domain::{Command, DueKind};
use crate::error::{CommandError, StoreError};
use crate::ids::{IdempotencyKey, MemberId, ProgramId};
use crate::limits::SUBMIT_BATCH_COMMANDS_MAX;
use crate::store::CF_STREAM_INDEX;
use crate::store::{CF_DUE, Store, keys};
use crate::writer::{Envelope, WriterHandle};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Due entries read per scan.
pub const SCHEDULER_SCAN_ENTRIES_MAX: usize = 10_000;

/// A due entry: the member and what is due when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    /// When it is due.
    pub due_us: i64,
    /// The earliest kind of work due then.
    pub kind: DueKind,
    /// The member's program.
    pub program_id: ProgramId,
    /// The member.
    pub member_id: MemberId,
    /// The member's stream version when the entry was made.
    pub stream_version: u64,
}

fn kind_from_byte(byte: u8) -> Option<DueKind> {
    [
        DueKind::MaturePending,
        DueKind::ExpireLot,
        DueKind::ExpireInactive,
        DueKind::EvaluateTier,
    ]
    .into_iter()
    .find(|kind| *kind as u8 == byte)
}

fn parse_entry(key: &[u8], value: &[u8]) -> Option<DueEntry> {
    let (prefix, key) = key.split_first()?;
    if *prefix != DUE_BY_TIME_PREFIX {
        return None;
    }
    let (due, rest) = key.split_at_checked(8)?;
    let (kind, stream) = rest.split_first()?;
    let stream = std::str::from_utf8(stream).ok()?;
    let mut parts = stream.split('/');
    let (Some("member"), Some(program), Some(member), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some(DueEntry {
        due_us: i64::try_from(keys::parse_position_key(due)?).ok()?,
        kind: kind_from_byte(*kind)?,
        program_id: ProgramId::parse("stream", program).ok()?,
        member_id: MemberId::parse("stream", member).ok()?,
        stream_version: keys::parse_position_key(value)?,
    })
}

/// Reads the entries due at or before `now_us`, earliest first.
pub fn due_entries(store: &Store, now_us: i64, max: usize) -> Result<Vec<DueEntry>, StoreError> {
    let mut out = Vec::new();
    let mut iter = store.db().raw_iterator_cf(store.cf(CF_DUE));
    iter.seek([DUE_BY_TIME_PREFIX]);
    while let Some(key) = iter.key() {
        if out.len() >= max || key.first() != Some(&DUE_BY_TIME_PREFIX) {
            break;
        }
        let Some(entry) = parse_entry(key, iter.value().unwrap_or_default()) else {
            return Err(StoreError::Corrupt {
                position: 0,
                reason: "unreadable due entry".into(),
            });
        };
        if entry.due_us > now_us {
            break;
        }
        out.push(entry);
        iter.next();
    }
    iter.status()?;
    Ok(out)
}

fn command_for(kind: DueKind) -> Command {
    match kind {
        DueKind::MaturePending => Command::MaturePending,
        DueKind::ExpireLot => Command::ExpireLots,
        DueKind::ExpireInactive => Command::ExpireInactive,
        DueKind::EvaluateTier => Command::EvaluateTier,
    }
}

/// The envelope of an entry's system command. Its key is derived from the
/// entry, including the stream version it was made at, so the same entry is
/// applied once however often it is submitted, while an entry that recurs at
/// the same instant after new events (points received after an inactivity
/// expiry, say) is a new command.
pub fn system_envelope(entry: &DueEntry) -> Result<Envelope<LedgerCommand>, CommandError> {
    let stream = crate::ids::StreamName::member(&entry.program_id, &entry.member_id);
    let mut hasher = Sha256::new();
    hasher.update(due_key(entry.due_us, entry.kind as u8, &stream));
    hasher.update(entry.stream_version.to_be_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(Envelope {
        program_id: entry.program_id.clone(),
        idempotency_key: IdempotencyKey::parse("idempotency_key", &format!("system:due:{hex}"))?,
        occurred_at_us: entry.due_us,
        principal: "system".into(),
        metadata: vec![],
        expected_version: None,
        command: LedgerCommand::Member {
            member_id: entry.member_id.clone(),
            command: command_for(entry.kind),
        },
    })
}

/// Prefix of the per-program entries of the `due` family: `'p' || program`
/// -> `be_u64(program stream version)` up to which members were rescheduled.
pub const DUE_RESCHEDULED_PREFIX: u8 = b'p';

fn rescheduled_key(program_id: &ProgramId) -> Vec<u8> {
    let mut key = vec![DUE_RESCHEDULED_PREFIX];
    key.extend_from_slice(program_id.as_str().as_bytes());
    key
}

/// A program whose members must be rescheduled under new rules.
struct RulesChange {
    program_id: ProgramId,
    /// Program stream version of the change.
    version: u64,
    /// Business time of the change.
    changed_at_us: i64,
}

/// Programs whose rules changed since their members were last rescheduled.
fn programs_to_reschedule(store: &Store) -> Result<Vec<RulesChange>, StoreError> {
    let mut latest: Vec<(ProgramId, u64, u64)> = Vec::new();
    let mut iter = store.db().raw_iterator_cf(store.cf(CF_STREAM_INDEX));
    iter.seek(b"program/");
    while let Some(key) = iter.key() {
        let Some(rest) = key.strip_prefix(b"program/") else {
            break;
        };
        let Some(split) = rest.iter().position(|byte| *byte == 0) else {
            break;
        };
        let (name, version) = rest.split_at(split);
        let program = std::str::from_utf8(name)
            .ok()
            .and_then(|n| ProgramId::parse("stream", n).ok());
        let version = version.get(1..).and_then(keys::parse_position_key);
        let position = iter.value().and_then(keys::parse_position_key);
        let (Some(program), Some(version), Some(position)) = (program, version, position) else {
            return Err(StoreError::Corrupt {
                position: 0,
                reason: "bad program stream key".into(),
            });
        };
        match latest.last_mut() {
            Some((last, last_version, last_position)) if *last == program => {
                *last_version = version;
                *last_position = position;
            }
            _ => latest.push((program, version, position)),
        }
        iter.next();
    }
    iter.status()?;
    let mut out = Vec::new();
    for (program_id, version, position) in latest {
        let done = store
            .db()
            .get_pinned_cf(store.cf(CF_DUE), rescheduled_key(&program_id))?
            .and_then(|value| keys::parse_position_key(&value))
            .unwrap_or(0);
        if done < version {
            let record = store
                .read_range(position, position, 1)?
                .pop()
                .ok_or_else(|| StoreError::Corrupt {
                    position,
                    reason: "program stream indexes a missing record".into(),
                })?;
            let changed_at_us = record.decode()?.occurred_at_us;
            out.push(RulesChange {
                program_id,
                version,
                changed_at_us,
            });
        }
    }
    Ok(out)
}

/// Members of `program_id` with at least one event, from the stream index:
/// after reading a member's first key, the scan seeks past all its versions.
fn program_members(store: &Store, program_id: &ProgramId) -> Result<Vec<MemberId>, StoreError> {
    let prefix = format!("member/{program_id}/");
    let corrupt = || StoreError::Corrupt {
        position: 0,
        reason: "bad member stream key".into(),
    };
    let mut out = Vec::new();
    let mut iter = store.db().raw_iterator_cf(store.cf(CF_STREAM_INDEX));
    iter.seek(prefix.as_bytes());
    while let Some(key) = iter.key() {
        let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
            break;
        };
        let end = rest
            .iter()
            .position(|byte| *byte == 0)
            .ok_or_else(corrupt)?;
        let name = rest.get(..end).unwrap_or_default();
        let member = std::str::from_utf8(name)
            .ok()
            .and_then(|m| MemberId::parse("stream", m).ok());
        out.push(member.ok_or_else(corrupt)?);
        // `name || 0x01` sorts after every `name || 0x00 || version` key.
        let mut next = prefix.as_bytes().to_vec();
        next.extend_from_slice(name);
        next.push(1);
        iter.seek(&next);
    }
    iter.status()?;
    Ok(out)
}

fn reschedule_envelope(
    program_id: &ProgramId,
    member_id: &MemberId,
    program_version: u64,
    occurred_at_us: i64,
) -> Result<Envelope<LedgerCommand>, CommandError> {
    let mut hasher = Sha256::new();
    hasher.update(program_id.as_str().as_bytes());
    hasher.update(program_version.to_be_bytes());
    hasher.update(member_id.as_str().as_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Envelope {
        program_id: program_id.clone(),
        idempotency_key: IdempotencyKey::parse(
            "idempotency_key",
            &format!("system:reschedule:{hex}"),
        )?,
        occurred_at_us,
        principal: "system".into(),
        metadata: vec![],
        expected_version: None,
        command: LedgerCommand::Member {
            member_id: member_id.clone(),
            command: Command::MaturePending,
        },
    })
}

/// Submits the system commands of everything due at `now_us`.
#[derive(Clone)]
pub struct Scheduler {
    store: Store,
    writer: WriterHandle<LedgerCommand>,
    clock: Arc<dyn Clock>,
}

impl Scheduler {
    /// A scheduler over `store`, submitting through `writer`.
    pub fn new(store: Store, writer: WriterHandle<LedgerCommand>, clock: Arc<dyn Clock>) -> Self {
        Scheduler {
            store,
            writer,
            clock,
        }
    }

    /// Submits, in due-time order, the system command of every entry due at
    /// or before `now_us`, until none is left. Returns how many were
    /// submitted (rescheduling after a rules change, done first, is not
    /// counted). An entry whose command fails is logged and skipped for this
    /// round, so one bad member cannot stall the others. A rules-change
    /// sweep that could not finish ends the round before any due entry:
    /// those were made under the old rules.
    pub async fn run_due(&self, now_us: i64) -> Result<usize, CommandError> {
        let (rescheduled, swept) = self.reschedule_after_rule_changes(now_us).await?;
        if rescheduled > 0 {
            tracing::info!(rescheduled, "members rescheduled after a rules change");
        }
        if !swept {
            // Due entries made under the old rules are not due work: a
            // command for one would first do the work the new rules made
            // due earlier, and record it at the entry's later time. The
            // next round redoes the sweep first.
            return Ok(0);
        }
        let mut submitted = 0usize;
        loop {
            let store = self.store.clone();
            let entries = tokio::task::spawn_blocking(move || {
                due_entries(&store, now_us, SCHEDULER_SCAN_ENTRIES_MAX)
            })
            .await
            .map_err(|error| CommandError::Unavailable(error.to_string()))?
            .map_err(|error| CommandError::Unavailable(error.to_string()))?;
            if entries.is_empty() {
                return Ok(submitted);
            }
            let mut progressed = false;
            for chunk in entries.chunks(SUBMIT_BATCH_COMMANDS_MAX) {
                let envelopes = chunk
                    .iter()
                    .map(system_envelope)
                    .collect::<Result<Vec<_>, _>>()?;
                let results = self.writer.submit_many(envelopes).await?;
                for (entry, result) in chunk.iter().zip(results) {
                    submitted += 1;
                    match result {
                        Ok(appended) if !appended.replayed => progressed = true,
                        Ok(_) => {}
                        Err(error) => tracing::warn!(?entry, %error, "scheduled command failed"),
                    }
                }
            }
            if !progressed {
                // Every entry was already applied or failed: what is left
                // is not due work this round can do.
                return Ok(submitted);
            }
        }
    }

    /// After a program's rules change, every member's due entry must be
    /// recomputed under the new rules, or a member who never acts again
    /// would keep a schedule from the old ones (inactivity expiry switched
    /// on, say, would never reach them). Each member of such a program (every
    /// member stream with an event) gets a
    /// no-op system command (MaturePending) dated at the rules change, which
    /// makes the engine stage its due entry afresh. It is dated at the
    /// change, not now, because a system command first does all work due by
    /// its time and records it at that time: work due after the change is
    /// then left to the scheduler, which records it at its due time. Keys are derived
    /// from the program version and the member, so a sweep cut short by a
    /// crash is simply redone. Returns how many commands were submitted,
    /// and whether every program's sweep is done.
    async fn reschedule_after_rule_changes(
        &self,
        now_us: i64,
    ) -> Result<(usize, bool), CommandError> {
        let unavailable = |error: String| CommandError::Unavailable(error);
        let store = self.store.clone();
        let programs = tokio::task::spawn_blocking(move || programs_to_reschedule(&store))
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(|e| unavailable(e.to_string()))?;
        let mut submitted = 0usize;
        for RulesChange {
            program_id,
            version,
            changed_at_us,
        } in programs
        {
            // Version 1 is the definition itself: no member can predate it
            // (commands for an undefined program are refused).
            if version == 1 {
                self.mark_rescheduled(&program_id, version)?;
                continue;
            }
            let store = self.store.clone();
            let program = program_id.clone();
            let members = tokio::task::spawn_blocking(move || program_members(&store, &program))
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .map_err(|e| unavailable(e.to_string()))?;
            for chunk in members.chunks(SUBMIT_BATCH_COMMANDS_MAX) {
                let envelopes = chunk
                    .iter()
                    .map(|member_id| {
                        reschedule_envelope(
                            &program_id,
                            member_id,
                            version,
                            changed_at_us.min(now_us),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for (member_id, result) in
                    chunk.iter().zip(self.writer.submit_many(envelopes).await?)
                {
                    submitted += 1;
                    if let Err(error) = result {
                        // Left for the next round: the program stays marked.
                        tracing::warn!(%program_id, %member_id, %error, "rescheduling failed");
                        return Ok((submitted, false));
                    }
                }
            }
            self.mark_rescheduled(&program_id, version)?;
        }
        Ok((submitted, true))
    }

    /// Remembers that members of `program_id` are scheduled under the rules
    /// of `version`. Written outside the writer: it is a cursor over state
    /// that is itself durable, and losing it only repeats a sweep.
    fn mark_rescheduled(&self, program_id: &ProgramId, version: u64) -> Result<(), CommandError> {
        let cf = self.store.cf(CF_DUE);
        let key = rescheduled_key(program_id);
        self.store
            .db()
            .put_cf(cf, key, version.to_be_bytes())
            .map_err(|error| CommandError::Unavailable(error.to_string()))
    }

    /// Runs `run_due` with the engine clock's time every `interval` until
    /// `stopping` turns true.
    pub async fn run(self, interval: Duration, mut stopping: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = stopping.changed() => {
                    if changed.is_err() || *stopping.borrow() {
                        return;
                    }
                }
            }
            if let Err(error) = self.run_due(self.clock.now_us()).await {
                tracing::warn!(%error, "scheduler round failed; retrying next tick");
            }
        }
    }
}
