//! `ledgerd`: the Points Ledger server and its tools.

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::ids::ProgramId;
use ledger_core::store::{Store, VerifyOutcome};
use ledger_server::config::{self, FileConfig};
use ledger_server::demo;
use ledger_server::export::{Format, Selection, parse_time};
use ledger_server::reconcile::ReportFormat;
use ledger_server::reports;
use ledger_server::server::{Bound, ServeOptions};
use projections::ViewError;
use projections::reconcile::Scope;
use projections::runtime::{ViewKind, catch_up_offline, rebuild_offline};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// jemalloc rather than the system allocator: a server's many threads
/// (tokio workers, the writer, the views, RocksDB's) each get a glibc
/// arena, and freed memory stays spread over them; jemalloc's resident
/// memory follows the live heap (BENCHMARKS.md, server memory). Built
/// unprefixed (the workspace's `Cargo.toml`), it is also the `malloc` that
/// RocksDB's C++ code calls.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "ledgerd",
    version,
    about = "Points Ledger: an event-sourced loyalty points engine"
)]
struct Cli {
    /// Log format on standard error: human-readable lines or one JSON
    /// object per event. The level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Commands {
    /// Call a running server: the common Ledger commands and queries, and
    /// the log's head. Exit 0 when answered, 1 when the server refuses the
    /// call (code, message and fields printed), 2 when it cannot be called.
    Client(ledger_server::client::ClientArgs),
    /// Generate load over gRPC against a running server and report
    /// throughput, latency percentiles and errors by code. Exit 0 when the
    /// run's checks hold, 1 when one fails, 2 when it cannot run.
    Load(Box<ledger_server::load::LoadArgs>),
    /// Serve gRPC (health, reflection, Audit) on a data directory.
    Serve {
        /// Data directory [default: points-ledger under the user's data dir].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:50051].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// TOML config file; flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve Prometheus metrics over HTTP on this address
        /// (`GET /metrics`) [default: no metrics endpoint].
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
    },
    /// Recompute the hash chain from genesis. Exit 0 when it verifies, 1 naming
    /// the first bad position otherwise, 2 when the store cannot be read.
    Verify {
        /// Data directory [default: points-ledger under the user's data dir].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Rebuild views from position 0 into a new generation, then switch to
    /// it; the old rows stay active until the new ones are complete. Needs
    /// the data directory to itself (stop the server first). Exit 0 when
    /// rebuilt, 1 naming the event a view cannot fold, 2 when the store
    /// cannot be opened.
    Rebuild {
        /// Data directory [default: points-ledger under the user's data dir].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// One view (balance, tier, liability, ...) [default: every view].
        #[arg(long)]
        projection: Option<String>,
    },
    /// Recompute the liability roll-forward straight from the log, compare
    /// it with the liability view and with the sum of member balances, and
    /// print the report. Brings the views up to the head first (needs the
    /// data directory to itself: stop the server). Exit 0 when every figure
    /// ties, 1 naming every difference, 2 when it cannot run.
    Reconcile {
        /// Data directory [default: points-ledger under the user's data dir].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// One program [default: every program].
        #[arg(long)]
        program: Option<String>,
        /// First reporting date shown, YYYY-MM-DD [default: the first active day].
        #[arg(long)]
        from: Option<String>,
        /// Last reporting date shown, YYYY-MM-DD [default: the last active day].
        #[arg(long)]
        to: Option<String>,
        /// text, csv or json.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Load a sample program ("Coffee Rewards") and months of generated
    /// traffic into a fresh data directory through the real engine, let the
    /// scheduler do the time-driven work, and print what the views show.
    /// Exit 0 when every command was accepted and the balances add up, 1
    /// otherwise (the report says what), 2 when the demo could not run.
    Demo {
        /// Data directory, new or empty [default: a new temporary directory,
        /// kept and printed].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Members to enrol.
        #[arg(long, default_value_t = demo::MEMBERS_DEFAULT,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(demo::MEMBERS_MAX)))]
        members: u32,
        /// Months of traffic, ending at --until.
        #[arg(long, default_value_t = demo::MONTHS_DEFAULT,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(demo::MONTHS_MAX)))]
        months: u32,
        /// Seed of the generated traffic: the same seed and --until give the
        /// same log (the same head hash).
        #[arg(long, default_value_t = demo::SEED_DEFAULT)]
        seed: u64,
        /// End of the traffic's period, RFC 3339 [default: now].
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Export the log with each record's stored bytes (base64) and chain
    /// hash, by position and/or business time. Works beside a running
    /// server (it opens the store read-only).
    Export {
        /// Data directory [default: points-ledger under the user's data dir].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// jsonl (one JSON object per line) or csv.
        #[arg(long, value_enum)]
        format: Format,
        /// Output file [default: standard output].
        #[arg(long)]
        output: Option<PathBuf>,
        /// First position.
        #[arg(long, default_value_t = 1)]
        from_position: u64,
        /// Last position [default: the head].
        #[arg(long)]
        to_position: Option<u64>,
        /// Only records whose business time is at or after this (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only records whose business time is before this (RFC 3339).
        #[arg(long)]
        to: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Commands::Client(args) => client(args),
        Commands::Load(args) => load(&args),
        Commands::Serve {
            data_dir,
            listen,
            config,
            metrics,
        } => serve(data_dir, listen, config, metrics),
        Commands::Verify { data_dir } => verify(data_dir.unwrap_or_else(config::default_data_dir)),
        Commands::Export {
            data_dir,
            format,
            output,
            from_position,
            to_position,
            from,
            to,
        } => export(
            data_dir.unwrap_or_else(config::default_data_dir),
            format,
            output,
            from_position,
            to_position,
            from.as_deref(),
            to.as_deref(),
        ),
        Commands::Reconcile {
            data_dir,
            program,
            from,
            to,
            format,
        } => reconcile(
            data_dir.unwrap_or_else(config::default_data_dir),
            program.as_deref(),
            from.as_deref(),
            to.as_deref(),
            format,
        ),
        Commands::Demo {
            data_dir,
            members,
            months,
            seed,
            until,
        } => run_demo(data_dir, members, months, seed, until.as_deref()),
        Commands::Rebuild {
            data_dir,
            projection,
        } => rebuild(
            data_dir.unwrap_or_else(config::default_data_dir),
            projection.as_deref(),
        ),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ledgerd: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    config_path: Option<PathBuf>,
    metrics: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let file = match &config_path {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let default_listen: SocketAddr = config::LISTEN_DEFAULT.parse()?;
    let options = ServeOptions {
        data_dir: data_dir
            .or(file.data_dir)
            .unwrap_or_else(config::default_data_dir),
        listen: listen.or(file.listen).unwrap_or(default_listen),
        tokens: file.tokens,
        tls: file.tls,
    };
    let metrics = metrics.or(file.metrics);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        if let Some(addr) = metrics {
            ledger_server::metrics::install(addr)?;
        }
        let bound = Bound::open(&options).await?;
        tracing::info!(data_dir = %options.data_dir.display(), "store open");
        bound.serve(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn client(args: ledger_server::client::ClientArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(match runtime.block_on(ledger_server::client::run(args))? {
        ledger_server::client::Outcome::Answered => ExitCode::SUCCESS,
        ledger_server::client::Outcome::Refused => ExitCode::from(1),
    })
}

fn load(args: &ledger_server::load::LoadArgs) -> anyhow::Result<ExitCode> {
    use ledger_server::load;
    let options = load::LoadOptions::from_args(args);
    let runtime = tokio::runtime::Runtime::new()?;
    // Ctrl-C ends the run early; the report covers what was sent.
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let report = runtime.block_on(load::run(options, stop))?;
    if let Some(path) = &args.record {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        for ack in &report.acks {
            serde_json::to_writer(&mut out, ack)?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        std::io::Write::flush(&mut out)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        std::io::Write::write_all(&mut out, b"\n")?;
    } else {
        report.write_text(&mut out)?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                // Ctrl-C errors only if the handler cannot be installed; then
                // the server runs until killed.
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
}

fn run_demo(
    data_dir: Option<PathBuf>,
    members: u32,
    months: u32,
    seed: u64,
    until: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let options = demo::DemoOptions {
        data_dir,
        members,
        months,
        seed,
        until_us: until.map(|text| parse_time("--until", text)).transpose()?,
    };
    // The bar draws on standard error; it is hidden when the report goes
    // to a file or a pipe, as it is when standard error is not a terminal.
    let progress = if std::io::stdout().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let mut out = std::io::stdout().lock();
    let outcome = runtime.block_on(demo::run(options, progress, &mut out))?;
    Ok(if outcome.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify(data_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&data_dir)
        .with_context(|| format!("opening {} read-only", data_dir.display()))?;
    let head = store.head()?;
    let bar = ProgressBar::new(head.position);
    bar.set_style(ProgressStyle::with_template(
        "verify {bar:40} {pos}/{len} records  {per_sec}  eta {eta}",
    )?);
    let started = Instant::now();
    let outcome = store.verify(|progress| bar.set_position(progress.checked))?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    match outcome {
        VerifyOutcome::Verified { head } => {
            println!(
                "verified: {} records, head position {} hash {}",
                head.position,
                head.position,
                head.hash.to_hex()
            );
            println!(
                "took {seconds:.2} s: {:.0} records/s",
                head.position as f64 / seconds.max(1e-9)
            );
            Ok(ExitCode::SUCCESS)
        }
        VerifyOutcome::Mismatch { position, reason } => {
            println!("FAILED at position {position}: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}

fn reconcile(
    data_dir: PathBuf,
    program: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    format: ReportFormat,
) -> anyhow::Result<ExitCode> {
    let scope = Scope {
        program_id: program
            .map(|id| ProgramId::parse("--program", id))
            .transpose()?,
        from_day: from.map(|text| reports::date("--from", text)).transpose()?,
        to_day: to.map(|text| reports::date("--to", text)).transpose()?,
    };
    let store = Store::open(&data_dir).with_context(|| {
        format!(
            "opening {} (a running server holds it: stop it first)",
            data_dir.display()
        )
    })?;
    for kind in [ViewKind::Balance, ViewKind::Liability] {
        let bar = progress_bar(&format!("catch up {:<9}", kind.name()), "events")?;
        catch_up_offline(&store, kind, |done, head| {
            bar.set_length(head);
            bar.set_position(done);
        })?;
        bar.finish_and_clear();
    }
    let head = store.head()?.position;
    let bar = progress_bar("reconcile        ", "records")?;
    bar.set_length(head);
    let report = projections::reconcile::reconcile(&store, &scope, |done| bar.set_position(done));
    bar.finish_and_clear();
    let report = report?;
    let mut out = std::io::stdout().lock();
    ledger_server::reconcile::print(&report, format, &mut out, &mut std::io::stderr().lock())?;
    Ok(if report.ties() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A progress bar on standard error (hidden when it is not a terminal).
fn progress_bar(label: &str, unit: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(&format!(
        "{label} {{bar:40}} {{pos}}/{{len}} {unit}  {{per_sec}}  eta {{eta}}"
    ))?);
    Ok(bar)
}

fn rebuild(data_dir: PathBuf, projection: Option<&str>) -> anyhow::Result<ExitCode> {
    let kinds = match projection {
        Some(name) => vec![ViewKind::parse("--projection", name)?],
        None => ViewKind::ALL.to_vec(),
    };
    let store = Store::open(&data_dir).with_context(|| {
        format!(
            "opening {} (a running server holds it: stop it first)",
            data_dir.display()
        )
    })?;
    for kind in kinds {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(&format!(
            "rebuild {:<8} {{bar:40}} {{pos}}/{{len}} events  {{per_sec}}  eta {{eta}}",
            kind.name()
        ))?);
        let started = Instant::now();
        let outcome = rebuild_offline(&store, kind, |done, head| {
            bar.set_length(head);
            bar.set_position(done);
        });
        bar.finish_and_clear();
        match outcome {
            Ok(outcome) => {
                let seconds = started.elapsed().as_secs_f64();
                println!(
                    "rebuilt {}: {} events in {seconds:.1} s ({:.0} events/s), generation {}",
                    kind.name(),
                    outcome.position,
                    outcome.position as f64 / seconds.max(1e-9),
                    outcome.generation
                );
            }
            Err(ViewError::Event { position, reason }) => {
                println!(
                    "FAILED: {} cannot fold the event at position {position}: {reason}; \
                     the previous rows stay active",
                    kind.name()
                );
                return Ok(ExitCode::from(1));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn export(
    data_dir: PathBuf,
    format: Format,
    output: Option<PathBuf>,
    from_position: u64,
    to_position: Option<u64>,
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let selection = Selection {
        from_position,
        to_position,
        from_us: from.map(|text| parse_time("--from", text)).transpose()?,
        to_us: to.map(|text| parse_time("--to", text)).transpose()?,
    };
    let store = Store::open_read_only(&data_dir)
        .with_context(|| format!("opening {} read-only", data_dir.display()))?;
    let mut out: Box<dyn std::io::Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(
        "export {bar:40} {pos}/{len} positions  {per_sec}  eta {eta}",
    )?);
    let written =
        ledger_server::export::export(&store, format, selection, &mut out, |done, last| {
            bar.set_length(last);
            bar.set_position(done);
        })?;
    bar.finish_and_clear();
    eprintln!("exported {written} records");
    Ok(ExitCode::SUCCESS)
}
