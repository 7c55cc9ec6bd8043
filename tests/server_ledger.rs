//! Goal: the Ledger service over real gRPC: a member's life from enrolment
//! to redemption with every answer carrying its position, stream version
//! and balance (the member's points right after the command, and the events
//! as the log holds them, the same again when a retry replays it); queries
//! that read their writes; idempotent retries; dry
//! runs that write nothing; batches where one bad command fails alone;
//! concurrent redeems that never overdraw; every kind of bad input
//! answered with its documented code and the field named, never INTERNAL;
//! the Admin service: programs, rules, view status and online rebuild; and
//! bearer tokens: no token or an unknown one is UNAUTHENTICATED, a role
//! without the right PERMISSION_DENIED, and the token's name is the
//! principal of the events it writes.
//!
//! Method: the server in-process on 127.0.0.1 port 0 (default program:
//! USD, 1 point per dollar, purchase points pending 30 days, tiers Member,
//! Silver from 500 and Gold from 2,000), called with the generated client.

mod common;

use common::server::{Server, award, bearer, enroll, purchase, redeem, token};
use ledger_server::config::Role;
use ledger_server::ledger::timestamp;
use ledger_server::pb;
use ledger_server::pb::admin_client::AdminClient;
use ledger_server::pb::audit_client::AuditClient;
use ledger_server::pb::ledger_client::LedgerClient;
use ledger_server::server::DEFAULT_PROGRAM_ID;
use tonic::Code;
use tonic_types::StatusExt;

fn balance_of(response: &pb::CommandResponse) -> (i64, i64, i64) {
    let balance = response.balance.as_ref().expect("balance");
    (balance.balance, balance.pending, balance.debt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_life_over_grpc() {
    let server = Server::start().await;
    let mut client = server.client.clone();
    let enrolled = client
        .enroll(enroll("ann", "e1"))
        .await
        .expect("enroll")
        .into_inner();
    assert_eq!(enrolled.stream_version, 1);
    assert_eq!(enrolled.event_count, 1);
    assert_eq!(balance_of(&enrolled), (0, 0, 0));

    let bought = client
        .record_purchase(purchase("ann", "p1", "order-1", 60_000))
        .await
        .expect("purchase")
        .into_inner();
    // 600 points pending 30 days, and Silver at once (500 qualifying).
    assert_eq!(balance_of(&bought), (0, 600, 0));
    assert_eq!(bought.stream_version, 3);
    assert_eq!(bought.first_position, enrolled.position + 1);
    let kinds: Vec<_> = bought
        .events
        .iter()
        .map(|event| match event.kind {
            Some(ledger_core::pb::event::Kind::PointsEarned(_)) => "earned",
            Some(ledger_core::pb::event::Kind::TierChanged(_)) => "tier",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["earned", "tier"]);

    let awarded = client
        .award_points(award("ann", "a1", 100))
        .await
        .expect("award")
        .into_inner();
    assert_eq!(balance_of(&awarded), (100, 600, 0));
    let redeemed = client
        .redeem(redeem("ann", "r1", 30))
        .await
        .expect("redeem")
        .into_inner();
    assert_eq!(balance_of(&redeemed), (70, 600, 0));
    assert_eq!(
        redeemed.balance.as_ref().expect("balance").position,
        redeemed.position
    );

    let balance = client
        .get_balance(pb::GetBalanceRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "ann".into(),
            min_position: redeemed.position,
        })
        .await
        .expect("balance")
        .into_inner();
    assert!(balance.position >= redeemed.position);
    let lifetime = balance.lifetime.expect("lifetime");
    assert_eq!(
        (lifetime.earned, lifetime.awarded, lifetime.redeemed),
        (600, 100, 30)
    );

    let statement = client
        .get_statement(pb::GetStatementRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "ann".into(),
            min_position: redeemed.position,
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("statement")
        .into_inner();
    let lines: Vec<_> = statement
        .lines
        .iter()
        .map(|line| (line.kind.as_str(), line.points, line.balance_after))
        .collect();
    assert_eq!(lines, vec![("redeemed", -30, 70), ("awarded", 100, 100)]);
    assert!(!statement.next_page_token.is_empty());

    let lots = client
        .list_lots(pb::ListLotsRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "ann".into(),
            min_position: redeemed.position,
            include_closed: false,
        })
        .await
        .expect("lots")
        .into_inner();
    let remaining: Vec<_> = lots
        .lots
        .iter()
        .map(|lot| (lot.remaining, lot.pending))
        .collect();
    assert_eq!(remaining, vec![(600, true), (70, false)]);

    let member = client
        .get_member(pb::GetMemberRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "ann".into(),
            min_position: redeemed.position,
            as_of: Some(timestamp(common::wall_clock_us())),
        })
        .await
        .expect("member")
        .into_inner();
    assert_eq!(member.tier, "Silver");
    assert_eq!(member.qualifying, 600);
    assert_eq!(member.next_tier, "Gold");
    assert_eq!(member.needed_for_next, Some(1_400));
    assert_eq!(member.history.len(), 1);

    let as_of = client
        .get_balance_as_of(pb::GetBalanceAsOfRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "ann".into(),
            min_position: redeemed.position,
            as_of: Some(timestamp(common::wall_clock_us() - 1)),
        })
        .await
        .expect("as of")
        .into_inner();
    assert_eq!(as_of.balance.expect("balance").balance, 0);
    server.stop().await;
}

/// The events of positions `first..=last` as the log holds them, read back
/// through the Audit service.
async fn logged_events(server: &Server, first: u64, last: u64) -> Vec<ledger_core::pb::Event> {
    use prost::Message as _;
    let mut stream = server
        .audit
        .clone()
        .read_all(pb::ReadAllRequest {
            from_position: first,
            to_position: last,
        })
        .await
        .expect("read all")
        .into_inner();
    let mut events = Vec::new();
    while let Some(record) = stream.message().await.expect("record") {
        let record =
            ledger_core::pb::EventRecord::decode(record.record.as_slice()).expect("decode");
        events.extend(record.event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_the_points_right_after_the_command_and_the_logged_events() {
    let server = Server::start().await;
    let mut client = server.client.clone();
    let first = client
        .award_points(award("cy", "c1", 50))
        .await
        .expect("award")
        .into_inner();
    assert_eq!(balance_of(&first), (50, 0, 0));
    assert_eq!(
        first.balance.as_ref().expect("balance").position,
        first.position
    );
    assert_eq!(
        first.events,
        logged_events(&server, first.first_position, first.position).await
    );
    let batch = |keys: [&str; 2]| pb::SubmitBatchRequest {
        commands: vec![
            pb::BatchCommand {
                command: Some(pb::batch_command::Command::RecordPurchase(purchase(
                    "cy", keys[0], keys[0], 12_000,
                ))),
            },
            pb::BatchCommand {
                command: Some(pb::batch_command::Command::Redeem(redeem(
                    "cy", keys[1], 20,
                ))),
            },
        ],
    };
    let answers: Vec<pb::CommandResponse> = client
        .submit_batch(batch(["c2", "c3"]))
        .await
        .expect("batch")
        .into_inner()
        .results
        .into_iter()
        .map(|result| match result.result {
            Some(pb::batch_result::Result::Ok(ok)) => ok,
            other => panic!("accepted: {other:?}"),
        })
        .collect();
    // Each answer has the points right after its own command, not after
    // the batch.
    assert_eq!(balance_of(&answers[0]), (50, 120, 0));
    assert_eq!(balance_of(&answers[1]), (30, 120, 0));
    for answer in &answers {
        assert_eq!(
            answer.events,
            logged_events(&server, answer.first_position, answer.position).await
        );
    }

    // Retries after later commands changed the member are answered with
    // the original figures and events, read back, not recomputed.
    let again = client
        .award_points(award("cy", "c1", 50))
        .await
        .expect("retry")
        .into_inner();
    assert!(again.replayed);
    assert_eq!(
        pb::CommandResponse {
            replayed: false,
            ..again
        },
        first
    );
    let retried = client
        .submit_batch(batch(["c2", "c3"]))
        .await
        .expect("batch retry")
        .into_inner()
        .results;
    for (retry, original) in retried.into_iter().zip(answers) {
        match retry.result {
            Some(pb::batch_result::Result::Ok(ok)) => {
                assert!(ok.replayed);
                assert_eq!(
                    pb::CommandResponse {
                        replayed: false,
                        ..ok
                    },
                    original
                );
            }
            other => panic!("replayed: {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_applied_once_and_dry_runs_write_nothing() {
    let server = Server::start().await;
    let mut client = server.client.clone();
    let first = client
        .award_points(award("bo", "k1", 50))
        .await
        .expect("award")
        .into_inner();
    let again = client
        .award_points(award("bo", "k1", 50))
        .await
        .expect("retry")
        .into_inner();
    assert!(again.replayed);
    assert_eq!(
        (again.position, again.stream_version),
        (first.position, first.stream_version)
    );
    assert_eq!(balance_of(&again), (50, 0, 0));
    let reused = client
        .award_points(award("bo", "k1", 51))
        .await
        .expect_err("same key, other request");
    assert_eq!(reused.code(), Code::AlreadyExists);

    let mut dry = redeem("bo", "dry", 20);
    dry.dry_run = true;
    let answer = client.redeem(dry).await.expect("dry run").into_inner();
    assert_eq!(answer.position, 0, "nothing appended");
    assert_eq!(answer.events.len(), 1);
    let mut too_much = redeem("bo", "dry-2", 500);
    too_much.dry_run = true;
    let refused = client.redeem(too_much).await.expect_err("insufficient");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // The head did not move: the next real command comes right after.
    let next = client
        .redeem(redeem("bo", "real", 20))
        .await
        .expect("redeem")
        .into_inner();
    assert_eq!(next.position, first.position + 1);
    assert_eq!(balance_of(&next), (30, 0, 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fails_only_its_bad_commands() {
    let server = Server::start().await;
    let mut client = server.client.clone();
    use pb::batch_command::Command as C;
    let commands = vec![
        pb::BatchCommand {
            command: Some(C::AwardPoints(award("cy", "b1", 10))),
        },
        pb::BatchCommand {
            command: Some(C::AwardPoints(award("", "b2", 10))),
        },
        pb::BatchCommand {
            command: Some(C::Redeem(redeem("cy", "b3", 1_000))),
        },
        pb::BatchCommand {
            command: Some(C::AwardPoints(award("cy", "b4", 5))),
        },
    ];
    let results = client
        .submit_batch(pb::SubmitBatchRequest { commands })
        .await
        .expect("batch")
        .into_inner()
        .results;
    let outcome: Vec<_> = results
        .iter()
        .map(|result| match &result.result {
            Some(pb::batch_result::Result::Ok(ok)) => Ok(balance_of(ok).0),
            Some(pb::batch_result::Result::Error(error)) => Err((error.code, error.field.clone())),
            None => panic!("every command has a result"),
        })
        .collect();
    assert_eq!(
        outcome,
        vec![
            Ok(10),
            Err((Code::InvalidArgument as i32, "commands[1].member_id".into())),
            Err((Code::FailedPrecondition as i32, String::new())),
            Ok(15),
        ]
    );
    let too_many = (0..1_001)
        .map(|i| pb::BatchCommand {
            command: Some(C::AwardPoints(award("cy", &format!("x{i}"), 1))),
        })
        .collect();
    let status = client
        .submit_batch(pb::SubmitBatchRequest { commands: too_many })
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::InvalidArgument);
    let field = &status
        .get_details_bad_request()
        .expect("detail")
        .field_violations[0]
        .field;
    assert_eq!(field, "commands");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redeems_never_overdraw() {
    let server = Server::start().await;
    let mut client = server.client.clone();
    client
        .award_points(award("dee", "seed", 100))
        .await
        .expect("award");
    let mut tasks = Vec::new();
    for i in 0..30 {
        let mut client = server.client.clone();
        tasks.push(tokio::spawn(async move {
            client.redeem(redeem("dee", &format!("r{i}"), 7)).await
        }));
    }
    let mut accepted = 0;
    let mut last = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(answer) => {
                accepted += 1;
                let answer = answer.into_inner();
                assert!(balance_of(&answer).0 >= 0);
                last = last.max(answer.position);
            }
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition),
        }
    }
    assert_eq!(accepted, 100 / 7, "exactly as many as the balance covers");
    let balance = client
        .get_balance(pb::GetBalanceRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "dee".into(),
            min_position: last,
        })
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(balance.balance.expect("balance").balance, 100 % 7);
    server.stop().await;
}

/// Every kind of bad input gets its documented code, with the field named
/// for INVALID_ARGUMENT; never INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_code_and_field() {
    let server = Server::start().await;
    let mut client = server.client.clone();
    client
        .award_points(award("eve", "seed", 10))
        .await
        .expect("award");
    let far_future = common::wall_clock_us() + 3_600_000_000;
    let long = "x".repeat(129);
    type Case = (
        &'static str,
        pb::AwardPointsRequest,
        Code,
        Option<&'static str>,
    );
    let base = award("eve", "k", 5);
    let cases: Vec<Case> = vec![
        (
            "empty member",
            pb::AwardPointsRequest {
                member_id: String::new(),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("member_id"),
        ),
        (
            "long member",
            pb::AwardPointsRequest {
                member_id: long.clone(),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("member_id"),
        ),
        (
            "bad character",
            pb::AwardPointsRequest {
                member_id: "a b".into(),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("member_id"),
        ),
        (
            "empty program",
            pb::AwardPointsRequest {
                program_id: String::new(),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("program_id"),
        ),
        (
            "missing key",
            pb::AwardPointsRequest {
                idempotency_key: String::new(),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("idempotency_key"),
        ),
        (
            "long key",
            pb::AwardPointsRequest {
                idempotency_key: long.clone(),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("idempotency_key"),
        ),
        (
            "zero points",
            pb::AwardPointsRequest {
                points: 0,
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("points"),
        ),
        (
            "negative points",
            pb::AwardPointsRequest {
                points: -5,
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("points"),
        ),
        (
            "too many points",
            pb::AwardPointsRequest {
                points: 1_000_000_000_001,
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("points"),
        ),
        (
            "no occurred_at",
            pb::AwardPointsRequest {
                occurred_at: None,
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("occurred_at"),
        ),
        (
            "future occurred_at",
            pb::AwardPointsRequest {
                occurred_at: Some(timestamp(far_future)),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("occurred_at"),
        ),
        (
            "too much metadata",
            pb::AwardPointsRequest {
                metadata: (0..17).map(|i| (format!("k{i}"), "v".into())).collect(),
                ..base.clone()
            },
            Code::InvalidArgument,
            Some("metadata"),
        ),
        (
            "unknown program",
            pb::AwardPointsRequest {
                program_id: "nope".into(),
                ..base.clone()
            },
            Code::NotFound,
            None,
        ),
        (
            "version conflict",
            pb::AwardPointsRequest {
                expected_version: Some(7),
                ..base.clone()
            },
            Code::Aborted,
            None,
        ),
    ];
    for (index, (label, mut request, code, field)) in cases.into_iter().enumerate() {
        // A rule rejection is remembered under its key like an acceptance:
        // each case gets its own key unless the key is what it tests.
        if request.idempotency_key == "k" {
            request.idempotency_key = format!("k{index}");
        }
        let status = client.award_points(request).await.expect_err(label);
        assert_eq!(status.code(), code, "{label}: {status:?}");
        if let Some(field) = field {
            let details = status
                .get_details_bad_request()
                .unwrap_or_else(|| panic!("{label}: BadRequest detail"));
            assert_eq!(details.field_violations[0].field, field, "{label}");
        }
    }
    let currency = client
        .record_purchase(pb::RecordPurchaseRequest {
            spend: Some(ledger_core::pb::Money {
                minor_units: 100,
                currency: "XXX".into(),
            }),
            ..purchase("eve", "pc", "o", 100)
        })
        .await
        .expect_err("unknown currency");
    assert_eq!(currency.code(), Code::InvalidArgument);
    assert_eq!(
        currency
            .get_details_bad_request()
            .expect("detail")
            .field_violations[0]
            .field,
        "spend.currency"
    );
    let unknown_member = client
        .get_balance(pb::GetBalanceRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "nobody".into(),
            min_position: 0,
        })
        .await
        .expect_err("no such member");
    assert_eq!(unknown_member.code(), Code::NotFound);
    let beyond = client
        .get_balance(pb::GetBalanceRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "eve".into(),
            min_position: 1_000_000,
        })
        .await
        .expect_err("beyond the head");
    assert_eq!(beyond.code(), Code::InvalidArgument);
    assert_eq!(
        beyond
            .get_details_bad_request()
            .expect("detail")
            .field_violations[0]
            .field,
        "min_position"
    );
    let page = client
        .get_statement(pb::GetStatementRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "eve".into(),
            min_position: 0,
            page_size: 1_001,
            page_token: String::new(),
        })
        .await
        .expect_err("page too large");
    assert_eq!(
        page.get_details_bad_request()
            .expect("detail")
            .field_violations[0]
            .field,
        "page_size"
    );
    server.stop().await;
}

/// The rules of the README's DefineProgram example, field for field.
fn bakery_rules() -> ledger_core::pb::ProgramRules {
    ledger_core::pb::ProgramRules {
        name: "Bakery".into(),
        currency: "EUR".into(),
        earn_rate_bps: 10_000,
        rounding: ledger_core::pb::Rounding::Floor as i32,
        point_value_minor_units: 1,
        point_value_per_points: 1,
        return_policy: ledger_core::pb::ShortfallPolicy::Forfeit as i32,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_are_defined_changed_and_listed() {
    let server = Server::start().await;
    let mut admin = server.admin.clone();
    let define = |key: &str, dry_run: bool| pb::DefineProgramRequest {
        program_id: "bakery".into(),
        idempotency_key: key.into(),
        occurred_at: Some(timestamp(common::wall_clock_us())),
        rules: Some(bakery_rules()),
        dry_run,
        ..Default::default()
    };
    let dry = admin
        .define_program(define("d0", true))
        .await
        .expect("dry run")
        .into_inner();
    assert_eq!((dry.position, dry.events.len()), (0, 1));
    let missing = admin
        .get_program(pb::GetProgramRequest {
            program_id: "bakery".into(),
        })
        .await
        .expect_err("a dry run defines nothing");
    assert_eq!(missing.code(), Code::NotFound);
    let defined = admin
        .define_program(define("d1", false))
        .await
        .expect("define")
        .into_inner();
    assert_eq!(defined.stream_version, 1);
    let again = admin
        .define_program(define("d2", false))
        .await
        .expect_err("defined already");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    let mut bad = bakery_rules();
    bad.earn_rate_bps = -1;
    let refused = admin
        .change_rules(pb::ChangeRulesRequest {
            program_id: "bakery".into(),
            idempotency_key: "c1".into(),
            occurred_at: Some(timestamp(common::wall_clock_us())),
            rules: Some(bad),
            ..Default::default()
        })
        .await
        .expect_err("bad rules");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let field = &refused
        .get_details_bad_request()
        .expect("detail")
        .field_violations[0]
        .field;
    assert_eq!(field, "rules.earn_rate_bps");

    let mut richer = bakery_rules();
    richer.earn_rate_bps = 20_000;
    admin
        .change_rules(pb::ChangeRulesRequest {
            program_id: "bakery".into(),
            idempotency_key: "c2".into(),
            occurred_at: Some(timestamp(common::wall_clock_us() + 1)),
            rules: Some(richer),
            ..Default::default()
        })
        .await
        .expect("change");
    let program = admin
        .get_program(pb::GetProgramRequest {
            program_id: "bakery".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(program.stream_version, 2);
    assert_eq!(program.rules.expect("rules").earn_rate_bps, 20_000);
    assert_eq!(
        program.rules_since,
        Some(timestamp(common::wall_clock_us() + 1))
    );
    let listed: Vec<_> = admin
        .list_programs(pb::ListProgramsRequest {})
        .await
        .expect("list")
        .into_inner()
        .programs
        .into_iter()
        .map(|program| (program.program_id, program.currency))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("bakery".to_owned(), "EUR".to_owned()),
            ("default".to_owned(), "USD".to_owned())
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_report_their_status_and_rebuild_online() {
    let server = Server::start().await;
    let mut client = server.client.clone();
    let mut admin = server.admin.clone();
    let mut last = 0;
    for i in 0..50 {
        last = client
            .award_points(award(&format!("m{}", i % 5), &format!("k{i}"), 10))
            .await
            .expect("award")
            .into_inner()
            .position;
    }
    client
        .get_balance(pb::GetBalanceRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "m0".into(),
            min_position: last,
        })
        .await
        .expect("caught up");
    // Every view, not only the balance one read above: a view nobody waits
    // for may linger at the head for more commits.
    common::faults::poll_views_live_at(&mut admin, last).await;
    let rebuilt = admin
        .rebuild_projection(pb::RebuildProjectionRequest {
            name: "balance".into(),
        })
        .await
        .expect("rebuild")
        .into_inner();
    assert_eq!((rebuilt.generation, rebuilt.position), (2, last));
    let statuses = admin
        .get_projection_status(pb::GetProjectionStatusRequest {
            name: String::new(),
        })
        .await
        .expect("status")
        .into_inner()
        .projections;
    let summary: Vec<_> = statuses
        .iter()
        .map(|status| {
            (
                status.name.as_str(),
                status.generation,
                status.checkpoint,
                status.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("balance", 2, last, "live"),
            ("tier", 1, last, "live"),
            ("liability", 1, last, "live"),
            ("rfm", 1, last, "live")
        ]
    );
    let balance = client
        .get_balance(pb::GetBalanceRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "m0".into(),
            min_position: last,
        })
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(balance.balance.expect("balance").balance, 100);
    let unknown = admin
        .rebuild_projection(pb::RebuildProjectionRequest {
            name: "nope".into(),
        })
        .await
        .expect_err("no such view");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert_eq!(
        unknown
            .get_details_bad_request()
            .expect("detail")
            .field_violations[0]
            .field,
        "name"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_may_call_what_and_name_the_principal() {
    let server = Server::start_with(vec![
        token("checkout", Role::Writer),
        token("crm", Role::Reader),
        token("audit", Role::Auditor),
        token("ops", Role::Admin),
    ])
    .await;
    let get = |min_position| pb::GetBalanceRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        member_id: "fay".into(),
        min_position,
    };
    let mut anonymous = server.client.clone();
    let status = anonymous.get_balance(get(0)).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut stranger = LedgerClient::with_interceptor(server.channel.clone(), bearer("stranger"));
    let status = stranger
        .get_balance(get(0))
        .await
        .expect_err("unknown token");
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut writer = LedgerClient::with_interceptor(server.channel.clone(), bearer("checkout"));
    let written = writer
        .award_points(award("fay", "t1", 40))
        .await
        .expect("a writer writes")
        .into_inner();
    let mut reader = LedgerClient::with_interceptor(server.channel.clone(), bearer("crm"));
    let status = reader
        .award_points(award("fay", "t2", 1))
        .await
        .expect_err("a reader cannot write");
    assert_eq!(status.code(), Code::PermissionDenied);
    let read = reader
        .get_balance(get(written.position))
        .await
        .expect("a reader reads")
        .into_inner();
    assert_eq!(read.balance.expect("balance").balance, 40);
    let mut writer_admin =
        AdminClient::with_interceptor(server.channel.clone(), bearer("checkout"));
    let status = writer_admin
        .list_programs(pb::ListProgramsRequest {})
        .await
        .expect_err("a writer is no admin");
    assert_eq!(status.code(), Code::PermissionDenied);
    let mut ops = AdminClient::with_interceptor(server.channel.clone(), bearer("ops"));
    ops.list_programs(pb::ListProgramsRequest {})
        .await
        .expect("an admin may");
    let mut writer_audit =
        AuditClient::with_interceptor(server.channel.clone(), bearer("checkout"));
    let status = writer_audit
        .get_head(pb::GetHeadRequest {})
        .await
        .expect_err("a writer is no auditor");
    assert_eq!(status.code(), Code::PermissionDenied);

    // The auditor reads the award's record: its principal is the token's name.
    let mut auditor = AuditClient::with_interceptor(server.channel.clone(), bearer("audit"));
    let mut records = auditor
        .read_all(pb::ReadAllRequest {
            from_position: written.first_position,
            to_position: written.position,
        })
        .await
        .expect("an auditor audits")
        .into_inner();
    let mut principals = Vec::new();
    while let Some(record) = records.message().await.expect("stream") {
        use prost::Message as _;
        let decoded =
            ledger_core::pb::EventRecord::decode(record.record.as_slice()).expect("decodes");
        principals.push(decoded.principal);
    }
    assert!(!principals.is_empty());
    assert!(
        principals.iter().all(|principal| principal == "checkout"),
        "{principals:?}"
    );

    // Health stays open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no token");
    server.stop().await;
}
