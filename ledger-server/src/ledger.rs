//! The Ledger service: commands through the writer, queries from the views.
//!
//! A command request becomes an [`Envelope`] of a [`LedgerCommand`]; every
//! bad field is an INVALID_ARGUMENT naming it (`program_id`, `spend.currency`,
//! `commands[3].member_id` in a batch). The answer gives the positions, the
//! member's stream version, the events as appended, and the member's points
//! right after the command, as the writer's decider computed them (with the
//! position they reflect). A command's answer does not wait for the views:
//! a query that must see it passes the answer's position as `min_position`.
//! `dry_run` decides against the durable state and writes nothing.

use crate::auth;
use crate::pb;
use crate::status;
use ledger_core::clock::Clock;
use ledger_core::domain::{Command, Currency, Money, Points, TransferPoints};
use ledger_core::engine::{self, LedgerCommand};
use ledger_core::error::{FieldError, FieldReason};
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId};
use ledger_core::limits::{BUSINESS_TIME_US_MAX, SUBMIT_BATCH_COMMANDS_MAX};
use ledger_core::store::Store;
use ledger_core::writer::{Appended, BalanceAfter, Envelope, WriterHandle};
use projections::runtime::ViewKind;
use projections::{Runtime, balance, tier};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tonic_types::StatusExt;

/// How long a query waits for `min_position`, and a command's answer for
/// the balance view to reflect it, before answering from the view as it is.
pub const VIEW_WAIT: Duration = Duration::from_secs(5);

/// The Ledger service.
pub struct LedgerService {
    store: Store,
    writer: WriterHandle<LedgerCommand>,
    views: Arc<Runtime>,
    clock: Arc<dyn Clock>,
}

impl LedgerService {
    /// A service over the writer and the views.
    pub fn new(
        store: Store,
        writer: WriterHandle<LedgerCommand>,
        views: Arc<Runtime>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        LedgerService {
            store,
            writer,
            views,
            clock,
        }
    }
}

/// Microseconds since the epoch from a required timestamp.
pub fn timestamp_us(
    field: &str,
    timestamp: Option<&prost_types::Timestamp>,
) -> Result<i64, FieldError> {
    let timestamp = timestamp.ok_or_else(|| FieldError::new(field, FieldReason::Missing))?;
    let out_of_range = || {
        FieldError::new(
            field,
            FieldReason::Invalid("is not a valid time (seconds and nanos in range)".into()),
        )
    };
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(out_of_range());
    }
    timestamp
        .seconds
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(i64::from(timestamp.nanos / 1_000)))
        .ok_or_else(out_of_range)
}

/// Microseconds since the epoch from a required time that a query asks
/// about: a business time, so 1970 up to `BUSINESS_TIME_US_MAX` (the end of
/// year 9999), as for commands; outside it the views' day arithmetic has no
/// meaning.
pub(crate) fn business_time_us(
    field: &str,
    timestamp: Option<&prost_types::Timestamp>,
) -> Result<i64, FieldError> {
    let us = timestamp_us(field, timestamp)?;
    if (0..=BUSINESS_TIME_US_MAX).contains(&us) {
        Ok(us)
    } else {
        Err(FieldError::new(
            field,
            FieldReason::OutOfRange {
                value: us.into(),
                min: 0,
                max: BUSINESS_TIME_US_MAX.into(),
            },
        ))
    }
}

/// A timestamp from microseconds since the epoch.
pub fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        // In 0..1_000_000_000, so it fits.
        nanos: (us.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

fn money(field: &str, money: Option<&ledger_core::pb::Money>) -> Result<Money, FieldError> {
    let money = money.ok_or_else(|| FieldError::new(field, FieldReason::Missing))?;
    let currency =
        Currency::from_code(&money.currency, "currency").map_err(|error| error.within(field))?;
    Ok(Money::new(money.minor_units, currency))
}

/// The fields every command request has.
pub(crate) struct Common<'a> {
    program_id: &'a str,
    member_id: &'a str,
    idempotency_key: &'a str,
    occurred_at: Option<&'a prost_types::Timestamp>,
    expected_version: Option<u64>,
    metadata: &'a HashMap<String, String>,
    dry_run: bool,
}

/// A command request of the Ledger service.
pub(crate) trait CommandRequest: Sync {
    fn common(&self) -> Common<'_>;
    /// The command for `member_id` (already parsed).
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError>;
}

macro_rules! common {
    ($request:ident) => {
        Common {
            program_id: &$request.program_id,
            member_id: &$request.member_id,
            idempotency_key: &$request.idempotency_key,
            occurred_at: $request.occurred_at.as_ref(),
            expected_version: $request.expected_version,
            metadata: &$request.metadata,
            dry_run: $request.dry_run,
        }
    };
}

fn member_command(member_id: MemberId, command: Command) -> LedgerCommand {
    LedgerCommand::Member { member_id, command }
}

impl CommandRequest for pb::EnrollRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(member_command(member_id, Command::Enroll))
    }
}

impl CommandRequest for pb::RecordPurchaseRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(member_command(
            member_id,
            Command::RecordPurchase {
                order_id: self.order_id.clone(),
                spend: money("spend", self.spend.as_ref())?,
                tags: self.tags.clone(),
            },
        ))
    }
}

impl CommandRequest for pb::AwardPointsRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(member_command(
            member_id,
            Command::AwardPoints {
                reason: self.reason.clone(),
                points: Points::new(self.points),
            },
        ))
    }
}

impl CommandRequest for pb::RedeemRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(member_command(
            member_id,
            Command::Redeem {
                redemption_id: self.redemption_id.clone(),
                points: Points::new(self.points),
            },
        ))
    }
}

impl CommandRequest for pb::CancelRedemptionRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(member_command(
            member_id,
            Command::CancelRedemption {
                redemption_id: self.redemption_id.clone(),
            },
        ))
    }
}

impl CommandRequest for pb::RecordReturnRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(member_command(
            member_id,
            Command::RecordReturn {
                order_id: self.order_id.clone(),
                refund: money("refund", self.refund.as_ref())?,
            },
        ))
    }
}

impl CommandRequest for pb::AdjustPointsRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(member_command(
            member_id,
            Command::AdjustPoints {
                reason: self.reason.clone(),
                points: Points::new(self.points),
            },
        ))
    }
}

impl CommandRequest for pb::TransferPointsRequest {
    fn common(&self) -> Common<'_> {
        common!(self)
    }
    fn command(&self, member_id: MemberId) -> Result<LedgerCommand, FieldError> {
        Ok(LedgerCommand::Transfer(TransferPoints {
            transfer_id: self.transfer_id.clone(),
            from_member_id: member_id,
            to_member_id: MemberId::parse("to_member_id", &self.to_member_id)?,
            points: Points::new(self.points),
        }))
    }
}

/// A parsed command: its envelope, its member, and whether it is a dry run.
pub(crate) struct Parsed {
    pub(crate) envelope: Envelope<LedgerCommand>,
    pub(crate) member_id: MemberId,
    pub(crate) dry_run: bool,
}

/// Every field of a command request checked and converted; the first bad
/// one is named.
pub(crate) fn parse(request: &dyn CommandRequest, principal: &str) -> Result<Parsed, FieldError> {
    let common = request.common();
    let program_id = ProgramId::parse("program_id", common.program_id)?;
    let member_id = MemberId::parse("member_id", common.member_id)?;
    let idempotency_key = IdempotencyKey::parse("idempotency_key", common.idempotency_key)?;
    let occurred_at_us = timestamp_us("occurred_at", common.occurred_at)?;
    let metadata = sorted_metadata(common.metadata);
    let command = request.command(member_id.clone())?;
    Ok(Parsed {
        envelope: Envelope {
            program_id,
            idempotency_key,
            occurred_at_us,
            principal: principal.to_owned(),
            metadata,
            expected_version: common.expected_version,
            command,
        },
        member_id,
        dry_run: common.dry_run,
    })
}

/// Request metadata as the envelope carries it: sorted, so that the request
/// hash does not depend on the map's order.
pub(crate) fn sorted_metadata(metadata: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut sorted: Vec<(String, String)> = metadata
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    sorted.sort();
    sorted
}

fn balance_to_wire(balance: &balance::BalanceAsOf) -> pb::Balance {
    pb::Balance {
        balance: balance.balance,
        available: balance.balance.saturating_add(balance.debt),
        pending: balance.pending,
        debt: balance.debt,
        position: balance.as_of_position,
    }
}

/// The decider's figures for a command's answer.
fn balance_after_to_wire(balance: &BalanceAfter) -> pb::Balance {
    let points = balance.points;
    pb::Balance {
        balance: points.balance,
        available: points.balance.saturating_add(points.debt),
        pending: points.pending,
        debt: points.debt,
        position: balance.position,
    }
}

/// A member's balance row as the answer's `Balance`, at the position of
/// the member's last event.
fn member_balance_to_wire(row: &balance::MemberBalance) -> pb::Balance {
    pb::Balance {
        balance: row.balance(),
        available: row.available,
        pending: row.pending,
        debt: row.debt,
        position: row.last_position,
    }
}

impl LedgerService {
    /// Runs one parsed command (or its dry run) and builds its answer.
    async fn run(&self, parsed: Parsed) -> Result<pb::CommandResponse, Status> {
        let span = tracing::Span::current();
        span.record("program", parsed.envelope.program_id.as_str());
        span.record("member", parsed.member_id.as_str());
        self.writer
            .check(&parsed.envelope)
            .map_err(|error| status::invalid_field(&error))?;
        if parsed.dry_run {
            let store = self.store.clone();
            let envelope = parsed.envelope;
            let emitted = tokio::task::spawn_blocking(move || engine::dry_run(&store, &envelope))
                .await
                .map_err(|error| Status::unavailable(error.to_string()))?
                .map_err(|error| status::command(&error))?;
            return Ok(pb::CommandResponse {
                event_count: u32::try_from(emitted.len()).unwrap_or(u32::MAX),
                events: emitted.into_iter().map(|emitted| emitted.event).collect(),
                ..pb::CommandResponse::default()
            });
        }
        let program_id = parsed.envelope.program_id.clone();
        let appended = self
            .writer
            .submit(parsed.envelope)
            .await
            .map_err(|error| status::command(&error))?;
        self.answer(program_id, parsed.member_id, appended).await
    }

    /// The answer to an appended command. A fresh answer carries the
    /// member's points from the decider and the events as encoded, so it
    /// reads nothing; a replay reads its events back from the log, and
    /// takes its points from the remembered entry (or, for an entry written
    /// before entries held them, from the balance view).
    async fn answer(
        &self,
        program_id: ProgramId,
        member_id: MemberId,
        appended: Appended,
    ) -> Result<pb::CommandResponse, Status> {
        let last = appended.last_position();
        tracing::Span::current().record("position", last);
        tracing::debug!(
            position = last,
            events = appended.event_count,
            "command appended"
        );
        let balance = match appended.balance {
            Some(balance) => balance_after_to_wire(&balance),
            None => self.balance_from_view(program_id, member_id, last).await?,
        };
        let events = if appended.replayed {
            self.events_from_log(&appended).await?
        } else {
            appended.events
        };
        Ok(pb::CommandResponse {
            position: last,
            first_position: appended.first_position,
            event_count: appended.event_count,
            stream_version: appended.stream_version,
            replayed: appended.replayed,
            balance: Some(balance),
            events,
        })
    }

    /// The member's points at `position`, read from the balance view once
    /// it reflects that position. The view folds a command within
    /// milliseconds; on a timeout the answer says which position its
    /// figures reflect.
    async fn balance_from_view(
        &self,
        program_id: ProgramId,
        member_id: MemberId,
        position: u64,
    ) -> Result<pb::Balance, Status> {
        self.views
            .wait_for(ViewKind::Balance, position, VIEW_WAIT)
            .await
            .map_err(|error| status::query(&error))?;
        let store = self.store.clone();
        let balance = tokio::task::spawn_blocking(move || {
            balance::balance_at_position(&store, &program_id, &member_id, position)
        })
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?
        .map_err(|error| status::query(&error))?;
        Ok(balance_to_wire(&balance.value))
    }

    /// The events of an earlier command, as the log holds them.
    async fn events_from_log(
        &self,
        appended: &Appended,
    ) -> Result<Vec<ledger_core::pb::Event>, Status> {
        if appended.event_count == 0 {
            return Ok(Vec::new());
        }
        let store = self.store.clone();
        let (first, last) = (appended.first_position, appended.last_position());
        let count = appended.event_count as usize;
        tokio::task::spawn_blocking(move || {
            let mut events = Vec::with_capacity(count);
            for stored in store
                .read_range(first, last, count)
                .map_err(|error| status::storage(&error))?
            {
                let record = stored.decode().map_err(|error| status::storage(&error))?;
                events.extend(record.event);
            }
            Ok::<_, Status>(events)
        })
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?
    }

    async fn command<R: CommandRequest>(
        &self,
        request: &Request<R>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        auth::require(request, auth::Access::Command)?;
        let parsed = parse(request.get_ref(), &auth::principal(request))
            .map_err(|error| status::invalid_field(&error))?;
        self.run(parsed).await.map(Response::new)
    }

    async fn query<T: Send + 'static>(
        &self,
        kind: ViewKind,
        min_position: u64,
        query: impl FnOnce(&Store) -> Result<T, projections::QueryError> + Send + 'static,
    ) -> Result<T, Status> {
        view_query(&self.store, &self.views, kind, min_position, query).await
    }

    /// A query of a few point reads (a view's checkpoint and one row, from
    /// the memtables or the block cache: microseconds), run on the calling
    /// task. Handing it to the blocking pool cost more than the read
    /// itself: a thread woken and switched to and back for each call.
    async fn point_query<T>(
        &self,
        kind: ViewKind,
        min_position: u64,
        query: impl FnOnce(&Store) -> Result<T, projections::QueryError>,
    ) -> Result<T, Status> {
        wait_for_view(&self.views, kind, min_position).await?;
        query(&self.store).map_err(|error| status::query(&error))
    }
}

/// Waits until `kind` reflects `min_position` (0: no wait).
async fn wait_for_view(views: &Runtime, kind: ViewKind, min_position: u64) -> Result<(), Status> {
    if min_position > 0 {
        views
            .wait_for(kind, min_position, VIEW_WAIT)
            .await
            .map_err(|error| status::query(&error))?;
    }
    Ok(())
}

/// Waits for `min_position` on `kind`, then runs `query` on the blocking
/// pool; errors are mapped to their status.
pub(crate) async fn view_query<T: Send + 'static>(
    store: &Store,
    views: &Runtime,
    kind: ViewKind,
    min_position: u64,
    query: impl FnOnce(&Store) -> Result<T, projections::QueryError> + Send + 'static,
) -> Result<T, Status> {
    wait_for_view(views, kind, min_position).await?;
    let store = store.clone();
    tokio::task::spawn_blocking(move || query(&store))
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?
        .map_err(|error| status::query(&error))
}

fn invalid(error: FieldError) -> Status {
    status::invalid_field(&error)
}

/// The program and member a query names.
pub(crate) fn ids(program_id: &str, member_id: &str) -> Result<(ProgramId, MemberId), FieldError> {
    let program = ProgramId::parse("program_id", program_id)?;
    let member = MemberId::parse("member_id", member_id)?;
    Ok((program, member))
}

/// The checked fields of a `GetMember` request; no `as_of` means now.
pub(crate) fn check_get_member(
    request: &pb::GetMemberRequest,
) -> Result<(ProgramId, MemberId, Option<i64>), FieldError> {
    let (program, member) = ids(&request.program_id, &request.member_id)?;
    let as_of_us = match &request.as_of {
        Some(as_of) => Some(business_time_us("as_of", Some(as_of))?),
        None => None,
    };
    Ok((program, member, as_of_us))
}

/// The checked fields of a `GetBalanceAsOf` request.
pub(crate) fn check_get_balance_as_of(
    request: &pb::GetBalanceAsOfRequest,
) -> Result<(ProgramId, MemberId, i64), FieldError> {
    let (program, member) = ids(&request.program_id, &request.member_id)?;
    let at_us = business_time_us("as_of", request.as_of.as_ref())?;
    Ok((program, member, at_us))
}

/// A batch's commands parsed one by one: the outer error refuses the whole
/// batch (too many commands); each entry is its command's own result.
pub(crate) fn parse_batch(
    commands: &[pb::BatchCommand],
    principal: &str,
) -> Result<Vec<Result<Parsed, FieldError>>, FieldError> {
    if commands.len() > SUBMIT_BATCH_COMMANDS_MAX {
        return Err(FieldError::new(
            "commands",
            FieldReason::TooMany {
                count: commands.len(),
                max: SUBMIT_BATCH_COMMANDS_MAX,
            },
        ));
    }
    Ok(commands
        .iter()
        .map(|command| {
            batch_request(command)
                .ok_or_else(|| FieldError::new("command", FieldReason::Missing))
                .and_then(|request| parse(request, principal))
        })
        .collect())
}

/// Why batch entry `index` failed: the status it would have had on its
/// own, with the field its BadRequest detail names (if any) prefixed by
/// the entry (`commands[3].points`), whichever stage refused it.
fn failure(index: usize, status: &Status) -> pb::CommandFailure {
    let field = status
        .get_details_bad_request()
        .and_then(|details| details.field_violations.into_iter().next())
        .map(|violation| format!("commands[{index}].{}", violation.field))
        .unwrap_or_default();
    pb::CommandFailure {
        code: status.code() as i32,
        message: status.message().to_owned(),
        field,
    }
}

pub(crate) fn batch_request(command: &pb::BatchCommand) -> Option<&dyn CommandRequest> {
    use pb::batch_command::Command as C;
    Some(match command.command.as_ref()? {
        C::Enroll(r) => r,
        C::RecordPurchase(r) => r,
        C::AwardPoints(r) => r,
        C::Redeem(r) => r,
        C::CancelRedemption(r) => r,
        C::RecordReturn(r) => r,
        C::AdjustPoints(r) => r,
        C::TransferPoints(r) => r,
    })
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn record_purchase(
        &self,
        request: Request<pb::RecordPurchaseRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn award_points(
        &self,
        request: Request<pb::AwardPointsRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn redeem(
        &self,
        request: Request<pb::RedeemRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn cancel_redemption(
        &self,
        request: Request<pb::CancelRedemptionRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn record_return(
        &self,
        request: Request<pb::RecordReturnRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn adjust_points(
        &self,
        request: Request<pb::AdjustPointsRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn transfer_points(
        &self,
        request: Request<pb::TransferPointsRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command(&request).await
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        auth::require(&request, auth::Access::Command)?;
        let principal = auth::principal(&request);
        let commands = &request.get_ref().commands;
        // Parse all; the good ones go to the writer together, each bad one
        // gets its own failure in place.
        let parsed_all = parse_batch(commands, &principal).map_err(invalid)?;
        let mut results: Vec<Option<pb::BatchResult>> = vec![None; commands.len()];
        let mut to_submit = Vec::new();
        let mut dry_runs = Vec::new();
        for (index, parsed) in parsed_all.into_iter().enumerate() {
            let parsed =
                parsed.and_then(|parsed| self.writer.check(&parsed.envelope).map(|()| parsed));
            match parsed {
                Ok(parsed) if parsed.dry_run => dry_runs.push((index, parsed)),
                Ok(parsed) => to_submit.push((index, parsed)),
                Err(error) => {
                    let failure = failure(index, &status::invalid_field(&error));
                    results[index] = Some(to_batch_result(Err(failure)));
                }
            }
        }
        let (meta, envelopes): (Vec<_>, Vec<_>) = to_submit
            .into_iter()
            .map(|(index, parsed)| {
                (
                    (index, parsed.envelope.program_id.clone(), parsed.member_id),
                    parsed.envelope,
                )
            })
            .unzip();
        let answers = if envelopes.is_empty() {
            Vec::new()
        } else {
            self.writer
                .submit_many(envelopes)
                .await
                .map_err(|error| status::command(&error))?
        };
        for ((index, program_id, member_id), answer) in meta.into_iter().zip(answers) {
            let result = match answer {
                Ok(appended) => self
                    .answer(program_id, member_id, appended)
                    .await
                    .map_err(|status| failure(index, &status)),
                Err(error) => Err(failure(index, &status::command(&error))),
            };
            results[index] = Some(to_batch_result(result));
        }
        for (index, parsed) in dry_runs {
            let result = self
                .run(parsed)
                .await
                .map_err(|status| failure(index, &status));
            results[index] = Some(to_batch_result(result));
        }
        Ok(Response::new(pb::SubmitBatchResponse {
            results: results.into_iter().map(Option::unwrap_or_default).collect(),
        }))
    }

    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::GetBalanceResponse>, Status> {
        let request = request.into_inner();
        let (program, member) = ids(&request.program_id, &request.member_id).map_err(invalid)?;
        let answer = self
            .point_query(ViewKind::Balance, request.min_position, move |store| {
                balance::get_balance(store, &program, &member)
            })
            .await?;
        let row = answer.value;
        let lifetime = row.lifetime;
        Ok(Response::new(pb::GetBalanceResponse {
            position: answer.position,
            balance: Some(member_balance_to_wire(&row)),
            lifetime: Some(pb::Lifetime {
                earned: lifetime.earned,
                awarded: lifetime.awarded,
                redeemed: lifetime.redeemed,
                expired: lifetime.expired,
                reversed: lifetime.reversed,
                forfeited: lifetime.forfeited,
                adjusted: lifetime.adjusted,
                transferred_in: lifetime.transferred_in,
                transferred_out: lifetime.transferred_out,
            }),
            enrolled: row.enrolled,
            open_lots: row.open_lots,
            stream_version: row.stream_version,
            effective_at: Some(timestamp(row.effective_at_us)),
        }))
    }

    async fn get_member(
        &self,
        request: Request<pb::GetMemberRequest>,
    ) -> Result<Response<pb::GetMemberResponse>, Status> {
        let request = request.into_inner();
        let (program, member, as_of_us) = check_get_member(&request).map_err(invalid)?;
        let as_of_us = as_of_us.unwrap_or_else(|| self.clock.now_us());
        wait_for_view(&self.views, ViewKind::Balance, request.min_position).await?;
        let (tier_answer, history, balance) = self
            .query(ViewKind::Tier, request.min_position, move |store| {
                let status = tier::member_tier(store, &program, &member, as_of_us)?;
                let history = tier::tier_history(store, &program, &member)?;
                let balance = balance::get_balance(store, &program, &member)?;
                Ok((status, history.value, balance.value))
            })
            .await?;
        let status = tier_answer.value;
        Ok(Response::new(pb::GetMemberResponse {
            position: tier_answer.position,
            balance: Some(member_balance_to_wire(&balance)),
            tier: status.tier,
            tier_since: Some(timestamp(status.tier_since_us)),
            period_start: Some(timestamp(status.period_start_us)),
            period_end: status.period_end_us.map(timestamp),
            measure: match status.measure {
                ledger_core::domain::QualifyingMeasure::Points => "qualifying_points".into(),
                ledger_core::domain::QualifyingMeasure::Spend => "spend".into(),
            },
            qualifying: status.qualifying,
            window_start: Some(timestamp(status.window_start_us)),
            window_end: Some(timestamp(status.window_end_us)),
            next_tier: status.next_tier.unwrap_or_default(),
            needed_for_next: status.needed_for_next,
            needed_to_keep: status.needed_to_keep,
            history: history
                .into_iter()
                .map(|line| pb::TierChange {
                    position: line.position,
                    from_tier: line.from_tier,
                    to_tier: line.to_tier,
                    reason: line.reason,
                    qualifying: line.qualifying,
                    effective_at: Some(timestamp(line.effective_at_us)),
                })
                .collect(),
        }))
    }

    async fn list_lots(
        &self,
        request: Request<pb::ListLotsRequest>,
    ) -> Result<Response<pb::ListLotsResponse>, Status> {
        let request = request.into_inner();
        let (program, member) = ids(&request.program_id, &request.member_id).map_err(invalid)?;
        let include_closed = request.include_closed;
        let answer = self
            .query(ViewKind::Balance, request.min_position, move |store| {
                balance::list_lots(store, &program, &member, include_closed)
            })
            .await?;
        Ok(Response::new(pb::ListLotsResponse {
            position: answer.position,
            lots: answer
                .value
                .into_iter()
                .map(|lot| pb::LotView {
                    lot_id: lot.lot_id,
                    points: lot.points,
                    remaining: lot.remaining,
                    earned_at: Some(timestamp(lot.earned_at_us)),
                    available_at: Some(timestamp(lot.available_at_us)),
                    expires_at: lot.expires_at_us.map(timestamp),
                    pending: lot.pending,
                })
                .collect(),
        }))
    }

    async fn get_statement(
        &self,
        request: Request<pb::GetStatementRequest>,
    ) -> Result<Response<pb::GetStatementResponse>, Status> {
        let request = request.into_inner();
        let (program, member) = ids(&request.program_id, &request.member_id).map_err(invalid)?;
        let page_size = request.page_size as usize;
        let token = (!request.page_token.is_empty()).then_some(request.page_token);
        let answer = self
            .query(ViewKind::Balance, request.min_position, move |store| {
                balance::statement(store, &program, &member, page_size, token.as_deref())
            })
            .await?;
        Ok(Response::new(pb::GetStatementResponse {
            position: answer.position,
            lines: answer
                .value
                .lines
                .into_iter()
                .map(|line| pb::StatementLine {
                    position: line.position,
                    kind: line.kind.name().into(),
                    points: line.points,
                    balance_after: line.balance_after,
                    pending_after: line.pending_after,
                    debt_after: line.debt_after,
                    occurred_at: Some(timestamp(line.occurred_at_us)),
                    effective_at: Some(timestamp(line.effective_at_us)),
                    reference: line.reference,
                    reason: line.reason,
                })
                .collect(),
            next_page_token: answer.value.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_balance_as_of(
        &self,
        request: Request<pb::GetBalanceAsOfRequest>,
    ) -> Result<Response<pb::GetBalanceAsOfResponse>, Status> {
        let request = request.into_inner();
        let (program, member, at_us) = check_get_balance_as_of(&request).map_err(invalid)?;
        let answer = self
            .query(ViewKind::Balance, request.min_position, move |store| {
                balance::balance_as_of(store, &program, &member, at_us)
            })
            .await?;
        Ok(Response::new(pb::GetBalanceAsOfResponse {
            position: answer.position,
            as_of: Some(timestamp(at_us)),
            balance: Some(balance_to_wire(&answer.value)),
        }))
    }
}

fn to_batch_result(result: Result<pb::CommandResponse, pb::CommandFailure>) -> pb::BatchResult {
    pb::BatchResult {
        result: Some(match result {
            Ok(response) => pb::batch_result::Result::Ok(response),
            Err(failure) => pb::batch_result::Result::Error(failure),
        }),
    }
}
