//! Goal: TLS and mutual TLS work with real certificates, plaintext to a TLS
//! port fails, and a non-loopback address is served only with TLS and
//! tokens.
//!
//! Method: a CA, a server certificate for `localhost` and a client
//! certificate are generated in the test (rcgen); the server runs in-process
//! on 127.0.0.1 port 0 with its `[tls]` settings; clients connect with
//! tonic's rustls transport.

use ledger_server::config::{Role, TlsConfig, TokenConfig};
use ledger_server::pb;
use ledger_server::pb::admin_client::AdminClient;
use ledger_server::server::{Bound, ServeOptions};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca_cert.pem(),
        server: leaf(vec!["localhost".into()]),
        client: leaf(vec!["client".into()]),
    }
}

/// A server started by [`start`].
struct Running {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the server and waits until it has: a test that returned with
    /// the server still stopping would leave its threads using RocksDB
    /// while the process exits.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }
}

/// Starts a TLS server (mutual when `mutual`).
async fn start(dir: &std::path::Path, pki: &Pki, mutual: bool) -> Running {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let tls = TlsConfig {
        cert: write("server.pem", &pki.server.0),
        key: write("server.key", &pki.server.1),
        client_ca: mutual.then(|| write("ca.pem", &pki.ca_pem)),
    };
    let options = ServeOptions {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tokens: vec![],
        tls: Some(tls),
    };
    let bound = Bound::open(&options).await.expect("server opens");
    let port = bound.local_addr().expect("bound").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    Running { port, stop, task }
}

async fn connect(
    port: u16,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        Channel::from_shared(format!("{scheme}://localhost:{port}")).expect("endpoint");
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    endpoint.connect().await
}

async fn list_programs(channel: Channel) -> Result<usize, tonic::Status> {
    AdminClient::new(channel)
        .list_programs(pb::ListProgramsRequest {})
        .await
        .map(|answer| answer.into_inner().programs.len())
}

fn trust(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_trusting_clients_and_refuses_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki();
    let server = start(dir.path(), &pki, false).await;
    let port = server.port;
    let channel = connect(port, Some(trust(&pki)))
        .await
        .expect("TLS handshake");
    assert_eq!(list_programs(channel).await.expect("a call over TLS"), 1);
    // Plaintext HTTP/2 to a TLS port: the connection or the call fails.
    let plain = match connect(port, None).await {
        Ok(channel) => list_programs(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(plain, "plaintext to a TLS port must fail");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki();
    let server = start(dir.path(), &pki, true).await;
    let port = server.port;
    let with_identity = trust(&pki).identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    let channel = connect(port, Some(with_identity))
        .await
        .expect("mTLS handshake");
    assert_eq!(list_programs(channel).await.expect("a call over mTLS"), 1);
    let refused = match connect(port, Some(trust(&pki))).await {
        Ok(channel) => list_programs(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate must be refused");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_needs_tls_and_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ServeOptions {
        data_dir: dir.path().join("data"),
        listen: "0.0.0.0:0".parse().expect("addr"),
        tokens: vec![TokenConfig {
            name: "ops".into(),
            token: "ops-secret-0123456789".into(),
            role: Role::Admin,
        }],
        tls: None,
    };
    let refused = Bound::open(&options)
        .await
        .err()
        .expect("refused without TLS");
    assert!(refused.to_string().contains("TLS"), "{refused}");
}
