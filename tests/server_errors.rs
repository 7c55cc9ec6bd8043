//! Goal: every call of the Ledger, Audit and Admin services refuses every
//! kind of bad input with the code DESIGN.md gives it: bad input
//! INVALID_ARGUMENT naming the field in a `google.rpc.BadRequest` detail,
//! an unknown program or member NOT_FOUND, a rule FAILED_PRECONDITION, a
//! version mismatch ABORTED. A bad command in a batch fails alone, with the
//! code it has alone and its field prefixed by its place
//! (`commands[7].points`). No answer is ever INTERNAL or UNKNOWN (a handler
//! that panics shows up as UNKNOWN or a broken connection).
//!
//! Method: the server in-process (default program: USD). Member `eve` has
//! points, purchase `order-1` and redemption `red-1`; `zed` is enrolled.
//! Each case is a good request with one thing spoiled, from tables: the
//! spoils every call of a kind shares, then each call's own. Command cases
//! are sent alone, alone as dry runs, and both ways again in one batch.
//! Wrong answers are collected and reported together.

mod common;

use common::server::{Server, award, enroll, purchase, redeem, usd};
use ledger_server::ledger::timestamp;
use ledger_server::pb;
use ledger_server::pb::batch_command::Command as C;
use ledger_server::pb::ledger_client::LedgerClient;
use ledger_server::server::DEFAULT_PROGRAM_ID;
use std::rc::Rc;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The answer a call must get: its code and, for INVALID_ARGUMENT, the
/// field its BadRequest detail names ("" for none).
type Expect = (Code, &'static str);

/// One thing spoiled in a good request of type `T`, and its answer.
#[derive(Clone)]
struct Spoil<T> {
    label: &'static str,
    edit: Rc<dyn Fn(&mut T)>,
    expect: Expect,
}

fn spoil<T>(label: &'static str, expect: Expect, edit: impl Fn(&mut T) + 'static) -> Spoil<T> {
    let edit = Rc::new(edit);
    Spoil {
        label,
        edit,
        expect,
    }
}

/// The answer a table row expects: a field name means INVALID_ARGUMENT
/// naming it; a code's name, that code and no field.
macro_rules! expect {
    ($field:literal) => {
        (Code::InvalidArgument, $field)
    };
    (($field:expr)) => {
        (Code::InvalidArgument, $field)
    };
    ($code:ident) => {
        (Code::$code, "")
    };
}

/// A table of spoils: `label => expected, r => edit of request r;`, each
/// edit made into a closure by `$make!(..., r => edit)`.
macro_rules! table {
    ($make:ident!$args:tt { $($label:expr => $expect:tt, $r:ident => $edit:expr;)* }) => {
        vec![$(spoil($label, expect!($expect), $make!($args, $r => $edit)),)*]
    };
}

/// An edit of one variant of enum `$enum` (panics on another).
macro_rules! on {
    (($enum:ident::$variant:ident), $r:ident => $body:expr) => {
        |request: &mut $enum| match request {
            $enum::$variant($r) => {
                $body;
            }
            _ => unreachable!("a spoil of another request"),
        }
    };
}

/// An edit of whichever request `$each!` finds inside a `$T`.
macro_rules! all {
    (($each:ident: $T:ty), $r:ident => $body:expr) => {
        |request: &mut $T| $each!(request, $r => { $body; })
    };
}

/// Runs `$body` on the request inside a command, whichever it is.
macro_rules! each_command {
    ($command:expr, $r:ident => $body:expr) => {
        match $command {
            C::Enroll($r) => $body,
            C::RecordPurchase($r) => $body,
            C::AwardPoints($r) => $body,
            C::Redeem($r) => $body,
            C::CancelRedemption($r) => $body,
            C::RecordReturn($r) => $body,
            C::AdjustPoints($r) => $body,
            C::TransferPoints($r) => $body,
        }
    };
}

fn long(bytes: usize) -> String {
    "x".repeat(bytes)
}

fn money(minor_units: i64, currency: &str) -> Option<ledger_core::pb::Money> {
    let currency = currency.into();
    Some(ledger_core::pb::Money {
        minor_units,
        currency,
    })
}

/// `program_id` spoils, for every call that names a program.
macro_rules! program_spoils {
    ($each:ident: $T:ty) => { table!(all!($each: $T) {
        "empty program_id" => "program_id", r => r.program_id = String::new();
        "65-byte program_id" => "program_id", r => r.program_id = long(65);
        "program_id with a space" => "program_id", r => r.program_id = "a b".into();
    }) };
}

/// `member_id` spoils and unknown ones, for every call about a member.
macro_rules! member_spoils {
    ($each:ident: $T:ty) => { table!(all!($each: $T) {
        "unknown program" => NotFound, r => r.program_id = "nope".into();
        "empty member_id" => "member_id", r => r.member_id = String::new();
        "129-byte member_id" => "member_id", r => r.member_id = long(129);
        "member_id with a slash" => "member_id", r => r.member_id = "a/b".into();
    }) };
}

/// Spoils of what every command carries: key, time, metadata, version.
macro_rules! envelope_spoils {
    ($each:ident: $T:ty) => { table!(all!($each: $T) {
        "no idempotency_key" => "idempotency_key", r => r.idempotency_key = String::new();
        "129-byte idempotency_key" => "idempotency_key", r => r.idempotency_key = long(129);
        "idempotency_key with a space" => "idempotency_key", r => r.idempotency_key = "a b".into();
        "no occurred_at" => "occurred_at", r => r.occurred_at = None;
        "occurred_at an hour ahead" => "occurred_at",
            r => r.occurred_at = Some(timestamp(common::wall_clock_us() + 3_600_000_000));
        "occurred_at before 1970" => "occurred_at", r => r.occurred_at = Some(timestamp(-1));
        "occurred_at nanos out of range" => "occurred_at",
            r => r.occurred_at.as_mut().expect("set").nanos = -1;
        "occurred_at beyond i64 microseconds" => "occurred_at",
            r => r.occurred_at.as_mut().expect("set").seconds = i64::MAX;
        "17 metadata entries" => "metadata",
            r => r.metadata = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
        "a 1,025-byte metadata key" => "metadata", r => r.metadata = [(long(1_025), "v".into())].into();
        "a 1,025-byte metadata value" => "metadata", r => r.metadata = [("k".into(), long(1_025))].into();
        "an empty metadata key" => "metadata[0].key", r => r.metadata = [(String::new(), "v".into())].into();
        "expected_version mismatch" => Aborted, r => r.expected_version = Some(1_000);
    }) };
}

/// Spoils of text field `$field` of command `$variant`: 1..=`$max` bytes,
/// no control characters.
macro_rules! text_spoils {
    ($variant:ident.$field:ident, $max:expr) => { table!(on!(C::$variant) {
        concat!("empty ", stringify!($field)) => (stringify!($field)), r => r.$field = String::new();
        concat!("over-long ", stringify!($field)) => (stringify!($field)), r => r.$field = long($max + 1);
        concat!("control in ", stringify!($field)) => (stringify!($field)), r => r.$field = "a\u{7}".into();
    }) };
}

/// Spoils of `points` (1..=10^12) of command `$variant`.
macro_rules! points_spoils {
    ($variant:ident) => { table!(on!(C::$variant) {
        "zero points" => "points", r => r.points = 0;
        "negative points" => "points", r => r.points = -5;
        "10^12 + 1 points" => "points", r => r.points = 1_000_000_000_001;
        "i64::MIN points" => "points", r => r.points = i64::MIN;
    }) };
}

/// Spoils of money field `$field` of command `$variant`, named `$name`.
macro_rules! money_spoils {
    ($variant:ident.$field:ident, $name:literal, $currency:literal, $units:literal) => {
        table!(on!(C::$variant) {
            "no money" => $name, r => r.$field = None;
            "unknown currency" => $currency, r => r.$field = money(100, "ZZZ");
            "empty currency" => $currency, r => r.$field = money(100, "");
            "lower-case currency" => $currency, r => r.$field = money(100, "usd");
            "another currency" => $currency, r => r.$field = money(100, "EUR");
            "zero amount" => $units, r => r.$field = money(0, "USD");
            "negative amount" => $units, r => r.$field = money(-1, "USD");
            "over 10^15 minor units" => $units, r => r.$field = money(1_000_000_000_000_001, "USD");
        })
    };
}

/// The idempotency key of a good command; each case gets its own.
const KEY: &str = "KEY";

/// A good request of `eve` with these fields set.
macro_rules! request {
    ($T:ident { $($field:ident: $value:expr),* $(,)? }) => {
        pb::$T {
            $($field: $value,)*
            ..pb::$T {
                program_id: DEFAULT_PROGRAM_ID.into(),
                member_id: "eve".into(),
                idempotency_key: KEY.into(),
                occurred_at: Some(timestamp(common::wall_clock_us())),
                ..Default::default()
            }
        }
    };
}

/// Each command, good as it stands, with the spoils of its own fields.
fn commands() -> Vec<(C, Vec<Spoil<C>>)> {
    let purchase = request!(RecordPurchaseRequest {
        order_id: "order-2".into(),
        spend: usd(1_000)
    });
    let refund = request!(RecordReturnRequest {
        order_id: "order-1".into(),
        refund: usd(100)
    });
    let transfer = request!(TransferPointsRequest {
        to_member_id: "zed".into(),
        points: 5,
        transfer_id: "tr-1".into(),
    });
    vec![
        (C::Enroll(request!(EnrollRequest { member_id: "newbie".into() })), table!(on!(C::Enroll) {
            "already enrolled" => FailedPrecondition, r => r.member_id = "eve".into();
        })),
        (C::RecordPurchase(purchase), [
            text_spoils!(RecordPurchase.order_id, 128),
            money_spoils!(RecordPurchase.spend, "spend", "spend.currency", "spend.minor_units"),
            table!(on!(C::RecordPurchase) {
                "17 tags" => "tags", r => r.tags = vec!["t".into(); 17];
                "an empty tag" => "tags[1]", r => r.tags = vec!["t".into(), String::new()];
                "a 65-byte tag" => "tags[0]", r => r.tags = vec![long(65)];
                "order already recorded" => FailedPrecondition, r => r.order_id = "order-1".into();
            }),
        ].concat()),
        (C::AwardPoints(request!(AwardPointsRequest { reason: "bonus".into(), points: 5 })), [
            text_spoils!(AwardPoints.reason, 256),
            points_spoils!(AwardPoints),
            table!(on!(C::AwardPoints) {
                "metadata at its limits" => Ok,
                    r => r.metadata = (0..16).map(|i| (format!("k{i:02}"), long(61))).collect();
            }),
        ].concat()),
        (C::Redeem(request!(RedeemRequest { redemption_id: "red-2".into(), points: 5 })), [
            text_spoils!(Redeem.redemption_id, 128),
            points_spoils!(Redeem),
            table!(on!(C::Redeem) {
                "unknown member" => NotFound, r => r.member_id = "nobody".into();
                "more than the balance" => FailedPrecondition, r => r.points = 1_000_000;
                "redemption_id reused" => FailedPrecondition, r => r.redemption_id = "red-1".into();
            }),
        ].concat()),
        (C::CancelRedemption(request!(CancelRedemptionRequest { redemption_id: "red-1".into() })), [
            text_spoils!(CancelRedemption.redemption_id, 128),
            table!(on!(C::CancelRedemption) {
                "unknown member" => NotFound, r => r.member_id = "nobody".into();
                "unknown redemption" => FailedPrecondition, r => r.redemption_id = "red-0".into();
            }),
        ].concat()),
        (C::RecordReturn(refund), [
            text_spoils!(RecordReturn.order_id, 128),
            money_spoils!(RecordReturn.refund, "refund", "refund.currency", "refund.minor_units"),
            table!(on!(C::RecordReturn) {
                "unknown member" => NotFound, r => r.member_id = "nobody".into();
                "unknown order" => FailedPrecondition, r => r.order_id = "order-0".into();
                "refund over the spend" => FailedPrecondition, r => r.refund = usd(1_001);
            }),
        ].concat()),
        (C::AdjustPoints(request!(AdjustPointsRequest { reason: "fix".into(), points: -5 })), [
            text_spoils!(AdjustPoints.reason, 256),
            table!(on!(C::AdjustPoints) {
                "zero points" => "points", r => r.points = 0;
                "10^12 + 1 points" => "points", r => r.points = 1_000_000_000_001;
                "-10^12 - 1 points" => "points", r => r.points = -1_000_000_000_001;
                "i64::MIN points" => "points", r => r.points = i64::MIN;
                "unknown member" => NotFound, r => r.member_id = "nobody".into();
            }),
        ].concat()),
        (C::TransferPoints(transfer), [
            text_spoils!(TransferPoints.transfer_id, 128),
            points_spoils!(TransferPoints),
            table!(on!(C::TransferPoints) {
                "empty to_member_id" => "to_member_id", r => r.to_member_id = String::new();
                "129-byte to_member_id" => "to_member_id", r => r.to_member_id = long(129);
                "to_member_id with a space" => "to_member_id", r => r.to_member_id = "a b".into();
                "to the sender" => "to_member_id", r => r.to_member_id = "eve".into();
                "unknown sender" => NotFound, r => r.member_id = "nobody".into();
                "unknown receiver" => NotFound, r => r.to_member_id = "nobody".into();
                "more than the balance" => FailedPrecondition, r => r.points = 1_000_000;
            }),
        ].concat()),
    ]
}

/// A good request spoiled, and the answer it must get.
#[derive(Clone)]
struct Case<T> {
    label: String,
    request: T,
    expect: Expect,
}

/// The variant of a request enum, from its Debug form: `Redeem(...)`.
fn variant(request: &impl std::fmt::Debug) -> String {
    let debug = format!("{request:?}");
    debug.split('(').next().unwrap_or_default().to_owned()
}

/// Each base request spoiled by the common spoils and by its own.
fn spoiled<T: Clone + std::fmt::Debug>(
    bases: Vec<(T, Vec<Spoil<T>>)>,
    common: Vec<Spoil<T>>,
) -> Vec<Case<T>> {
    let mut cases = Vec::new();
    for (base, own) in bases {
        for spoil in common.iter().cloned().chain(own) {
            let mut request = base.clone();
            (spoil.edit)(&mut request);
            let label = format!("{}: {}", variant(&base), spoil.label);
            cases.push(Case {
                label,
                request,
                expect: spoil.expect,
            });
        }
    }
    cases
}

/// Every command case, each with key `{prefix}{n}` and dry run or not.
fn command_cases(prefix: &str, dry_run: bool) -> Vec<Case<C>> {
    let common = [
        program_spoils!(each_command: C),
        member_spoils!(each_command: C),
        envelope_spoils!(each_command: C),
    ]
    .concat();
    let mut cases = spoiled(commands(), common);
    for (n, case) in cases.iter_mut().enumerate() {
        each_command!(&mut case.request, r => {
            if r.idempotency_key == KEY {
                r.idempotency_key = format!("{prefix}{n}");
            }
            r.dry_run = dry_run;
        });
        if dry_run {
            case.label.push_str(" (dry run)");
        }
    }
    cases
}

async fn send(ledger: &mut LedgerClient<Channel>, command: C) -> Result<(), Status> {
    match command {
        C::Enroll(r) => ledger.enroll(r).await.map(drop),
        C::RecordPurchase(r) => ledger.record_purchase(r).await.map(drop),
        C::AwardPoints(r) => ledger.award_points(r).await.map(drop),
        C::Redeem(r) => ledger.redeem(r).await.map(drop),
        C::CancelRedemption(r) => ledger.cancel_redemption(r).await.map(drop),
        C::RecordReturn(r) => ledger.record_return(r).await.map(drop),
        C::AdjustPoints(r) => ledger.adjust_points(r).await.map(drop),
        C::TransferPoints(r) => ledger.transfer_points(r).await.map(drop),
    }
}

/// What a call answered: its code, the field its BadRequest detail names
/// ("" for none), and its message.
fn answer<T>(result: Result<T, Status>) -> (Code, String, String) {
    match result {
        Ok(_) => (Code::Ok, String::new(), String::new()),
        Err(status) => {
            let detail = status.get_details_bad_request();
            let field = detail.and_then(|d| d.field_violations.first().map(|v| v.field.clone()));
            let message = status.message().to_owned();
            (status.code(), field.unwrap_or_default(), message)
        }
    }
}

/// The answers checked, and those that were not the documented ones.
#[derive(Default)]
struct Wrong {
    answers: Vec<String>,
    checked: usize,
}

impl Wrong {
    /// Checks an answer: never INTERNAL or UNKNOWN, and the expected code
    /// and field.
    fn check(&mut self, label: &str, got: (Code, String, String), expect: (Code, &str)) {
        let (code, field, message) = got;
        self.checked += 1;
        if matches!(code, Code::Internal | Code::Unknown) || (code, &*field) != expect {
            let (want_code, want_field) = expect;
            self.answers.push(format!(
                "{label}: {code:?} {field:?} ({message}); documented {want_code:?} {want_field:?}"
            ));
        }
    }

    fn assert_none(self) {
        let (wrong, checked) = (self.answers.len(), self.checked);
        assert!(
            checked > 0 && wrong == 0,
            "{wrong} of {checked} answers are wrong:\n{}",
            self.answers.join("\n")
        );
    }
}

/// A server where `eve` has points, purchase `order-1` and redemption
/// `red-1`, and `zed` is enrolled.
async fn seeded() -> Server {
    let server = Server::start().await;
    let mut ledger = server.client.clone();
    for command in [
        C::AwardPoints(award("eve", "seed-1", 100)),
        C::RecordPurchase(purchase("eve", "seed-2", "order-1", 1_000)),
        C::Redeem(redeem("eve", "red-1", 10)),
        C::Enroll(enroll("zed", "seed-3")),
    ] {
        send(&mut ledger, command).await.expect("seeded");
    }
    // A command's answer does not wait for the views; queries with
    // `min_position` 0 below must find the seeded members, so wait here for
    // the balance and tier views to reflect the whole seed.
    let head = server
        .audit
        .clone()
        .get_head(pb::GetHeadRequest {})
        .await
        .expect("head")
        .into_inner()
        .position;
    ledger
        .get_member(pb::GetMemberRequest {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "eve".into(),
            min_position: head,
            ..Default::default()
        })
        .await
        .expect("views reflect the seed");
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_refuses_every_bad_input_alone_and_in_a_batch() {
    let server = seeded().await;
    let mut ledger = server.client.clone();
    let mut wrong = Wrong::default();
    for case in [command_cases("a", false), command_cases("d", true)].concat() {
        let got = answer(send(&mut ledger, case.request).await);
        wrong.check(&case.label, got, case.expect);
    }

    // The same cases in one batch between good commands, and an entry
    // without a command: each fails alone, its field prefixed by its place.
    let good = |key: &str| Case {
        label: "good".into(),
        request: C::AwardPoints(award("eve", key, 1)),
        expect: expect!(Ok),
    };
    let cases = [
        vec![good("b-first")],
        command_cases("b", false),
        command_cases("bd", true),
        vec![good("b-last")],
    ]
    .concat();
    let entry = |command: Option<&C>| pb::BatchCommand {
        command: command.cloned(),
    };
    let mut commands: Vec<_> = cases
        .iter()
        .map(|case| entry(Some(&case.request)))
        .collect();
    commands.push(entry(None));
    let batch = ledger.submit_batch(pb::SubmitBatchRequest { commands });
    let results = batch.await.expect("answered").into_inner().results;
    assert_eq!(results.len(), cases.len() + 1, "one result per command");
    for (index, result) in results.into_iter().enumerate() {
        let (label, (code, field)) = match cases.get(index) {
            Some(case) => (case.label.as_str(), case.expect),
            None => ("no command", expect!("command")),
        };
        let field = match field {
            "" => String::new(),
            field => format!("commands[{index}].{field}"),
        };
        let got = match result.result {
            Some(pb::batch_result::Result::Ok(_)) => (Code::Ok, String::new(), String::new()),
            Some(pb::batch_result::Result::Error(e)) => (Code::from(e.code), e.field, e.message),
            None => (Code::Unknown, String::new(), "no result".into()),
        };
        wrong.check(&format!("batch: {label}"), got, (code, &field));
    }

    let commands = vec![entry(Some(&good("many").request)); 1_001];
    let got = answer(
        ledger
            .submit_batch(pb::SubmitBatchRequest { commands })
            .await,
    );
    wrong.check("batch of 1,001", got, expect!("commands"));
    wrong.assert_none();
    server.stop().await;
}

/// A query of the Ledger service.
#[derive(Clone, Debug)]
enum Query {
    Balance(pb::GetBalanceRequest),
    Member(pb::GetMemberRequest),
    Lots(pb::ListLotsRequest),
    Statement(pb::GetStatementRequest),
    AsOf(pb::GetBalanceAsOfRequest),
}

macro_rules! each_query {
    ($query:expr, $r:ident => $body:expr) => {
        match $query {
            Query::Balance($r) => $body,
            Query::Member($r) => $body,
            Query::Lots($r) => $body,
            Query::Statement($r) => $body,
            Query::AsOf($r) => $body,
        }
    };
}

/// A good query of `eve` with these fields set.
macro_rules! query {
    ($variant:ident($T:ident { $($field:ident: $value:expr),* $(,)? })) => {
        Query::$variant(pb::$T {
            program_id: DEFAULT_PROGRAM_ID.into(),
            member_id: "eve".into(),
            $($field: $value,)*
            ..Default::default()
        })
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_refuses_every_bad_input() {
    let server = seeded().await;
    let mut ledger = server.client.clone();
    let now = || Some(timestamp(common::wall_clock_us()));
    let bases = vec![
        (query!(Balance(GetBalanceRequest {})), vec![]),
        (
            query!(Member(GetMemberRequest { as_of: now() })),
            table!(on!(Query::Member) {
                "no as_of (now)" => Ok, r => r.as_of = None;
                "as_of nanos out of range" => "as_of", r => r.as_of.as_mut().expect("set").nanos = 1_000_000_000;
                "as_of before 1970" => "as_of", r => r.as_of = Some(timestamp(-1));
                "as_of at the end of 9999" => Ok, r => r.as_of = Some(timestamp(253_402_300_799_999_999));
                "as_of after 9999" => "as_of", r => r.as_of = Some(timestamp(253_402_300_800_000_000));
                "as_of 290,000 years ago" => "as_of", r => r.as_of = Some(timestamp(i64::MIN / 2));
            }),
        ),
        (
            query!(Lots(ListLotsRequest {
                include_closed: true
            })),
            vec![],
        ),
        (
            query!(Statement(GetStatementRequest {})),
            table!(on!(Query::Statement) {
                "page_size at the limit" => Ok, r => r.page_size = 1_000;
                "page_size over the limit" => "page_size", r => r.page_size = 1_001;
                "page_size u32::MAX" => "page_size", r => r.page_size = u32::MAX;
                "page_token not a token" => "page_token", r => r.page_token = "next".into();
                "page_token of 32 non-hex bytes" => "page_token", r => r.page_token = "g".repeat(32);
                "page_token of 33 hex digits" => "page_token", r => r.page_token = "f".repeat(33);
            }),
        ),
        (
            query!(AsOf(GetBalanceAsOfRequest { as_of: now() })),
            table!(on!(Query::AsOf) {
                "no as_of" => "as_of", r => r.as_of = None;
                "as_of nanos out of range" => "as_of", r => r.as_of.as_mut().expect("set").nanos = -1;
                "as_of beyond i64 microseconds" => "as_of", r => r.as_of.as_mut().expect("set").seconds = i64::MIN;
                "as_of before 1970" => "as_of", r => r.as_of = Some(timestamp(-1));
                "as_of after 9999" => "as_of", r => r.as_of = Some(timestamp(i64::MAX / 2));
            }),
        ),
    ];
    let common = [
        program_spoils!(each_query: Query),
        member_spoils!(each_query: Query),
        table!(all!(each_query: Query) {
            "as asked, min_position 0" => Ok, r => r.min_position = 0;
            "unknown member" => NotFound, r => r.member_id = "nobody".into();
            "min_position beyond the head" => "min_position", r => r.min_position = 1_000;
            "min_position u64::MAX" => "min_position", r => r.min_position = u64::MAX;
        }),
    ]
    .concat();
    let mut wrong = Wrong::default();
    for case in spoiled(bases, common) {
        let result = match case.request {
            Query::Balance(r) => ledger.get_balance(r).await.map(drop),
            Query::Member(r) => ledger.get_member(r).await.map(drop),
            Query::Lots(r) => ledger.list_lots(r).await.map(drop),
            Query::Statement(r) => ledger.get_statement(r).await.map(drop),
            Query::AsOf(r) => ledger.get_balance_as_of(r).await.map(drop),
        };
        wrong.check(&case.label, answer(result), case.expect);
    }
    wrong.assert_none();
    server.stop().await;
}

/// A command of the Admin service: a program and its rules.
#[derive(Clone, Debug)]
enum Program {
    DefineProgram(pb::DefineProgramRequest),
    ChangeRules(pb::ChangeRulesRequest),
}

macro_rules! each_program {
    ($command:expr, $r:ident => $body:expr) => {
        match $command {
            Program::DefineProgram($r) => $body,
            Program::ChangeRules($r) => $body,
        }
    };
}

/// The rules inside a program command.
macro_rules! rules {
    ($r:ident) => {
        $r.rules.as_mut().expect("rules")
    };
}

/// A good program command with these fields set.
macro_rules! program {
    ($variant:ident($T:ident { $($field:ident: $value:expr),* $(,)? })) => {
        Program::$variant(pb::$T {
            $($field: $value,)*
            idempotency_key: KEY.into(),
            occurred_at: Some(timestamp(common::wall_clock_us())),
            ..Default::default()
        })
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_call_refuses_every_bad_input() {
    let server = Server::start().await;
    let mut admin = server.admin.clone();
    let get = |id: &str| pb::GetProgramRequest {
        program_id: id.into(),
    };
    let default = admin.get_program(get(DEFAULT_PROGRAM_ID)).await;
    let default_rules = default.expect("default program").into_inner().rules;
    let bakery = default_rules
        .clone()
        .map(|rules| ledger_core::pb::ProgramRules {
            name: "Bakery".into(),
            currency: "EUR".into(),
            ..rules
        });
    let bases = vec![
        (
            program!(DefineProgram(DefineProgramRequest {
                program_id: "bakery".into(),
                rules: bakery
            })),
            table!(on!(Program::DefineProgram) {
                "defined already" => FailedPrecondition, r => r.program_id = DEFAULT_PROGRAM_ID.into();
            }),
        ),
        (
            program!(ChangeRules(ChangeRulesRequest {
                program_id: DEFAULT_PROGRAM_ID.into(),
                rules: default_rules,
            })),
            table!(on!(Program::ChangeRules) {
                "unknown program" => NotFound, r => r.program_id = "nope".into();
                "another currency" => "rules.currency", r => rules!(r).currency = "EUR".into();
            }),
        ),
    ];
    let common = [
        program_spoils!(each_program: Program),
        envelope_spoils!(each_program: Program),
        table!(all!(each_program: Program) {
            "no rules" => "rules", r => r.rules = None;
            "empty name" => "rules.name", r => rules!(r).name = String::new();
            "unknown currency" => "rules.currency", r => rules!(r).currency = "ZZZ".into();
            "negative earn rate" => "rules.earn_rate_bps", r => rules!(r).earn_rate_bps = -1;
            "no rounding" => "rules.rounding", r => rules!(r).rounding = 0;
            "unknown rounding" => "rules.rounding", r => rules!(r).rounding = 99;
        }),
    ]
    .concat();
    let mut wrong = Wrong::default();
    for (n, case) in spoiled(bases, common).into_iter().enumerate() {
        let mut request = case.request;
        each_program!(&mut request, r => if r.idempotency_key == KEY {
            r.idempotency_key = format!("k{n}");
        });
        let result = match request {
            Program::DefineProgram(r) => admin.define_program(r).await.map(drop),
            Program::ChangeRules(r) => admin.change_rules(r).await.map(drop),
        };
        wrong.check(&case.label, answer(result), case.expect);
    }

    for (program_id, expect) in [
        (String::new(), expect!("program_id")),
        (long(65), expect!("program_id")),
        ("a b".into(), expect!("program_id")),
        ("nope".into(), expect!(NotFound)),
        (DEFAULT_PROGRAM_ID.into(), expect!(Ok)),
    ] {
        let got = answer(admin.get_program(get(&program_id)).await);
        wrong.check(&format!("GetProgram {program_id:?}"), got, expect);
    }
    let got = answer(admin.list_programs(pb::ListProgramsRequest {}).await);
    wrong.check("ListPrograms", got, expect!(Ok));
    for (name, status, rebuild) in [
        ("", expect!(Ok), expect!("name")),
        ("nope", expect!("name"), expect!("name")),
        ("Balance", expect!("name"), expect!("name")),
        ("tier", expect!(Ok), expect!(Ok)),
    ] {
        let request = pb::GetProjectionStatusRequest { name: name.into() };
        let got = answer(admin.get_projection_status(request).await);
        wrong.check(&format!("GetProjectionStatus {name:?}"), got, status);
        let request = pb::RebuildProjectionRequest { name: name.into() };
        let got = answer(admin.rebuild_projection(request).await);
        wrong.check(&format!("RebuildProjection {name:?}"), got, rebuild);
    }
    wrong.assert_none();
    server.stop().await;
}

/// Reads a streamed answer to its end: its first error, if any.
async fn drain<T>(
    answer: Result<tonic::Response<tonic::Streaming<T>>, Status>,
) -> Result<(), Status> {
    let mut stream = answer?.into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_call_refuses_every_bad_input() {
    let server = seeded().await;
    let mut audit = server.audit.clone();
    let head = audit
        .get_head(pb::GetHeadRequest {})
        .await
        .expect("head")
        .into_inner()
        .position;
    let mut wrong = Wrong::default();
    for (from_position, to_position, expect) in [
        (0, 0, expect!(Ok)),
        (head, head, expect!(Ok)),
        (head + 1, 0, expect!(Ok)),
        (1, head + 100, expect!(Ok)),
        (3, 2, expect!("from_position")),
        (u64::MAX, u64::MAX, expect!(Ok)),
    ] {
        let request = pb::ReadAllRequest {
            from_position,
            to_position,
        };
        let got = answer(drain(audit.read_all(request).await).await);
        wrong.check(
            &format!("ReadAll {from_position}..={to_position}"),
            got,
            expect,
        );
    }
    let long_member = format!("member/default/{}", long(129));
    for (stream, from_version, max_count, expect) in [
        ("program/default", 0, 0, expect!(Ok)),
        ("member/default/eve", 0, u32::MAX, expect!(Ok)),
        ("member/default/eve", u64::MAX, 0, expect!(Ok)),
        ("", 0, 0, expect!("stream")),
        ("eve", 0, 0, expect!("stream")),
        ("member/default", 0, 0, expect!("stream")),
        ("member/default/eve/x", 0, 0, expect!("stream")),
        ("program/", 0, 0, expect!("stream")),
        ("program/a b", 0, 0, expect!("stream")),
        ("member/default/", 0, 0, expect!("stream")),
        ("member/default/a b", 0, 0, expect!("stream")),
        (&long_member, 0, 0, expect!("stream")),
        ("program/nope", 0, 0, expect!(NotFound)),
        ("member/default/nobody", 0, 0, expect!(NotFound)),
    ] {
        let request = pb::ReadStreamRequest {
            stream: stream.into(),
            from_version,
            max_count,
        };
        let got = answer(drain(audit.read_stream(request).await).await);
        wrong.check(
            &format!("ReadStream {stream:?} from {from_version}"),
            got,
            expect,
        );
    }
    for from_position in [0, head + 1, u64::MAX] {
        let got = answer(
            audit
                .subscribe(pb::SubscribeRequest { from_position })
                .await,
        );
        wrong.check(&format!("Subscribe from {from_position}"), got, expect!(Ok));
    }
    let got = answer(audit.get_head(pb::GetHeadRequest {}).await);
    wrong.check("GetHead", got, expect!(Ok));
    let got = answer(drain(audit.verify(pb::VerifyRequest {}).await).await);
    wrong.check("Verify", got, expect!(Ok));
    wrong.assert_none();
    server.stop().await;
}
