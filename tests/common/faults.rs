//! Checks shared by the fault tests: the log against what was acknowledged,
//! the chain, and the views against a rebuild from position 0; and polling
//! of the views' status where the system recovers by itself.
#![allow(dead_code)]

use super::server::Server;
use ledger_core::store::{Store, VerifyOutcome};
use ledger_server::pb;
use ledger_server::pb::admin_client::AdminClient;
use ledger_server::pb::ledger_client::LedgerClient;
use ledger_server::server::DEFAULT_PROGRAM_ID;
use projections::runtime::{ViewKind, rebuild_offline, view_digest};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

/// A write must be answered within this: refused, not hung.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// The key of the default program's definition, the log's first record.
pub const DEFAULT_PROGRAM_KEY: &str = "ledgerd:define-default-program";

/// A command's acknowledged answer: its idempotency key and the positions
/// of its first and last events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub key: String,
    pub first_position: u64,
    pub position: u64,
}

impl Ack {
    pub fn new(key: &str, response: &pb::CommandResponse) -> Ack {
        Ack {
            key: key.into(),
            first_position: response.first_position,
            position: response.position,
        }
    }
}

/// Positions of every record of the log, by idempotency key.
pub fn positions_by_key(store: &Store) -> BTreeMap<String, Vec<u64>> {
    let head = store.head().expect("head").position;
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for stored in store.read_range(1, head, usize::MAX).expect("read log") {
        let record = stored.decode().expect("record decodes");
        by_key
            .entry(record.idempotency_key)
            .or_default()
            .push(stored.position);
    }
    by_key
}

/// The chain verifies up to the head, every acknowledged command is in the
/// log exactly once at the positions it was told, and nothing else is
/// (apart from the keys in `others`, such as the default program's
/// definition). Returns the head position.
pub fn assert_log_holds_exactly(store: &Store, acks: &[Ack], others: &[&str]) -> u64 {
    let head = store.head().expect("head");
    assert_eq!(
        store.verify(|_| {}).expect("verify"),
        VerifyOutcome::Verified { head },
        "the chain verifies up to the head"
    );
    let mut by_key = positions_by_key(store);
    for ack in acks {
        let positions = by_key
            .remove(&ack.key)
            .unwrap_or_else(|| panic!("acknowledged {} is in the log", ack.key));
        let told: Vec<u64> = (ack.first_position..=ack.position).collect();
        assert_eq!(
            positions, told,
            "{} is in the log once, where its answer said",
            ack.key
        );
    }
    for key in others {
        by_key.remove(*key);
    }
    assert!(
        by_key.is_empty(),
        "nothing unacknowledged is in the log: {by_key:?}"
    );
    head.position
}

/// Each view's rows equal a rebuild from position 0 (the store must be the
/// only one open on its directory: the server has stopped).
pub fn assert_views_equal_rebuild(store: &Store) {
    for kind in ViewKind::ALL {
        let incremental = view_digest(store, kind).expect("digest");
        rebuild_offline(store, kind, |_, _| {}).expect("rebuild");
        assert_eq!(
            view_digest(store, kind).expect("digest"),
            incremental,
            "the {} view equals a rebuild from position 0",
            kind.name()
        );
    }
}

/// The status of every view.
pub async fn view_status(admin: &mut AdminClient<Channel>) -> Vec<pb::ProjectionStatus> {
    admin
        .get_projection_status(pb::GetProjectionStatusRequest::default())
        .await
        .expect("projection status")
        .into_inner()
        .projections
}

/// How long a view may take to come back by itself: a worker retries a
/// storage failure with a backoff of at most a second, and RocksDB's own
/// recovery from a full disk polls the free space every five seconds; the
/// deadline is several times both, for a loaded two-core machine.
pub const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);

/// How often a poll looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls the views' status until `done` holds for every view, failing the
/// test at [`RECOVERY_DEADLINE`]. The views retry on a timer of their own,
/// so there is no event to wait on: polling the state with a generous
/// deadline is the synchronisation.
pub async fn poll_views(
    admin: &mut AdminClient<Channel>,
    what: &str,
    done: impl Fn(&pb::ProjectionStatus) -> bool,
) -> Vec<pb::ProjectionStatus> {
    let started = Instant::now();
    loop {
        let status = view_status(admin).await;
        if status.iter().all(&done) {
            return status;
        }
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "views not {what} after {RECOVERY_DEADLINE:?}: {status:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls until every view is live at `head`.
pub async fn poll_views_live_at(admin: &mut AdminClient<Channel>, head: u64) {
    poll_views(admin, &format!("live at {head}"), |view| {
        view.state == "live" && view.checkpoint == head
    })
    .await;
}

/// One write as a client makes it; sent again, it is the same request.
#[derive(Debug, Clone)]
pub enum Write {
    Enroll(pb::EnrollRequest),
    Award(pb::AwardPointsRequest),
    Purchase(pb::RecordPurchaseRequest),
    Redeem(pb::RedeemRequest),
    Batch(Vec<pb::AwardPointsRequest>),
}

pub type Answer = Result<pb::CommandResponse, (Code, String)>;

impl Write {
    pub fn keys(&self) -> Vec<String> {
        match self {
            Write::Enroll(request) => vec![request.idempotency_key.clone()],
            Write::Award(request) => vec![request.idempotency_key.clone()],
            Write::Purchase(request) => vec![request.idempotency_key.clone()],
            Write::Redeem(request) => vec![request.idempotency_key.clone()],
            Write::Batch(awards) => awards
                .iter()
                .map(|award| award.idempotency_key.clone())
                .collect(),
        }
    }

    /// Sends it and returns one answer per command.
    pub async fn send(&self, mut client: LedgerClient<Channel>) -> Vec<Answer> {
        fn single(
            result: Result<tonic::Response<pb::CommandResponse>, tonic::Status>,
        ) -> Vec<Answer> {
            vec![
                result
                    .map(tonic::Response::into_inner)
                    .map_err(|status| (status.code(), status.message().to_owned())),
            ]
        }
        match self.clone() {
            Write::Enroll(request) => single(client.enroll(request).await),
            Write::Award(request) => single(client.award_points(request).await),
            Write::Purchase(request) => single(client.record_purchase(request).await),
            Write::Redeem(request) => single(client.redeem(request).await),
            Write::Batch(awards) => {
                let count = awards.len();
                let request = pb::SubmitBatchRequest {
                    commands: awards
                        .into_iter()
                        .map(|award| pb::BatchCommand {
                            command: Some(pb::batch_command::Command::AwardPoints(award)),
                        })
                        .collect(),
                };
                match client.submit_batch(request).await {
                    Err(status) => vec![Err((status.code(), status.message().to_owned())); count],
                    Ok(response) => response
                        .into_inner()
                        .results
                        .into_iter()
                        .map(|result| match result.result {
                            Some(pb::batch_result::Result::Ok(ok)) => Ok(ok),
                            Some(pb::batch_result::Result::Error(failure)) => {
                                Err((Code::from_i32(failure.code), failure.message))
                            }
                            None => panic!("a batch result is set"),
                        })
                        .collect(),
                }
            }
        }
    }
}

/// Sends `writes` at once, each from its own task, and returns each
/// write's answers; every call must be answered within [`CALL_DEADLINE`].
pub async fn send_concurrently(server: &Server, writes: &[Write]) -> Vec<Vec<Answer>> {
    let tasks: Vec<_> = writes
        .iter()
        .cloned()
        .map(|write| {
            let client = server.client.clone();
            tokio::spawn(async move {
                tokio::time::timeout(CALL_DEADLINE, write.send(client))
                    .await
                    .unwrap_or_else(|_| panic!("{write:?} answered within {CALL_DEADLINE:?}"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("caller task"));
    }
    answers
}

/// Every answer is an acknowledgement; returns them with their keys.
pub fn accepted(writes: &[Write], answers: Vec<Vec<Answer>>) -> Vec<Ack> {
    let mut acks = Vec::new();
    for (write, answers) in writes.iter().zip(answers) {
        for (key, answer) in write.keys().iter().zip(answers) {
            let response = answer.unwrap_or_else(|error| panic!("{key} accepted: {error:?}"));
            assert!(!response.replayed, "{key} is applied as new");
            acks.push(Ack::new(key, &response));
        }
    }
    acks
}

pub async fn head(server: &Server) -> u64 {
    server
        .audit
        .clone()
        .get_head(pb::GetHeadRequest {})
        .await
        .expect("GetHead answers")
        .into_inner()
        .position
}

/// ReadAll streams every position from 1 to `head`, in order.
pub async fn assert_read_all_reaches(server: &Server, head: u64) {
    let mut stream = server
        .audit
        .clone()
        .read_all(pb::ReadAllRequest {
            from_position: 0,
            to_position: 0,
        })
        .await
        .expect("ReadAll answers")
        .into_inner();
    let mut expected = 1;
    while let Some(record) = stream.next().await {
        assert_eq!(record.expect("record").position, expected);
        expected += 1;
    }
    assert_eq!(expected - 1, head, "ReadAll reaches the head");
}

pub async fn balance(server: &Server, member: &str, min_position: u64) -> pb::GetBalanceResponse {
    server
        .client
        .clone()
        .get_balance(pb::GetBalanceRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: member.into(),
            min_position,
        })
        .await
        .expect("GetBalance answers")
        .into_inner()
}

pub fn available(response: &pb::GetBalanceResponse) -> i64 {
    response.balance.as_ref().expect("balance").available
}

pub fn last_position(acks: &[Ack]) -> u64 {
    acks.iter().map(|ack| ack.position).max().unwrap_or(0)
}

/// Retries each of `writes` until it is accepted ([`retry_until_accepted`]);
/// each is a new command, after `head`.
pub async fn retry_each_after_head(server: &Server, writes: &[Write], head: u64) -> Vec<Ack> {
    let mut acks = Vec::new();
    for write in writes {
        let retried = retry_until_accepted(server, write).await;
        for ack in &retried {
            assert!(ack.first_position > head, "{ack:?} comes after the head");
        }
        acks.extend(retried);
    }
    acks
}

/// Stops `server` and checks what every fault test ends on: the log holds
/// exactly the acknowledged commands (and the default program's) up to
/// `last_ack`, the chain verifies, and each view equals a rebuild from 0.
/// Hands back the store, still open, and its directory (drop the store
/// first).
pub async fn stop_and_check(
    server: Server,
    acks: &[Ack],
    last_ack: u64,
) -> (Store, Option<tempfile::TempDir>) {
    let (store, dir) = server.stop_keeping_store().await;
    assert_eq!(
        assert_log_holds_exactly(&store, acks, &[DEFAULT_PROGRAM_KEY]),
        last_ack
    );
    assert_views_equal_rebuild(&store);
    (store, dir)
}

/// Retries `write` (the same request, so the same key and hash) until it
/// is accepted, for as long as it is refused as UNAVAILABLE: RocksDB
/// resumes writing on a timer of its own once space is free.
pub async fn retry_until_accepted(server: &Server, write: &Write) -> Vec<Ack> {
    let started = Instant::now();
    loop {
        let answers = write.send(server.client.clone()).await;
        if answers.iter().all(Result::is_ok) {
            return accepted(std::slice::from_ref(write), vec![answers]);
        }
        for answer in &answers {
            if let Err((code, message)) = answer {
                assert_eq!(*code, Code::Unavailable, "{write:?}: {message}");
            }
        }
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "writes resume within {RECOVERY_DEADLINE:?} of the space being freed: {answers:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
