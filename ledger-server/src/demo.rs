//! `ledgerd demo`: a sample loyalty program and months of generated traffic
//! run through the real engine into a fresh data directory, then what the
//! views show.
//!
//! The run, in order:
//! 1. the program "Coffee Rewards" ([`traffic::coffee_rules`]) is defined
//!    through the writer, as `ensure_default_program` defines the default
//!    one;
//! 2. the traffic ([`traffic::Traffic`]) is submitted in business-time order,
//!    in batches of up to `SUBMIT_BATCH_COMMANDS_MAX` commands (one group
//!    commit each). At every midnight of the period the engine's own
//!    [`Scheduler`] does the time-driven work due by then (maturing, lot and
//!    inactivity expiry, tier reviews), and once more at the end of the
//!    period, exactly as a server that was up all along would have;
//! 3. the views are waited for until they reflect the log's head;
//! 4. the report is printed, one section per function below.
//!
//! **Time.** The engine's clock is a [`ManualClock`] that follows the
//! traffic: each batch is recorded at the business time of its last
//! command, the scheduler's work at its midnight. Nothing reads the wall
//! clock except for the default end of the period, so a seed and an end
//! (`--until`) name exactly one log: two runs give the same head hash.
//!
//! **The report** is a sequence of small functions, each writing one
//! section from the views to a `&mut impl Write`: [`print_program`],
//! [`print_traffic`], [`print_tiers`], [`print_balances`],
//! [`print_expiring`]. [`print_report`] calls them in order; a new section
//! is one more function of the same shape, taking the [`Report`].

pub mod traffic;

use crate::export::event_name;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::clock::{Clock, ManualClock, SystemClock};
use ledger_core::domain::time::{US_PER_DAY, civil_from_days, report_day_of};
use ledger_core::domain::{
    CampaignEffect, LotExpiryRule, Program, QualifyingMeasure, ReturnPolicy, Rounding, Rules,
    TierWindow, apply_program,
};
use ledger_core::engine::LedgerCommand;
use ledger_core::engine::LedgerDecider;
use ledger_core::engine::scheduler::Scheduler;
use ledger_core::error::CommandError;
use ledger_core::ids::{ProgramId, StreamName};
use ledger_core::limits::{FUTURE_SKEW_DEFAULT_US, READ_CHUNK_RECORDS, SUBMIT_BATCH_COMMANDS_MAX};
use ledger_core::record::event_from_record;
use ledger_core::store::Store;
use ledger_core::writer::{Writer, WriterConfig, WriterHandle};
use projections::liability::{self, Flows};
use projections::reconcile::{self, Scope};
use projections::{Runtime, ViewKind, WorkerState, balance, rfm, tier};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use traffic::{CommandKind, Planned, Profiles, Step, Traffic, TrafficOptions};

/// Members enrolled when `--members` is not given.
pub const MEMBERS_DEFAULT: u32 = 5_000;
/// Most members `--members` accepts: the generator keeps every member's
/// state in memory.
pub const MEMBERS_MAX: u32 = 100_000;
/// Months of traffic when `--months` is not given.
pub const MONTHS_DEFAULT: u32 = 12;
/// Most months `--months` accepts.
pub const MONTHS_MAX: u32 = 60;
/// The seed when `--seed` is not given.
pub const SEED_DEFAULT: u64 = 42;
/// How long the views may take to fold the log once the traffic is in; far
/// beyond what the largest demo needs, so reaching it means a view is stuck.
pub const VIEWS_WAIT: Duration = Duration::from_secs(600);
/// The window of the "points expiring soon" section.
pub const EXPIRING_WINDOW_DAYS: i64 = 90;
/// Members listed in the "points expiring soon" section.
pub const EXPIRING_TOP_MEMBERS: usize = 10;

/// What `ledgerd demo` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Data directory, new or empty; `None` = a new temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Members to enrol (1..=[`MEMBERS_MAX`]).
    pub members: u32,
    /// Months of traffic (1..=[`MONTHS_MAX`]).
    pub months: u32,
    /// The seed of every draw.
    pub seed: u64,
    /// End of the period (µs since the epoch); `None` = now.
    pub until_us: Option<i64>,
}

/// Commands submitted and how the engine answered, by kind.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Submitted, by [`CommandKind::ALL`] index.
    pub submitted: [u64; CommandKind::ALL.len()],
    /// Accepted (events appended).
    pub accepted: [u64; CommandKind::ALL.len()],
    /// Refused.
    pub refused: [u64; CommandKind::ALL.len()],
    /// Refusals by reason: a rule's code, or `invalid <field>`.
    pub reasons: BTreeMap<String, u64>,
    /// Answers that differed from the generator's model of the domain.
    pub disagreements: u64,
    /// System commands the scheduler submitted.
    pub system_commands: u64,
}

impl Tally {
    /// Counts one answer; failures that are not answers about the command
    /// (storage, a stopped writer) end the demo.
    fn count(
        &mut self,
        planned: &Planned,
        result: Result<(), &CommandError>,
    ) -> anyhow::Result<()> {
        let kind = planned.kind as usize;
        self.submitted[kind] += 1;
        let reason = match result {
            Ok(()) => None,
            Err(CommandError::Rejected(rejection)) => Some(rejection.code.clone()),
            Err(CommandError::Invalid(error)) => Some(format!("invalid {}", error.field)),
            Err(CommandError::IdempotencyKeyReused { .. }) => Some("idempotency_key_reused".into()),
            Err(CommandError::VersionConflict { .. }) => Some("version_conflict".into()),
            Err(other) => {
                return Err(anyhow::anyhow!("{other}")).with_context(|| {
                    format!(
                        "submitting command {}",
                        planned.envelope.idempotency_key.as_str()
                    )
                });
            }
        };
        if reason.is_none() != planned.accepted_by_model {
            self.disagreements += 1;
        }
        match reason {
            None => self.accepted[kind] += 1,
            Some(reason) => {
                self.refused[kind] += 1;
                *self.reasons.entry(reason).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Adds another tally's counts to this one.
    fn add(&mut self, other: Tally) {
        let pairs = [
            (&mut self.submitted, other.submitted),
            (&mut self.accepted, other.accepted),
            (&mut self.refused, other.refused),
        ];
        for (mine, theirs) in pairs {
            for (count, more) in mine.iter_mut().zip(theirs) {
                *count += more;
            }
        }
        for (reason, count) in other.reasons {
            *self.reasons.entry(reason).or_default() += count;
        }
        self.disagreements += other.disagreements;
        self.system_commands += other.system_commands;
    }

    fn total(counts: &[u64]) -> u64 {
        counts.iter().sum()
    }
}

/// Everything the report's sections read: the store and its views, the
/// program, the period, and how the traffic went.
pub struct Report<'a> {
    /// The store.
    pub store: &'a Store,
    /// The running views, caught up with the head.
    pub runtime: &'a Runtime,
    /// The demo program.
    pub program_id: &'a ProgramId,
    /// Start of the period (business time, µs).
    pub start_us: i64,
    /// End of the period: "now" for every query.
    pub as_of_us: i64,
    /// Sizes and seed.
    pub options: &'a DemoOptions,
    /// How the members' profiles came out.
    pub profiles: Profiles,
    /// Commands submitted and the answers.
    pub tally: &'a Tally,
    /// From the program's definition to the views at the head.
    pub elapsed: Duration,
}

/// How a demo ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// No command refused, every answer as the model predicted, and the
    /// balances add up to the lifetime totals.
    pub clean: bool,
}

/// The data directory to use: `data_dir` if it is new or empty (created if
/// missing), or a new temporary directory that is kept afterwards.
pub fn prepare_data_dir(data_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(dir) = data_dir else {
        let dir = tempfile::Builder::new()
            .prefix("ledgerd-demo-")
            .tempdir()
            .context("creating a temporary data directory")?;
        return Ok(dir.keep());
    };
    if dir.exists() {
        anyhow::ensure!(
            dir.is_dir(),
            "--data-dir {} is not a directory",
            dir.display()
        );
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("--data-dir {}: cannot list it", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "--data-dir {} is not empty: the demo writes a ledger of its own into a new or \
             empty directory",
            dir.display()
        );
    } else {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--data-dir {}: cannot create it", dir.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// The period `[start, end)` for `options`, checked: the end at most the
/// allowed skew ahead of `now_us`, the start after 1970.
fn period(options: &DemoOptions, now_us: i64) -> anyhow::Result<(i64, i64)> {
    anyhow::ensure!(
        (1..=MEMBERS_MAX).contains(&options.members),
        "--members must be between 1 and {MEMBERS_MAX}, not {}",
        options.members
    );
    anyhow::ensure!(
        (1..=MONTHS_MAX).contains(&options.months),
        "--months must be between 1 and {MONTHS_MAX}, not {}",
        options.months
    );
    let end_us = options.until_us.unwrap_or(now_us);
    anyhow::ensure!(
        end_us <= now_us.saturating_add(FUTURE_SKEW_DEFAULT_US),
        "--until {} is in the future: the demo's business times end at the latest now",
        rfc3339_seconds(end_us)
    );
    let start_us = traffic::months_before_us(end_us, options.months);
    anyhow::ensure!(
        start_us > 0,
        "--until {} minus --months {} is before 1970",
        rfc3339_seconds(end_us),
        options.months
    );
    Ok((start_us, end_us))
}

/// Runs the demo: prints the data directory, submits the traffic with a
/// progress bar on `progress` (styled here; pass a hidden one to draw
/// nothing), waits for the views, and prints the report to `out`.
pub async fn run(
    options: DemoOptions,
    progress: ProgressBar,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let (start_us, end_us) = period(&options, SystemClock.now_us())?;
    let data_dir = prepare_data_dir(options.data_dir.as_deref())?;
    writeln!(out, "data directory: {} (kept)", data_dir.display())?;
    out.flush()?;
    let store = Store::open(&data_dir)
        .with_context(|| format!("opening a store in {}", data_dir.display()))?;
    let clock = ManualClock::new(start_us);
    let writer = Writer::start(
        store.clone(),
        LedgerDecider::new(),
        WriterConfig::with_clock(Arc::new(clock.clone())),
    )?;
    let runtime = Runtime::start(
        store.clone(),
        writer.handle().head(),
        Arc::new(clock.clone()),
        &ViewKind::ALL,
    );
    let outcome = match runtime {
        Ok(runtime) => {
            let outcome = demo(
                &options,
                (start_us, end_us),
                &store,
                &writer.handle(),
                &runtime,
                &clock,
                progress,
                out,
            )
            .await;
            runtime.stop().await;
            outcome
        }
        Err(error) => Err(error.into()),
    };
    // Every command was answered, so the writer has nothing left to do.
    tokio::task::spawn_blocking(move || writer.shutdown()).await?;
    let outcome = outcome?;
    writeln!(
        out,
        "\nThe data directory is kept: `ledgerd serve --data-dir {}` serves it.",
        data_dir.display()
    )?;
    Ok(outcome)
}

/// Submits the traffic, lets the views catch up, and prints the report.
#[allow(clippy::too_many_arguments)]
async fn demo(
    options: &DemoOptions,
    (start_us, end_us): (i64, i64),
    store: &Store,
    writer: &WriterHandle<LedgerCommand>,
    runtime: &Runtime,
    clock: &ManualClock,
    progress: ProgressBar,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut traffic = Traffic::new(TrafficOptions {
        members: options.members,
        seed: options.seed,
        start_us,
        end_us,
    })?;
    let scheduler = Scheduler::new(store.clone(), writer.clone(), Arc::new(clock.clone()));
    progress.set_style(ProgressStyle::with_template(
        "demo {bar:40} {pos}/{len} days  {msg}  eta {eta}",
    )?);
    progress.set_length(traffic.midnights() + 1);
    let mut tally = Tally::default();
    submit_traffic(
        &mut traffic,
        writer,
        &scheduler,
        clock,
        &progress,
        &mut tally,
        started,
    )
    .await?;
    clock.set(end_us);
    tally.system_commands += scheduler.run_due(end_us).await? as u64;
    progress.inc(1);
    progress.set_message("views catching up");
    let head = store.head()?.position;
    for kind in ViewKind::ALL {
        let reached = runtime.wait_for(kind, head, VIEWS_WAIT).await?;
        if reached < head {
            let status = runtime.status_of(kind)?;
            let why = match status.state {
                WorkerState::Failed { position, error } => format!("failed at {position}: {error}"),
                other => format!("{other:?} after {} s", VIEWS_WAIT.as_secs()),
            };
            anyhow::bail!(
                "the {} view reached position {reached} of {head}: {why}",
                kind.name()
            );
        }
    }
    progress.finish_and_clear();
    let report = Report {
        store,
        runtime,
        program_id: traffic.program_id(),
        start_us,
        as_of_us: end_us,
        options,
        profiles: traffic.profiles(),
        tally: &tally,
        elapsed: started.elapsed(),
    };
    let balanced = print_report(out, &report)?;
    Ok(Outcome {
        clean: balanced && tally.disagreements == 0 && Tally::total(&tally.refused) == 0,
    })
}

/// One day of traffic: its commands, then the midnight that ends it (none
/// for the last day, which the end of the period ends).
struct Day {
    commands: Vec<Planned>,
    midnight_us: Option<i64>,
}

/// The generator's steps up to the next midnight or the end.
fn next_day(traffic: &mut Traffic) -> anyhow::Result<Day> {
    let mut commands = Vec::new();
    loop {
        match traffic.next_step()? {
            Step::Command(planned) => commands.push(*planned),
            Step::Midnight(midnight_us) => {
                return Ok(Day {
                    commands,
                    midnight_us: Some(midnight_us),
                });
            }
            Step::End => {
                return Ok(Day {
                    commands,
                    midnight_us: None,
                });
            }
        }
    }
}

/// Defines the program, then hands the generator's commands to the writer
/// day by day, and runs the scheduler at each midnight.
///
/// The generator works out the next day while the writer and the scheduler
/// work through the current one: the two share nothing (the generator's
/// model is its own), and the days still reach the writer one after the
/// other, so the log is the same as if each waited for the other.
async fn submit_traffic(
    traffic: &mut Traffic,
    writer: &WriterHandle<LedgerCommand>,
    scheduler: &Scheduler,
    clock: &ManualClock,
    progress: &ProgressBar,
    tally: &mut Tally,
    started: Instant,
) -> anyhow::Result<()> {
    let definition = traffic.define_program()?;
    clock.set(definition.occurred_at_us);
    writer
        .submit(definition)
        .await
        .context("defining the demo program")?;
    let mut in_flight: Option<tokio::task::JoinHandle<anyhow::Result<Tally>>> = None;
    loop {
        let day = next_day(traffic)?;
        let last = day.midnight_us.is_none();
        if let Some(previous) = in_flight.take() {
            tally.add(previous.await??);
            progress.inc(1);
            let events = writer.head().borrow().position;
            let elapsed_ms = started.elapsed().as_millis().max(1);
            progress.set_message(format!(
                "{} commands, {} events, {} events/s",
                thousands(i128::from(Tally::total(&tally.submitted))),
                thousands(i128::from(events)),
                thousands(i128::from(events) * 1_000 / elapsed_ms as i128),
            ));
        }
        in_flight = Some(tokio::spawn(write_day(
            writer.clone(),
            scheduler.clone(),
            clock.clone(),
            day,
        )));
        if last {
            break;
        }
    }
    if let Some(previous) = in_flight {
        tally.add(previous.await??);
    }
    Ok(())
}

/// Submits a day's commands in batches, then runs the scheduler at its
/// midnight; returns how the engine answered.
async fn write_day(
    writer: WriterHandle<LedgerCommand>,
    scheduler: Scheduler,
    clock: ManualClock,
    day: Day,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for batch in day.commands.chunks(SUBMIT_BATCH_COMMANDS_MAX) {
        submit_batch(&writer, &clock, batch, &mut tally).await?;
    }
    if let Some(midnight_us) = day.midnight_us {
        clock.set(midnight_us);
        tally.system_commands += scheduler.run_due(midnight_us).await? as u64;
    }
    Ok(tally)
}

/// Submits `batch` with the clock at its last business time, and counts
/// the answers.
async fn submit_batch(
    writer: &WriterHandle<LedgerCommand>,
    clock: &ManualClock,
    batch: &[Planned],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let Some(last) = batch.last() else {
        return Ok(());
    };
    clock.set(last.envelope.occurred_at_us.max(clock.now_us()));
    let envelopes = batch.iter().map(|p| p.envelope.clone()).collect();
    let results = writer
        .submit_many(envelopes)
        .await
        .context("submitting the demo traffic")?;
    anyhow::ensure!(
        results.len() == batch.len(),
        "the writer answered {} of {} commands",
        results.len(),
        batch.len()
    );
    for (planned, result) in batch.iter().zip(&results) {
        tally.count(planned, result.as_ref().map(drop))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The report.

/// Prints every section in order; returns false when the balances do not
/// add up to the lifetime totals.
pub fn print_report(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<bool> {
    print_program(out, report)?;
    print_traffic(out, report)?;
    print_tiers(out, report)?;
    let balanced = print_balances(out, report)?;
    print_expiring(out, report)?;
    print_liability_by_month(out, report)?;
    print_rfm_segments(out, report)?;
    let reconciled = print_reconcile(out, report)?;
    Ok(balanced && reconciled)
}

/// The liability roll-forward of the period, a row per calendar month (in
/// the program's reporting offset), in points, with the money closing.
pub fn print_liability_by_month(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<()> {
    let first = report_day_of(report.start_us, 0);
    let last = report_day_of(report.as_of_us, 0);
    let answer = liability::liability(report.store, report.program_id, first, last)?;
    let roll = answer.value;
    writeln!(
        out,
        "\nLiability roll-forward by month, points (liability view at position {})",
        answer.position
    )?;
    let mut months: Vec<(
        String,
        liability::LiabilityDay,
        Flows,
        liability::LiabilityDay,
    )> = Vec::new();
    for day in &roll.days {
        let civil = civil_from_days(day.day);
        let month = format!("{:04}-{:02}", civil.year, civil.month);
        match months.last_mut() {
            Some((name, _, flows, closing)) if *name == month => {
                *flows = flows
                    .checked_add(&day.flows)
                    .context("monthly flows overflow")?;
                *closing = day.clone();
            }
            _ => months.push((month, day.clone(), day.flows, day.clone())),
        }
    }
    let rows: Vec<Vec<String>> = months
        .iter()
        .map(|(month, opening, flows, closing)| {
            let number = |value: i64| thousands(i128::from(value));
            vec![
                month.clone(),
                number(opening.opening),
                number(flows.issued().unwrap_or(i64::MAX)),
                number(flows.redeemed - flows.cancelled),
                number(flows.expired),
                number(flows.reversed),
                number(flows.adjusted_in - flows.adjusted_out),
                number(flows.transferred_in - flows.transferred_out),
                number(closing.closing),
                number(closing.money_closing),
            ]
        })
        .collect();
    write_table(
        out,
        &[
            "month",
            "opening",
            "issued",
            "redeemed",
            "expired",
            "reversed",
            "adjusted",
            "transfers",
            "closing",
            "closing (minor units)",
        ],
        &rows,
        "l",
    )?;
    writeln!(
        out,
        "  breakage over the period (expired / issued): {}",
        roll.breakage_bps.map_or_else(
            || "nothing issued".to_owned(),
            |bps| format!("{}.{:02} %", bps / 100, bps % 100)
        )
    )?;
    Ok(())
}

/// Members per RFM segment as of the end of the period.
pub fn print_rfm_segments(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<()> {
    let answer = rfm::segment_sizes(report.store, report.program_id, report.as_of_us)?;
    let sizes = answer.value;
    writeln!(
        out,
        "\nRFM segments as of {} ({}-day window, {} members with a purchase; rfm view at \
         position {})",
        date(report.as_of_us),
        sizes.window_days,
        thousands(i128::from(sizes.scored)),
        answer.position
    )?;
    let rows: Vec<Vec<String>> = sizes
        .sizes
        .iter()
        .map(|(segment, members)| {
            let share = (members * 1_000).checked_div(sizes.scored).unwrap_or(0);
            vec![
                segment.label().to_owned(),
                thousands(i128::from(*members)),
                format!("{}.{} %", share / 10, share % 10),
            ]
        })
        .collect();
    write_table(out, &["segment", "members", "share"], &rows, "l")?;
    Ok(())
}

/// `ledgerd reconcile` on the demo's program: the roll-forward from the log
/// against the liability view and the member balances. Returns whether it
/// ties.
pub fn print_reconcile(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<bool> {
    let scope = Scope {
        program_id: Some(report.program_id.clone()),
        ..Scope::default()
    };
    let result = reconcile::reconcile(report.store, &scope, |_| {})?;
    let ties = result.ties();
    writeln!(out, "\nReconcile at log position {}:", result.position)?;
    for program in &result.programs {
        writeln!(
            out,
            "  closing over all days (log) {}, members' points (balance view) {}: {}",
            thousands(i128::from(program.closing_all)),
            thousands(i128::from(program.member_points)),
            if program.differences.is_empty() {
                "every figure ties".to_owned()
            } else {
                format!("{} difference(s)", program.differences.len())
            }
        )?;
        for difference in &program.differences {
            writeln!(out, "  DIFFERENCE {difference:?}")?;
        }
    }
    Ok(ties)
}

/// The program's rules as its stream in the log states them.
fn program_rules(store: &Store, program_id: &ProgramId) -> anyhow::Result<Rules> {
    let mut program = Program::default();
    for stored in store.read_stream(&StreamName::program(program_id), 1, usize::MAX)? {
        let record = stored.decode()?;
        apply_program(&mut program, &event_from_record(&record)?);
    }
    program
        .rules()
        .cloned()
        .with_context(|| format!("program {program_id} is not defined"))
}

/// The program: currency, earn rate, point value, pending period, expiry,
/// minimum redemption, return policy, tiers and campaigns.
pub fn print_program(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<()> {
    let rules = program_rules(report.store, report.program_id)?;
    let raw = rules.raw();
    writeln!(out, "\nProgram: {} ({})", raw.name, report.program_id)?;
    let rounding = match raw.rounding {
        Rounding::Floor | Rounding::Unspecified => "rounded down",
        Rounding::HalfUp => "rounded half up",
        Rounding::Ceiling => "rounded up",
    };
    let lot_expiry = match raw.lot_expiry.and_then(|expiry| expiry.rule) {
        Some(LotExpiryRule::AfterMonthsEnd(months)) => {
            format!(
                "at the end of the {} month after the month earned",
                ordinal(months)
            )
        }
        Some(LotExpiryRule::AfterDays(days)) => format!("{days} days after earned"),
        None => "never".into(),
    };
    let inactivity = match raw.inactivity_expiry_days {
        0 => "never".into(),
        days => format!("the whole balance after {days} days without an earn or a redemption"),
    };
    let returns = match rules.return_policy() {
        ReturnPolicy::Debt => "points already spent become debt, paid off by later earns",
        ReturnPolicy::Forfeit => "points already spent are forfeited by the program",
    };
    let measure = match rules.measure() {
        QualifyingMeasure::Points => "qualifying points",
        QualifyingMeasure::Spend => "spend",
    };
    let window = match rules.window() {
        TierWindow::CalendarYear => "per calendar year".to_owned(),
        TierWindow::RollingDays(days) => format!("over the last {days} days"),
    };
    let landing = if raw.tier_soft_landing {
        "; at most one tier down a period"
    } else {
        ""
    };
    let rows = vec![
        vec![
            "earning".into(),
            format!(
                "{} point{} per {} spent, {rounding}",
                decimal(raw.earn_rate_bps, 4, 0),
                if raw.earn_rate_bps == 10_000 { "" } else { "s" },
                money(i128::from(rules.currency().minor_units_per_major()), &rules)
            ),
        ],
        vec![
            "point value".into(),
            format!(
                "{} point{} = {}",
                thousands(i128::from(raw.point_value_per_points)),
                if raw.point_value_per_points == 1 {
                    ""
                } else {
                    "s"
                },
                money(i128::from(raw.point_value_minor_units), &rules)
            ),
        ],
        vec![
            "pending".into(),
            format!(
                "purchase points usable {} days after the purchase; bonus points {}",
                raw.pending_days,
                if raw.bonus_points_pending {
                    "too"
                } else {
                    "at once"
                }
            ),
        ],
        vec!["lot expiry".into(), lot_expiry],
        vec!["inactivity expiry".into(), inactivity],
        vec![
            "minimum redemption".into(),
            format!("{} points", thousands(i128::from(raw.min_redeem_points))),
        ],
        vec!["returns".into(), returns.into()],
        vec!["tiers".into(), format!("on {measure} {window}{landing}")],
    ];
    write_table(out, &[], &rows, "ll")?;
    let tiers: Vec<Vec<String>> = rules
        .tiers()
        .iter()
        .map(|tier| {
            vec![
                tier.name.clone(),
                thousands(i128::from(tier.threshold)),
                multiplier(tier.earn_multiplier_bps),
            ]
        })
        .collect();
    write_table_indented(out, 4, &["tier", "from", "earns"], &tiers, "l")?;
    if !rules.campaigns().is_empty() {
        writeln!(out, "  campaigns")?;
        let campaigns: Vec<Vec<String>> = rules
            .campaigns()
            .iter()
            .map(|campaign| {
                let effect = match campaign.effect {
                    CampaignEffect::Multiplier(bps) => multiplier(bps),
                    CampaignEffect::Bonus(points) => format!("+{} points", points.get()),
                };
                vec![
                    campaign.campaign_id.clone(),
                    format!(
                        "{} to {}",
                        date(campaign.starts_at_us),
                        date(campaign.ends_at_us - 1)
                    ),
                    effect,
                ]
            })
            .collect();
        write_table_indented(out, 4, &[], &campaigns, "ll")?;
    }
    Ok(())
}

/// The traffic: the members' profiles, commands submitted, accepted and
/// refused by kind, refusals by reason, the scheduler's work, and the log's
/// events by kind with its head.
pub fn print_traffic(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<()> {
    let options = report.options;
    let profiles = report.profiles;
    let tally = report.tally;
    writeln!(
        out,
        "\nTraffic: {} members over {} months, {} to {} (seed {})",
        thousands(i128::from(options.members)),
        options.months,
        rfc3339_seconds(report.start_us),
        rfc3339_seconds(report.as_of_us),
        options.seed
    )?;
    writeln!(
        out,
        "  members: {} joined in the launch week, {} stop buying at some point, {} redeem, \
         {} buy on most days",
        thousands(i128::from(profiles.launch)),
        thousands(i128::from(profiles.lapsing)),
        thousands(i128::from(profiles.redeemers)),
        thousands(i128::from(profiles.heavy)),
    )?;
    let mut rows: Vec<Vec<String>> = CommandKind::ALL
        .iter()
        .map(|kind| {
            let index = *kind as usize;
            vec![
                kind.name().to_owned(),
                thousands(i128::from(tally.submitted[index])),
                thousands(i128::from(tally.accepted[index])),
                thousands(i128::from(tally.refused[index])),
            ]
        })
        .collect();
    rows.push(vec![
        "total".into(),
        thousands(i128::from(Tally::total(&tally.submitted))),
        thousands(i128::from(Tally::total(&tally.accepted))),
        thousands(i128::from(Tally::total(&tally.refused))),
    ]);
    write_table(
        out,
        &["command", "submitted", "accepted", "refused"],
        &rows,
        "l",
    )?;
    if tally.reasons.is_empty() {
        writeln!(out, "  refused by reason: none")?;
    } else {
        let reasons: Vec<String> = tally
            .reasons
            .iter()
            .map(|(reason, count)| format!("{reason} {}", thousands(i128::from(*count))))
            .collect();
        writeln!(out, "  refused by reason: {}", reasons.join(", "))?;
    }
    if tally.disagreements > 0 {
        writeln!(
            out,
            "  {} answers differed from the domain model's prediction",
            thousands(i128::from(tally.disagreements))
        )?;
    }
    writeln!(
        out,
        "  scheduler: {} system commands (maturing, expiry, tier reviews)",
        thousands(i128::from(tally.system_commands))
    )?;
    let head = report.store.head()?;
    writeln!(
        out,
        "  log: {} events, head position {} hash {}",
        thousands(i128::from(head.position)),
        head.position,
        head.hash.to_hex()
    )?;
    let kinds = events_by_kind(report.store, head.position)?;
    let rows: Vec<Vec<String>> = kinds
        .iter()
        .map(|(kind, count)| vec![(*kind).to_owned(), thousands(i128::from(*count))])
        .collect();
    write_table_indented(out, 4, &["event", "count"], &rows, "l")?;
    let elapsed_ms = report.elapsed.as_millis().max(1);
    writeln!(
        out,
        "  took {} s: {} events/s through the writer, the scheduler and the views",
        decimal(elapsed_ms as i64, 3, 1),
        thousands(i128::from(head.position) * 1_000 / elapsed_ms as i128)
    )?;
    Ok(())
}

/// Events of the log up to `head`, by kind, in the order kinds first appear.
fn events_by_kind(store: &Store, head: u64) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    let mut next = 1;
    while next <= head {
        let records = store.read_range(next, head, READ_CHUNK_RECORDS)?;
        let Some(last) = records.last() else {
            anyhow::bail!("the log ends at {} before its head {head}", next - 1);
        };
        next = last.position + 1;
        for stored in &records {
            let name = stored.decode()?.event.as_ref().map_or("", event_name);
            match counts.iter_mut().find(|(kind, _)| *kind == name) {
                Some((_, count)) => *count += 1,
                None => counts.push((name, 1)),
            }
        }
    }
    Ok(counts)
}

/// Members per tier (the tier view), with their share.
pub fn print_tiers(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<()> {
    let answer = tier::tier_distribution(report.store, report.program_id)?;
    let total: i64 = answer.value.iter().map(|(_, count)| count).sum();
    writeln!(out, "\nTiers (tier view at position {})", answer.position)?;
    let mut rows: Vec<Vec<String>> = answer
        .value
        .iter()
        .map(|(name, count)| {
            vec![
                name.clone(),
                thousands(i128::from(*count)),
                share(*count, total),
            ]
        })
        .collect();
    rows.push(vec![
        "total".into(),
        thousands(i128::from(total)),
        share(total, total),
    ]);
    write_table(out, &["tier", "members", "share"], &rows, "l")?;
    Ok(())
}

/// The members' balances summed (the balance view), their value, the
/// lifetime totals, and the check that the two agree. Returns whether they
/// do.
pub fn print_balances(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<bool> {
    let rules = program_rules(report.store, report.program_id)?;
    let answer = balance::balance_totals(report.store, report.program_id)?;
    let totals = answer.value;
    writeln!(
        out,
        "\nBalances of {} members (balance view at position {})",
        thousands(i128::from(totals.members)),
        answer.position
    )?;
    let outstanding = totals.total();
    let line = |name: &str, points: Option<i64>, note: String| match points {
        Some(points) => vec![
            name.to_owned(),
            thousands(i128::from(points)),
            points_value(&rules, points),
            note,
        ],
        None => vec![name.to_owned(), "overflow".into(), String::new(), note],
    };
    let rows = vec![
        line("available", Some(totals.available), String::new()),
        line("pending", Some(totals.pending), String::new()),
        line(
            "debt",
            Some(totals.debt),
            format!("{} members", thousands(i128::from(totals.members_in_debt))),
        ),
        line(
            "outstanding",
            outstanding,
            "available + pending - debt".into(),
        ),
    ];
    write_table(out, &["", "points", "value", ""], &rows, "lrrl")?;
    let lifetime = totals.lifetime;
    writeln!(out, "  lifetime")?;
    let rows: Vec<Vec<String>> = [
        ("earned (purchases)", lifetime.earned),
        ("awarded (bonuses)", lifetime.awarded),
        ("redeemed", lifetime.redeemed),
        ("expired", lifetime.expired),
        ("reversed (returns)", lifetime.reversed),
        ("forfeited (return shortfalls)", lifetime.forfeited),
        ("adjusted", lifetime.adjusted),
        ("transferred in", lifetime.transferred_in),
        ("transferred out", lifetime.transferred_out),
    ]
    .iter()
    .map(|(name, points)| vec![(*name).to_owned(), thousands(i128::from(*points))])
    .collect();
    write_table_indented(out, 4, &[], &rows, "l")?;
    let net = lifetime.net();
    let balanced = net.is_some() && net == outstanding;
    writeln!(
        out,
        "  check: earned + awarded - redeemed - expired - reversed + adjusted + transferred in \
         - transferred out = {} {} outstanding {}",
        net.map_or_else(|| "overflow".to_owned(), |n| thousands(i128::from(n))),
        if balanced { "=" } else { "DIFFERS FROM" },
        outstanding.map_or_else(|| "overflow".to_owned(), |n| thousands(i128::from(n))),
    )?;
    Ok(balanced)
}

/// The members with the most points expiring in the next
/// [`EXPIRING_WINDOW_DAYS`] days (the balance view's lots).
pub fn print_expiring(out: &mut impl Write, report: &Report<'_>) -> anyhow::Result<()> {
    let from_us = report.as_of_us;
    let to_us = from_us + EXPIRING_WINDOW_DAYS * US_PER_DAY;
    let answer = balance::expiring_points(
        report.store,
        report.program_id,
        from_us,
        &[EXPIRING_WINDOW_DAYS as u32],
        EXPIRING_TOP_MEMBERS,
    )?;
    let expiring = answer.value;
    let ahead = expiring.within.first().map_or(0, |(_, points)| *points);
    writeln!(
        out,
        "\nPoints expiring in the next {EXPIRING_WINDOW_DAYS} days, to {}: {} points of {} \
         members, {} more overdue (balance view at position {})",
        date(to_us),
        thousands(i128::from(ahead)),
        thousands(i128::from(expiring.members)),
        thousands(i128::from(expiring.overdue)),
        answer.position
    )?;
    let rows: Vec<Vec<String>> = expiring
        .top
        .iter()
        .enumerate()
        .map(|(rank, member)| {
            vec![
                (rank + 1).to_string(),
                member.member_id.clone(),
                thousands(i128::from(member.points)),
                thousands(i128::from(member.lots)),
                date(member.first_expiry_us),
            ]
        })
        .collect();
    if !rows.is_empty() {
        write_table(
            out,
            &["#", "member", "points", "lots", "first expiry"],
            &rows,
            "rl",
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Formatting: integers only.

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(value: i128) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        grouped.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `value / 10^places`, keeping at least `min_places` decimals and
/// dropping trailing zeros beyond them: `decimal(12_500, 4, 2)` = `1.25`,
/// `decimal(10_000, 4, 0)` = `1`.
fn decimal(value: i64, places: u32, min_places: usize) -> String {
    let scale = 10_i64.pow(places);
    let whole = thousands(i128::from(value / scale));
    let mut fraction = format!("{:0width$}", (value % scale).abs(), width = places as usize);
    while fraction.len() > min_places && fraction.ends_with('0') {
        fraction.pop();
    }
    if fraction.is_empty() {
        whole
    } else {
        format!("{whole}.{fraction}")
    }
}

/// A multiplier in basis points as `1.25x`.
fn multiplier(bps: i64) -> String {
    format!("{}x", decimal(bps, 4, 2))
}

/// `part` of `whole` as a percentage with one decimal, rounded half up.
fn share(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "-".into();
    }
    let tenths = (i128::from(part) * 2_000 + i128::from(whole)) / (2 * i128::from(whole));
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// Minor units of the program's currency as `1,234.56 USD`.
fn money(minor_units: i128, rules: &Rules) -> String {
    let currency = rules.currency();
    let scale = i128::from(currency.minor_units_per_major());
    let sign = if minor_units < 0 { "-" } else { "" };
    let whole = thousands(minor_units.abs() / scale);
    match currency.exponent() {
        0 => format!("{sign}{whole} {}", currency.code()),
        places => format!(
            "{sign}{whole}.{:0width$} {}",
            minor_units.abs() % scale,
            currency.code(),
            width = usize::from(places)
        ),
    }
}

/// The value of `points` at the program's point value, rounded down to the
/// minor unit.
fn points_value(rules: &Rules, points: i64) -> String {
    let raw = rules.raw();
    let minor = i128::from(points) * i128::from(raw.point_value_minor_units)
        / i128::from(raw.point_value_per_points.max(1));
    money(minor, rules)
}

/// `12` as `12th`.
fn ordinal(number: u32) -> String {
    let suffix = match (number % 10, number % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{number}{suffix}")
}

fn system_time(us: i64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0).unsigned_abs())
}

/// An instant as `2026-11-23T16:30:00Z`.
fn rfc3339_seconds(us: i64) -> String {
    humantime::format_rfc3339_seconds(system_time(us)).to_string()
}

/// The UTC date of an instant, `2026-11-23`.
fn date(us: i64) -> String {
    let mut text = rfc3339_seconds(us);
    text.truncate(10);
    text
}

/// Writes rows as a table indented by two spaces, column `i` aligned by
/// the `i`th byte of `align` (`l` left, anything else right; columns
/// beyond it right); a header row when `header` is not empty.
fn write_table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    align: &str,
) -> std::io::Result<()> {
    write_table_indented(out, 2, header, rows, align)
}

/// [`write_table`] indented by `indent` spaces.
fn write_table_indented(
    out: &mut impl Write,
    indent: usize,
    header: &[&str],
    rows: &[Vec<String>],
    align: &str,
) -> std::io::Result<()> {
    let header: Vec<String> = header.iter().map(|cell| (*cell).to_owned()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header)
        .filter(|header| !header.is_empty())
        .chain(rows)
        .collect();
    let columns = all.iter().map(|row| row.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            all.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in all {
        let mut line = " ".repeat(indent);
        for (column, cell) in row.iter().enumerate() {
            let width = widths.get(column).copied().unwrap_or(0);
            if column > 0 {
                line.push_str("   ");
            }
            if align.as_bytes().get(column) == Some(&b'l') {
                line.push_str(&format!("{cell:<width$}"));
            } else {
                line.push_str(&format!("{cell:>width$}"));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_with_integers_only() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(multiplier(12_500), "1.25x");
        assert_eq!(multiplier(20_000), "2.00x");
        assert_eq!(decimal(12_345, 3, 1), "12.345");
        assert_eq!(decimal(12_300, 3, 1), "12.3");
        assert_eq!(decimal(10_000, 4, 0), "1");
        assert_eq!(share(1, 3), "33.3%");
        assert_eq!(share(2, 3), "66.7%");
        assert_eq!(share(0, 0), "-");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(22), "22nd");
    }

    #[test]
    fn a_data_directory_must_be_new_or_empty() {
        let parent = tempfile::tempdir().expect("tempdir");
        let fresh = parent.path().join("fresh");
        assert_eq!(prepare_data_dir(Some(&fresh)).expect("new"), fresh);
        assert!(fresh.is_dir());
        assert_eq!(prepare_data_dir(Some(&fresh)).expect("empty"), fresh);
        std::fs::write(fresh.join("CURRENT"), b"x").expect("write");
        let error = prepare_data_dir(Some(&fresh)).expect_err("not empty");
        assert!(error.to_string().contains("--data-dir"), "{error}");
        assert!(error.to_string().contains("not empty"), "{error}");
    }

    #[test]
    fn flags_out_of_range_are_refused_naming_the_flag() {
        let options = |members, months, until_us| DemoOptions {
            data_dir: None,
            members,
            months,
            seed: 1,
            until_us,
        };
        let now_us = 1_795_392_000_000_000;
        let message =
            |options: DemoOptions| period(&options, now_us).expect_err("refused").to_string();
        assert!(message(options(0, 12, None)).contains("--members"));
        assert!(message(options(MEMBERS_MAX + 1, 12, None)).contains("--members"));
        assert!(message(options(10, 0, None)).contains("--months"));
        assert!(message(options(10, 12, Some(now_us + 3_600_000_000))).contains("--until"));
        assert!(message(options(10, 12, Some(1_000_000))).contains("--until"));
        let (start_us, end_us) = period(&options(10, 12, None), now_us).expect("valid");
        assert_eq!(end_us, now_us);
        assert_eq!(start_us, traffic::months_before_us(now_us, 12));
    }
}
