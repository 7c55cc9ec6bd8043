//! `ledgerd load`: a load generator over real gRPC.
//!
//! Scenarios (`scenario.rs`):
//! - `checkout`: 70% purchases, 15% balance reads with `min_position`, 10%
//!   redemptions and 5% returns, over members drawn from a Zipf
//!   distribution;
//! - `batch`: `SubmitBatch` calls of 1,000 purchases each;
//! - `hot-member`: every worker redeems from and awards to one member; the
//!   run checks that no answer ever showed a negative balance and that the
//!   final balance is what the acknowledged commands add up to;
//! - `noop`: health checks only, the transport's ceiling on the machine;
//! - `populate`: one purchase for each of `--members` members, by
//!   `SubmitBatch` of 1,000, and then the run ends: it fills a server.
//!
//! **Closed loop** (the default): each of `--concurrency` workers sends its
//! next request as soon as the last one is answered. **Open loop**
//! (`--rate R`): requests are due at a fixed rate, R per second over all
//! workers, and a request's latency is counted from when it was due, not
//! from when it was sent, so a server that falls behind shows it in the
//! percentiles (no coordinated omission). At most `--concurrency` requests
//! are in flight either way.
//!
//! A run is bounded: it stops after `--duration` seconds (or when the
//! caller's stop future completes) and lets the requests in flight finish,
//! so every acknowledged command is counted. Latencies go into HDR
//! histograms (1 µs to 60 s, three significant digits). `--interval S`
//! also samples throughput, latency and (with `--watch-pid`) a local
//! process's resident memory every S seconds, for soak runs.
//!
//! The report (`report.rs`) gives the settings, the machine, throughput,
//! p50/p90/p99/p99.9 latency, errors by gRPC code and the scenario's
//! checks, as text or as one JSON object.

mod report;
mod scenario;

pub use report::{Check, Machine, Percentiles, Report, Sample};
pub use scenario::{Ack, Scenario};

use crate::client::Bearer;
use anyhow::Context;
use hdrhistogram::Histogram;
use report::Stats;
use scenario::{Outcome, Setup, Worker};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Workers of one run, at most.
pub const CONCURRENCY_MAX: u32 = 4_096;
/// HTTP/2 connections of one run, at most.
pub const CONNECTIONS_MAX: u32 = 64;
/// Members of the simulated population, at most.
pub const MEMBERS_MAX: u32 = 100_000_000;
/// Longest run, seconds (one day).
pub const DURATION_MAX_S: u64 = 86_400;
/// A request not answered in this time counts as `DEADLINE_EXCEEDED`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// After UNAVAILABLE (a server that is down or stopping) a worker waits
/// this long before its next request, rather than spinning on a dead
/// connection.
pub const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(10);

/// `ledgerd load` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Server address: `host:port`, or a URL (`https://` for TLS).
    #[arg(long, env = "LEDGERD_TARGET", default_value = "127.0.0.1:50051")]
    pub target: String,
    /// Bearer token, when the server has tokens configured (writer role;
    /// admin to define the program on first use).
    #[arg(long, env = "LEDGERD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificate of the CA that signed the server's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// What to send.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Seconds to run; requests in flight at the end are let finish.
    #[arg(long, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=DURATION_MAX_S))]
    pub duration: u64,
    /// Workers, each with at most one request in flight.
    #[arg(long, default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(CONCURRENCY_MAX)))]
    pub concurrency: u32,
    /// Requests per second over all workers (open loop) [default: closed
    /// loop, each worker as fast as it is answered].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Size of the member population (Zipf-distributed activity).
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MEMBERS_MAX)))]
    pub members: u32,
    /// Seed of the members and amounts drawn.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Program to write to; defined on first use with the load rules (USD,
    /// no pending period, so redemptions can spend purchase points).
    #[arg(long, default_value = "load")]
    pub program: String,
    /// HTTP/2 connections the workers share [default: the smaller of the
    /// concurrency and 4].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(CONNECTIONS_MAX)))]
    pub connections: Option<u32>,
    /// Prefix of every idempotency key [default: the seed and the start
    /// time, so runs do not replay each other].
    #[arg(long)]
    pub run_id: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also sample throughput and latency every this many seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=DURATION_MAX_S))]
    pub interval: Option<u64>,
    /// With --interval: also sample this local process's resident memory
    /// (the server's pid).
    #[arg(long, requires = "interval")]
    pub watch_pid: Option<u32>,
    /// Write every acknowledged command (key, positions) to this file as
    /// JSON lines.
    #[arg(long)]
    pub record: Option<PathBuf>,
}

/// One run's settings, resolved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadOptions {
    /// The URL called.
    pub target: String,
    #[serde(skip)]
    /// Bearer token.
    pub token: Option<String>,
    #[serde(skip)]
    /// CA certificate file.
    pub ca: Option<PathBuf>,
    /// Scenario.
    pub scenario: Scenario,
    /// Run time.
    #[serde(rename = "duration_s", serialize_with = "report::seconds")]
    pub duration: Duration,
    /// Workers.
    pub concurrency: u32,
    /// Open-loop rate, requests/s; `None` = closed loop.
    pub rate: Option<u32>,
    /// Member population.
    pub members: u32,
    /// Seed.
    pub seed: u64,
    /// Program written to.
    pub program: String,
    /// HTTP/2 connections.
    pub connections: u32,
    /// Idempotency key prefix.
    pub run_id: String,
    /// Sampling interval.
    #[serde(rename = "interval_s", serialize_with = "report::seconds_opt")]
    pub interval: Option<Duration>,
    /// Process whose memory is sampled.
    pub watch_pid: Option<u32>,
    /// Keep every acknowledged command in the report.
    #[serde(skip)]
    pub keep_acks: bool,
}

impl LoadOptions {
    /// Resolves the flags; the run id defaults to the seed and the time.
    pub fn from_args(args: &LoadArgs) -> LoadOptions {
        let target = if args.target.contains("://") {
            args.target.clone()
        } else {
            format!("http://{}", args.target)
        };
        let run_id = args.run_id.clone().unwrap_or_else(|| {
            let started_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis());
            format!("{}-{started_ms}", args.seed)
        });
        LoadOptions {
            target,
            token: args.token.clone(),
            ca: args.ca.clone(),
            scenario: args.scenario,
            duration: Duration::from_secs(args.duration),
            concurrency: args.concurrency,
            rate: args.rate,
            members: args.members,
            seed: args.seed,
            program: args.program.clone(),
            connections: args.connections.unwrap_or(args.concurrency.min(4)),
            run_id,
            interval: args.interval.map(Duration::from_secs),
            watch_pid: args.watch_pid,
            keep_acks: args.record.is_some(),
        }
    }
}

/// A client channel with the run's bearer token on every call.
pub(crate) type Authed = InterceptedService<Channel, Bearer>;

/// Runs the load until its duration is over or `stop` completes, whichever
/// is first; the requests in flight then finish. Errors only when the run
/// cannot start (no connection, the program cannot be set up).
pub async fn run(
    options: LoadOptions,
    stop: impl Future<Output = ()> + Send,
) -> anyhow::Result<Report> {
    let bearer = Bearer::new(options.token.as_deref())?;
    let endpoint = crate::client::endpoint(&options.target, options.ca.as_deref())?
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true);
    let mut channels = Vec::new();
    for _ in 0..options.connections.max(1) {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", options.target))?;
        channels.push(InterceptedService::new(channel, bearer.clone()));
    }
    let setup = Setup::prepare(&options, &channels[0]).await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let deadline = started + options.duration;
    let mut workers = Vec::new();
    let mut stats = Vec::new();
    for index in 0..options.concurrency {
        let channel = channels[index as usize % channels.len()].clone();
        let worker = Worker::new(&options, &setup, index, channel);
        let worker_stats = Arc::new(Mutex::new(Stats::new(options.keep_acks)));
        stats.push(worker_stats.clone());
        let schedule = Schedule::new(&options, index, started);
        workers.push(tokio::spawn(drive(
            worker,
            schedule,
            deadline,
            stop_rx.clone(),
            worker_stats,
        )));
    }
    let sampler = options.interval.map(|interval| {
        tokio::spawn(report::sample(
            stats.clone(),
            started,
            interval,
            options.watch_pid,
            stop_rx.clone(),
        ))
    });
    // Ends at the deadline, at the caller's stop, or when every worker has
    // nothing more to send (populate), whichever is first.
    let mut joined = tokio::spawn(async move {
        let mut summaries = Vec::with_capacity(workers.len());
        for worker in workers {
            summaries.push(worker.await);
        }
        summaries
    });
    let mut finished = None;
    tokio::select! {
        () = stop => {}
        () = tokio::time::sleep_until(deadline.into()) => {}
        summaries = &mut joined => finished = Some(summaries),
    }
    // The workers and the sampler hold receivers until they return, so the
    // send reaches them; if all returned already there is nobody to tell.
    let _ = stop_tx.send(true);
    let summaries = match finished {
        Some(summaries) => summaries,
        None => joined.await,
    }
    .context("the load workers' task panicked")?;
    let mut checks_inputs = Vec::new();
    for summary in summaries {
        checks_inputs.push(summary.context("a load worker panicked")?);
    }
    let elapsed = started.elapsed();
    let samples = match sampler {
        Some(sampler) => sampler.await.context("the sampler panicked")?,
        None => Vec::new(),
    };
    let mut total = Stats::new(options.keep_acks);
    for worker_stats in &stats {
        let worker_stats = worker_stats
            .lock()
            .map_err(|_| anyhow::anyhow!("a load worker panicked holding its figures"))?;
        total.merge(&worker_stats);
    }
    let checks = setup
        .check(&channels[0], &checks_inputs, &total)
        .await
        .context("running the scenario's end-of-run checks")?;
    Ok(Report::new(options, elapsed, total, checks, samples))
}

/// When a worker's requests are due.
struct Schedule {
    /// Open loop: the first request's due time and the gap between this
    /// worker's requests.
    open: Option<(Instant, Duration)>,
    sent: u32,
}

impl Schedule {
    fn new(options: &LoadOptions, worker: u32, started: Instant) -> Schedule {
        let open = options.rate.map(|rate| {
            // Worker w takes every concurrency-th slot of the run's
            // schedule, starting at slot w: together they make `rate`.
            let slot = Duration::from_secs_f64(1.0 / f64::from(rate));
            (started + slot * worker, slot * options.concurrency.max(1))
        });
        Schedule { open, sent: 0 }
    }

    /// When the next request is due (open loop), or `None` (closed loop).
    fn next_due(&mut self) -> Option<Instant> {
        let (first, gap) = self.open?;
        let due = first + gap * self.sent;
        self.sent = self.sent.saturating_add(1);
        Some(due)
    }
}

/// One worker's loop: a request at a time until the deadline or the stop.
async fn drive(
    mut worker: Worker,
    mut schedule: Schedule,
    deadline: Instant,
    stop: tokio::sync::watch::Receiver<bool>,
    stats: Arc<Mutex<Stats>>,
) -> scenario::WorkerSummary {
    loop {
        if *stop.borrow() {
            break;
        }
        let due = match schedule.next_due() {
            Some(due) => {
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if Instant::now() >= deadline || *stop.borrow() {
            break;
        }
        let Some(outcome) = worker.step().await else {
            break;
        };
        let latency_us = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
        let unavailable = matches!(&outcome, Outcome { result: Err(code), .. } if *code == tonic::Code::Unavailable);
        match stats.lock() {
            Ok(mut stats) => stats.record(outcome, latency_us),
            // Only this worker records into its stats; a poisoned lock
            // would mean it panicked, and then it is not running here.
            Err(_) => break,
        }
        if unavailable {
            tokio::time::sleep(UNAVAILABLE_PAUSE).await;
        }
    }
    worker.summary()
}

/// A histogram of latencies in µs, 1 µs to 60 s, three significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1,
    // high >= 2 * low, sigfig <= 5).
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
