//! `ledgerd reconcile`: the finance roll-forward recomputed from the log and
//! compared with the views (see `projections::reconcile`), printed as text,
//! CSV or JSON.

use ledger_core::domain::time::format_date;
use projections::liability::{FLOW_COLUMNS, Flows};
use projections::reconcile::{Difference, ProgramReconciliation, Reconciliation};
use std::io::Write;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned tables for people.
    Text,
    /// One row per program and day (differences go to standard error).
    Csv,
    /// One JSON document with every figure and difference.
    Json,
}

fn day_name(day: Option<i64>) -> String {
    day.map_or_else(|| "all days".to_owned(), format_date)
}

fn describe(difference: &Difference) -> String {
    format!(
        "{} {}: log says {}, {} says {}",
        day_name(difference.day),
        difference.what,
        difference.expected,
        difference.source,
        difference.found
    )
}

/// Writes the report in `format`; differences in CSV go to `errors`.
pub fn print(
    report: &Reconciliation,
    format: ReportFormat,
    out: &mut dyn Write,
    errors: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        ReportFormat::Text => print_text(report, out),
        ReportFormat::Csv => print_csv(report, out, errors),
        ReportFormat::Json => print_json(report, out),
    }
}

const SHORT_NAMES: [&str; 11] = [
    "earned", "awarded", "redeemed", "cancel", "expired", "reversed", "forfeit*", "adj_in",
    "adj_out", "xfer_in", "xfer_out",
];

fn print_program_text(program: &ProgramReconciliation, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "program {} ({}), {} members",
        program.program_id, program.currency, program.members
    )?;
    write!(out, "{:<10} {:>14}", "date", "opening")?;
    for name in SHORT_NAMES {
        write!(out, " {name:>12}")?;
    }
    writeln!(out, " {:>14}", "closing")?;
    let row = |out: &mut dyn Write, label: &str, opening: i64, flows: &Flows, closing: i64| {
        write!(out, "{label:<10} {opening:>14}")?;
        for value in flows.columns() {
            write!(out, " {value:>12}")?;
        }
        writeln!(out, " {closing:>14}")
    };
    for day in &program.days {
        row(
            out,
            &format_date(day.day),
            day.opening,
            &day.flows,
            day.closing,
        )?;
    }
    row(
        out,
        "total",
        program.opening,
        &program.totals,
        program.closing,
    )?;
    writeln!(
        out,
        "* forfeited is a memo column: return shortfalls the program absorbed, outside the roll-forward"
    )?;
    writeln!(
        out,
        "closing over all days (log): {}; members' available + pending - debt (balance view): {}",
        program.closing_all, program.member_points
    )?;
    if program.differences.is_empty() {
        writeln!(out, "result: ties")?;
    } else {
        writeln!(out, "result: {} difference(s)", program.differences.len())?;
        for difference in &program.differences {
            writeln!(out, "  DIFFERENCE {}", describe(difference))?;
        }
    }
    Ok(())
}

fn print_text(report: &Reconciliation, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "reconcile at log position {}: {} program(s)",
        report.position,
        report.programs.len()
    )?;
    for program in &report.programs {
        writeln!(out)?;
        print_program_text(program, out)?;
    }
    writeln!(out)?;
    if report.ties() {
        writeln!(out, "reconciled: every figure ties")?;
    } else {
        let count: usize = report
            .programs
            .iter()
            .map(|program| program.differences.len())
            .sum();
        writeln!(out, "NOT reconciled: {count} difference(s)")?;
    }
    Ok(())
}

fn print_csv(
    report: &Reconciliation,
    out: &mut dyn Write,
    errors: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let mut header = vec!["program_id", "date", "opening"];
    header.extend(FLOW_COLUMNS);
    header.push("closing");
    csv.write_record(&header)?;
    for program in &report.programs {
        for day in &program.days {
            let mut record = vec![
                program.program_id.clone(),
                format_date(day.day),
                day.opening.to_string(),
            ];
            record.extend(day.flows.columns().iter().map(i64::to_string));
            record.push(day.closing.to_string());
            csv.write_record(&record)?;
        }
        for difference in &program.differences {
            writeln!(
                errors,
                "DIFFERENCE {}: {}",
                program.program_id,
                describe(difference)
            )?;
        }
    }
    csv.flush()?;
    Ok(())
}

fn flows_json(flows: &Flows) -> serde_json::Value {
    FLOW_COLUMNS
        .iter()
        .zip(flows.columns())
        .map(|(name, value)| ((*name).to_owned(), serde_json::Value::from(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn print_json(report: &Reconciliation, out: &mut dyn Write) -> anyhow::Result<()> {
    let programs: Vec<serde_json::Value> = report
        .programs
        .iter()
        .map(|program| {
            serde_json::json!({
                "program_id": program.program_id,
                "currency": program.currency,
                "members": program.members,
                "opening": program.opening,
                "totals": flows_json(&program.totals),
                "closing": program.closing,
                "closing_all_days": program.closing_all,
                "member_points": program.member_points,
                "days": program.days.iter().map(|day| serde_json::json!({
                    "date": format_date(day.day),
                    "opening": day.opening,
                    "flows": flows_json(&day.flows),
                    "closing": day.closing,
                    "money_opening": day.money_opening,
                    "money_closing": day.money_closing,
                })).collect::<Vec<_>>(),
                "differences": program.differences.iter().map(|difference| serde_json::json!({
                    "date": difference.day.map(format_date),
                    "what": difference.what,
                    "log": difference.expected,
                    "found": difference.found,
                    "source": difference.source,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let document = serde_json::json!({
        "position": report.position,
        "ties": report.ties(),
        "programs": programs,
    });
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)?;
    Ok(())
}
