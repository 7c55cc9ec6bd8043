//! The Admin service: program definitions and rules changes through the
//! writer, program reads from the log, and the views' status and rebuild.

use crate::auth;
use crate::ledger::{sorted_metadata, timestamp, timestamp_us};
use crate::pb;
use crate::status;
use ledger_core::domain::{ProgramCommand, ProgramRules};
use ledger_core::engine::{self, LedgerCommand};
use ledger_core::error::{CommandError, FieldError};
use ledger_core::ids::{IdempotencyKey, ProgramId, StreamName};
use ledger_core::store::Store;
use ledger_core::writer::{Envelope, WriterHandle};
use projections::runtime::ViewKind;
use projections::{ProjectionStatus, Runtime, WorkerState};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Admin service.
pub struct AdminService {
    store: Store,
    writer: WriterHandle<LedgerCommand>,
    views: Arc<Runtime>,
}

impl AdminService {
    /// A service over the writer and the views.
    pub fn new(store: Store, writer: WriterHandle<LedgerCommand>, views: Arc<Runtime>) -> Self {
        AdminService {
            store,
            writer,
            views,
        }
    }

    async fn program_command(
        &self,
        envelope: Result<Envelope<LedgerCommand>, FieldError>,
        dry_run: bool,
    ) -> Result<Response<pb::ProgramResponse>, Status> {
        let invalid = |error: FieldError| status::invalid_field(&error);
        let envelope = envelope.map_err(invalid)?;
        self.writer.check(&envelope).map_err(invalid)?;
        // A rules field the domain refuses is named inside `rules`.
        let rules_error = |mut error: CommandError| {
            if let CommandError::Rejected(rejection) = &mut error
                && let Some(field) = &mut rejection.field
            {
                *field = format!("rules.{field}");
            }
            status::command(&error)
        };
        if dry_run {
            let store = self.store.clone();
            let emitted = tokio::task::spawn_blocking(move || engine::dry_run(&store, &envelope))
                .await
                .map_err(|error| Status::unavailable(error.to_string()))?
                .map_err(rules_error)?;
            return Ok(Response::new(pb::ProgramResponse {
                events: emitted.into_iter().map(|emitted| emitted.event).collect(),
                ..pb::ProgramResponse::default()
            }));
        }
        let appended = self.writer.submit(envelope).await.map_err(rules_error)?;
        let store = self.store.clone();
        let (first, last) = (appended.first_position, appended.last_position());
        let count = appended.event_count as usize;
        let events = tokio::task::spawn_blocking(move || store.read_range(first, last, count))
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?
            .map_err(|error| status::storage(&error))?
            .iter()
            .map(|stored| stored.decode().map(|record| record.event))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| status::storage(&error))?;
        Ok(Response::new(pb::ProgramResponse {
            position: appended.last_position(),
            stream_version: appended.stream_version,
            replayed: appended.replayed,
            events: events.into_iter().flatten().collect(),
        }))
    }
}

/// The envelope of a `DefineProgram` request, every field checked.
pub(crate) fn define_program_envelope(
    request: &pb::DefineProgramRequest,
    principal: String,
) -> Result<Envelope<LedgerCommand>, FieldError> {
    program_envelope(
        principal,
        ProgramFields {
            program_id: &request.program_id,
            idempotency_key: &request.idempotency_key,
            occurred_at: request.occurred_at.as_ref(),
            expected_version: request.expected_version,
            metadata: &request.metadata,
            rules: request.rules.as_ref(),
        },
        |rules| ProgramCommand::DefineProgram { rules },
    )
}

/// The envelope of a `ChangeRules` request, every field checked.
pub(crate) fn change_rules_envelope(
    request: &pb::ChangeRulesRequest,
    principal: String,
) -> Result<Envelope<LedgerCommand>, FieldError> {
    program_envelope(
        principal,
        ProgramFields {
            program_id: &request.program_id,
            idempotency_key: &request.idempotency_key,
            occurred_at: request.occurred_at.as_ref(),
            expected_version: request.expected_version,
            metadata: &request.metadata,
            rules: request.rules.as_ref(),
        },
        |rules| ProgramCommand::ChangeRules { rules },
    )
}

/// The fields both program commands have.
struct ProgramFields<'a> {
    program_id: &'a str,
    idempotency_key: &'a str,
    occurred_at: Option<&'a prost_types::Timestamp>,
    expected_version: Option<u64>,
    metadata: &'a HashMap<String, String>,
    rules: Option<&'a ledger_core::pb::ProgramRules>,
}

fn program_envelope(
    principal: String,
    fields: ProgramFields<'_>,
    command: fn(ProgramRules) -> ProgramCommand,
) -> Result<Envelope<LedgerCommand>, FieldError> {
    let rules = fields
        .rules
        .ok_or_else(|| FieldError::new("rules", ledger_core::error::FieldReason::Missing))?;
    let rules = ProgramRules::try_from(rules).map_err(|mut error| {
        error.field = format!("rules.{}", error.field);
        error
    })?;
    Ok(Envelope {
        program_id: ProgramId::parse("program_id", fields.program_id)?,
        idempotency_key: IdempotencyKey::parse("idempotency_key", fields.idempotency_key)?,
        occurred_at_us: timestamp_us("occurred_at", fields.occurred_at)?,
        principal,
        metadata: sorted_metadata(fields.metadata),
        expected_version: fields.expected_version,
        command: LedgerCommand::Program(command(rules)),
    })
}

/// The view a `GetProjectionStatus` request names; `None` (an empty name)
/// means every view.
pub(crate) fn projection_name(name: &str) -> Result<Option<ViewKind>, FieldError> {
    if name.is_empty() {
        Ok(None)
    } else {
        ViewKind::parse("name", name).map(Some)
    }
}

/// A program as its stream says: version, rules in force, when defined and
/// when the rules were last set.
fn read_program(store: &Store, program_id: &ProgramId) -> Result<pb::GetProgramResponse, Status> {
    let stream = StreamName::program(program_id);
    let mut answer = pb::GetProgramResponse {
        program_id: program_id.to_string(),
        ..pb::GetProgramResponse::default()
    };
    for stored in store
        .read_stream(&stream, 1, usize::MAX)
        .map_err(|error| status::storage(&error))?
    {
        let record = stored.decode().map_err(|error| status::storage(&error))?;
        answer.stream_version = record.stream_version;
        use ledger_core::pb::event::Kind;
        let rules = match record.event.and_then(|event| event.kind) {
            Some(Kind::ProgramDefined(defined)) => {
                answer.defined_at = Some(timestamp(record.occurred_at_us));
                defined.rules
            }
            Some(Kind::ProgramRulesChanged(changed)) => changed.rules,
            _ => None,
        };
        if rules.is_some() {
            answer.rules = rules;
            answer.rules_since = Some(timestamp(record.occurred_at_us));
        }
    }
    if answer.stream_version == 0 {
        return Err(Status::not_found(format!(
            "program {program_id} is not defined"
        )));
    }
    Ok(answer)
}

fn status_to_wire(status: ProjectionStatus) -> pb::ProjectionStatus {
    let (state, failed_position, error) = match status.state {
        WorkerState::CatchingUp => ("catching_up", 0, String::new()),
        WorkerState::Live => ("live", 0, String::new()),
        WorkerState::Failed { position, error } => ("failed", position, error),
        WorkerState::Retrying {
            position, error, ..
        } => ("retrying", position, error),
        WorkerState::Stopped => ("stopped", 0, String::new()),
    };
    let (rebuild_generation, rebuild_checkpoint) = status.rebuild.unwrap_or((0, 0));
    pb::ProjectionStatus {
        name: status.name.into(),
        generation: status.generation,
        checkpoint: status.checkpoint,
        head: status.head,
        lag_events: status.lag_events,
        lag_ms: status.lag_us / 1_000,
        state: state.into(),
        failed_position,
        error,
        rebuild_generation,
        rebuild_checkpoint,
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn define_program(
        &self,
        request: Request<pb::DefineProgramRequest>,
    ) -> Result<Response<pb::ProgramResponse>, Status> {
        let envelope = define_program_envelope(request.get_ref(), auth::principal(&request));
        self.program_command(envelope, request.get_ref().dry_run)
            .await
    }

    async fn change_rules(
        &self,
        request: Request<pb::ChangeRulesRequest>,
    ) -> Result<Response<pb::ProgramResponse>, Status> {
        let envelope = change_rules_envelope(request.get_ref(), auth::principal(&request));
        self.program_command(envelope, request.get_ref().dry_run)
            .await
    }

    async fn get_program(
        &self,
        request: Request<pb::GetProgramRequest>,
    ) -> Result<Response<pb::GetProgramResponse>, Status> {
        let program_id = ProgramId::parse("program_id", &request.get_ref().program_id)
            .map_err(|error| status::invalid_field(&error))?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read_program(&store, &program_id))
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?
            .map(Response::new)
    }

    async fn list_programs(
        &self,
        _request: Request<pb::ListProgramsRequest>,
    ) -> Result<Response<pb::ListProgramsResponse>, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut programs = Vec::new();
            for program_id in store
                .program_ids()
                .map_err(|error| status::storage(&error))?
            {
                let program = read_program(&store, &program_id)?;
                let rules = program.rules.unwrap_or_default();
                programs.push(pb::ProgramSummary {
                    program_id: program.program_id,
                    name: rules.name,
                    currency: rules.currency,
                    stream_version: program.stream_version,
                });
            }
            Ok(Response::new(pb::ListProgramsResponse { programs }))
        })
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?
    }

    async fn get_projection_status(
        &self,
        request: Request<pb::GetProjectionStatusRequest>,
    ) -> Result<Response<pb::GetProjectionStatusResponse>, Status> {
        let kind = projection_name(&request.get_ref().name)
            .map_err(|error| status::invalid_field(&error))?;
        let statuses = match kind {
            None => self.views.status(),
            Some(kind) => vec![
                self.views
                    .status_of(kind)
                    .map_err(|error| status::query(&error))?,
            ],
        };
        Ok(Response::new(pb::GetProjectionStatusResponse {
            projections: statuses.into_iter().map(status_to_wire).collect(),
        }))
    }

    async fn rebuild_projection(
        &self,
        request: Request<pb::RebuildProjectionRequest>,
    ) -> Result<Response<pb::RebuildProjectionResponse>, Status> {
        let kind = ViewKind::parse("name", &request.get_ref().name)
            .map_err(|error| status::invalid_field(&error))?;
        let outcome = self
            .views
            .rebuild(kind)
            .await
            .map_err(|error| match error {
                projections::QueryError::View(projections::ViewError::Event {
                    position,
                    reason,
                }) => Status::failed_precondition(format!(
                    "the {} view cannot fold the event at position {position}: {reason}; \
                         the previous rows stay active",
                    kind.name()
                )),
                other => status::query(&other),
            })?;
        Ok(Response::new(pb::RebuildProjectionResponse {
            name: kind.name().into(),
            generation: outcome.generation,
            position: outcome.position,
        }))
    }
}
