//! Prometheus metrics on `--metrics ADDR` (`GET /metrics`).
//!
//! Recorded where the work happens:
//! - `ledger_requests_total{call,code}` and
//!   `ledger_request_duration_seconds{call}`: every gRPC call, by a layer
//!   around the services ([`RequestMetricsLayer`]);
//! - `ledger_writer_batch_events`, `ledger_writer_fsync_seconds`,
//!   `ledger_writer_events_appended_total` and `ledger_head_position`: every
//!   group commit, by the writer;
//! - `ledger_writer_queue_depth`: as each batch leaves the writer's queue;
//! - `ledger_engine_cache_entries{kind}`: at each batch, by the engine;
//! - `ledger_projection_checkpoint{view}`: every step of a view's worker;
//! - `ledger_projection_lag_events{view}`, `ledger_rocksdb_memory_bytes{kind}`
//!   and `ledger_heap_bytes{kind}`: sampled every [`SAMPLE_INTERVAL`] by
//!   [`sample`] (a stalled view does not report).
//!
//! Without `--metrics` no recorder is installed and every record is a no-op.

use ledger_core::store::Store;
use ledger_core::writer::{
    METRIC_BATCH_EVENTS, METRIC_EVENTS_APPENDED, METRIC_FSYNC_SECONDS, METRIC_HEAD_POSITION,
    METRIC_QUEUE_DEPTH,
};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use projections::Runtime;
use projections::runtime::METRIC_VIEW_CHECKPOINT;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::codegen::http;

const REQUESTS: &str = "ledger_requests_total";
const REQUEST_SECONDS: &str = "ledger_request_duration_seconds";
const VIEW_LAG: &str = "ledger_projection_lag_events";
/// Bytes RocksDB holds in memory, by kind.
const ROCKSDB_MEMORY: &str = "ledger_rocksdb_memory_bytes";
/// The allocator's counts, by kind: what the process has allocated and
/// not freed, and what the allocator holds for it. RocksDB's memtables,
/// block cache and table readers are inside them.
const HEAP: &str = "ledger_heap_bytes";

/// How often the gauges are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Latency buckets, in seconds: 50 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Events per group commit: 1 to the batch limit.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0,
];

/// Installs the process-wide recorder and serves it over HTTP on `addr`.
/// Needs a Tokio runtime; fails if the address cannot be bound or a
/// recorder is already installed in this process.
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(METRIC_BATCH_EVENTS.into()), BATCH_BUCKETS)?
        .install()
        .map_err(|error| anyhow::anyhow!("serving metrics on {addr}: {error}"))?;
    describe_counter!(REQUESTS, "gRPC calls answered, by call and status code");
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "time from a call's arrival to its answer's headers, by call"
    );
    describe_histogram!(
        METRIC_BATCH_EVENTS,
        "events made durable by one group commit"
    );
    describe_histogram!(
        METRIC_FSYNC_SECONDS,
        Unit::Seconds,
        "time of one group commit's durable write, fsync included"
    );
    describe_counter!(METRIC_EVENTS_APPENDED, "events made durable");
    describe_gauge!(
        METRIC_QUEUE_DEPTH,
        "commands waiting in the writer's queue as the last batch left it"
    );
    describe_gauge!(METRIC_HEAD_POSITION, "position of the last durable event");
    describe_gauge!(
        METRIC_VIEW_CHECKPOINT,
        "last position a view has folded, by view"
    );
    describe_gauge!(VIEW_LAG, "events a view is behind the head, by view");
    describe_gauge!(
        ledger_core::engine::METRIC_CACHE_ENTRIES,
        "what the engine's member cache holds: members, their entries (lots, records, \
         qualifying days, inactivity gaps), and the purchases and redemptions among them"
    );
    describe_gauge!(
        ROCKSDB_MEMORY,
        Unit::Bytes,
        "memory RocksDB holds: memtables, block cache, table readers"
    );
    describe_gauge!(
        HEAP,
        Unit::Bytes,
        "jemalloc's counts: allocated (live), active (in pages holding live \
         allocations), resident (mapped in RAM, its own metadata included), \
         retained (kept mapped for reuse, not resident), metadata"
    );
    tracing::info!(%addr, "serving metrics on http://{addr}/metrics");
    Ok(())
}

/// Samples each view's lag and RocksDB's memory every [`SAMPLE_INTERVAL`]
/// until `stopping` turns true. The first sample is taken before this
/// returns its future, so the gauges exist before the server takes calls.
pub fn sample(
    views: Arc<Runtime>,
    store: Store,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    sample_once(&views, &store);
    async move {
        let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
        // The first tick completes at once: the sample above was it.
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopping.wait_for(|stopping| *stopping) => return,
            }
            sample_once(&views, &store);
        }
    }
}

fn sample_once(views: &Runtime, store: &Store) {
    for status in views.status() {
        metrics::gauge!(VIEW_LAG, "view" => status.name).set(status.lag_events as f64);
    }
    match store.memory_usage() {
        Ok(usage) => {
            for (kind, bytes) in [
                ("memtables", usage.memtables_bytes),
                ("block_cache", usage.block_cache_bytes),
                ("table_readers", usage.table_readers_bytes),
            ] {
                metrics::gauge!(ROCKSDB_MEMORY, "kind" => kind).set(bytes as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "reading RocksDB's memory usage"),
    }
    match heap_bytes() {
        Ok(kinds) => {
            for (kind, bytes) in kinds {
                metrics::gauge!(HEAP, "kind" => kind).set(bytes as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "reading the allocator's statistics"),
    }
}

/// jemalloc's counts by kind, as of now. They are those of the allocator
/// linked into the process; `ledgerd` makes it the global one.
fn heap_bytes() -> Result<[(&'static str, usize); 5], tikv_jemalloc_ctl::Error> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The counts are cached until the epoch moves on.
    epoch::advance()?;
    Ok([
        ("allocated", stats::allocated::read()?),
        ("active", stats::active::read()?),
        ("resident", stats::resident::read()?),
        ("retained", stats::retained::read()?),
        ("metadata", stats::metadata::read()?),
    ])
}

/// Counts every call by its path and gRPC status code, and records its
/// latency.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestMetricsLayer;

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics { inner }
    }
}

/// The service [`RequestMetricsLayer`] wraps around each gRPC service.
#[derive(Debug, Clone)]
pub struct RequestMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            // An error is answered in the headers ("trailers-only"); a
            // success sends its OK in the trailers, after the body.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from_i32);
            // Unknown paths are counted under one label, so a client cannot
            // grow the number of series.
            let call = if code == tonic::Code::Unimplemented {
                "unknown".to_owned()
            } else {
                path
            };
            let code = format!("{code:?}");
            metrics::histogram!(REQUEST_SECONDS, "call" => call.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!(REQUESTS, "call" => call, "code" => code).increment(1);
            Ok(response)
        })
    }
}
