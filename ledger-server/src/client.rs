//! `ledgerd client`: the common Ledger calls and the Audit head against a
//! running server, printed as text or as one JSON object (`--json`).
//!
//! Exit codes: 0 answered; 1 the server refused the call (its gRPC code,
//! message and bad fields are printed); 2 the call could not be made (bad
//! flags, no connection).

use crate::export::{event_name, parse_time, rfc3339};
use crate::ledger::{timestamp, timestamp_us};
use crate::pb;
use anyhow::Context;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_types::StatusExt;

/// Where and how to call.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server address (https:// for TLS).
    #[arg(long, env = "LEDGERD_TARGET", default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// Bearer token, when the server has tokens configured.
    #[arg(long, env = "LEDGERD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificate of the CA that signed the server's certificate
    /// (https targets).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Program the call is for.
    #[arg(long, default_value = "default")]
    pub program: String,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub call: Call,
}

/// The fields every command takes.
#[derive(Debug, clap::Args)]
pub struct CommandArgs {
    /// Idempotency key: a retry with the same key and request is applied
    /// once and answered the same.
    #[arg(long)]
    pub key: String,
    /// Business time of the command, RFC 3339 [default: now].
    #[arg(long)]
    pub at: Option<String>,
    /// Refuse unless the member's stream is at this version.
    #[arg(long)]
    pub expected_version: Option<u64>,
    /// Metadata entry `key=value`; repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub metadata: Vec<(String, String)>,
    /// Answer with the events the command would append; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One call.
#[derive(Debug, clap::Subcommand)]
pub enum Call {
    /// Enroll a member.
    Enroll {
        /// Member id.
        member: String,
        #[command(flatten)]
        command: CommandArgs,
    },
    /// Record a purchase; earns points by the program's rules.
    Purchase {
        /// Member id.
        member: String,
        /// Order id (a return names it).
        #[arg(long)]
        order: String,
        /// Spend in minor units of the currency (cents for USD).
        #[arg(long, allow_hyphen_values = true)]
        spend_minor: i64,
        /// ISO 4217 currency code.
        #[arg(long, default_value = "USD")]
        currency: String,
        /// Purchase tag (campaigns match on tags); repeat for more.
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[command(flatten)]
        command: CommandArgs,
    },
    /// Award points outside a purchase (available at once).
    Award {
        /// Member id.
        member: String,
        /// Points to award.
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        command: CommandArgs,
    },
    /// Redeem available points.
    Redeem {
        /// Member id.
        member: String,
        /// Points to redeem.
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        /// Redemption id (a cancellation names it).
        #[arg(long)]
        redemption: String,
        #[command(flatten)]
        command: CommandArgs,
    },
    /// Record a return of (part of) a purchase; reverses its points.
    Return {
        /// Member id.
        member: String,
        /// The purchase's order id.
        #[arg(long)]
        order: String,
        /// Refund in minor units of the currency.
        #[arg(long, allow_hyphen_values = true)]
        refund_minor: i64,
        /// ISO 4217 currency code.
        #[arg(long, default_value = "USD")]
        currency: String,
        #[command(flatten)]
        command: CommandArgs,
    },
    /// Adjust a member's points: positive credits, negative debits.
    Adjust {
        /// Member id.
        member: String,
        /// Signed points.
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        command: CommandArgs,
    },
    /// Transfer available points to another member of the program.
    Transfer {
        /// Member id of the sender.
        member: String,
        /// Member id of the receiver.
        #[arg(long)]
        to: String,
        /// Points to transfer.
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        /// Transfer id.
        #[arg(long)]
        transfer: String,
        #[command(flatten)]
        command: CommandArgs,
    },
    /// A member's balance and lifetime totals.
    Balance {
        /// Member id.
        member: String,
        /// Wait until the view reflects this position.
        #[arg(long, default_value_t = 0)]
        min_position: u64,
    },
    /// A member's statement, newest first, one page.
    Statement {
        /// Member id.
        member: String,
        /// Wait until the view reflects this position.
        #[arg(long, default_value_t = 0)]
        min_position: u64,
        /// Lines per page [server default: 100, max 1000].
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// The previous page's `next_page_token`.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// The log's head: last position and chain hash (Audit role).
    Head,
}

impl Call {
    /// Whether this is a command with `--dry-run`.
    fn dry_run(&self) -> bool {
        match self {
            Call::Enroll { command, .. }
            | Call::Purchase { command, .. }
            | Call::Award { command, .. }
            | Call::Redeem { command, .. }
            | Call::Return { command, .. }
            | Call::Adjust { command, .. }
            | Call::Transfer { command, .. } => command.dry_run,
            Call::Balance { .. } | Call::Statement { .. } | Call::Head => false,
        }
    }
}

fn parse_meta(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// Sends `token` (`--token`), or nothing when there is none.
    pub(crate) fn new(token: Option<&str>) -> anyhow::Result<Bearer> {
        Ok(Bearer(
            token
                .map(|token| format!("Bearer {token}").parse())
                .transpose()
                .context("--token: not a valid header value")?,
        ))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// What a call ended with.
pub enum Outcome {
    /// The answer, printed.
    Answered,
    /// The server refused the call; printed with its code and fields.
    Refused,
}

/// Makes the call and prints its answer on standard output.
pub async fn run(args: ClientArgs) -> anyhow::Result<Outcome> {
    let channel = endpoint(&args.target, args.ca.as_deref())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.target))?;
    let bearer = Bearer::new(args.token.as_deref())?;
    let mut ledger =
        pb::ledger_client::LedgerClient::with_interceptor(channel.clone(), bearer.clone());
    let program = args.program.clone();
    let answer = match args.call {
        Call::Head => {
            let mut audit = pb::audit_client::AuditClient::with_interceptor(channel, bearer);
            audit
                .get_head(pb::GetHeadRequest {})
                .await
                .map(|head| head_json(&head.into_inner()))
        }
        Call::Balance {
            member,
            min_position,
        } => ledger
            .get_balance(pb::GetBalanceRequest {
                program_id: program,
                member_id: member,
                min_position,
            })
            .await
            .map(|answer| balance_json(&answer.into_inner())),
        Call::Statement {
            member,
            min_position,
            page_size,
            page_token,
        } => ledger
            .get_statement(pb::GetStatementRequest {
                program_id: program,
                member_id: member,
                min_position,
                page_size,
                page_token,
            })
            .await
            .map(|answer| statement_json(&answer.into_inner())),
        command => {
            let dry_run = command.dry_run();
            let answer = send(&mut ledger, program, command).await?;
            answer.map(|answer| command_json(&answer.into_inner(), dry_run))
        }
    };
    match answer {
        Ok(value) => {
            if args.json {
                println!("{value}");
            } else {
                print!("{}", text(&value));
            }
            Ok(Outcome::Answered)
        }
        Err(status) => {
            let value = status_json(&status);
            if args.json {
                println!("{value}");
            } else {
                eprint!("{}", text(&value));
            }
            Ok(Outcome::Refused)
        }
    }
}

/// The endpoint of `--target`, checking the server's certificate against
/// `--ca` when given.
pub(crate) fn endpoint(target: &str, ca: Option<&Path>) -> anyhow::Result<Endpoint> {
    let mut endpoint = Endpoint::from_shared(target.to_owned())
        .with_context(|| format!("--target: `{target}` is not a URI"))?;
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("--ca: reading {}", ca.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .context("--ca")?;
    }
    Ok(endpoint)
}

type Ledger = pb::ledger_client::LedgerClient<
    tonic::service::interceptor::InterceptedService<Channel, Bearer>,
>;

/// Builds and sends one command.
async fn send(
    ledger: &mut Ledger,
    program_id: String,
    call: Call,
) -> anyhow::Result<Result<tonic::Response<pb::CommandResponse>, tonic::Status>> {
    // The fields every command shares, in the order the protos number them.
    struct Common {
        program_id: String,
        idempotency_key: String,
        occurred_at: Option<prost_types::Timestamp>,
        expected_version: Option<u64>,
        metadata: HashMap<String, String>,
        dry_run: bool,
    }
    let common = |command: CommandArgs| -> anyhow::Result<Common> {
        let at_us = match &command.at {
            Some(text) => parse_time("--at", text)?,
            None => now_us(),
        };
        Ok(Common {
            program_id: program_id.clone(),
            idempotency_key: command.key,
            occurred_at: Some(timestamp(at_us)),
            expected_version: command.expected_version,
            metadata: command.metadata.into_iter().collect(),
            dry_run: command.dry_run,
        })
    };
    let money = |minor_units: i64, currency: String| {
        Some(ledger_core::pb::Money {
            minor_units,
            currency,
        })
    };
    // Each arm spreads the common fields into its request type.
    macro_rules! request {
        ($type:ident, $member:expr, $command:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
            let c = common($command)?;
            pb::$type {
                program_id: c.program_id,
                member_id: $member,
                idempotency_key: c.idempotency_key,
                occurred_at: c.occurred_at,
                expected_version: c.expected_version,
                metadata: c.metadata,
                dry_run: c.dry_run,
                $($field: $value,)*
            }
        }};
    }
    Ok(match call {
        Call::Enroll { member, command } => {
            ledger
                .enroll(request!(EnrollRequest, member, command, {}))
                .await
        }
        Call::Purchase {
            member,
            order,
            spend_minor,
            currency,
            tags,
            command,
        } => {
            ledger
                .record_purchase(request!(RecordPurchaseRequest, member, command, {
                    order_id: order,
                    spend: money(spend_minor, currency),
                    tags: tags,
                }))
                .await
        }
        Call::Award {
            member,
            points,
            reason,
            command,
        } => {
            ledger
                .award_points(request!(AwardPointsRequest, member, command, {
                    reason: reason,
                    points: points,
                }))
                .await
        }
        Call::Redeem {
            member,
            points,
            redemption,
            command,
        } => {
            ledger
                .redeem(request!(RedeemRequest, member, command, {
                    redemption_id: redemption,
                    points: points,
                }))
                .await
        }
        Call::Return {
            member,
            order,
            refund_minor,
            currency,
            command,
        } => {
            ledger
                .record_return(request!(RecordReturnRequest, member, command, {
                    order_id: order,
                    refund: money(refund_minor, currency),
                }))
                .await
        }
        Call::Adjust {
            member,
            points,
            reason,
            command,
        } => {
            ledger
                .adjust_points(request!(AdjustPointsRequest, member, command, {
                    reason: reason,
                    points: points,
                }))
                .await
        }
        Call::Transfer {
            member,
            to,
            points,
            transfer,
            command,
        } => {
            ledger
                .transfer_points(request!(TransferPointsRequest, member, command, {
                    to_member_id: to,
                    points: points,
                    transfer_id: transfer,
                }))
                .await
        }
        Call::Balance { .. } | Call::Statement { .. } | Call::Head => {
            anyhow::bail!("not a command")
        }
    })
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

fn time(value: Option<&prost_types::Timestamp>) -> Value {
    timestamp_us("time", value)
        .ok()
        .map_or(Value::Null, |us| Value::String(rfc3339(us)))
}

fn balance_fields(balance: Option<&pb::Balance>) -> Value {
    let balance = balance.cloned().unwrap_or_default();
    json!({
        "balance": balance.balance,
        "available": balance.available,
        "pending": balance.pending,
        "debt": balance.debt,
    })
}

fn command_json(answer: &pb::CommandResponse, dry_run: bool) -> Value {
    let events: Vec<&str> = answer.events.iter().map(event_name).collect();
    if dry_run {
        // Nothing was written: no position, version or balance after.
        return json!({
            "dry_run": true,
            "event_count": answer.event_count,
            "events": events,
        });
    }
    json!({
        "position": answer.position,
        "first_position": answer.first_position,
        "event_count": answer.event_count,
        "stream_version": answer.stream_version,
        "replayed": answer.replayed,
        "balance": balance_fields(answer.balance.as_ref()),
                "events": events,
    })
}

fn balance_json(answer: &pb::GetBalanceResponse) -> Value {
    let lifetime = answer.lifetime.unwrap_or_default();
    json!({
        "position": answer.position,
        "enrolled": answer.enrolled,
        "stream_version": answer.stream_version,
        "effective_at": time(answer.effective_at.as_ref()),
        "balance": balance_fields(answer.balance.as_ref()),
        "open_lots": answer.open_lots,
        "lifetime": {
            "earned": lifetime.earned,
            "awarded": lifetime.awarded,
            "redeemed": lifetime.redeemed,
            "expired": lifetime.expired,
            "reversed": lifetime.reversed,
            "forfeited": lifetime.forfeited,
            "adjusted": lifetime.adjusted,
            "transferred_in": lifetime.transferred_in,
            "transferred_out": lifetime.transferred_out,
        },
    })
}

fn statement_json(answer: &pb::GetStatementResponse) -> Value {
    let lines: Vec<Value> = answer
        .lines
        .iter()
        .map(|line| {
            json!({
                "position": line.position,
                "kind": line.kind,
                "points": line.points,
                "balance_after": line.balance_after,
                "pending_after": line.pending_after,
                "debt_after": line.debt_after,
                "occurred_at": time(line.occurred_at.as_ref()),
                "effective_at": time(line.effective_at.as_ref()),
                "reference": line.reference,
                "reason": line.reason,
            })
        })
        .collect();
    json!({
        "position": answer.position,
        "lines": lines,
        "next_page_token": answer.next_page_token,
    })
}

fn head_json(head: &pb::Head) -> Value {
    let hash: String = head.hash.iter().map(|byte| format!("{byte:02x}")).collect();
    json!({ "position": head.position, "hash": hash })
}

fn status_json(status: &tonic::Status) -> Value {
    let fields: Vec<Value> = status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .iter()
                .map(|violation| {
                    json!({ "field": violation.field, "description": violation.description })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "error": {
            "code": format!("{:?}", status.code()),
            "message": status.message(),
            "fields": fields,
        }
    })
}

/// The text form: one `key: value` line per scalar, nested objects and
/// lists indented beneath their key.
fn text(value: &Value) -> String {
    fn walk(value: &Value, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        Value::Object(_) => {
                            out.push_str(&format!("{pad}{key}:\n"));
                            walk(value, indent + 1, out);
                        }
                        Value::Array(items) if items.iter().any(Value::is_object) => {
                            out.push_str(&format!("{pad}{key}:\n"));
                            for item in items {
                                out.push_str(&format!("{pad}  -\n"));
                                walk(item, indent + 2, out);
                            }
                        }
                        Value::Array(items) => {
                            let items: Vec<String> = items.iter().map(scalar).collect();
                            out.push_str(&format!("{pad}{key}: {}\n", items.join(", ")));
                        }
                        _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(value))),
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other))),
        }
    }
    fn scalar(value: &Value) -> String {
        match value {
            Value::String(text) => text.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        }
    }
    let mut out = String::new();
    walk(value, 0, &mut out);
    out
}
