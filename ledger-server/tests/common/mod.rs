//! The real `ledgerd` binary as a child process, for the tests of this
//! package: start it on a data directory, stop it with SIGTERM or kill it
//! with SIGKILL, and check a log against the commands a load run was told
//! were durable.
#![allow(dead_code)]

use ledger_core::store::{Store, VerifyOutcome};
use ledger_server::load::{Ack, LoadOptions, Scenario};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Reads the child's log until it has seen a line containing each of
/// `needles`, in any order; returns those lines in the order of `needles`.
pub fn wait_for_lines(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    needles: &[&str],
) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; needles.len()];
    for line in lines.by_ref() {
        let line = line.expect("child log");
        for (needle, slot) in needles.iter().zip(found.iter_mut()) {
            if slot.is_none() && line.contains(needle) {
                *slot = Some(line.clone());
            }
        }
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().collect();
        }
    }
    panic!("ledgerd exited before logging all of {needles:?}");
}

/// `ledgerd serve` on port 0 with `extra` flags, running until stopped.
pub struct Ledgerd {
    child: std::process::Child,
    /// `127.0.0.1:PORT` it serves on.
    pub addr: String,
    log: std::thread::JoinHandle<Vec<String>>,
    /// A fresh directory this server owns, if it was started on one.
    pub dir: Option<tempfile::TempDir>,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Ledgerd {
    /// A server on a fresh data directory; returns once it serves and its
    /// views have caught up.
    pub fn start(extra: &[&str]) -> Ledgerd {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Ledgerd::start_on(dir.path(), extra);
        server.dir = Some(dir);
        server
    }

    /// A server on `data_dir` (new or used before).
    pub fn start_on(data_dir: &Path, extra: &[&str]) -> Ledgerd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerd"))
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info,ledger_server=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ledgerd");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let seen = wait_for_lines(&mut lines, &["serving plaintext", "views caught up"]);
        let serving: serde_json::Value = serde_json::from_str(&seen[0]).expect("JSON");
        let addr = serving["fields"]["addr"].as_str().expect("addr").to_owned();
        let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Ledgerd {
            child,
            addr,
            log,
            dir: None,
            data_dir: data_dir.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM; the exit status must be 0. Returns the log and the data
    /// directory the server owned.
    pub fn stop(mut self) -> (Vec<String>, tempfile::TempDir) {
        let log = self.signal("-TERM");
        assert!(
            self.child.wait().expect("reap").success(),
            "ledgerd exits 0 on SIGTERM: {}",
            log.join("\n")
        );
        let dir = self
            .dir
            .take()
            .unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
        (log, dir)
    }

    /// SIGTERM, and the exit status; the log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let log = self.signal("-TERM");
        (self.child.wait().expect("reap"), log)
    }

    /// SIGKILL: the process dies wherever it is, as on a crash.
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL ledgerd");
        self.child.wait().expect("reap");
        std::mem::replace(&mut self.log, std::thread::spawn(Vec::new))
            .join()
            .expect("log reader")
    }

    /// Sends `signal`, waits for the exit, and returns the whole log.
    fn signal(&mut self, signal: &str) -> Vec<String> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("send the signal");
        assert!(status.success());
        self.child.wait().expect("ledgerd exits");
        std::mem::replace(&mut self.log, std::thread::spawn(Vec::new))
            .join()
            .expect("log reader")
    }
}

impl Drop for Ledgerd {
    /// A test that fails midway leaves no server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Already failing: a kill error here cannot be reported better.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `checkout` load against `addr`: bounded by `duration`, keeping every
/// acknowledged command.
pub fn checkout(addr: &str, run_id: &str, seed: u64, duration: Duration) -> LoadOptions {
    LoadOptions {
        target: format!("http://{addr}"),
        token: None,
        ca: None,
        scenario: Scenario::Checkout,
        duration,
        concurrency: 16,
        rate: None,
        // Few members, so that redeems and returns find their purchases
        // and several commands race on one member.
        members: 200,
        seed,
        program: "load".into(),
        connections: 2,
        run_id: run_id.into(),
        interval: None,
        watch_pid: None,
        keep_acks: true,
    }
}

/// Completes once the server at `addr` has made `count` events durable
/// after `from_position`, as an Audit subscription sees them.
pub async fn events_durable(addr: &str, from_position: u64, count: u64) {
    use tokio_stream::StreamExt;
    let mut audit = ledger_server::pb::audit_client::AuditClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let mut records = audit
        .subscribe(ledger_server::pb::SubscribeRequest {
            from_position: from_position + 1,
        })
        .await
        .expect("subscribe")
        .into_inner();
    for _ in 0..count {
        records
            .next()
            .await
            .expect("the subscription stays open while the server runs")
            .expect("a record");
    }
}

/// The durable head of a running server.
pub async fn head_over_grpc(addr: &str) -> u64 {
    ledger_server::pb::audit_client::AuditClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
        .get_head(ledger_server::pb::GetHeadRequest {})
        .await
        .expect("head")
        .into_inner()
        .position
}

/// The durable head of a data directory no process holds.
pub fn head(data_dir: &Path) -> u64 {
    Store::open(data_dir)
        .expect("open")
        .head()
        .expect("head")
        .position
}

/// Checks a stopped server's log: the chain verifies, and every
/// acknowledged command is in it exactly once, at the positions its answer
/// gave and nowhere else. Returns the head.
pub fn check_acknowledged(data_dir: &Path, acks: &[Ack]) -> u64 {
    let store = Store::open(data_dir).expect("open");
    let head = store.head().expect("head");
    assert_eq!(
        store.verify(|_| {}).expect("verify runs"),
        VerifyOutcome::Verified { head },
        "the chain verifies"
    );
    // Where each key's records are (a program's system commands have keys
    // too; they are just not acknowledged to anyone here).
    let mut positions: HashMap<String, Vec<u64>> = HashMap::new();
    let mut from = 1;
    while from <= head.position {
        let chunk = store
            .read_range(from, head.position, 4_096)
            .expect("read the log");
        for stored in &chunk {
            let record = stored.decode().expect("decodes");
            positions
                .entry(record.idempotency_key)
                .or_default()
                .push(stored.position);
        }
        from = chunk.last().map_or(head.position, |last| last.position) + 1;
    }
    let mut seen_keys = std::collections::HashSet::new();
    for ack in acks {
        assert!(
            seen_keys.insert(ack.key.as_str()),
            "{} acknowledged twice",
            ack.key
        );
        if ack.event_count == 0 {
            continue;
        }
        let expected: Vec<u64> = (ack.first_position..=ack.position).collect();
        assert_eq!(
            positions.get(&ack.key),
            Some(&expected),
            "acknowledged {ack:?}: its records are in the log exactly once, where its answer said"
        );
        assert_eq!(expected.len() as u32, ack.event_count, "{ack:?}");
    }
    head.position
}
