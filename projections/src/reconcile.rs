//! Reconciliation: the liability roll-forward recomputed straight from the
//! log, compared with the liability view's rows and with the balance view's
//! member rows, every difference named.
//!
//! Three figures must agree for each program, at the log's head:
//! - each reporting day's flows, column by column, and each point value, as
//!   the log gives them ([`liability::recompute`], which reads no view row)
//!   and as the liability view holds them;
//! - the closing over all days from the log, and the sum of the members'
//!   available + pending - debt, added up row by row from the balance view;
//! - that sum and the balance view's program totals row.
//!
//! The views must reflect the head (`ledgerd reconcile` catches them up
//! first, as a start of the server would).

use crate::balance;
use crate::error::{QueryError, ViewError};
use crate::liability::{self, FLOW_COLUMNS, Flows, LiabilityDay, Recomputed};
use ledger_core::ids::ProgramId;
use ledger_core::store::Store;
use std::collections::BTreeSet;

/// One figure that does not agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The reporting day, when the figure is a day's.
    pub day: Option<i64>,
    /// What: a flow column, `point value`, `outstanding` or `program totals`.
    pub what: String,
    /// The figure recomputed from the log (or the member rows' sum).
    pub expected: i64,
    /// The figure found in the view.
    pub found: i64,
    /// Where `found` comes from.
    pub source: &'static str,
}

/// A program's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramReconciliation {
    /// The program.
    pub program_id: String,
    /// Its currency.
    pub currency: String,
    /// The roll-forward of the range asked, from the log.
    pub days: Vec<LiabilityDay>,
    /// Opening of the range, from the log.
    pub opening: i64,
    /// Flows of the range, from the log.
    pub totals: Flows,
    /// Closing of the range, from the log.
    pub closing: i64,
    /// Closing over all days, from the log.
    pub closing_all: i64,
    /// The members' available + pending - debt, summed row by row.
    pub member_points: i64,
    /// Members with a balance row.
    pub members: u64,
    /// Every difference found (empty: it ties).
    pub differences: Vec<Difference>,
}

/// The reconciliation of every program asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// The log position everything was compared at.
    pub position: u64,
    /// One per program, by program id.
    pub programs: Vec<ProgramReconciliation>,
}

impl Reconciliation {
    /// True when no program has a difference.
    pub fn ties(&self) -> bool {
        self.programs
            .iter()
            .all(|program| program.differences.is_empty())
    }
}

/// What to reconcile.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// One program, or every program in the log.
    pub program_id: Option<ProgramId>,
    /// First reporting day of the roll-forward shown [default: the
    /// program's first active day]. Differences are looked for on every day
    /// whatever the range.
    pub from_day: Option<i64>,
    /// Last reporting day shown [default: the program's last active day].
    pub to_day: Option<i64>,
}

fn compare_program(
    store: &Store,
    program_id: &ProgramId,
    log: &Recomputed,
    scope: &Scope,
) -> Result<ProgramReconciliation, QueryError> {
    let view = liability::view_rows(store, program_id)?.value;
    let mut differences = Vec::new();
    let days: BTreeSet<i64> = log.days.keys().chain(view.days.keys()).copied().collect();
    for day in &days {
        let expected = log.days.get(day).copied().unwrap_or_default();
        let found = view.days.get(day).copied().unwrap_or_default();
        for ((name, expected), found) in FLOW_COLUMNS
            .iter()
            .zip(expected.columns())
            .zip(found.columns())
        {
            if expected != found {
                differences.push(Difference {
                    day: Some(*day),
                    what: (*name).to_owned(),
                    expected,
                    found,
                    source: "liability view",
                });
            }
        }
    }
    let value_days: BTreeSet<i64> = log
        .values
        .keys()
        .chain(view.values.keys())
        .copied()
        .collect();
    for day in &value_days {
        let expected = log.values.get(day);
        let found = view.values.get(day);
        if expected != found {
            let minor =
                |value: Option<&liability::PointValue>| value.map_or(0, |value| value.minor_units);
            differences.push(Difference {
                day: Some(*day),
                what: format!(
                    "point value (minor units per {} points)",
                    expected.or(found).map_or(1, |value| value.per_points)
                ),
                expected: minor(expected),
                found: minor(found),
                source: "liability view",
            });
        }
    }
    let first = scope
        .from_day
        .or_else(|| log.days.keys().next().copied())
        .unwrap_or(0);
    let last = match scope.to_day {
        Some(day) => day,
        None => log
            .days
            .keys()
            .next_back()
            .copied()
            .unwrap_or(first)
            .max(first),
    };
    liability::check_range(first, last, "--from", "--to")?;
    let (rows, closing_all) = liability::roll_forward(&log.days, &log.values, first, last)?;
    let members = balance::balance_totals(store, program_id)?.value;
    let member_points = members
        .total()
        .ok_or_else(|| QueryError::View(ViewError::row("member balances", "sum overflows")))?;
    if member_points != closing_all {
        differences.push(Difference {
            day: None,
            what: "outstanding (closing over all days vs available + pending - debt)".into(),
            expected: closing_all,
            found: member_points,
            source: "balance view member rows",
        });
    }
    let totals_row = balance::program_totals(store, program_id)?.value;
    for (what, expected, found) in [
        (
            "program totals: members",
            members.members as i64,
            totals_row.members as i64,
        ),
        (
            "program totals: available",
            members.available,
            totals_row.available,
        ),
        (
            "program totals: pending",
            members.pending,
            totals_row.pending,
        ),
        ("program totals: debt", members.debt, totals_row.debt),
    ] {
        if expected != found {
            differences.push(Difference {
                day: None,
                what: what.to_owned(),
                expected,
                found,
                source: "balance view totals row",
            });
        }
    }
    let mut totals = Flows::default();
    for row in &rows {
        totals = totals
            .checked_add(&row.flows)
            .ok_or_else(|| QueryError::View(ViewError::row("reconciliation totals", "overflow")))?;
    }
    Ok(ProgramReconciliation {
        program_id: program_id.to_string(),
        currency: log
            .rules
            .as_ref()
            .map(|rules| rules.currency.clone())
            .unwrap_or_default(),
        opening: rows.first().map_or(0, |row| row.opening),
        closing: rows.last().map_or(0, |row| row.closing),
        days: rows,
        totals,
        closing_all,
        member_points,
        members: members.members,
        differences,
    })
}

/// Reconciles the programs in `scope` at the log's head. The balance and
/// liability views must reflect the head; `progress(done, head)` follows
/// the read of the log.
pub fn reconcile(
    store: &Store,
    scope: &Scope,
    progress: impl FnMut(u64),
) -> Result<Reconciliation, QueryError> {
    let head = store.head().map_err(ViewError::from)?.position;
    for kind in [crate::ViewKind::Balance, crate::ViewKind::Liability] {
        let position = crate::rows::ViewSnapshot::take(store, kind.tag())?.position();
        if position != head {
            return Err(QueryError::View(ViewError::row(
                kind.name(),
                format!("the view is at position {position}, the log at {head}: catch it up first"),
            )));
        }
    }
    let recomputed = liability::recompute(store, head, progress)?;
    let mut programs = Vec::new();
    for (program_id, log) in &recomputed {
        if scope
            .program_id
            .as_ref()
            .is_some_and(|wanted| wanted.as_str() != program_id)
        {
            continue;
        }
        if log.rules.is_none() {
            continue;
        }
        let id = ProgramId::parse("program_id", program_id)?;
        programs.push(compare_program(store, &id, log, scope)?);
    }
    if let Some(wanted) = &scope.program_id
        && programs.is_empty()
    {
        return Err(QueryError::NotFound {
            what: format!("program {wanted}"),
            position: head,
        });
    }
    Ok(Reconciliation {
        position: head,
        programs,
    })
}
