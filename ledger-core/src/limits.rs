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
/// Caller references: order id, redemption id, transfer id, campaign id.
pub const REFERENCE_BYTES_MAX: usize = 128;
/// Free-text reason of an award or an adjustment.
pub const REASON_BYTES_MAX: usize = 256;
/// A program's display name.
pub const PROGRAM_NAME_BYTES_MAX: usize = 128;
/// A tier's name.
pub const TIER_NAME_BYTES_MAX: usize = 64;
/// One purchase or campaign tag.
pub const TAG_BYTES_MAX: usize = 64;
/// Tags on one purchase, and tags in one campaign's condition.
pub const PURCHASE_TAGS_MAX: usize = 16;
/// Tiers in one program's rules.
pub const PROGRAM_TIERS_MAX: usize = 16;
/// Campaigns in one program's rules.
pub const PROGRAM_CAMPAIGNS_MAX: usize = 64;
/// Spend or refund of one purchase. 10^15 minor units keeps
/// `spend x earn_rate_bps x multiplier_bps` exact in i128 and any sum of a
/// purchase's refunds inside i64.
pub const SPEND_MINOR_UNITS_MAX: i64 = 1_000_000_000_000_000;
/// Earn rate: 1,000 points per major currency unit at most.
pub const EARN_RATE_BPS_MAX: i64 = 10_000_000;
/// Tier and campaign multipliers: 50x at most.
pub const MULTIPLIER_BPS_MAX: i64 = 500_000;
/// Tier thresholds, in the unit of the tier measure (points or minor units).
pub const TIER_THRESHOLD_MAX: i64 = SPEND_MINOR_UNITS_MAX;
/// Liability value: minor units per `point_value_per_points` points.
pub const POINT_VALUE_MINOR_UNITS_MAX: i64 = 1_000_000_000;
/// Liability value: the points that `point_value_minor_units` buys.
pub const POINT_VALUE_PER_POINTS_MAX: i64 = 1_000_000_000;
/// Pending period (the returns window) of purchase points.
pub const PENDING_DAYS_MAX: u32 = 366;
/// Lot expiry "after N days".
pub const LOT_EXPIRY_DAYS_MAX: u32 = 36_600;
/// Lot expiry "at the end of the Nth month after the month earned".
pub const LOT_EXPIRY_MONTHS_MAX: u32 = 1_200;
/// Whole-balance expiry after this many days without an earn or a redeem.
pub const INACTIVITY_EXPIRY_DAYS_MAX: u32 = 36_600;
/// Reporting offset from UTC, minutes: UTC-12:00 ..= UTC+14:00.
pub const UTC_OFFSET_MINUTES_MIN: i32 = -720;
/// See [`UTC_OFFSET_MINUTES_MIN`].
pub const UTC_OFFSET_MINUTES_MAX: i32 = 840;
/// RFM window, days (ten years).
pub const RFM_WINDOW_DAYS_MAX: u32 = 3_660;
/// RFM window when the rules leave it 0.
pub const RFM_WINDOW_DAYS_DEFAULT: u32 = 365;
/// Rolling tier window.
pub const TIER_WINDOW_DAYS_MAX: u32 = 1_098;
/// Days of qualifying history a member keeps, counted back from the earlier
/// of its clock and the start of its tier period: every window a decision
/// can read (rolling, up to `TIER_WINDOW_DAYS_MAX` days, or the calendar
/// year that a period end closes) starts at most this many days before one
/// of the two.
pub const QUALIFYING_HISTORY_DAYS_MAX: i64 = TIER_WINDOW_DAYS_MAX as i64 + 2;
/// Purchases and redemptions are remembered this long (business time) for
/// returns and cancellations; older ones are forgotten so that a member's
/// state stays bounded, and a reference to one is then unknown.
pub const RECORD_RETENTION_DAYS: i64 = 732;
/// Latest business time accepted: 9999-12-31T23:59:59.999999Z. Together with
/// the day limits above it keeps every derived time (expiry dates, period
/// ends) far inside i64.
pub const BUSINESS_TIME_US_MAX: i64 = 253_402_300_799_999_999;
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
pub const STREAM_VERSION_CACHE_ENTRIES_MAX: usize = 250_000;
/// Records read from RocksDB per chunk by readers and subscriptions.
pub const READ_CHUNK_RECORDS: usize = 1_024;
/// Records per stream read request.
pub const READ_STREAM_RECORDS_MAX: usize = 10_000;
/// Memory RocksDB's memtables of one store may take together, over every
/// column family; reaching it flushes the largest.
pub const MEMTABLES_BYTES_MAX: usize = 128 << 20;
/// Write-ahead log kept before RocksDB flushes the column families that
/// hold the oldest of it.
pub const WAL_BYTES_MAX: u64 = 256 << 20;
/// RocksDB's block cache, shared by every column family of a store.
pub const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// Memtable size of each RocksDB column family: a quarter of RocksDB's
/// default, so that the skip lists every row is inserted into stay small
/// (measured with the write options beside it, in `store::db_options`).
/// After a no-space error RocksDB resumes writing only once this much is
/// free again (its `SstFileManager` reserves one write buffer).
pub const ROCKSDB_WRITE_BUFFER_BYTES: usize = 16 << 20;
/// Target size of the first level below L0 in the column families whose
/// keys land at random places (everything but the log and the chain). With
/// RocksDB's default (256 MiB) and levels sized from the bottom up, every
/// L0 compaction of such a family rewrites all of it until it is 256 MiB,
/// so compaction's CPU per write grows with the store.
pub const ROCKSDB_LEVEL_BASE_BYTES: u64 = 32 << 20;
/// Target size of one table file in those families: a compaction from the
/// base level down takes a few files, not the whole level.
pub const ROCKSDB_TARGET_FILE_BYTES: u64 = 8 << 20;
/// The log takes no new batch while the data directory's filesystem has
/// less free space than this. What RocksDB may still write by itself after
/// our writes stop (flushing memtables already full, the MANIFEST, the views
/// catching up) has room, so the disk never fills under a write of ours and
/// RocksDB never enters its read-only error state because of one.
pub const DISK_FREE_LOG_RESERVE_BYTES_DEFAULT: u64 = 256 << 20;
/// Rebuildable writes (view rows and checkpoints, the scheduler's cursor)
/// stop below this, a lower mark than the log's: once the log stops, the
/// views can still fold everything it acknowledged, so reads stay current.
pub const DISK_FREE_VIEWS_RESERVE_BYTES_DEFAULT: u64 = 128 << 20;

// The writer must be able to take a whole SubmitBatch in one queue slot and
// one group commit, or a maximal batch could never be accepted.
const _: () = assert!(SUBMIT_BATCH_COMMANDS_MAX <= WRITER_QUEUE_COMMANDS_DEFAULT);
const _: () = assert!(SUBMIT_BATCH_COMMANDS_MAX <= WRITER_BATCH_COMMANDS_DEFAULT);
const _: () = assert!(POINTS_PER_COMMAND_MIN > 0);
// The views keep writing after the log has stopped, never the other way
// round, and both stop while RocksDB still has room to flush a memtable.
const _: () = assert!(DISK_FREE_VIEWS_RESERVE_BYTES_DEFAULT <= DISK_FREE_LOG_RESERVE_BYTES_DEFAULT);
const _: () =
    assert!(DISK_FREE_VIEWS_RESERVE_BYTES_DEFAULT >= 2 * ROCKSDB_WRITE_BUFFER_BYTES as u64);
// A tier threshold may lie beyond what any one purchase earns.
const _: () = assert!(POINTS_PER_COMMAND_MAX <= TIER_THRESHOLD_MAX);
const _: () = assert!(QUALIFYING_HISTORY_DAYS_MAX > TIER_WINDOW_DAYS_MAX as i64);
// A calendar-year window (up to 366 days) must fit the kept history too.
const _: () = assert!(QUALIFYING_HISTORY_DAYS_MAX > 366);
// The worst earn before its range check, spend x rate x multiplier, must be
// exact in i128: 10^15 x 10^7 x 5x10^5 = 5x10^27 < 2^127.
const _: () = assert!(
    (SPEND_MINOR_UNITS_MAX as i128) * (EARN_RATE_BPS_MAX as i128) * (MULTIPLIER_BPS_MAX as i128)
        < i128::MAX / 1_000
);
