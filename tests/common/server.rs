//! The server in-process for end-to-end tests of its gRPC services, and
//! request builders for the default program (USD, 1 point per dollar).
//! Commands are dated with the real time: the server's scheduler runs on
//! the system clock.
#![allow(dead_code)]

use ledger_core::store::Store;
use ledger_server::config::{Role, TokenConfig};
use ledger_server::ledger::timestamp;
use ledger_server::pb;
use ledger_server::pb::admin_client::AdminClient;
use ledger_server::pb::audit_client::AuditClient;
use ledger_server::pb::ledger_client::LedgerClient;
use ledger_server::pb::reports_client::ReportsClient;
use ledger_server::server::{Bound, DEFAULT_PROGRAM_ID, ServeOptions};
use std::path::PathBuf;
use tonic::transport::Channel;

/// A server on 127.0.0.1 (port 0) over a temporary data directory (or a
/// given one), with a client for each service and its store.
pub struct Server {
    /// The store the server writes (its fault seam, its free-space reserve).
    pub store: Store,
    pub channel: Channel,
    pub client: LedgerClient<Channel>,
    pub admin: AdminClient<Channel>,
    pub audit: AuditClient<Channel>,
    pub reports: ReportsClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Last: fields drop in order, and the store must close before its
    /// directory is removed, or its last files outlive the removal.
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A server that needs no token.
    pub async fn start() -> Server {
        Server::start_with(vec![]).await
    }

    /// A server that accepts `tokens` (none: no token needed).
    pub async fn start_with(tokens: Vec<TokenConfig>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        Server::start_on(Some(dir), data_dir, tokens).await
    }

    /// A server without tokens over `data_dir`, which the caller keeps (a
    /// filesystem the test mounted, say).
    pub async fn start_in(data_dir: PathBuf) -> Server {
        Server::start_on(None, data_dir, vec![]).await
    }

    async fn start_on(
        dir: Option<tempfile::TempDir>,
        data_dir: PathBuf,
        tokens: Vec<TokenConfig>,
    ) -> Server {
        let options = ServeOptions {
            data_dir,
            listen: "127.0.0.1:0".parse().expect("addr"),
            tokens,
            tls: None,
        };
        let bound = Bound::open(&options).await.expect("server opens");
        let store = bound.store();
        let addr = bound.local_addr().expect("bound");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        Server {
            store,
            channel: channel.clone(),
            client: LedgerClient::new(channel.clone()),
            admin: AdminClient::new(channel.clone()),
            audit: AuditClient::new(channel.clone()),
            reports: ReportsClient::new(channel),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stops the server and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.stop_keeping_store().await;
    }

    /// Stops the server as [`Server::stop`] does and hands back its store,
    /// still open, with the temporary directory it lives in (the store must
    /// be dropped first: dropping the directory removes it).
    pub async fn stop_keeping_store(mut self) -> (Store, Option<tempfile::TempDir>) {
        if let Some(stop) = self.stop.take() {
            // The server task holds the receiver until it stops.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
        (self.store.clone(), self._dir.take())
    }
}

/// A token named `name` with `role`; its secret is derived from the name.
pub fn token(name: &str, role: Role) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: format!("{name}-secret-0123456789"),
        role,
    }
}

/// Adds `authorization: Bearer <name>-secret-...` to every call.
/// An interceptor sending the secret of [`token`]`(name, _)`.
pub fn bearer(
    name: &str,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {name}-secret-0123456789")
        .parse()
        .expect("header value");
    move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", value.clone());
        Ok(request)
    }
}

pub fn usd(minor_units: i64) -> Option<ledger_core::pb::Money> {
    Some(ledger_core::pb::Money {
        minor_units,
        currency: "USD".into(),
    })
}

pub fn enroll(member: &str, key: &str) -> pb::EnrollRequest {
    pb::EnrollRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        member_id: member.into(),
        idempotency_key: key.into(),
        occurred_at: Some(timestamp(super::wall_clock_us())),
        ..Default::default()
    }
}

pub fn purchase(member: &str, key: &str, order: &str, cents: i64) -> pb::RecordPurchaseRequest {
    pb::RecordPurchaseRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        member_id: member.into(),
        idempotency_key: key.into(),
        occurred_at: Some(timestamp(super::wall_clock_us())),
        order_id: order.into(),
        spend: usd(cents),
        ..Default::default()
    }
}

pub fn award(member: &str, key: &str, points: i64) -> pb::AwardPointsRequest {
    pb::AwardPointsRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        member_id: member.into(),
        idempotency_key: key.into(),
        occurred_at: Some(timestamp(super::wall_clock_us())),
        reason: "welcome".into(),
        points,
        ..Default::default()
    }
}

pub fn redeem(member: &str, key: &str, points: i64) -> pb::RedeemRequest {
    pb::RedeemRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        member_id: member.into(),
        idempotency_key: key.into(),
        occurred_at: Some(timestamp(super::wall_clock_us())),
        redemption_id: key.into(),
        points,
        ..Default::default()
    }
}
