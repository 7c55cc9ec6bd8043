//! The figures of a run: what each worker counted, merged, and printed as
//! text or JSON with the settings and the machine.

use super::scenario::{Ack, Op, Outcome};
use super::{LoadOptions, histogram};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;

/// One kind of call's counts and latencies.
#[derive(Clone)]
struct OpStats {
    latency_us: Histogram<u64>,
    errors: BTreeMap<&'static str, u64>,
}

/// What one worker (or, merged, the run) counted.
pub(crate) struct Stats {
    latency_us: Histogram<u64>,
    /// Since the last sample.
    interval_us: Histogram<u64>,
    by_op: BTreeMap<Op, OpStats>,
    requests: u64,
    answered: u64,
    commands: u64,
    events: u64,
    /// Refusals by code: whole calls, and commands inside batches.
    errors: BTreeMap<&'static str, u64>,
    command_errors: BTreeMap<&'static str, u64>,
    keep_acks: bool,
    acks: Vec<Ack>,
}

impl Stats {
    pub(crate) fn new(keep_acks: bool) -> Stats {
        Stats {
            latency_us: histogram(),
            interval_us: histogram(),
            by_op: BTreeMap::new(),
            requests: 0,
            answered: 0,
            commands: 0,
            events: 0,
            errors: BTreeMap::new(),
            command_errors: BTreeMap::new(),
            keep_acks,
            acks: Vec::new(),
        }
    }

    pub(crate) fn record(&mut self, outcome: Outcome, latency_us: u64) {
        self.requests += 1;
        self.latency_us.saturating_record(latency_us);
        self.interval_us.saturating_record(latency_us);
        let op = self.by_op.entry(outcome.op).or_insert_with(|| OpStats {
            latency_us: histogram(),
            errors: BTreeMap::new(),
        });
        op.latency_us.saturating_record(latency_us);
        match outcome.result {
            Ok(()) => {
                self.answered += 1;
                self.commands += outcome.commands;
                self.events += outcome.events;
            }
            Err(code) => {
                *self.errors.entry(code_name(code)).or_default() += 1;
                *op.errors.entry(code_name(code)).or_default() += 1;
            }
        }
        for code in outcome.command_errors {
            *self.command_errors.entry(code_name(code)).or_default() += 1;
        }
        if self.keep_acks {
            self.acks.extend(outcome.acks);
        }
    }

    /// Calls of `op` refused with `code`.
    pub(crate) fn refused(&self, op: Op, code: Code) -> u64 {
        self.by_op
            .get(&op)
            .and_then(|op| op.errors.get(code_name(code)))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (op, stats) in &other.by_op {
            let mine = self.by_op.entry(*op).or_insert_with(|| OpStats {
                latency_us: histogram(),
                errors: BTreeMap::new(),
            });
            let _ = mine.latency_us.add(&stats.latency_us);
            add_counts(&mut mine.errors, &stats.errors);
        }
        self.requests += other.requests;
        self.answered += other.answered;
        self.commands += other.commands;
        self.events += other.events;
        add_counts(&mut self.errors, &other.errors);
        add_counts(&mut self.command_errors, &other.command_errors);
        self.acks.extend(other.acks.iter().cloned());
    }
}

fn add_counts(into: &mut BTreeMap<&'static str, u64>, from: &BTreeMap<&'static str, u64>) {
    for (code, count) in from {
        *into.entry(code).or_default() += count;
    }
}

/// The gRPC name of a code, as grpcurl prints it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50_us: histogram.value_at_quantile(0.5),
            p90_us: histogram.value_at_quantile(0.9),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }
}

/// One kind of call in the report.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Calls made.
    pub requests: u64,
    /// Calls refused, by code.
    pub errors: BTreeMap<&'static str, u64>,
    /// Their latencies.
    pub latency: Percentiles,
}

/// A check the scenario makes at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What must hold.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind it.
    pub detail: String,
}

/// The machine the generator ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model (from /proc/cpuinfo).
    pub cpu: String,
    /// Cores available to this process.
    pub cores: u32,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine this runs on (Linux /proc; "unknown" elsewhere).
    pub fn this() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|line| {
                line.strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0);
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
            memory_gib: (memory_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            kernel: if kernel.is_empty() {
                "unknown".into()
            } else {
                kernel
            },
        }
    }
}

/// One sample of a run with `--interval`.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub at_s: f64,
    /// Calls completed in the interval, per second.
    pub requests_per_s: f64,
    /// Latencies of the interval.
    pub p50_us: u64,
    /// 99th percentile of the interval.
    pub p99_us: u64,
    /// Resident memory of `--watch-pid`, KiB.
    pub rss_kib: Option<u64>,
}

/// A least-squares line through samples: how a figure moved over the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Trend {
    /// Mean over the first third of the samples.
    pub first_third: f64,
    /// Mean over the last third.
    pub last_third: f64,
    /// Slope per minute of the fitted line.
    pub slope_per_min: f64,
}

impl Trend {
    fn of(points: &[(f64, f64)]) -> Option<Trend> {
        if points.len() < 3 {
            return None;
        }
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let third = points.len() / 3;
        let mean =
            |slice: &[(f64, f64)]| slice.iter().map(|p| p.1).sum::<f64>() / slice.len() as f64;
        Some(Trend {
            first_third: mean(&points[..third]),
            last_third: mean(&points[points.len() - third..]),
            slope_per_min: if variance > 0.0 {
                covariance / variance * 60.0
            } else {
                0.0
            },
        })
    }
}

/// Trends of a sampled run.
#[derive(Debug, Clone, Serialize)]
pub struct Trends {
    /// Of the interval p99, µs.
    pub p99_us: Option<Trend>,
    /// Of the watched process's resident memory, KiB.
    pub rss_kib: Option<Trend>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The settings.
    pub settings: LoadOptions,
    /// Where it ran.
    pub machine: Machine,
    /// Wall time from the first request to the last answer.
    pub elapsed_s: f64,
    /// Calls made.
    pub requests: u64,
    /// Calls answered (not refused).
    pub answered: u64,
    /// Calls per second.
    pub requests_per_s: f64,
    /// Commands carried by answered calls (a batch counts its commands).
    pub commands: u64,
    /// Durable events appended by acknowledged commands.
    pub events: u64,
    /// Events per second.
    pub events_per_s: f64,
    /// Calls refused, by gRPC code.
    pub errors: BTreeMap<&'static str, u64>,
    /// Commands inside answered batches refused, by gRPC code.
    pub command_errors: BTreeMap<&'static str, u64>,
    /// Latency of every call, from when it was due.
    pub latency: Percentiles,
    /// Per kind of call.
    pub by_op: BTreeMap<&'static str, OpReport>,
    /// The scenario's checks.
    pub checks: Vec<Check>,
    /// With `--interval`: the samples, and how p99 and memory moved.
    pub samples: Vec<Sample>,
    /// Fitted trends of the samples.
    pub trends: Option<Trends>,
    /// Every acknowledged command (kept when asked for).
    #[serde(skip)]
    pub acks: Vec<Ack>,
}

impl Report {
    pub(crate) fn new(
        settings: LoadOptions,
        elapsed: Duration,
        total: Stats,
        checks: Vec<Check>,
        samples: Vec<Sample>,
    ) -> Report {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let trends = (!samples.is_empty()).then(|| {
            let p99: Vec<(f64, f64)> = samples.iter().map(|s| (s.at_s, s.p99_us as f64)).collect();
            let rss: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|s| Some((s.at_s, s.rss_kib? as f64)))
                .collect();
            Trends {
                p99_us: Trend::of(&p99),
                rss_kib: Trend::of(&rss),
            }
        });
        Report {
            machine: Machine::this(),
            elapsed_s: seconds,
            requests: total.requests,
            answered: total.answered,
            requests_per_s: total.requests as f64 / seconds,
            commands: total.commands,
            events: total.events,
            events_per_s: total.events as f64 / seconds,
            errors: total.errors.clone(),
            command_errors: total.command_errors.clone(),
            latency: Percentiles::of(&total.latency_us),
            by_op: total
                .by_op
                .iter()
                .map(|(op, stats)| {
                    (
                        op.name(),
                        OpReport {
                            requests: stats.latency_us.len(),
                            errors: stats.errors.clone(),
                            latency: Percentiles::of(&stats.latency_us),
                        },
                    )
                })
                .collect(),
            checks,
            samples,
            trends,
            acks: total.acks,
            settings,
        }
    }

    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }

    /// The report as text.
    pub fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let s = &self.settings;
        let mode = match s.rate {
            Some(rate) => format!("open loop at {} requests/s", thousands(u64::from(rate))),
            None => "closed loop".into(),
        };
        writeln!(
            out,
            "ledgerd load: {} against {} for {} s, {mode}, concurrency {} over {} connection(s)",
            s.scenario.name(),
            s.target,
            s.duration.as_secs(),
            s.concurrency,
            s.connections
        )?;
        let members = match s.scenario {
            super::Scenario::Noop => None,
            super::Scenario::Populate => Some("one purchase each".to_owned()),
            _ => Some(format!("Zipf, exponent {}", super::scenario::ZIPF_EXPONENT)),
        };
        if let Some(members) = members {
            writeln!(
                out,
                "  program {}, {} members ({members}), seed {}, run id {}",
                s.program,
                thousands(u64::from(s.members)),
                s.seed,
                s.run_id
            )?;
        }
        let m = &self.machine;
        writeln!(
            out,
            "  machine: {}, {} cores, {} GiB, Linux {}",
            m.cpu, m.cores, m.memory_gib, m.kernel
        )?;
        writeln!(out)?;
        let refused: u64 = self.errors.values().sum();
        writeln!(
            out,
            "requests   {} in {:.2} s: {} requests/s, {} answered, {} refused",
            thousands(self.requests),
            self.elapsed_s,
            thousands(self.requests_per_s.round() as u64),
            thousands(self.answered),
            thousands(refused)
        )?;
        if self.commands > 0 {
            writeln!(
                out,
                "events     {} durable events from {} commands: {} events/s",
                thousands(self.events),
                thousands(self.commands),
                thousands(self.events_per_s.round() as u64)
            )?;
        }
        writeln!(out, "latency    {}", percentiles_text(&self.latency))?;
        if self.by_op.len() > 1 {
            for (op, report) in &self.by_op {
                let refused: u64 = report.errors.values().sum();
                writeln!(
                    out,
                    "  {op:<9} {:>10} calls {:>8} refused   {}",
                    thousands(report.requests),
                    thousands(refused),
                    percentiles_text(&report.latency)
                )?;
            }
        }
        write_counts(out, "refused by code", &self.errors)?;
        if !self.command_errors.is_empty() {
            write_counts(out, "batch commands refused by code", &self.command_errors)?;
        }
        if let Some(trends) = &self.trends {
            writeln!(
                out,
                "samples every {} s:",
                s.interval.map_or(0, |i| i.as_secs())
            )?;
            writeln!(
                out,
                "  {:>7} {:>12} {:>10} {:>10} {:>10}",
                "at s", "requests/s", "p50 ms", "p99 ms", "RSS MiB"
            )?;
            for sample in &self.samples {
                writeln!(
                    out,
                    "  {:>7.0} {:>12} {:>10.2} {:>10.2} {:>10}",
                    sample.at_s,
                    thousands(sample.requests_per_s.round() as u64),
                    sample.p50_us as f64 / 1000.0,
                    sample.p99_us as f64 / 1000.0,
                    sample
                        .rss_kib
                        .map_or_else(|| "-".into(), |kib| format!("{:.1}", kib as f64 / 1024.0))
                )?;
            }
            for (name, trend, scale, unit) in [
                ("p99", trends.p99_us, 1000.0, "ms"),
                ("RSS", trends.rss_kib, 1024.0, "MiB"),
            ] {
                if let Some(trend) = trend {
                    writeln!(
                        out,
                        "  {name}: first third {:.2} {unit}, last third {:.2} {unit}, fitted slope {:+.3} {unit}/min",
                        trend.first_third / scale,
                        trend.last_third / scale,
                        trend.slope_per_min / scale
                    )?;
                }
            }
        }
        for check in &self.checks {
            writeln!(
                out,
                "check {}: {} ({})",
                check.name,
                if check.passed { "ok" } else { "FAILED" },
                check.detail
            )?;
        }
        Ok(())
    }
}

fn write_counts(
    out: &mut impl std::io::Write,
    title: &str,
    counts: &BTreeMap<&'static str, u64>,
) -> std::io::Result<()> {
    if counts.is_empty() {
        return writeln!(out, "{title}: none");
    }
    let list: Vec<String> = counts
        .iter()
        .map(|(code, count)| format!("{code} {}", thousands(*count)))
        .collect();
    writeln!(out, "{title}: {}", list.join(", "))
}

fn percentiles_text(p: &Percentiles) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        ms(p.p50_us),
        ms(p.p90_us),
        ms(p.p99_us),
        ms(p.p999_us),
        ms(p.max_us)
    )
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    crate::demo::thousands(i128::from(n))
}

/// Samples the workers' interval figures every `interval` until stopped.
pub(crate) async fn sample(
    stats: Vec<Arc<Mutex<Stats>>>,
    started: Instant,
    interval: Duration,
    watch_pid: Option<u32>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval_at((started + interval).into(), interval);
    let mut last = started;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return samples,
        }
        let mut merged = histogram();
        for worker in &stats {
            if let Ok(mut worker) = worker.lock() {
                // Same bounds: adding cannot fail.
                let _ = merged.add(&worker.interval_us);
                worker.interval_us.reset();
            }
        }
        let now = Instant::now();
        let seconds = now.duration_since(last).as_secs_f64().max(1e-9);
        last = now;
        samples.push(Sample {
            at_s: now.duration_since(started).as_secs_f64(),
            requests_per_s: merged.len() as f64 / seconds,
            p50_us: merged.value_at_quantile(0.5),
            p99_us: merged.value_at_quantile(0.99),
            rss_kib: watch_pid.and_then(rss_kib),
        });
    }
}

/// Resident memory of a local process, KiB (`VmRSS` in /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| {
            line.strip_prefix("VmRSS:")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
}

pub(crate) fn seconds<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

pub(crate) fn seconds_opt<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trend_fits_a_rising_line_and_a_flat_one() {
        let rising: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i) * 10.0, f64::from(i)))
            .collect();
        let trend = Trend::of(&rising).expect("enough points");
        // One unit per 10 s is six per minute.
        assert!((trend.slope_per_min - 6.0).abs() < 1e-9, "{trend:?}");
        assert!(trend.last_third > trend.first_third);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 5.0)).collect();
        let trend = Trend::of(&flat).expect("enough points");
        assert_eq!(trend.slope_per_min, 0.0);
        assert_eq!(trend.first_third, trend.last_third);
        assert!(Trend::of(&flat[..2]).is_none());
    }
}
