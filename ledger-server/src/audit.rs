//! The Audit service: the log as stored, record by record.

use crate::pb;
use crate::status;
use ledger_core::chain::Head;
use ledger_core::error::{FieldError, FieldReason};
use ledger_core::ids::StreamName;
use ledger_core::limits::READ_STREAM_RECORDS_MAX;
use ledger_core::reader::{self, RecordStream};
use ledger_core::store::{Store, StoredRecord, VerifyOutcome};
use std::pin::Pin;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Verification progress is reported every this many records.
const VERIFY_PROGRESS_EVERY_RECORDS: u64 = 65_536;

type Records = Pin<Box<dyn Stream<Item = Result<pb::AuditRecord, Status>> + Send>>;
type VerifyStream = Pin<Box<dyn Stream<Item = Result<pb::VerifyResponse, Status>> + Send>>;

/// Serves the Audit calls from the store and the writer's head.
#[derive(Clone)]
pub struct AuditService {
    store: Store,
    head: watch::Receiver<Head>,
    stopping: watch::Receiver<bool>,
}

impl AuditService {
    /// A service over `store`, following `head`. Open streams end with
    /// UNAVAILABLE once `stopping` turns true, so that a graceful shutdown
    /// is not held up by subscriptions that would otherwise never end.
    pub fn new(store: Store, head: watch::Receiver<Head>, stopping: watch::Receiver<bool>) -> Self {
        AuditService {
            store,
            head,
            stopping,
        }
    }
}

fn to_wire(record: StoredRecord, stream_version: u64) -> pb::AuditRecord {
    pb::AuditRecord {
        position: record.position,
        record: record.bytes,
        hash: record.hash.0.to_vec(),
        stream_version,
    }
}

fn head_to_wire(head: Head) -> pb::Head {
    pb::Head {
        position: head.position,
        hash: head.hash.0.to_vec(),
    }
}

/// Completes once the server starts stopping (or is gone).
async fn until_stopping(stopping: &mut watch::Receiver<bool>) {
    while !*stopping.borrow_and_update() {
        if stopping.changed().await.is_err() {
            return;
        }
    }
}

/// Turns a reader's channel into a gRPC stream; a storage error or the
/// server stopping ends it.
fn records(stream: RecordStream, mut stopping: watch::Receiver<bool>) -> Records {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut stream = stream;
        loop {
            let item = tokio::select! {
                item = stream.recv() => item,
                () = until_stopping(&mut stopping) => {
                    // The client learns why its stream ended, if still there.
                    let _ = tx.send(Err(Status::unavailable("the server is shutting down"))).await;
                    return;
                }
            };
            let Some(item) = item else { return };
            let message = item
                .map(|record| to_wire(record, 0))
                .map_err(|e| status::storage(&e));
            let failed = message.is_err();
            if tx.send(message).await.is_err() || failed {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Checks a `ReadAll` range. An explicit range must not be inverted (an
/// empty answer would read as "nothing there"); from the head on is fine,
/// and empty.
pub(crate) fn check_read_all(request: &pb::ReadAllRequest) -> Result<(), FieldError> {
    if request.to_position != 0 && request.from_position > request.to_position {
        return Err(FieldError::new(
            "from_position",
            FieldReason::OutOfRange {
                value: request.from_position.into(),
                min: 0,
                max: request.to_position.into(),
            },
        ));
    }
    Ok(())
}

/// The stream a `ReadStream` request names and how many records it may
/// read.
pub(crate) fn check_read_stream(
    request: &pb::ReadStreamRequest,
) -> Result<(StreamName, usize), FieldError> {
    let stream = StreamName::parse("stream", &request.stream)?;
    let max = match request.max_count {
        0 => READ_STREAM_RECORDS_MAX,
        count => (count as usize).min(READ_STREAM_RECORDS_MAX),
    };
    Ok((stream, max))
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    type ReadAllStream = Records;
    type ReadStreamStream = Records;
    type SubscribeStream = Records;
    type VerifyStream = VerifyStream;

    async fn read_all(
        &self,
        request: Request<pb::ReadAllRequest>,
    ) -> Result<Response<Records>, Status> {
        let request = request.into_inner();
        check_read_all(&request).map_err(|e| status::invalid_field(&e))?;
        let to = match request.to_position {
            0 => self.head.borrow().position,
            to => to,
        };
        let stream = reader::read_range(
            self.store.clone(),
            self.head.clone(),
            request.from_position,
            to,
        );
        Ok(Response::new(records(stream, self.stopping.clone())))
    }

    async fn read_stream(
        &self,
        request: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<Records>, Status> {
        let request = request.into_inner();
        let (stream, max) = check_read_stream(&request).map_err(|e| status::invalid_field(&e))?;
        let store = self.store.clone();
        let from_version = request.from_version;
        let found = tokio::task::spawn_blocking(move || {
            let positions = store.stream_positions(&stream, from_version, max)?;
            // A stream with no record names no program or member there is.
            if positions.is_empty() && store.stream_version(&stream)? == 0 {
                return Ok(Err(Status::not_found(format!(
                    "stream {stream} has no records"
                ))));
            }
            let mut out = Vec::with_capacity(positions.len());
            for (version, position) in positions {
                for record in store.read_range(position, position, 1)? {
                    out.push(Ok(to_wire(record, version)));
                }
            }
            Ok::<_, ledger_core::error::StoreError>(Ok(out))
        })
        .await
        .map_err(|error| Status::unavailable(format!("read task failed: {error}")))?
        .map_err(|error| status::storage(&error))??;
        Ok(Response::new(Box::pin(tokio_stream::iter(found))))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Records>, Status> {
        let from = request.into_inner().from_position;
        let stream = reader::subscribe(self.store.clone(), self.head.clone(), from);
        Ok(Response::new(records(stream, self.stopping.clone())))
    }

    async fn get_head(
        &self,
        _request: Request<pb::GetHeadRequest>,
    ) -> Result<Response<pb::Head>, Status> {
        Ok(Response::new(head_to_wire(*self.head.borrow())))
    }

    async fn verify(
        &self,
        _request: Request<pb::VerifyRequest>,
    ) -> Result<Response<VerifyStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let progress_tx = tx.clone();
            let mut last_sent = 0u64;
            let outcome = store.verify(|progress| {
                if progress.checked - last_sent >= VERIFY_PROGRESS_EVERY_RECORDS {
                    last_sent = progress.checked;
                    let message = pb::VerifyResponse {
                        kind: Some(pb::verify_response::Kind::Progress(pb::VerifyProgress {
                            checked: progress.checked,
                            total: progress.total,
                        })),
                    };
                    // A client that hung up gets no progress; the result is
                    // still computed and logged below.
                    let _ = progress_tx.blocking_send(Ok(message));
                }
            });
            let message = match outcome {
                Ok(VerifyOutcome::Verified { head }) => Ok(pb::VerifyResult {
                    verified: true,
                    head: Some(head_to_wire(head)),
                    first_bad_position: 0,
                    reason: String::new(),
                }),
                Ok(VerifyOutcome::Mismatch { position, reason }) => {
                    tracing::error!(position, %reason, "chain verification failed");
                    Ok(pb::VerifyResult {
                        verified: false,
                        head: None,
                        first_bad_position: position,
                        reason,
                    })
                }
                Err(error) => Err(status::storage(&error)),
            };
            let message = message.map(|result| pb::VerifyResponse {
                kind: Some(pb::verify_response::Kind::Result(result)),
            });
            // As above: nobody to tell if the client left.
            let _ = tx.blocking_send(message);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
