//! Goal: the Audit service over real gRPC gives an auditor what the chain rule
//! promises: exact stored bytes, positions and hashes from which the chain can
//! be recomputed independently, a live subscription without gaps, a
//! verification result, plus standard health and reflection.
//!
//! Method: start the server in-process on 127.0.0.1 with port 0, append
//! through its writer, and call it with the generated tonic clients.

mod common;

use ledger_core::domain::{Command, Points};
use ledger_core::engine::LedgerCommand;
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId, StreamName};
use ledger_core::writer::Envelope;
use ledger_server::pb;
use ledger_server::pb::audit_client::AuditClient;
use ledger_server::server::DEFAULT_PROGRAM_ID;
use ledger_server::server::{Bound, ServeOptions};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

/// An award of `points` to `member` of the default program.
fn award(key: &str, member: &str, points: i64) -> Envelope<LedgerCommand> {
    Envelope {
        program_id: ProgramId::parse("program_id", DEFAULT_PROGRAM_ID).expect("valid"),
        idempotency_key: IdempotencyKey::parse("idempotency_key", key).expect("valid"),
        occurred_at_us: common::wall_clock_us(),
        principal: "test".into(),
        metadata: vec![],
        expected_version: None,
        command: LedgerCommand::Member {
            member_id: MemberId::parse("member_id", member).expect("valid"),
            command: Command::AwardPoints {
                reason: "audit".into(),
                points: Points::new(points),
            },
        },
    }
}

fn member_stream(member: &str) -> StreamName {
    let program = ProgramId::parse("program_id", DEFAULT_PROGRAM_ID).expect("valid");
    StreamName::member(
        &program,
        &MemberId::parse("member_id", member).expect("valid"),
    )
}

async fn start(dir: &std::path::Path) -> (std::net::SocketAddr, Bound) {
    let options = ServeOptions {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tokens: vec![],
        tls: None,
    };
    let bound = Bound::open(&options).await.expect("server opens");
    let addr = bound.local_addr().expect("bound");
    (addr, bound)
}

#[test]
fn an_auditor_recomputes_the_chain_from_the_wire() {
    common::in_temp_dir(an_auditor_recomputes_the_chain_from_the_wire_in);
}

async fn an_auditor_recomputes_the_chain_from_the_wire_in(dir: std::path::PathBuf) {
    let (addr, bound) = start(&dir).await;
    let writer = bound.writer();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async {
        let _ = stop_rx.await;
    }));
    let envelopes = (0..100)
        .map(|i| award(&format!("k{i}"), &format!("m{}", i % 4), i + 1))
        .collect();
    // Each member's first award also enrolls it: count what the log holds
    // from the writer's answers.
    let mut expected_head = 1u64;
    let mut m1_version = 0u64;
    for (i, result) in writer
        .submit_many(envelopes)
        .await
        .expect("submitted")
        .into_iter()
        .enumerate()
    {
        let appended = result.expect("appended");
        expected_head += u64::from(appended.event_count);
        if i % 4 == 1 {
            m1_version = appended.stream_version;
        }
    }
    let mut client = AuditClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let head = client
        .get_head(pb::GetHeadRequest {})
        .await
        .expect("head")
        .into_inner();
    assert_eq!(
        head.position, expected_head,
        "the default program's definition plus 100 awards"
    );

    // Recompute the chain from the streamed bytes with nothing but SHA-256.
    let mut records = client
        .read_all(pb::ReadAllRequest {
            from_position: 0,
            to_position: 0,
        })
        .await
        .expect("read all")
        .into_inner();
    let mut hash = [0u8; 32];
    let mut expected_position = 1u64;
    while let Some(record) = records.next().await {
        let record = record.expect("record");
        assert_eq!(record.position, expected_position);
        let mut hasher = Sha256::new();
        hasher.update(hash);
        hasher.update(record.position.to_be_bytes());
        hasher.update(&record.record);
        hash = hasher.finalize().into();
        assert_eq!(
            record.hash,
            hash.to_vec(),
            "the stored hash at {}",
            record.position
        );
        let decoded =
            ledger_core::pb::EventRecord::decode(record.record.as_slice()).expect("decodes");
        assert_eq!(decoded.position, record.position);
        expected_position += 1;
    }
    assert_eq!(expected_position, expected_head + 1);
    assert_eq!(
        head.hash,
        hash.to_vec(),
        "the head is the recomputed chain's end"
    );

    // One member's stream, in version order.
    let stream = member_stream("m1");
    let records: Vec<pb::AuditRecord> = client
        .read_stream(pb::ReadStreamRequest {
            stream: stream.to_string(),
            from_version: 0,
            max_count: 0,
        })
        .await
        .expect("read stream")
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .expect("records");
    let versions: Vec<u64> = records.iter().map(|r| r.stream_version).collect();
    assert_eq!(versions, (1..=m1_version).collect::<Vec<_>>());

    // Subscribe near the end, then append: the live record arrives next.
    let mut live = client
        .subscribe(pb::SubscribeRequest {
            from_position: expected_head - 1,
        })
        .await
        .expect("subscribe")
        .into_inner();
    for position in expected_head - 1..=expected_head {
        assert_eq!(
            live.next().await.expect("open").expect("record").position,
            position
        );
    }
    let appended = writer.submit(award("live", "m0", 1)).await.expect("append");
    assert_eq!(
        live.next().await.expect("open").expect("record").position,
        appended.first_position
    );

    // Verification over the wire.
    let mut verify = client
        .verify(pb::VerifyRequest {})
        .await
        .expect("verify")
        .into_inner();
    let mut result = None;
    while let Some(message) = verify.next().await {
        if let Some(pb::verify_response::Kind::Result(r)) = message.expect("message").kind {
            result = Some(r);
        }
    }
    let result = result.expect("a result");
    assert!(result.verified, "{}", result.reason);
    assert_eq!(
        result.head.expect("head").position,
        appended.last_position()
    );

    // A bad stream name is INVALID_ARGUMENT naming the field.
    let error = client
        .read_stream(pb::ReadStreamRequest {
            stream: "member/x".into(),
            from_version: 0,
            max_count: 0,
        })
        .await
        .expect_err("bad stream");
    assert_eq!(error.code(), Code::InvalidArgument);
    let bad = error.get_details_bad_request().expect("BadRequest detail");
    assert_eq!(bad.field_violations[0].field, "stream");

    // Stopping ends the open subscription instead of waiting for it forever.
    stop_tx.send(()).expect("server running");
    let ended = live
        .next()
        .await
        .expect("a last message")
        .expect_err("shutdown status");
    assert_eq!(ended.code(), Code::Unavailable);
    drop(client);
    server.await.expect("server task").expect("clean stop");
}

#[test]
fn health_and_reflection_answer() {
    // The health Watch stream's connection outlives the server's stop and
    // holds the store until the runtime ends.
    common::in_temp_dir(health_and_reflection_answer_in);
}

async fn health_and_reflection_answer_in(dir: std::path::PathBuf) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let (addr, bound) = start(&dir).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async {
        let _ = stop_rx.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    // The service is known from the start (NOT_SERVING until the views have
    // caught up), and Watch reports its change to SERVING.
    let first = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "pointsledger.v1.Audit".into(),
        })
        .await
        .expect("health knows the service from the start")
        .into_inner();
    assert!(
        [
            ServingStatus::Serving as i32,
            ServingStatus::NotServing as i32
        ]
        .contains(&first.status),
        "{first:?}"
    );
    let mut changes = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "pointsledger.v1.Audit".into(),
        })
        .await
        .expect("health watch")
        .into_inner();
    loop {
        let status = changes
            .message()
            .await
            .expect("watch stream")
            .expect("the server reports SERVING before the stream ends");
        if status.status == ServingStatus::Serving as i32 {
            break;
        }
    }

    // grpcurl and older tools ask v1alpha for the list of services.
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("one answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"pointsledger.v1.Audit".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"pointsledger.v1.Ledger".to_owned()),
        "{names:?}"
    );
    // grpcurl then asks for the file defining a service and for each file it
    // imports: the Ledger's import of the well-known Timestamp must resolve.
    for request in [
        MessageRequest::FileContainingSymbol("pointsledger.v1.Ledger".into()),
        MessageRequest::FileByFilename("google/protobuf/timestamp.proto".into()),
        MessageRequest::FileByFilename("pointsledger/v1/record.proto".into()),
    ] {
        let asked = format!("{request:?}");
        let mut answers = reflection
            .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            }]))
            .await
            .expect("reflection")
            .into_inner();
        let answer = answers.next().await.expect("one answer").expect("ok");
        assert!(
            matches!(
                answer.message_response,
                Some(MessageResponse::FileDescriptorResponse(ref files))
                    if !files.file_descriptor_proto.is_empty()
            ),
            "{asked}: {:?}",
            answer.message_response
        );
    }

    // The v1 protocol answers too.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient as V1Client;
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut v1 = V1Client::new(channel);
    let answer = v1
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection")
        .into_inner()
        .next()
        .await
        .expect("one answer")
        .expect("ok");
    assert!(answer.message_response.is_some());

    drop((health, reflection, v1));
    // The health Watch stream is still open, as a load balancer's would be:
    // it reports NOT_SERVING when the stop begins, and the stop completes
    // anyway (the stream is closed after the grace period).
    stop_tx.send(()).expect("server running");
    let status = changes
        .message()
        .await
        .expect("watch stream")
        .expect("a status on stopping");
    assert_eq!(status.status, ServingStatus::NotServing as i32);
    server.await.expect("server task").expect("clean stop");
}

/// A second start on the same data directory keeps the default program it
/// defined the first time, instead of failing on the definition's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_its_default_program() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ServeOptions {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tokens: vec![],
        tls: None,
    };
    for start in 0..2 {
        let bound = Bound::open(&options)
            .await
            .unwrap_or_else(|error| panic!("start {start}: {error:#}"));
        bound.serve(async {}).await.expect("clean stop");
    }
    let store = ledger_core::store::Store::open(&options.data_dir).expect("reopen");
    assert_eq!(store.head().expect("head").position, 1, "defined once");
}
