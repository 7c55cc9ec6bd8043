//! Wiring: open the store, start the writer, make sure the default program
//! exists, and serve gRPC until told to stop.

use crate::audit::AuditService;
use crate::pb;
use anyhow::Context;
use ledger_core::clock::SystemClock;
use ledger_core::error::CommandError;
use ledger_core::ids::{IdempotencyKey, ProgramId, StreamName};
use ledger_core::pb as record;
use ledger_core::store::Store;
use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig, WriterHandle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

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
}

/// The rules of the default program: one point per currency unit in USD,
/// three tiers, lots expiring at the end of the 12th month after the month
/// earned, 30 pending days for purchases.
pub fn default_rules() -> record::ProgramRules {
    let tier = |name: &str, threshold: i64, multiplier_bps: i64| record::Tier {
        name: name.into(),
        threshold,
        earn_multiplier_bps: multiplier_bps,
    };
    record::ProgramRules {
        name: "Default program".into(),
        currency: "USD".into(),
        earn_rate_bps: 10_000,
        rounding: record::Rounding::Floor as i32,
        point_value_minor_units: 1,
        point_value_per_points: 1,
        tiers: vec![
            tier("Member", 0, 10_000),
            tier("Silver", 500, 12_500),
            tier("Gold", 2_000, 15_000),
        ],
        tier_measure: record::TierMeasure::QualifyingPoints as i32,
        tier_window_days: 0,
        tier_soft_landing: true,
        campaigns: vec![],
        lot_expiry: Some(record::LotExpiry {
            rule: Some(record::lot_expiry::Rule::AfterMonthsEnd(12)),
        }),
        inactivity_expiry_days: 0,
        pending_days: 30,
        bonus_points_pending: false,
        min_redeem_points: 1,
        return_policy: record::ShortfallPolicy::Forfeit as i32,
    }
}

/// Appends `ProgramDefined` for the default program if its stream is empty.
/// The fixed idempotency key makes this safe to run at every start.
pub async fn ensure_default_program(writer: &WriterHandle<Append>) -> anyhow::Result<()> {
    let program_id = ProgramId::parse("program_id", DEFAULT_PROGRAM_ID)?;
    let event = record::Event {
        kind: Some(record::event::Kind::ProgramDefined(
            record::ProgramDefined {
                rules: Some(default_rules()),
            },
        )),
    };
    let envelope = Envelope {
        program_id: program_id.clone(),
        idempotency_key: IdempotencyKey::parse(
            "idempotency_key",
            "ledgerd:define-default-program",
        )?,
        occurred_at_us: 0,
        principal: "system".into(),
        metadata: vec![],
        expected_version: Some(0),
        command: Append::new([(StreamName::program(&program_id), event)]),
    };
    match writer.submit(envelope).await {
        Ok(appended) if !appended.replayed => {
            tracing::info!(
                position = appended.first_position,
                "defined the default program"
            );
            Ok(())
        }
        // Already defined by an earlier start.
        Ok(_) | Err(CommandError::VersionConflict { .. }) => Ok(()),
        Err(error) => Err(error).context("defining the default program"),
    }
}

/// A server bound to its address.
pub struct Bound {
    listener: TcpListener,
    store: Store,
    writer: Writer<Append>,
}

impl Bound {
    /// Opens the store, starts the writer and binds the listener.
    pub async fn open(options: &ServeOptions) -> anyhow::Result<Bound> {
        crate::config::check_listen(options.listen)?;
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating data directory {}", options.data_dir.display()))?;
        let store = Store::open(&options.data_dir)
            .with_context(|| format!("opening store in {}", options.data_dir.display()))?;
        let writer = Writer::start(
            store.clone(),
            PassThrough,
            WriterConfig::with_clock(Arc::new(SystemClock)),
        )?;
        ensure_default_program(&writer.handle()).await?;
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        Ok(Bound {
            listener,
            store,
            writer,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle on the writer, for in-process callers (tests, tools).
    pub fn writer(&self) -> WriterHandle<Append> {
        self.writer.handle()
    }

    /// Serves until `shutdown` completes, then drains the writer.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Bound {
            listener,
            store,
            writer,
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let audit = AuditService::new(store.clone(), writer.handle().head(), stopping_rx);
        health
            .set_serving::<pb::audit_server::AuditServer<AuditService>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        tracing::info!(
            addr = %listener.local_addr()?,
            "serving plaintext without tokens: loopback only"
        );
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(pb::audit_server::AuditServer::new(audit))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                shutdown.await;
                // Ends open subscriptions; the receivers outlive this call
                // inside the service, so the send cannot fail while serving.
                let _ = stopping_tx.send(true);
            })
            .await?;
        tracing::info!("stopped accepting calls; draining the writer");
        tokio::task::spawn_blocking(move || writer.shutdown()).await?;
        drop(store);
        Ok(())
    }
}
