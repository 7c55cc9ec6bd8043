//! Wiring: open the store, start the writer, make sure the default program
//! exists, and serve gRPC until told to stop.

use crate::admin::AdminService;
use crate::audit::AuditService;
use crate::auth::{Access, Auth};
use crate::config::{TlsConfig, TokenConfig};
use crate::ledger::LedgerService;
use crate::pb;
use crate::reports::ReportsService;
use anyhow::Context;
use ledger_core::clock::{Clock, SystemClock};
use ledger_core::domain::{
    LotExpiry, LotExpiryRule, ProgramCommand, ProgramRules, Rounding, ShortfallPolicy, Tier,
    TierMeasure,
};
use ledger_core::engine::scheduler::Scheduler;
use ledger_core::engine::{LedgerCommand, LedgerDecider};
use ledger_core::ids::{IdempotencyKey, ProgramId, StreamName};
use ledger_core::store::Store;
use ledger_core::writer::{Envelope, Writer, WriterConfig, WriterHandle};
use projections::{Runtime, ViewKind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The program every new data directory starts with, so `ledgerd serve` runs
/// with no setup.
pub const DEFAULT_PROGRAM_ID: &str = "default";

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Data directory (created if missing).
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Bearer tokens; none = no token needed (loopback only).
    pub tokens: Vec<TokenConfig>,
    /// TLS; none = plaintext.
    pub tls: Option<TlsConfig>,
}

/// How often the scheduler looks for due work (maturing, expiry, tier
/// period ends). Work is recorded at its due time whatever the tick.
pub const SCHEDULER_INTERVAL: Duration = Duration::from_secs(1);

/// How long shutdown lets open calls finish before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long shutdown waits for the views to fold the last events.
pub const VIEWS_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The rules of the default program: one point per 1.00 USD, three tiers on
/// qualifying points per calendar year with a soft landing, purchase points
/// pending for 30 days, lots expiring at the end of the 12th month after the
/// month earned, and returns beyond the balance forfeited.
pub fn default_rules() -> ProgramRules {
    let tier = |name: &str, threshold: i64, earn_multiplier_bps: i64| Tier {
        name: name.into(),
        threshold,
        earn_multiplier_bps,
    };
    ProgramRules {
        name: "Default program".into(),
        currency: "USD".into(),
        earn_rate_bps: 10_000,
        rounding: Rounding::Floor,
        point_value_minor_units: 1,
        point_value_per_points: 1,
        tiers: vec![
            tier("Member", 0, 10_000),
            tier("Silver", 500, 12_500),
            tier("Gold", 2_000, 15_000),
        ],
        tier_measure: TierMeasure::QualifyingPoints,
        tier_window_days: 0,
        tier_soft_landing: true,
        campaigns: vec![],
        lot_expiry: Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterMonthsEnd(12)),
        }),
        inactivity_expiry_days: 0,
        pending_days: 30,
        bonus_points_pending: false,
        min_redeem_points: 1,
        return_policy: ShortfallPolicy::Forfeit,
        utc_offset_minutes: 0,
        rfm_window_days: 0,
    }
}

/// Defines the default program unless its stream already has events.
///
/// The check comes first because the definition's request differs from one
/// start to the next (its time, and the default rules of the version that
/// first ran), so its idempotency key alone cannot say "already done".
/// `expected_version` 0 still guards against two definitions racing.
pub async fn ensure_default_program(
    store: &Store,
    writer: &WriterHandle<LedgerCommand>,
    now_us: i64,
) -> anyhow::Result<()> {
    let program_id = ProgramId::parse("program_id", DEFAULT_PROGRAM_ID)?;
    if store.stream_version(&StreamName::program(&program_id))? > 0 {
        return Ok(());
    }
    let envelope = Envelope {
        program_id,
        idempotency_key: IdempotencyKey::parse(
            "idempotency_key",
            "ledgerd:define-default-program",
        )?,
        occurred_at_us: now_us,
        principal: "system".into(),
        metadata: vec![],
        expected_version: Some(0),
        command: LedgerCommand::Program(ProgramCommand::DefineProgram {
            rules: default_rules(),
        }),
    };
    let appended = writer
        .submit(envelope)
        .await
        .context("defining the default program")?;
    tracing::info!(
        position = appended.first_position,
        "defined the default program"
    );
    Ok(())
}

/// Sets the health of every service of ours (health and reflection are
/// always serving).
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    use tonic::server::NamedService;
    for name in [
        pb::audit_server::AuditServer::<AuditService>::NAME,
        pb::ledger_server::LedgerServer::<LedgerService>::NAME,
        pb::admin_server::AdminServer::<AdminService>::NAME,
        pb::reports_server::ReportsServer::<ReportsService>::NAME,
    ] {
        health.set_service_status(name, status).await;
    }
}

/// A server bound to its address.
pub struct Bound {
    listener: TcpListener,
    store: Store,
    writer: Writer<LedgerCommand>,
    clock: Arc<dyn Clock>,
    auth: Auth,
    tls: Option<tonic::transport::ServerTlsConfig>,
}

impl Bound {
    /// Opens the store, starts the writer, defines the default program if
    /// needed and binds the listener.
    pub async fn open(options: &ServeOptions) -> anyhow::Result<Bound> {
        crate::config::check_listen(options.listen, options.tls.is_some(), &options.tokens)?;
        let tls = options
            .tls
            .as_ref()
            .map(TlsConfig::server_config)
            .transpose()?;
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating data directory {}", options.data_dir.display()))?;
        let store = Store::open(&options.data_dir)
            .with_context(|| format!("opening store in {}", options.data_dir.display()))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let config = WriterConfig::with_clock(clock.clone());

        let writer = Writer::start(store.clone(), LedgerDecider::new(), config)?;
        let ready = async {
            ensure_default_program(&store, &writer.handle(), clock.now_us()).await?;
            TcpListener::bind(options.listen)
                .await
                .with_context(|| format!("binding {}", options.listen))
        };
        match ready.await {
            Ok(listener) => Ok(Bound {
                listener,
                store,
                writer,
                clock,
                auth: Auth::new(&options.tokens),
                tls,
            }),
            Err(error) => {
                // Stop the writer's threads before the store closes, so a
                // failed start exits cleanly.
                tokio::task::spawn_blocking(move || writer.shutdown()).await?;
                Err(error)
            }
        }
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle on the writer, for in-process callers (tests, tools).
    pub fn writer(&self) -> WriterHandle<LedgerCommand> {
        self.writer.handle()
    }

    /// The store the server writes, for in-process callers (tests: its
    /// fault seam and free-space reserve).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Serves until `shutdown` completes; then ends open subscriptions, stops
    /// the scheduler and drains the writer, answering every queued command.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Bound {
            listener,
            store,
            writer,
            clock,
            auth,
            tls,
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let audit = AuditService::new(store.clone(), writer.handle().head(), stopping_rx.clone());
        let views = Arc::new(Runtime::start(
            store.clone(),
            writer.handle().head(),
            clock.clone(),
            &ViewKind::ALL,
        )?);
        let ledger =
            LedgerService::new(store.clone(), writer.handle(), views.clone(), clock.clone());
        let admin = AdminService::new(store.clone(), writer.handle(), views.clone());
        let reports = ReportsService::new(store.clone(), views.clone(), clock.clone());
        let scheduler = Scheduler::new(store.clone(), writer.handle(), clock);
        let mut stopping = stopping_rx.clone();
        let sampler = tokio::spawn(crate::metrics::sample(
            views.clone(),
            store.clone(),
            stopping_rx.clone(),
        ));
        let scheduler = tokio::spawn(scheduler.run(SCHEDULER_INTERVAL, stopping_rx));
        // Serving once the views have caught up with the log as it was at
        // start; until then health says NOT_SERVING (registered now, so a
        // check before then is answered, not NOT_FOUND).
        set_health(&health, ServingStatus::NotServing).await;
        let start_head = store.head()?.position;
        let ready = {
            let views = views.clone();
            let health = health.clone();
            tokio::spawn(async move {
                views.wait_all(start_head).await;
                tracing::info!(position = start_head, "views caught up");
                set_health(&health, ServingStatus::Serving).await;
            })
        };
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let transport = if tls.is_some() { "TLS" } else { "plaintext" };
        if auth.enabled() {
            tracing::info!(addr = %listener.local_addr()?, "serving {transport} with bearer tokens");
        } else {
            tracing::info!(
                addr = %listener.local_addr()?,
                "serving {transport} without tokens: loopback only"
            );
        }
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let check = |auth: &Auth, access: Access| {
            let auth = auth.clone();
            move |request| auth.check(request, access)
        };
        let serving = builder
            .layer(crate::metrics::RequestMetricsLayer)
            // One span per call; the Ledger service records the program,
            // member and position in it.
            .trace_fn(|request| {
                tracing::info_span!(
                    "call",
                    method = %request.uri().path(),
                    program = tracing::field::Empty,
                    member = tracing::field::Empty,
                    position = tracing::field::Empty,
                )
            })
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(pb::audit_server::AuditServer::with_interceptor(
                audit,
                check(&auth, Access::Audit),
            ))
            .add_service(pb::ledger_server::LedgerServer::with_interceptor(
                ledger,
                check(&auth, Access::Query),
            ))
            .add_service(pb::admin_server::AdminServer::with_interceptor(
                admin,
                check(&auth, Access::Admin),
            ))
            .add_service(pb::reports_server::ReportsServer::with_interceptor(
                reports,
                check(&auth, Access::Report),
            ))
            .serve_with_incoming_shutdown(incoming(listener), {
                let health = health.clone();
                async move {
                    shutdown.await;
                    set_health(&health, ServingStatus::NotServing).await;
                    // Ends open subscriptions and the scheduler; their
                    // receivers live inside the service, so the send cannot
                    // fail here.
                    let _ = stopping_tx.send(true);
                }
            });
        // Unary calls finish within the grace period; a stream that never
        // ends by itself (a client's health Watch) must not hold the
        // shutdown forever, so it is closed when the period is over.
        tokio::select! {
            served = serving => served?,
            () = async {
                let _ = stopping.wait_for(|stopping| *stopping).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {
                tracing::warn!(
                    grace_s = SHUTDOWN_GRACE.as_secs(),
                    "streams still open after the grace period; closing them"
                );
            }
        }
        tracing::info!("stopped accepting calls; draining the writer");
        if let Err(error) = scheduler.await {
            tracing::error!(%error, "the scheduler task failed");
        }
        ready.abort();
        sampler.abort();
        tokio::task::spawn_blocking(move || writer.shutdown()).await?;
        // Every acknowledged event is in the log; the views fold the last
        // of them before they stop, so a restart has nothing to catch up.
        for kind in ViewKind::ALL {
            // A view that failed stays where it stopped; its status says why.
            let status = views.wait_settled(kind, VIEWS_FLUSH_TIMEOUT).await?;
            tracing::info!(view = kind.name(), position = status.checkpoint, state = ?status.state, "view flushed");
        }
        views.stop().await;
        drop(store);
        Ok(())
    }
}

/// The accepted connections, with Nagle's algorithm off: an answer goes
/// out when it is written, not once the peer has acknowledged the last
/// one, which a delayed acknowledgement can hold back for tens of
/// milliseconds.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn accepted_connections_send_without_waiting_for_acknowledgements() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let _client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let mut incoming = incoming(listener);
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().expect("read the option"));
    }
}
