//! `decide`: every business rule lives behind these entry points. They are
//! pure: the state, the command, the rules and the business time go in,
//! events (or a rejection) come out.
//!
//! Each decision first does all time-driven work due up to its time
//! (maturing, lot expiry, inactivity expiry, tier review), in due-time
//! order, and then the command itself. That way a redeem can never spend a
//! point that expired a second earlier because the scheduler was late, and
//! the scheduler's own commands are just "catch up to now".
//!
//! Decisions apply each event as it is produced, so a later step sees the
//! earlier ones and what `apply` will do is, by construction, what `decide`
//! reasoned about. [`decide`] works on a copy-on-write view of a borrowed
//! member. [`decide_in_place`], the engine's path, changes the caller's
//! member itself: a rejection must leave the member as it was, so before a
//! step that a rejection may still follow changes it (the due work, or a
//! command's events before its checks are done) a copy is kept to restore.
//! Every command does all of its checks first and then says so
//! (`Work::checks_done`); its events after that change the member without a
//! copy, which is what makes the common decision copy nothing.

use super::apply::apply;
use super::command::{Command, TransferPoints};
use super::error::DomainError;
use super::event::{Event, EventKind, ExpiryReason, MemberEnrolled, PointsExpired, PointsMatured};
use super::lot::{LotDraw, OpenLot};
use super::member::{DueKind, LotsNeeded, Member};
use super::points::Points;
use super::rules::Rules;
use super::{adjust, earn, redeem, reverse, tier, transfer};
use crate::error::FieldReason;
use crate::ids::LotId;
use crate::limits::{BUSINESS_TIME_US_MAX, COMMAND_EVENTS_MAX};

/// Events a command makes itself, after its due work, at most (a purchase
/// enrolls, earns and upgrades; a transfer makes one on each side): the
/// rest of `COMMAND_EVENTS_MAX` is left for due work.
const COMMAND_OWN_EVENTS_MAX: usize = 8;

// Each side of a transfer gets half of what is left for due work.
const _: () = assert!(COMMAND_OWN_EVENTS_MAX < COMMAND_EVENTS_MAX);

/// Decides a single-member command at business time `now_us` (the command's
/// `occurred_at`). Transfers, which touch two members, go through
/// [`decide_transfer`].
pub fn decide(
    state: &Member,
    command: &Command,
    rules: &Rules,
    now_us: i64,
) -> Result<Vec<Event>, DomainError> {
    check_business_time(now_us)?;
    command.validate(rules)?;
    let mut work = Work::new(state, now_us);
    decide_command(&mut work, command, rules)?;
    Ok(work.into_events())
}

/// Why [`decide_in_place`] refused a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InPlaceError {
    /// A rule refused it; the member is as it was.
    Rejected(DomainError),
    /// A rule refused it after the member had been changed without a copy
    /// to restore (an error returned after `checks_done`): a bug in the
    /// domain, never the caller's. The member's state is lost; the caller
    /// must rebuild it from the log.
    StateLost(DomainError),
    /// The decision needs lots the member does not hold: the caller reads
    /// them ([`Member::page_in_fefo`] and the like) and decides again. The
    /// member is as it was.
    NeedsLots(LotsNeeded),
}

/// [`decide`], applying the events to `state` as it goes: on success
/// `state` is what applying the returned events to it would give, and on a
/// rejection it is unchanged. The engine decides this way, so a decision
/// copies the member only when due work or a failed check makes it need
/// the copy.
pub fn decide_in_place(
    state: &mut Member,
    command: &Command,
    rules: &Rules,
    now_us: i64,
) -> Result<Vec<Event>, InPlaceError> {
    check_business_time(now_us).map_err(InPlaceError::Rejected)?;
    command.validate(rules).map_err(InPlaceError::Rejected)?;
    let mut work = Work::in_place(state, now_us);
    match decide_command(&mut work, command, rules) {
        Ok(()) => Ok(work.into_events()),
        Err(error) => Err(work.roll_back(error)),
    }
}

/// The due work, then the command, on `work`.
fn decide_command(
    work: &mut Work<'_>,
    command: &Command,
    rules: &Rules,
) -> Result<(), DomainError> {
    if command.is_system() {
        // A scheduler command may do part of the due work: the member's
        // due entry stays due, so the scheduler submits another.
        work.catch_up(rules, COMMAND_EVENTS_MAX, Partial::Allowed)?;
    } else {
        work.catch_up(
            rules,
            COMMAND_EVENTS_MAX - COMMAND_OWN_EVENTS_MAX,
            Partial::Refused,
        )?;
    }
    match command {
        Command::Enroll => {
            if work.member().is_enrolled() {
                return Err(DomainError::AlreadyEnrolled);
            }
            work.checks_done();
            work.emit(EventKind::MemberEnrolled(MemberEnrolled {
                implicit: false,
            }));
        }
        Command::RecordPurchase {
            order_id,
            spend,
            tags,
        } => earn::record_purchase(work, rules, order_id, *spend, tags)?,
        Command::AwardPoints { reason, points } => earn::award(work, rules, reason, *points)?,
        Command::Redeem {
            redemption_id,
            points,
        } => redeem::redeem(work, rules, redemption_id, *points)?,
        Command::CancelRedemption { redemption_id } => redeem::cancel(work, rules, redemption_id)?,
        Command::RecordReturn { order_id, refund } => {
            reverse::record_return(work, rules, order_id, *refund)?
        }
        Command::AdjustPoints { reason, points } => adjust::adjust(work, rules, reason, *points)?,
        // System commands: the catch-up above was all of their work.
        Command::MaturePending
        | Command::ExpireLots
        | Command::ExpireInactive
        | Command::EvaluateTier => {}
    }
    Ok(())
}

/// Decides a transfer between two members of one program: the events for the
/// sender's stream and for the receiver's stream (each with its own due
/// work first, then exactly one `PointsTransferred`).
pub fn decide_transfer(
    from: &Member,
    to: &Member,
    command: &TransferPoints,
    rules: &Rules,
    now_us: i64,
) -> Result<(Vec<Event>, Vec<Event>), DomainError> {
    check_business_time(now_us)?;
    command.validate()?;
    let mut sender = Work::new(from, now_us);
    let mut receiver = Work::new(to, now_us);
    // Both sides' events are one command's.
    let side_events_max = (COMMAND_EVENTS_MAX - COMMAND_OWN_EVENTS_MAX) / 2;
    sender.catch_up(rules, side_events_max, Partial::Refused)?;
    receiver
        .catch_up(rules, side_events_max, Partial::Refused)
        .map_err(|error| match error {
            DomainError::LotsNotHeld { needed, .. } => DomainError::LotsNotHeld {
                needed,
                receiver: true,
            },
            other => other,
        })?;
    // Only the sender's lots are read from here on.
    transfer::transfer(&mut sender, &mut receiver, command)?;
    Ok((sender.into_events(), receiver.into_events()))
}

/// Business times are validated so that every derived time (expiry dates,
/// period ends) stays far inside i64.
fn check_business_time(now_us: i64) -> Result<(), DomainError> {
    if (0..=BUSINESS_TIME_US_MAX).contains(&now_us) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "occurred_at",
            FieldReason::OutOfRange {
                value: now_us.into(),
                min: 0,
                max: BUSINESS_TIME_US_MAX.into(),
            },
        ))
    }
}

/// Whether a decision may do only part of the due work.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Partial {
    /// The rest stays due (scheduler commands).
    Allowed,
    /// The command needs all of it done first.
    Refused,
}

/// The member a decision works on.
enum State<'a> {
    /// Copy-on-write over a borrowed member: the pure [`decide`]. The copy
    /// is made by the first event.
    Shared {
        borrowed: &'a Member,
        copy: Option<Box<Member>>,
    },
    /// The caller's member, changed in place by [`decide_in_place`].
    InPlace {
        member: &'a mut Member,
        /// The member as it was before the decision, kept before the first
        /// change that a rejection may still follow.
        backup: Option<Box<Member>>,
        /// Set by `checks_done`: no error may follow, so changes need no
        /// backup.
        checked: bool,
        /// Some event was applied to `member`.
        changed: bool,
    },
}

/// A decision in progress: the member as the events so far leave it, and
/// those events.
pub(super) struct Work<'a> {
    state: State<'a>,
    events: Vec<Event>,
    occurred_at_us: i64,
    /// The effective time of the decision: the command's time, or the
    /// member's clock if that is later (time never runs backwards).
    now_us: i64,
}

impl<'a> Work<'a> {
    pub(super) fn new(member: &'a Member, occurred_at_us: i64) -> Self {
        Self {
            now_us: occurred_at_us.max(member.clock_us()),
            state: State::Shared {
                borrowed: member,
                copy: None,
            },
            events: Vec::new(),
            occurred_at_us,
        }
    }

    fn in_place(member: &'a mut Member, occurred_at_us: i64) -> Self {
        Self {
            now_us: occurred_at_us.max(member.clock_us()),
            state: State::InPlace {
                member,
                backup: None,
                checked: false,
                changed: false,
            },
            events: Vec::new(),
            occurred_at_us,
        }
    }

    pub(super) fn member(&self) -> &Member {
        match &self.state {
            State::Shared { borrowed, copy } => copy.as_deref().unwrap_or(borrowed),
            State::InPlace { member, .. } => member,
        }
    }

    pub(super) fn now_us(&self) -> i64 {
        self.now_us
    }

    /// Every check of the command has passed: from here on the decision
    /// returns no error, so its events may change an in-place member
    /// without a copy to restore. A rule calls this right before its first
    /// event, after its last `?`.
    pub(super) fn checks_done(&mut self) {
        if let State::InPlace { checked, .. } = &mut self.state {
            *checked = true;
        }
    }

    /// Records an event and applies it to the working state.
    pub(super) fn emit(&mut self, kind: EventKind) {
        let event = Event {
            occurred_at_us: self.occurred_at_us,
            kind,
        };
        match &mut self.state {
            State::Shared { borrowed, copy } => {
                let member = copy.get_or_insert_with(|| Box::new((*borrowed).clone()));
                apply(member, &event);
            }
            State::InPlace {
                member,
                backup,
                checked,
                changed,
            } => {
                if !*checked && backup.is_none() {
                    *backup = Some(Box::new((**member).clone()));
                }
                *changed = true;
                apply(member, &event);
            }
        }
        self.events.push(event);
    }

    fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// Undoes an in-place decision that `error` refused.
    fn roll_back(self, error: DomainError) -> InPlaceError {
        let State::InPlace {
            member,
            backup,
            changed,
            ..
        } = self.state
        else {
            return InPlaceError::Rejected(error);
        };
        let refused = |error| match error {
            DomainError::LotsNotHeld { needed, .. } => InPlaceError::NeedsLots(needed),
            error => InPlaceError::Rejected(error),
        };
        match backup {
            Some(backup) => {
                *member = *backup;
                refused(error)
            }
            None if !changed => refused(error),
            None => {
                debug_assert!(false, "in-place decision: no error after checks_done");
                InPlaceError::StateLost(error)
            }
        }
    }

    /// Does all work due up to `now_us`, one due item at a time, in
    /// due-time order. Bounded: each step matures or closes at least one lot,
    /// except the tier review, which moves the period past `now_us`; and
    /// each step records at most one event, of which there may be at most
    /// `events_max`. Work still due then is left for the next scheduler
    /// command, or refuses the command (`DueWorkBehind`).
    fn catch_up(
        &mut self,
        rules: &Rules,
        events_max: usize,
        partial: Partial,
    ) -> Result<(), DomainError> {
        let steps_max = usize::try_from(self.member().open_lot_count())
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .saturating_add(2);
        for _ in 0..steps_max {
            match self.member().next_due(rules) {
                Some((due_us, _)) if due_us <= self.now_us && self.events.len() >= events_max => {
                    return match partial {
                        Partial::Allowed => Ok(()),
                        Partial::Refused => Err(DomainError::DueWorkBehind),
                    };
                }
                Some((due_us, kind)) if due_us <= self.now_us => {
                    self.run_due(rules, due_us, kind)?
                }
                _ => return Ok(()),
            }
        }
        debug_assert!(
            self.member()
                .next_due(rules)
                .is_none_or(|(due_us, _)| due_us > self.now_us),
            "catch-up bound: every step makes progress"
        );
        Ok(())
    }

    fn run_due(&mut self, rules: &Rules, due_us: i64, kind: DueKind) -> Result<(), DomainError> {
        match kind {
            DueKind::MaturePending => {
                if let Some(lot) = self.member().lots.first_maturing_at(due_us)? {
                    let matured = PointsMatured {
                        lot_id: lot.lot_id(),
                        points: lot.remaining(),
                    };
                    self.member_balance_headroom(matured.points)?;
                    self.emit(EventKind::PointsMatured(matured));
                }
            }
            DueKind::ExpireLot => {
                let draws = whole_lots(self.member().lots.expiring_at(due_us)?);
                self.expire(ExpiryReason::Lot, draws)?;
            }
            DueKind::ExpireInactive => {
                let draws = whole_lots(self.member().lots.all()?);
                self.expire(ExpiryReason::Inactivity, draws)?;
            }
            DueKind::EvaluateTier => tier::review(self, rules, due_us)?,
        }
        Ok(())
    }

    fn expire(&mut self, reason: ExpiryReason, draws: Vec<LotDraw>) -> Result<(), DomainError> {
        if draws.is_empty() {
            return Ok(());
        }
        let points = Points::checked_sum(draws.iter().map(|draw| draw.points), "expired points")?;
        self.emit(EventKind::PointsExpired(PointsExpired {
            reason,
            points,
            draws,
        }));
        Ok(())
    }

    /// Checks that `points` more available points keep the balance in i64.
    pub(super) fn member_balance_headroom(&self, points: Points) -> Result<(), DomainError> {
        self.member()
            .balance_points()
            .checked_add(points, "balance_points")
            .map(drop)
    }
}

/// Draws that empty each of `lots`, by lot id.
fn whole_lots<'l>(lots: impl Iterator<Item = &'l OpenLot>) -> Vec<LotDraw> {
    lots.map(|lot| LotDraw {
        lot_id: lot.lot_id(),
        points: lot.remaining(),
    })
    .collect()
}

/// Draws `amount` from the member's available lots, first-expiring first
/// (ties by lot id, never-expiring lots last), skipping `skip`. Returns the
/// draws and what could not be drawn, or the lots to read first.
pub(super) fn draw_fefo(
    member: &Member,
    amount: Points,
    skip: Option<LotId>,
) -> Result<(Vec<LotDraw>, Points), DomainError> {
    Ok(member.lots.draw_fefo(amount, skip)?)
}

/// Implicit enrollment: a first earn enrolls the member, recorded as its own
/// event before the earn.
pub(super) fn enroll_implicitly(work: &mut Work<'_>) {
    if !work.member().is_enrolled() {
        work.emit(EventKind::MemberEnrolled(MemberEnrolled { implicit: true }));
    }
}

/// Commands other than earns need an enrolled member.
pub(super) fn require_enrolled(work: &Work<'_>, field: &'static str) -> Result<(), DomainError> {
    if work.member().is_enrolled() {
        Ok(())
    } else {
        Err(DomainError::NotEnrolled { field })
    }
}
