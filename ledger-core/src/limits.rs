//! Every limit of the engine, each a named constant with its unit last.
//!
//! A limit exceeded at the edge (a request, a file) is an error naming the
//! field; a limit exceeded inside the core is a bug and is asserted.

/// Member ids are 1..=128 bytes of `[A-Za-z0-9._:@-]`.
pub const MEMBER_ID_BYTES_MAX: usize = 128;
/// Program ids follow the member id alphabet, 1..=64 bytes.
pub const PROGRAM_ID_BYTES_MAX: usize = 64;
/// Idempotency keys are 1..=128 bytes of visible ASCII.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;
/// At most this many metadata entries per command.
pub const METADATA_ENTRIES_MAX: usize = 16;
/// Keys plus values of all metadata entries of one command.
pub const METADATA_BYTES_MAX: usize = 1024;
/// Points carried by one command: 1..=10^12.
pub const POINTS_PER_COMMAND_MIN: i64 = 1;
/// Upper bound of the points one command may carry.
pub const POINTS_PER_COMMAND_MAX: i64 = 1_000_000_000_000;
/// Commands in one SubmitBatch call.
pub const SUBMIT_BATCH_COMMANDS_MAX: usize = 1_000;
/// Commands waiting in the writer's queue before callers get "overloaded".
pub const WRITER_QUEUE_COMMANDS_DEFAULT: usize = 10_000;
/// Commands the writer decides into one group commit (one fsync).
pub const WRITER_BATCH_COMMANDS_DEFAULT: usize = 1_000;
/// Commands whose `occurred_at` is further ahead of the engine clock are rejected.
pub const FUTURE_SKEW_DEFAULT_US: i64 = 5 * 60 * 1_000_000;
/// Lines in one statement page.
pub const STATEMENT_PAGE_LINES_MAX: usize = 1_000;
/// Events one command may produce (a transfer makes two; system commands a few more).
pub const COMMAND_EVENTS_MAX: usize = 64;
/// Stream versions the writer keeps in memory before it starts afresh.
pub const STREAM_VERSION_CACHE_ENTRIES_MAX: usize = 1_000_000;
/// Records read from RocksDB per chunk by readers and subscriptions.
pub const READ_CHUNK_RECORDS: usize = 1_024;
/// Records per stream read request.
pub const READ_STREAM_RECORDS_MAX: usize = 10_000;

// The writer must be able to take a whole SubmitBatch in one queue slot and
// one group commit, or a maximal batch could never be accepted.
const _: () = assert!(SUBMIT_BATCH_COMMANDS_MAX <= WRITER_QUEUE_COMMANDS_DEFAULT);
const _: () = assert!(SUBMIT_BATCH_COMMANDS_MAX <= WRITER_BATCH_COMMANDS_DEFAULT);
const _: () = assert!(POINTS_PER_COMMAND_MIN > 0);
