//! Goal: the Reports service answers what finance and marketing ask, over
//! real gRPC, from the views: members per tier, each member's RFM and the
//! segments, the liability roll-forward tied to the balances, and expiring
//! points; every answer states its position; bad input is INVALID_ARGUMENT
//! naming the field; only the reader, auditor and admin roles get in.
//!
//! Method: the server in-process on 127.0.0.1, commands through the Ledger
//! service, reads with `min_position` set to the last write's position.

mod common;

use common::server::{Server, award, bearer, purchase, redeem, token};
use ledger_core::domain::time::{day_of, format_date};
use ledger_server::config::Role;
use ledger_server::ledger::timestamp;
use ledger_server::pb;
use ledger_server::pb::reports_client::ReportsClient;
use ledger_server::server::DEFAULT_PROGRAM_ID;
use std::collections::BTreeSet;
use tonic::Code;
use tonic_types::StatusExt;

fn today() -> String {
    format_date(day_of(common::wall_clock_us()))
}

fn liability(from: &str, to: &str, min_position: u64) -> pb::GetLiabilityRequest {
    pb::GetLiabilityRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        from_date: from.into(),
        to_date: to.into(),
        min_position,
    }
}

/// Ann buys three times, Bob once; Cyd only gets a bonus; Ann redeems.
/// Returns the last write's position.
async fn traffic(server: &mut Server) -> u64 {
    let client = &mut server.client;
    for (key, member, order, cents) in [
        ("p1", "ann", "o1", 12_00),
        ("p2", "ann", "o2", 30_00),
        ("p3", "ann", "o3", 8_50),
        ("p4", "bob", "o1", 20_00),
    ] {
        client
            .record_purchase(purchase(member, key, order, cents))
            .await
            .expect("purchase");
    }
    client
        .award_points(award("cyd", "a1", 40))
        .await
        .expect("award");
    client
        .redeem(redeem("cyd", "r1", 15))
        .await
        .expect("redeem")
        .into_inner()
        .position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_answer_from_the_views_and_tie() {
    let mut server = Server::start().await;
    let last = traffic(&mut server).await;
    let reports = &mut server.reports;

    let tiers = reports
        .get_tier_distribution(pb::GetTierDistributionRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            min_position: last,
        })
        .await
        .expect("tiers")
        .into_inner();
    assert!(tiers.position >= last);
    let names: Vec<&str> = tiers.tiers.iter().map(|tier| tier.tier.as_str()).collect();
    assert_eq!(names, ["Member", "Silver", "Gold"]);
    assert_eq!(
        tiers.tiers[0].members, 3,
        "three members, all in the lowest tier"
    );

    // Liability: purchase points are pending (30 days) but owed all the same.
    let answer = reports
        .get_liability(liability(&today(), &today(), last))
        .await
        .expect("liability")
        .into_inner();
    assert!(answer.position >= last);
    assert_eq!(answer.currency, "USD");
    assert_eq!(answer.days.len(), 1);
    let totals = answer.totals.expect("totals");
    assert_eq!(totals.earned, 12 + 30 + 8 + 20);
    assert_eq!((totals.awarded, totals.redeemed), (40, 15));
    assert_eq!(totals.issued, 110);
    assert_eq!(answer.opening, 0);
    assert_eq!(answer.closing, 110 - 15);
    let day = &answer.days[0];
    assert_eq!(day.date, today());
    assert_eq!((day.money_closing, day.point_value_minor_units), (95, 1));
    let outstanding = answer.outstanding.expect("outstanding");
    assert!(outstanding.ties, "{outstanding:?}");
    assert_eq!(outstanding.member_points, 95);
    // Lots expire at the end of the 12th month: nothing within 90 days.
    let expiring = answer.expiring.expect("expiring");
    assert_eq!(expiring.within_90_days, 0);
    assert_eq!(answer.breakage_bps, Some(0));

    let expiring = reports
        .get_expiring_points(pb::GetExpiringPointsRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            within_days: 500,
            top: 2,
            min_position: last,
            ..Default::default()
        })
        .await
        .expect("expiring")
        .into_inner();
    assert_eq!(expiring.within_days, 500);
    assert_eq!(
        expiring.within_requested, 95,
        "every point expires within 500 days"
    );
    let top: Vec<(&str, i64)> = expiring
        .top
        .iter()
        .map(|member| (member.member_id.as_str(), member.points))
        .collect();
    assert_eq!(top, [("ann", 50), ("cyd", 25)]);

    // RFM: Ann and Bob bought; Cyd did not, so she is not scored.
    let sizes = reports
        .get_segment_sizes(pb::GetSegmentSizesRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            min_position: last,
            ..Default::default()
        })
        .await
        .expect("sizes")
        .into_inner();
    let scope = sizes.scope.expect("scope");
    assert_eq!((scope.scored_members, scope.window_days), (2, 365));
    assert_eq!(scope.as_of_date, today());
    assert_eq!(sizes.segments.len(), 11);
    assert_eq!(sizes.segments.iter().map(|s| s.members).sum::<u64>(), 2);
    let mut listed = BTreeSet::new();
    for size in &sizes.segments {
        let page = reports
            .list_segment_members(pb::ListSegmentMembersRequest {
                program_id: DEFAULT_PROGRAM_ID.into(),
                segment: size.segment.clone(),
                page_size: 1,
                min_position: last,
                ..Default::default()
            })
            .await
            .expect("members")
            .into_inner();
        assert_eq!(page.members.len() as u64, size.members.min(1));
        for member in &page.members {
            assert_eq!(member.segment, size.segment);
            listed.insert(member.member_id.clone());
        }
    }
    assert_eq!(listed, BTreeSet::from(["ann".to_owned(), "bob".to_owned()]));
    let ann = reports
        .get_rfm(pb::GetRfmRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "ann".into(),
            min_position: last,
            ..Default::default()
        })
        .await
        .expect("rfm")
        .into_inner()
        .rfm
        .expect("ann is scored");
    assert_eq!((ann.recency_days, ann.frequency), (0, 3));
    assert_eq!(ann.monetary_minor_units, 12_00 + 30_00 + 8_50);
    // Of two members, the better one (k = 1 of n = 2) scores 1 + 5 * 1 / 2 = 3 on
    // frequency and monetary.
    assert_eq!((ann.frequency_score, ann.monetary_score), (3, 3));
    let cyd = reports
        .get_rfm(pb::GetRfmRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "cyd".into(),
            ..Default::default()
        })
        .await
        .expect_err("no purchase, no RFM");
    assert_eq!(cyd.code(), Code::NotFound);
    server.stop().await;
}

fn field(status: &tonic::Status) -> String {
    status
        .get_details_bad_request()
        .and_then(|details| details.field_violations.into_iter().next())
        .map(|violation| violation.field)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_report_requests_name_the_field() {
    let server = Server::start().await;
    let mut reports = server.reports.clone();
    let long_ago = Some(timestamp(-1));
    let cases: Vec<(&str, tonic::Status)> = vec![
        (
            "program_id",
            reports
                .get_tier_distribution(pb::GetTierDistributionRequest::default())
                .await
                .expect_err("empty program"),
        ),
        (
            "from_date",
            reports
                .get_liability(liability("2026-13-01", "2026-12-01", 0))
                .await
                .expect_err("month 13"),
        ),
        (
            "to_date",
            reports
                .get_liability(liability("2026-03-02", "", 0))
                .await
                .expect_err("no end"),
        ),
        (
            "to_date",
            reports
                .get_liability(liability("2026-03-02", "2026-03-01", 0))
                .await
                .expect_err("inverted"),
        ),
        (
            "to_date",
            reports
                .get_liability(liability("2000-01-01", "2026-03-01", 0))
                .await
                .expect_err("too long"),
        ),
        (
            "segment",
            reports
                .list_segment_members(pb::ListSegmentMembersRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    segment: "vip".into(),
                    ..Default::default()
                })
                .await
                .expect_err("unknown segment"),
        ),
        (
            "page_size",
            reports
                .list_segment_members(pb::ListSegmentMembersRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    segment: "champions".into(),
                    page_size: 5_000,
                    ..Default::default()
                })
                .await
                .expect_err("page too big"),
        ),
        (
            "page_token",
            reports
                .list_segment_members(pb::ListSegmentMembersRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    segment: "champions".into(),
                    page_token: "not a token".into(),
                    ..Default::default()
                })
                .await
                .expect_err("bad token"),
        ),
        (
            "as_of",
            reports
                .get_segment_sizes(pb::GetSegmentSizesRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    as_of: long_ago,
                    ..Default::default()
                })
                .await
                .expect_err("before 1970"),
        ),
        (
            "member_id",
            reports
                .get_rfm(pb::GetRfmRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    member_id: "x".repeat(129),
                    ..Default::default()
                })
                .await
                .expect_err("member id too long"),
        ),
        (
            "within_days",
            reports
                .get_expiring_points(pb::GetExpiringPointsRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    within_days: 100_000,
                    ..Default::default()
                })
                .await
                .expect_err("horizon too far"),
        ),
        (
            "top",
            reports
                .get_expiring_points(pb::GetExpiringPointsRequest {
                    program_id: DEFAULT_PROGRAM_ID.into(),
                    top: 5_000,
                    ..Default::default()
                })
                .await
                .expect_err("too many"),
        ),
    ];
    for (expected, status) in cases {
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{expected}: {status:?}"
        );
        assert_eq!(field(&status), expected, "{status:?}");
    }
    let unknown = reports
        .get_liability(pb::GetLiabilityRequest {
            program_id: "nowhere".into(),
            ..liability("2026-03-01", "2026-03-01", 0)
        })
        .await
        .expect_err("unknown program");
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown = reports
        .get_expiring_points(pb::GetExpiringPointsRequest {
            program_id: "nowhere".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown program");
    assert_eq!(unknown.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_for_readers_auditors_and_admins() {
    let server = Server::start_with(vec![
        token("checkout", Role::Writer),
        token("crm", Role::Reader),
        token("audit", Role::Auditor),
        token("ops", Role::Admin),
    ])
    .await;
    let request = || pb::GetTierDistributionRequest {
        program_id: DEFAULT_PROGRAM_ID.into(),
        min_position: 0,
    };
    let status = server
        .reports
        .clone()
        .get_tier_distribution(request())
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut writer = ReportsClient::with_interceptor(server.channel.clone(), bearer("checkout"));
    let status = writer
        .get_tier_distribution(request())
        .await
        .expect_err("a writer reads no reports");
    assert_eq!(status.code(), Code::PermissionDenied);
    for name in ["crm", "audit", "ops"] {
        let mut client = ReportsClient::with_interceptor(server.channel.clone(), bearer(name));
        client
            .get_tier_distribution(request())
            .await
            .unwrap_or_else(|status| panic!("{name} reads reports: {status:?}"));
    }
    server.stop().await;
}
