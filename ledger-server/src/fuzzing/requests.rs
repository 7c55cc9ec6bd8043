//! Target `requests`: arbitrary bytes as a gRPC request of any of the
//! four services, through prost and then the checks its handler makes
//! before it touches the writer or a view.
//!
//! The first byte picks the message ([`REQUESTS`], modulo its length); the
//! rest is the message's encoding. What a handler checks is in functions
//! the handlers call themselves: `ledger::parse` (every command),
//! `ledger::parse_batch`, the `check_*` functions of `ledger.rs`,
//! `reports.rs` and `audit.rs`, and the program envelopes of `admin.rs`.
//! A command is then checked as the writer and the domain check it before
//! any rule: its metadata (`writer::validate_metadata`) and its fields
//! (`Command::validate`, under plain USD rules; `TransferPoints::validate`);
//! new program rules as the domain validates them (`Rules::from_raw`).
//!
//! Properties, for any bytes: no panic; a request is either accepted or
//! refused with a field error whose path exists in the request message
//! (every segment a field of the message it is in, per the services'
//! descriptors: `spend.currency`, `rules.tiers[2].threshold`,
//! `metadata[0].key`), and whose status is INVALID_ARGUMENT with a
//! BadRequest detail naming that same field. In a batch, each command's
//! error names a field of its own request.

use super::Violation;
use crate::pb::batch_command::Command as BatchCommand;
use crate::{admin, audit, ledger, pb, reports, status};
use ledger_core::domain::{DomainError, ProgramCommand, ProgramRules, Rules};
use ledger_core::engine::LedgerCommand;
use ledger_core::error::FieldError;
use ledger_core::ids::ProgramId;
use ledger_core::writer::{Envelope, validate_metadata};
use projections::{ViewKind, balance, rfm};
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};
use std::collections::HashMap;
use std::sync::OnceLock;
use tonic::Code;
use tonic_types::StatusExt;

/// The request messages, by name in package `pointsledger.v1`, in the order
/// the first input byte picks them.
pub const REQUESTS: [&str; 31] = [
    "EnrollRequest",
    "RecordPurchaseRequest",
    "AwardPointsRequest",
    "RedeemRequest",
    "CancelRedemptionRequest",
    "RecordReturnRequest",
    "AdjustPointsRequest",
    "TransferPointsRequest",
    "SubmitBatchRequest",
    "GetBalanceRequest",
    "GetMemberRequest",
    "ListLotsRequest",
    "GetStatementRequest",
    "GetBalanceAsOfRequest",
    "GetTierDistributionRequest",
    "GetRfmRequest",
    "GetSegmentSizesRequest",
    "ListSegmentMembersRequest",
    "GetLiabilityRequest",
    "GetExpiringPointsRequest",
    "ReadAllRequest",
    "ReadStreamRequest",
    "SubscribeRequest",
    "GetHeadRequest",
    "VerifyRequest",
    "DefineProgramRequest",
    "ChangeRulesRequest",
    "GetProgramRequest",
    "ListProgramsRequest",
    "GetProjectionStatusRequest",
    "RebuildProjectionRequest",
];

/// The principal the checked commands carry.
const PRINCIPAL: &str = "fuzz";

/// What one input did, for the smoke test's coverage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No byte to pick a message with.
    Empty,
    /// The bytes are not an encoding of the message picked.
    NotAMessage,
    /// Every field passed.
    Accepted,
    /// Refused, naming a field of the message.
    Refused,
    /// A batch: how many of its commands passed and how many were refused.
    Batch {
        /// Commands that passed.
        accepted: usize,
        /// Commands refused, each naming a field of its own request.
        refused: usize,
    },
}

/// The input for request `name` encoded from `message`, as [`check`] reads
/// it; `None` for a name not in [`REQUESTS`].
pub fn input(name: &str, message: &impl Message) -> Option<Vec<u8>> {
    let index = REQUESTS.iter().position(|known| *known == name)?;
    let mut bytes = vec![u8::try_from(index).ok()?];
    message.encode(&mut bytes).ok()?;
    Some(bytes)
}

/// Runs one input; `Err` is a broken property.
pub fn check(data: &[u8]) -> Result<Outcome, Violation> {
    let Some((&selector, message)) = data.split_first() else {
        return Ok(Outcome::Empty);
    };
    let index = usize::from(selector) % REQUESTS.len();
    let name = REQUESTS.get(index).copied().unwrap_or_default();
    match verdict(name, message)? {
        Verdict::NotAMessage => Ok(Outcome::NotAMessage),
        Verdict::Checked(Ok(())) => Ok(Outcome::Accepted),
        Verdict::Checked(Err(error)) => {
            refusal_names_field(name, &error)?;
            Ok(Outcome::Refused)
        }
        Verdict::Batch(entries) => {
            let mut accepted = 0;
            let mut refused = 0;
            for (request, entry) in entries {
                match entry {
                    Ok(()) => accepted += 1,
                    // A batch entry without a command names `command`.
                    Err(error) if request.is_none() && error.field == "command" => refused += 1,
                    Err(error) => {
                        refusal_names_field(request.unwrap_or("BatchCommand"), &error)?;
                        refused += 1;
                    }
                }
            }
            Ok(Outcome::Batch { accepted, refused })
        }
    }
}

/// What the checks said about one message.
enum Verdict {
    NotAMessage,
    Checked(Result<(), FieldError>),
    /// Each command of an accepted batch: its request's message name (none
    /// for an empty entry) and its own result.
    Batch(Vec<(Option<&'static str>, Result<(), FieldError>)>),
}

fn verdict(name: &str, bytes: &[u8]) -> Result<Verdict, Violation> {
    macro_rules! decode {
        ($message:ty) => {
            match <$message>::decode(bytes) {
                Ok(message) => message,
                Err(_) => return Ok(Verdict::NotAMessage),
            }
        };
    }
    let checked = match name {
        "EnrollRequest" => command(&decode!(pb::EnrollRequest))?,
        "RecordPurchaseRequest" => command(&decode!(pb::RecordPurchaseRequest))?,
        "AwardPointsRequest" => command(&decode!(pb::AwardPointsRequest))?,
        "RedeemRequest" => command(&decode!(pb::RedeemRequest))?,
        "CancelRedemptionRequest" => command(&decode!(pb::CancelRedemptionRequest))?,
        "RecordReturnRequest" => command(&decode!(pb::RecordReturnRequest))?,
        "AdjustPointsRequest" => command(&decode!(pb::AdjustPointsRequest))?,
        "TransferPointsRequest" => command(&decode!(pb::TransferPointsRequest))?,
        "SubmitBatchRequest" => return batch(&decode!(pb::SubmitBatchRequest)),
        "GetBalanceRequest" => {
            let r = decode!(pb::GetBalanceRequest);
            ledger::ids(&r.program_id, &r.member_id).map(drop)
        }
        "GetMemberRequest" => ledger::check_get_member(&decode!(pb::GetMemberRequest)).map(drop),
        "ListLotsRequest" => {
            let r = decode!(pb::ListLotsRequest);
            ledger::ids(&r.program_id, &r.member_id).map(drop)
        }
        "GetStatementRequest" => {
            let r = decode!(pb::GetStatementRequest);
            ledger::ids(&r.program_id, &r.member_id).and_then(|_| {
                // The handler passes an empty token as none.
                match r.page_token.is_empty() {
                    true => Ok(()),
                    false => balance::parse_page_token(&r.page_token).map(drop),
                }
            })
        }
        "GetBalanceAsOfRequest" => {
            ledger::check_get_balance_as_of(&decode!(pb::GetBalanceAsOfRequest)).map(drop)
        }
        "GetTierDistributionRequest" => {
            reports::check_get_tier_distribution(&decode!(pb::GetTierDistributionRequest)).map(drop)
        }
        "GetRfmRequest" => reports::check_get_rfm(&decode!(pb::GetRfmRequest)).map(drop),
        "GetSegmentSizesRequest" => {
            reports::check_get_segment_sizes(&decode!(pb::GetSegmentSizesRequest)).map(drop)
        }
        "ListSegmentMembersRequest" => {
            let r = decode!(pb::ListSegmentMembersRequest);
            reports::check_list_segment_members(&r)
                .and_then(|_| rfm::parse_page_token(&r.page_token).map(drop))
        }
        "GetLiabilityRequest" => {
            reports::check_get_liability(&decode!(pb::GetLiabilityRequest)).map(drop)
        }
        "GetExpiringPointsRequest" => {
            reports::check_get_expiring_points(&decode!(pb::GetExpiringPointsRequest)).map(drop)
        }
        "ReadAllRequest" => audit::check_read_all(&decode!(pb::ReadAllRequest)),
        "ReadStreamRequest" => audit::check_read_stream(&decode!(pb::ReadStreamRequest)).map(drop),
        "SubscribeRequest" => {
            decode!(pb::SubscribeRequest);
            Ok(())
        }
        "GetHeadRequest" => {
            decode!(pb::GetHeadRequest);
            Ok(())
        }
        "VerifyRequest" => {
            decode!(pb::VerifyRequest);
            Ok(())
        }
        "DefineProgramRequest" => program(admin::define_program_envelope(
            &decode!(pb::DefineProgramRequest),
            PRINCIPAL.to_owned(),
        ))?,
        "ChangeRulesRequest" => program(admin::change_rules_envelope(
            &decode!(pb::ChangeRulesRequest),
            PRINCIPAL.to_owned(),
        ))?,
        "GetProgramRequest" => {
            ProgramId::parse("program_id", &decode!(pb::GetProgramRequest).program_id).map(drop)
        }
        "ListProgramsRequest" => {
            decode!(pb::ListProgramsRequest);
            Ok(())
        }
        "GetProjectionStatusRequest" => {
            admin::projection_name(&decode!(pb::GetProjectionStatusRequest).name).map(drop)
        }
        "RebuildProjectionRequest" => {
            ViewKind::parse("name", &decode!(pb::RebuildProjectionRequest).name).map(drop)
        }
        other => return Err(Violation::new(format!("no checks for request {other}"))),
    };
    Ok(Verdict::Checked(checked))
}

/// A command request as its handler parses it, then as the writer and the
/// domain check it before any rule.
fn command(request: &dyn ledger::CommandRequest) -> Result<Result<(), FieldError>, Violation> {
    match ledger::parse(request, PRINCIPAL) {
        Ok(parsed) => envelope_checks(&parsed.envelope),
        Err(error) => Ok(Err(error)),
    }
}

fn batch(request: &pb::SubmitBatchRequest) -> Result<Verdict, Violation> {
    let entries = match ledger::parse_batch(&request.commands, PRINCIPAL) {
        Ok(entries) => entries,
        Err(error) => return Ok(Verdict::Checked(Err(error))),
    };
    let mut checked = Vec::with_capacity(entries.len());
    for (command, entry) in request.commands.iter().zip(entries) {
        let name = command.command.as_ref().map(batch_request_name);
        let result = match entry {
            Ok(parsed) => envelope_checks(&parsed.envelope)?,
            Err(error) => Err(error),
        };
        checked.push((name, result));
    }
    Ok(Verdict::Batch(checked))
}

fn batch_request_name(command: &BatchCommand) -> &'static str {
    match command {
        BatchCommand::Enroll(_) => "EnrollRequest",
        BatchCommand::RecordPurchase(_) => "RecordPurchaseRequest",
        BatchCommand::AwardPoints(_) => "AwardPointsRequest",
        BatchCommand::Redeem(_) => "RedeemRequest",
        BatchCommand::CancelRedemption(_) => "CancelRedemptionRequest",
        BatchCommand::RecordReturn(_) => "RecordReturnRequest",
        BatchCommand::AdjustPoints(_) => "AdjustPointsRequest",
        BatchCommand::TransferPoints(_) => "TransferPointsRequest",
    }
}

/// A program request's envelope, then its rules as the domain validates
/// them; a rules field is named inside `rules`, as the handler names it.
fn program(
    envelope: Result<Envelope<LedgerCommand>, FieldError>,
) -> Result<Result<(), FieldError>, Violation> {
    match envelope {
        Ok(envelope) => envelope_checks(&envelope),
        Err(error) => Ok(Err(error)),
    }
}

/// The checks an envelope meets before any rule: its metadata, then the
/// command's own fields.
fn envelope_checks(
    envelope: &Envelope<LedgerCommand>,
) -> Result<Result<(), FieldError>, Violation> {
    if let Err(error) = validate_metadata(&envelope.metadata) {
        return Ok(Err(error));
    }
    let checked = match &envelope.command {
        LedgerCommand::Member { command, .. } => command.validate(usd_rules()),
        LedgerCommand::Transfer(transfer) => transfer.validate(),
        LedgerCommand::Program(
            ProgramCommand::DefineProgram { rules } | ProgramCommand::ChangeRules { rules },
        ) => Rules::from_raw(rules)
            .map(drop)
            .map_err(|error| match error {
                DomainError::InvalidField(mut field) => {
                    field.field = format!("rules.{}", field.field);
                    DomainError::InvalidField(field)
                }
                other => other,
            }),
    };
    match checked {
        Ok(()) => Ok(Ok(())),
        Err(DomainError::InvalidField(error)) => Ok(Err(error)),
        Err(other) => Err(Violation::new(format!(
            "a field check refused with a rule, not a field: {other:?}"
        ))),
    }
}

fn usd_rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        // Plain rules validate; the unit tests of `domain::rules` say so.
        Rules::from_raw(&ProgramRules::basic("USD")).unwrap_or_else(|error| {
            unreachable!("plain USD rules validate: {error}");
        })
    })
}

/// A refusal of `message` must name one of its fields, and map to
/// INVALID_ARGUMENT with a BadRequest detail naming that field.
fn refusal_names_field(message: &str, error: &FieldError) -> Result<(), Violation> {
    if !field_path_exists(message, &error.field) {
        return Err(Violation::new(format!(
            "a {message} was refused naming `{}`, which is not a field of it: {error}",
            error.field
        )));
    }
    let status = status::invalid_field(error);
    let named = status
        .get_details_bad_request()
        .and_then(|details| details.field_violations.into_iter().next())
        .map(|violation| violation.field);
    if status.code() != Code::InvalidArgument || named.as_deref() != Some(error.field.as_str()) {
        return Err(Violation::new(format!(
            "the refusal of `{}` became {:?} naming {named:?}",
            error.field,
            status.code()
        )));
    }
    Ok(())
}

/// True when every segment of `path` (`a.b[3].c`) is a field of the message
/// the previous segment leads to, from `message` on.
pub fn field_path_exists(message: &str, path: &str) -> bool {
    let messages = messages();
    let mut current = format!(".pointsledger.v1.{message}");
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, Some(rest)),
            None => (segment, None),
        };
        let index_ok = index.is_none_or(|rest| {
            rest.strip_suffix(']').is_some_and(|digits| {
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            })
        });
        let Some(descriptor) = messages.get(&current) else {
            return false;
        };
        let Some(field) = descriptor.field.iter().find(|field| field.name() == name) else {
            return false;
        };
        if !index_ok {
            return false;
        }
        if segments.peek().is_some() {
            current = field.type_name().to_owned();
        }
    }
    true
}

/// Every message of the services' descriptors (their imports included), by
/// full name (`.pointsledger.v1.Money`), nested messages too.
fn messages() -> &'static HashMap<String, DescriptorProto> {
    static MESSAGES: OnceLock<HashMap<String, DescriptorProto>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let mut messages = HashMap::new();
        // The descriptors are compiled in by the build; an empty map would
        // make every refusal fail the property, which the smoke test shows.
        let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap_or_default();
        for file in &set.file {
            let prefix = match file.package() {
                "" => String::new(),
                package => format!(".{package}"),
            };
            for message in &file.message_type {
                insert_message(&mut messages, &prefix, message);
            }
        }
        messages
    })
}

fn insert_message(
    messages: &mut HashMap<String, DescriptorProto>,
    prefix: &str,
    message: &DescriptorProto,
) {
    let name = format!("{prefix}.{}", message.name());
    for nested in &message.nested_type {
        insert_message(messages, &name, nested);
    }
    messages.insert(name, message.clone());
}
