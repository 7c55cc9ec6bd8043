//! The event store: one RocksDB instance per data directory.
//!
//! Column families (see ARCHITECTURE.md for the full key layout):
//! - `log`: `be_u64(position)` -> `EventRecord` bytes (protobuf), never rewritten;
//! - `stream_index`: `stream || 0 || be_u64(version)` -> `be_u64(position)`;
//! - `idempotency`: `program || 0 || key` -> `IdempotencyEntry` (protobuf);
//! - `chain`: `be_u64(position)` -> 32-byte hash, and `head` -> position || hash;
//! - `snapshots`, `due`: the write model and the scheduler's due indexes;
//! - `views`: projection rows and checkpoints (rebuildable, written without fsync).
//!
//! Every append is one `WriteBatch` written with sync on; the head is in the
//! same batch as the records it covers, so a crash leaves either the whole
//! batch or none of it.

pub mod keys;
mod ordered;
mod verify;

pub use ordered::OrderedBatch;
pub use verify::{VerifyOutcome, VerifyProgress};

use crate::chain::{ChainHash, Head};
use crate::error::StoreError;
use crate::ids::{IdempotencyKey, ProgramId, StreamName};
use crate::limits::{
    BLOCK_CACHE_BYTES, DISK_FREE_LOG_RESERVE_BYTES_DEFAULT, DISK_FREE_VIEWS_RESERVE_BYTES_DEFAULT,
    MEMTABLES_BYTES_MAX, ROCKSDB_LEVEL_BASE_BYTES, ROCKSDB_TARGET_FILE_BYTES,
    ROCKSDB_WRITE_BUFFER_BYTES, WAL_BYTES_MAX,
};
use crate::pb;
use prost::Message;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Column family of the log records.
pub const CF_LOG: &str = "log";
/// Column family of the per-stream index.
pub const CF_STREAM_INDEX: &str = "stream_index";
/// Column family of the idempotency index.
pub const CF_IDEMPOTENCY: &str = "idempotency";
/// Column family of the chain hashes and the head.
pub const CF_CHAIN: &str = "chain";
/// Column family of write-model snapshots.
pub const CF_SNAPSHOTS: &str = "snapshots";
/// Column family of the scheduler's due indexes.
pub const CF_DUE: &str = "due";
/// Column family of projection views and checkpoints.
pub const CF_VIEWS: &str = "views";

/// Every column family of a store.
pub const COLUMN_FAMILIES: [&str; 7] = [
    CF_LOG,
    CF_STREAM_INDEX,
    CF_IDEMPOTENCY,
    CF_CHAIN,
    CF_SNAPSHOTS,
    CF_DUE,
    CF_VIEWS,
];

/// One record as stored: its position, exact bytes and chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Global position.
    pub position: u64,
    /// The exact stored `EventRecord` bytes.
    pub bytes: Vec<u8>,
    /// The chain hash at `position`.
    pub hash: ChainHash,
}

impl StoredRecord {
    /// Decodes the record, checking that it claims its own position.
    pub fn decode(&self) -> Result<pb::EventRecord, StoreError> {
        decode_record(self.position, &self.bytes)
    }
}

/// Decodes stored record bytes found under `position`.
pub fn decode_record(position: u64, bytes: &[u8]) -> Result<pb::EventRecord, StoreError> {
    let record = pb::EventRecord::decode(bytes).map_err(|error| StoreError::Corrupt {
        position,
        reason: format!("record does not decode: {error}"),
    })?;
    if record.position != position {
        return Err(StoreError::Corrupt {
            position,
            reason: format!("record claims position {}", record.position),
        });
    }
    Ok(record)
}

/// Failures a test can inject into the store's write seams: the next `n`
/// durable batch writes (the log) or relaxed writes (views, cursors) fail
/// before reaching RocksDB, as a failed fsync would. A test can also hold
/// durable writes at the seam, as a slow fsync would, count them, and make
/// the thread writing the next one panic.
#[derive(Debug, Default)]
pub struct WriteFaults {
    fail_next: AtomicU64,
    fail_next_relaxed: AtomicU64,
    panic_next: AtomicU64,
    /// Set while durable writes are held; read without the lock on every
    /// write.
    holding: AtomicBool,
    held: Mutex<Held>,
    held_changed: Condvar,
    durable_writes: AtomicU64,
}

/// Durable writes held at the seam.
#[derive(Debug, Default)]
struct Held {
    on: bool,
    waiting: u64,
}

impl WriteFaults {
    /// Makes the next `count` durable batch writes fail (0 clears).
    pub fn fail_next_writes(&self, count: u64) {
        self.fail_next.store(count, Ordering::SeqCst);
    }

    /// Makes the next `count` relaxed or unlogged writes and flushes fail
    /// (0 clears; `u64::MAX` fails them until cleared).
    pub fn fail_next_relaxed_writes(&self, count: u64) {
        self.fail_next_relaxed.store(count, Ordering::SeqCst);
    }

    /// Makes the threads of the next `count` durable batch writes panic at
    /// the seam, after any hold, before RocksDB sees the batch (0 clears).
    pub fn panic_next_writes(&self, count: u64) {
        self.panic_next.store(count, Ordering::SeqCst);
    }

    /// Holds every durable batch write at the seam until
    /// [`WriteFaults::release_durable_writes`].
    pub fn hold_durable_writes(&self) {
        self.lock_held().on = true;
        self.holding.store(true, Ordering::SeqCst);
    }

    /// Lets held durable writes go on.
    pub fn release_durable_writes(&self) {
        self.holding.store(false, Ordering::SeqCst);
        self.lock_held().on = false;
        self.held_changed.notify_all();
    }

    /// Durable batch writes waiting at the seam now.
    pub fn durable_writes_held(&self) -> u64 {
        self.lock_held().waiting
    }

    /// Durable batch writes that reached RocksDB and succeeded.
    pub fn durable_writes(&self) -> u64 {
        self.durable_writes.load(Ordering::SeqCst)
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Two plain fields: still meaningful if a holder panicked.
        self.held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn wait_while_held(&self) {
        if !self.holding.load(Ordering::SeqCst) {
            return;
        }
        let mut held = self.lock_held();
        held.waiting += 1;
        while held.on {
            held = self
                .held_changed
                .wait(held)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        held.waiting -= 1;
    }

    fn take(counter: &AtomicU64) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Free space the store keeps on its filesystem: below `log_bytes` the log
/// takes no batch, below `views_bytes` no rebuildable write is made either.
/// A refused write fails with [`StoreError::DiskFull`] before it reaches
/// RocksDB, so RocksDB never runs out of space under a write of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpaceReserve {
    /// Below this many free bytes, durable (log) writes are refused.
    pub log_bytes: u64,
    /// Below this many free bytes, relaxed (view) writes are refused too.
    pub views_bytes: u64,
}

impl Default for FreeSpaceReserve {
    fn default() -> Self {
        FreeSpaceReserve {
            log_bytes: DISK_FREE_LOG_RESERVE_BYTES_DEFAULT,
            views_bytes: DISK_FREE_VIEWS_RESERVE_BYTES_DEFAULT,
        }
    }
}

/// Free bytes on the data directory's filesystem, as the guard last saw them.
pub const METRIC_AVAILABLE_BYTES: &str = "ledger_store_available_bytes";
/// Writes the guard refused for a full disk, labelled `writes` = `log` or
/// `views`.
pub const METRIC_WRITES_REFUSED: &str = "ledger_store_writes_refused_total";

/// The guard in front of every write: reads the filesystem's free space
/// (statvfs) and compares it with the reserve. One statvfs is a system call
/// of about a microsecond, against the 150 µs or more of a group commit's
/// fsync, so it is asked on every write rather than cached and stale.
#[derive(Debug)]
struct SpaceGuard {
    path: PathBuf,
    log_bytes: AtomicU64,
    views_bytes: AtomicU64,
}

impl SpaceGuard {
    fn new(path: &Path) -> SpaceGuard {
        let reserve = FreeSpaceReserve::default();
        SpaceGuard {
            path: path.to_path_buf(),
            log_bytes: AtomicU64::new(reserve.log_bytes),
            views_bytes: AtomicU64::new(reserve.views_bytes),
        }
    }

    fn available_bytes(&self) -> std::io::Result<u64> {
        let stats = rustix::fs::statvfs(&self.path)?;
        // f_bavail, not f_bfree: the blocks that the filesystem keeps for
        // root are not counted, so running as root changes nothing.
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
    }

    /// `writes` names the writes checked, for the refusal counter.
    fn check(&self, reserve: &AtomicU64, writes: &'static str) -> Result<(), StoreError> {
        let reserve_bytes = reserve.load(Ordering::Relaxed);
        if reserve_bytes == 0 {
            return Ok(());
        }
        match self.available_bytes() {
            Ok(available_bytes) => {
                metrics::gauge!(METRIC_AVAILABLE_BYTES).set(available_bytes as f64);
                if available_bytes < reserve_bytes {
                    metrics::counter!(METRIC_WRITES_REFUSED, "writes" => writes).increment(1);
                    return Err(StoreError::DiskFull {
                        available_bytes,
                        reserve_bytes,
                    });
                }
                Ok(())
            }
            Err(error) => {
                // Not knowing the free space is no reason to refuse a write:
                // RocksDB reports a full disk itself, and the store recovers
                // from that too, only more slowly.
                tracing::warn!(%error, path = %self.path.display(), "free-space guard skipped");
                Ok(())
            }
        }
    }
}

/// The RocksDB store of one data directory. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    faults: Arc<WriteFaults>,
    space: Arc<SpaceGuard>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

/// Size of a memtable's bloom filter, as a share of its write buffer: about
/// 20 bits per key for entries of about 100 bytes.
const MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// Index keys per restart point in table files' index blocks (RocksDB's
/// default is 1: no delta encoding).
const INDEX_BLOCK_RESTART_INTERVAL: i32 = 16;

fn cf_options(name: &str, cache: &Cache) -> Result<Options, rocksdb::Error> {
    let mut options = Options::default();
    // One block cache for every column family: without it each family's
    // table factory makes its own, and their sum is not bounded by one
    // figure.
    let mut block = BlockBasedOptions::default();
    block.set_block_cache(cache);
    // Index and filter blocks stay with the table readers, outside the
    // cache: they grow with the store (about 7 bytes per event written),
    // but in a 64 MiB cache, even partitioned, they pushed out the data
    // blocks, and the decide thread's CPU grew from a fifth to half of a
    // core within eight minutes of `checkout` at 5,500 requests/s, a third
    // of it reading blocks.
    let point_lookups = [CF_IDEMPOTENCY, CF_STREAM_INDEX, CF_SNAPSHOTS, CF_VIEWS];
    if point_lookups.contains(&name) {
        // Point lookups on the write path (is this key new? where does this
        // stream end?) mostly miss or hit recent data: bloom filters make a
        // miss cost no disk read. The views read a row they have not cached
        // the same way: without a filter each read searched an index block
        // in every L0 file and level, half of the tier view's CPU under
        // `batch` when most such rows were new (BENCHMARKS.md).
        block.set_bloom_filter(10.0, false);
        // The same for the memtables, where most of these lookups end: a
        // key that is not there costs a filter probe instead of a search
        // of a skip list of hundreds of thousands of entries (a third of
        // the decide thread under `checkout` before).
        options.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
        options.set_memtable_whole_key_filtering(true);
    }
    if name == CF_VIEWS {
        // The views read rows that exist: the reads of rows that cannot
        // exist yet are skipped (`RowCache::get_mut_unless_new`), and a
        // third of the family's rows, the statement lines, are only ever
        // scanned. A filter on the last level, which holds most rows, then
        // only costs memory: about 2.4 of the views' 3.7 bytes of filter
        // per event written under `checkout`. The levels above keep theirs,
        // so a read still skips the files that lack its row.
        options.set_optimize_filters_for_hits(true);
    }
    if name != CF_LOG && name != CF_CHAIN {
        options.set_max_bytes_for_level_base(ROCKSDB_LEVEL_BASE_BYTES);
        options.set_target_file_size_base(ROCKSDB_TARGET_FILE_BYTES);
    }
    // Index blocks hold one key per data block and, with RocksDB's default
    // restart interval of 1, each key in full. Delta-encoding them in runs
    // of 16 made them a quarter of the size (4.4 to 1.2 bytes per event
    // written under `checkout`), at the cost of a short scan inside the
    // index block on each seek, not measurable in the decide thread's CPU
    // (BENCHMARKS.md).
    block.set_index_block_restart_interval(INDEX_BLOCK_RESTART_INTERVAL);
    options.set_block_based_table_factory(&block);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_write_buffer_size(ROCKSDB_WRITE_BUFFER_BYTES);
    // Rows reach the memtables in key order within each write
    // (`OrderedBatch`). With an insert hint per key prefix, each insert
    // searches a skip list up from the last insert under that prefix, a few
    // levels for rows close together, instead of down from the top. The
    // views' prefix is the row marker and the view's tag, so that each view
    // keeps its own hint; the other families' rows share one per first
    // byte. The log and the chain are written in key order already.
    // The Rust crate has no setter for this option.
    let hint_prefix = match name {
        CF_LOG | CF_CHAIN => None,
        CF_VIEWS => Some(2),
        _ => Some(1),
    };
    if let Some(length) = hint_prefix {
        options = options.get_options_from_string(format!(
            "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{length}"
        ))?;
    }
    Ok(options)
}

/// The options every open shares: memory bounds and the column families.
fn db_options(create: bool) -> Result<(Options, Vec<ColumnFamilyDescriptor>), rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(create);
    options.create_missing_column_families(create);
    // Group commit makes our writes few and large; one background job per
    // core is enough on the small machines we target.
    options.increase_parallelism(2);
    // Searches of the memtables' skip lists, for inserts and for reads,
    // are about a fifth of the server's CPU under `checkout` (perf): most
    // of our rows (stream index, idempotency keys, lots, view rows) land at
    // random places in them.
    // The log's group commit and the views' chunks often meet in one write
    // group; inserted concurrently, each row searches its skip list from
    // the top, while the group's leader inserting them all reuses its last
    // search for rows in key order (the log's positions, a chunk's rows).
    // With this and 16 MiB memtables instead of 64 MiB
    // (`ROCKSDB_WRITE_BUFFER_BYTES`), each of 7 interleaved pairs of
    // 30-40 s `checkout` runs on the 2-core machine was faster: 12-13%
    // more calls/s (medians of two sets) and 10% less server CPU per
    // call; `batch` was unchanged (BENCHMARKS.md).
    options.set_allow_concurrent_memtable_write(false);
    // Seven column families of up to two memtables each; one budget over
    // all of them flushes the largest when it is reached.
    options.set_db_write_buffer_size(MEMTABLES_BYTES_MAX);
    // A WAL file is kept until every family's memtable that has data in it
    // is flushed; families written rarely (due, snapshots) would otherwise
    // keep gigabytes of WAL alive, and make recovery replay all of it.
    options.set_max_total_wal_size(WAL_BYTES_MAX);
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let descriptors = COLUMN_FAMILIES
        .iter()
        .map(|name| {
            Ok(ColumnFamilyDescriptor::new(
                *name,
                cf_options(name, &cache)?,
            ))
        })
        .collect::<Result<_, rocksdb::Error>>()?;
    Ok((options, descriptors))
}

/// RocksDB's memory, from [`Store::memory_usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Memtables, mutable and immutable (bounded by `MEMTABLES_BYTES_MAX`,
    /// softly: a memtable being flushed still counts).
    pub memtables_bytes: u64,
    /// The shared block cache (bounded by `BLOCK_CACHE_BYTES`).
    pub block_cache_bytes: u64,
    /// Index and filter blocks of open table files, outside the cache.
    pub table_readers_bytes: u64,
}

impl Store {
    /// Opens (creating if needed) the store in `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let (options, descriptors) = db_options(true)?;
        let db = DB::open_cf_descriptors(&options, path, descriptors)?;
        Ok(Store {
            db: Arc::new(db),
            faults: Arc::new(WriteFaults::default()),
            space: Arc::new(SpaceGuard::new(path)),
        })
    }

    /// Opens the store in `path` for reading only; works while a server
    /// holds the directory open for writing (it sees what was durable when
    /// it opened).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let (options, descriptors) = db_options(false)?;
        let db = DB::open_cf_descriptors_read_only(&options, path, descriptors, false)?;
        Ok(Store {
            db: Arc::new(db),
            faults: Arc::new(WriteFaults::default()),
            space: Arc::new(SpaceGuard::new(path)),
        })
    }

    /// The write seam's fault injector (tests).
    pub fn faults(&self) -> &WriteFaults {
        &self.faults
    }

    /// What RocksDB holds in memory now: memtables and table readers summed
    /// over the column families, and the block cache they share.
    pub fn memory_usage(&self) -> Result<MemoryUsage, StoreError> {
        let mut usage = MemoryUsage::default();
        for name in COLUMN_FAMILIES {
            let cf = self.cf(name);
            let property = |property: &str| -> Result<u64, StoreError> {
                Ok(self.db.property_int_value_cf(cf, property)?.unwrap_or(0))
            };
            usage.memtables_bytes += property("rocksdb.cur-size-all-mem-tables")?;
            usage.table_readers_bytes += property("rocksdb.estimate-table-readers-mem")?;
            // One cache for every family: each reports the same usage.
            usage.block_cache_bytes = usage
                .block_cache_bytes
                .max(property("rocksdb.block-cache-usage")?);
        }
        Ok(usage)
    }

    /// The underlying database, for crates that keep their own column
    /// families' rows (projections).
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// A column family handle. The set is fixed at open, so a missing one is
    /// a bug.
    pub fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        #[allow(clippy::expect_used)]
        self.db
            .cf_handle(name)
            .expect("column family opened in Store::open")
    }

    /// The free-space reserve in force.
    pub fn free_space_reserve(&self) -> FreeSpaceReserve {
        FreeSpaceReserve {
            log_bytes: self.space.log_bytes.load(Ordering::Relaxed),
            views_bytes: self.space.views_bytes.load(Ordering::Relaxed),
        }
    }

    /// Sets the free-space reserve for every clone of this store (0 turns a
    /// guard off). The views' reserve may not exceed the log's: the views
    /// must be able to fold what the log acknowledged.
    pub fn set_free_space_reserve(&self, reserve: FreeSpaceReserve) {
        assert!(
            reserve.views_bytes <= reserve.log_bytes,
            "the views' free-space reserve is at most the log's"
        );
        self.space
            .log_bytes
            .store(reserve.log_bytes, Ordering::Relaxed);
        self.space
            .views_bytes
            .store(reserve.views_bytes, Ordering::Relaxed);
    }

    /// Free bytes on the data directory's filesystem, as the guard sees them.
    pub fn available_bytes(&self) -> std::io::Result<u64> {
        self.space.available_bytes()
    }

    /// Writes `batch` atomically with fsync: the only way the log grows.
    /// Refused with [`StoreError::DiskFull`], before RocksDB sees it, while
    /// the filesystem has less free space than the log's reserve.
    pub fn write_durable(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.faults.wait_while_held();
        if WriteFaults::take(&self.faults.panic_next) {
            panic!("a durable write panicked at the seam (injected)");
        }
        if WriteFaults::take(&self.faults.fail_next) {
            return Err(StoreError::Injected);
        }
        self.space.check(&self.space.log_bytes, "log")?;
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        self.faults.durable_writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The guard of rebuildable writes: injected faults, then the views'
    /// free-space reserve.
    fn check_relaxed(&self) -> Result<(), StoreError> {
        if WriteFaults::take(&self.faults.fail_next_relaxed) {
            return Err(StoreError::Injected);
        }
        self.space.check(&self.space.views_bytes, "views")
    }

    /// Writes rebuildable rows (views, checkpoints) without fsync. Refused
    /// with [`StoreError::DiskFull`] below the views' free-space reserve.
    pub fn write_relaxed(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.check_relaxed()?;
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// Writes rows that a crash may lose whole (a view being rebuilt, which
    /// is not active yet): no WAL, so the data reaches disk only when its
    /// memtable is flushed. A batch lands in one memtable, so it is still
    /// all or nothing. Call [`Store::flush_cf`] before anything logged comes
    /// to depend on it.
    pub fn write_unlogged(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.check_relaxed()?;
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// Flushes a column family's memtables to disk (and waits). Guarded
    /// like a relaxed write: a flush writes files.
    pub fn flush_cf(&self, name: &str) -> Result<(), StoreError> {
        self.check_relaxed()?;
        self.db.flush_cf(self.cf(name))?;
        Ok(())
    }

    /// The durable head (position 0 and the genesis hash on an empty log).
    pub fn head(&self) -> Result<Head, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_CHAIN), keys::HEAD_KEY)? {
            None => Ok(Head::default()),
            Some(bytes) => decode_head(&bytes),
        }
    }

    /// The current version of `stream` (0 when it has no event).
    pub fn stream_version(&self, stream: &StreamName) -> Result<u64, StoreError> {
        let prefix = keys::stream_prefix(stream);
        let upper = keys::stream_key(stream, u64::MAX);
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_STREAM_INDEX));
        iter.seek_for_prev(&upper);
        iter.status()?;
        match iter.key() {
            Some(key) if key.starts_with(&prefix) && key.len() == prefix.len() + 8 => {
                keys::parse_position_key(&key[prefix.len()..]).ok_or_else(|| StoreError::Corrupt {
                    position: 0,
                    reason: format!("bad stream index key for {stream}"),
                })
            }
            _ => Ok(0),
        }
    }

    /// Whether `stream` has an event at `version`, by one point lookup.
    pub fn stream_has_version(
        &self,
        stream: &StreamName,
        version: u64,
    ) -> Result<bool, StoreError> {
        let key = keys::stream_key(stream, version);
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_STREAM_INDEX), key)?
            .is_some())
    }

    /// The remembered answer for an idempotency key, if any.
    pub fn idempotency_entry(
        &self,
        program_id: &ProgramId,
        key: &IdempotencyKey,
    ) -> Result<Option<pb::IdempotencyEntry>, StoreError> {
        let db_key = keys::idempotency_key(program_id, key);
        match self.db.get_pinned_cf(self.cf(CF_IDEMPOTENCY), db_key)? {
            None => Ok(None),
            Some(bytes) => pb::IdempotencyEntry::decode(bytes.as_ref())
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    position: 0,
                    reason: format!("idempotency entry: {e}"),
                }),
        }
    }

    /// Reads records `from..=to` (at most `max`), with their chain hashes.
    pub fn read_range(
        &self,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let mut out = Vec::new();
        self.scan_log(from, to, max, true, |position, bytes, hash| {
            let hash = hash.ok_or_else(|| StoreError::Corrupt {
                position,
                reason: "no chain hash stored for this position".into(),
            })?;
            out.push(StoredRecord {
                position,
                bytes: bytes.to_vec(),
                hash,
            });
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// Hands records `from..=to` (at most `max`) to `visit` in position
    /// order, as stored and without their chain hashes: for readers that
    /// fold the events (the views), which need neither a copy of each
    /// record nor the chain. Stops at `visit`'s first error. Returns how
    /// many records were visited: fewer than asked only at the end of the
    /// log.
    pub fn visit_records<E: From<StoreError>>(
        &self,
        from: u64,
        to: u64,
        max: usize,
        mut visit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<usize, E> {
        self.scan_log(from, to, max, false, |position, bytes, _| {
            visit(position, bytes)
        })
    }

    /// The log's records `from..=to` (at most `max`) in order, each with
    /// its chain hash when `with_chain` (`None` when it has none stored).
    /// A gap in the log is an error at the first missing position.
    fn scan_log<E: From<StoreError>>(
        &self,
        from: u64,
        to: u64,
        max: usize,
        with_chain: bool,
        mut visit: impl FnMut(u64, &[u8], Option<ChainHash>) -> Result<(), E>,
    ) -> Result<usize, E> {
        if from > to || max == 0 {
            return Ok(0);
        }
        let start = keys::position_key(from.max(1));
        let mut log = self.db.raw_iterator_cf(self.cf(CF_LOG));
        let mut chain = with_chain.then(|| self.db.raw_iterator_cf(self.cf(CF_CHAIN)));
        log.seek(start);
        if let Some(chain) = &mut chain {
            chain.seek(start);
        }
        let mut expected = from.max(1);
        let mut visited = 0;
        while visited < max && expected <= to {
            let (Some(key), Some(bytes)) = (log.key(), log.value()) else {
                break;
            };
            let position = keys::parse_position_key(key).ok_or_else(|| StoreError::Corrupt {
                position: expected,
                reason: "log key is not eight bytes".into(),
            })?;
            if position != expected {
                return Err(StoreError::Corrupt {
                    position: expected,
                    reason: format!("log has a gap: next key is {position}"),
                }
                .into());
            }
            let hash = chain
                .as_ref()
                .and_then(|chain| match (chain.key(), chain.value()) {
                    (Some(chain_key), Some(value)) if chain_key == key && value.len() == 32 => {
                        let mut hash = [0u8; 32];
                        hash.copy_from_slice(value);
                        Some(ChainHash(hash))
                    }
                    _ => None,
                });
            visit(position, bytes, hash)?;
            visited += 1;
            expected += 1;
            log.next();
            if let Some(chain) = &mut chain {
                chain.next();
            }
        }
        log.status().map_err(StoreError::from)?;
        if let Some(chain) = &chain {
            chain.status().map_err(StoreError::from)?;
        }
        Ok(visited)
    }

    /// Positions of `stream` from `from_version` on (at most `max`), with
    /// their versions.
    pub fn stream_positions(
        &self,
        stream: &StreamName,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let prefix = keys::stream_prefix(stream);
        let start = keys::stream_key(stream, from_version.max(1));
        let mut out = Vec::new();
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut options = ReadOptions::default();
        options.set_prefix_same_as_start(false);
        for item in self
            .db
            .iterator_cf_opt(self.cf(CF_STREAM_INDEX), options, mode)
        {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= max {
                break;
            }
            let corrupt = || StoreError::Corrupt {
                position: 0,
                reason: format!("bad stream index entry for {stream}"),
            };
            let version = keys::parse_position_key(&key[prefix.len()..]).ok_or_else(corrupt)?;
            let position = keys::parse_position_key(&value).ok_or_else(corrupt)?;
            out.push((version, position));
        }
        Ok(out)
    }

    /// The programs that have a stream, in id order.
    pub fn program_ids(&self) -> Result<Vec<ProgramId>, StoreError> {
        const PREFIX: &[u8] = b"program/";
        let mut ids: Vec<ProgramId> = Vec::new();
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_STREAM_INDEX));
        iter.seek(PREFIX);
        while let Some(key) = iter.key() {
            let Some(rest) = key.strip_prefix(PREFIX) else {
                break;
            };
            let end = rest
                .iter()
                .position(|byte| *byte == 0)
                .unwrap_or(rest.len());
            let id = String::from_utf8_lossy(&rest[..end]).into_owned();
            let id = ProgramId::parse("program_id", &id).map_err(|error| StoreError::Corrupt {
                position: 0,
                reason: format!("stream index names a bad program: {error}"),
            })?;
            // Skip the rest of this program's entries: `name || 0x01` sorts
            // after every `name || 0x00 || version`.
            let mut next = key[..PREFIX.len() + end].to_vec();
            next.push(1);
            ids.push(id);
            iter.seek(&next);
        }
        iter.status()?;
        Ok(ids)
    }

    /// Reads the records of `stream` from `from_version` (at most `max`).
    pub fn read_stream(
        &self,
        stream: &StreamName,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let positions = self.stream_positions(stream, from_version, max)?;
        let keys = position_keys(&positions);
        let hashes = self.db.batched_multi_get_cf(self.cf(CF_CHAIN), &keys, true);
        let records = self.records_at(stream, &positions, &keys)?;
        let mut out = Vec::with_capacity(records.len());
        for ((position, bytes), hash) in records.into_iter().zip(hashes) {
            let missing = |what: &str| StoreError::Corrupt {
                position,
                reason: format!("stream {stream} indexes a missing {what}"),
            };
            let hash = hash?.ok_or_else(|| missing("chain hash"))?;
            let hash: [u8; 32] = hash
                .as_ref()
                .try_into()
                .map_err(|_| missing("chain hash of 32 bytes"))?;
            out.push(StoredRecord {
                position,
                bytes,
                hash: ChainHash(hash),
            });
        }
        Ok(out)
    }

    /// Reads the records of `stream` from `from_version` (at most `max`)
    /// without their chain hashes, as `(position, bytes)`: what folding a
    /// stream needs (loading a member, a program's rules).
    pub fn read_stream_records(
        &self,
        stream: &StreamName,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let positions = self.stream_positions(stream, from_version, max)?;
        self.records_at(stream, &positions, &position_keys(&positions))
    }

    /// The records at `positions` (`keys` their keys), by point lookups,
    /// not a range read per position: a stream's records lie far apart in
    /// the log, and each range read would make and seek two iterators over
    /// every level.
    fn records_at(
        &self,
        stream: &StreamName,
        positions: &[(u64, u64)],
        keys: &[[u8; 8]],
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let records = self.db.batched_multi_get_cf(self.cf(CF_LOG), keys, true);
        let mut out = Vec::with_capacity(positions.len());
        for ((_, position), record) in positions.iter().zip(records) {
            let bytes = record?.ok_or_else(|| StoreError::Corrupt {
                position: *position,
                reason: format!("stream {stream} indexes a missing record"),
            })?;
            out.push((*position, bytes.to_vec()));
        }
        Ok(out)
    }
}

fn position_keys(positions: &[(u64, u64)]) -> Vec<[u8; 8]> {
    positions
        .iter()
        .map(|(_, position)| keys::position_key(*position))
        .collect()
}

/// Encodes the head value: `be_u64(position) || hash`.
pub fn encode_head(head: &Head) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&head.position.to_be_bytes());
    out[8..].copy_from_slice(&head.hash.0);
    out
}

fn decode_head(bytes: &[u8]) -> Result<Head, StoreError> {
    let corrupt = || StoreError::Corrupt {
        position: 0,
        reason: "head is not 40 bytes".into(),
    };
    let (position, hash) = bytes.split_at_checked(8).ok_or_else(corrupt)?;
    let position = keys::parse_position_key(position).ok_or_else(corrupt)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| corrupt())?;
    Ok(Head {
        position,
        hash: ChainHash(hash),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocksdb::{BottommostLevelCompaction, CompactOptions};

    fn put(store: &Store, cf: &str, key: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put_cf(store.cf(cf), key, b"value");
        batch
    }

    #[test]
    fn records_are_visited_in_order_without_the_chain_and_a_gap_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut batch = WriteBatch::default();
        // Positions 1-5 and 7; chain hashes for 1-3 only.
        for position in [1u64, 2, 3, 4, 5, 7] {
            let key = keys::position_key(position);
            batch.put_cf(store.cf(CF_LOG), key, position.to_string());
            if position <= 3 {
                batch.put_cf(store.cf(CF_CHAIN), key, [position as u8; 32]);
            }
        }
        store.write_durable(batch).expect("write");
        let visit = |from, to, max| {
            let mut seen = Vec::new();
            let count = store.visit_records(from, to, max, |position, bytes| {
                seen.push((position, String::from_utf8_lossy(bytes).into_owned()));
                Ok::<_, StoreError>(())
            });
            (count.map_err(|error| error.to_string()), seen)
        };
        let (count, seen) = visit(1, 5, 10);
        assert_eq!(count, Ok(5));
        let expected: Vec<_> = (1..=5).map(|p: u64| (p, p.to_string())).collect();
        assert_eq!(seen, expected);
        assert_eq!(visit(2, 5, 2).0, Ok(2));
        assert_eq!(visit(6, 5, 10).0, Ok(0));
        // The end of the log: fewer than asked.
        assert_eq!(visit(7, 9, 10).0, Ok(1));
        let (count, seen) = visit(4, 7, 10);
        assert!(count.expect_err("a gap").contains("gap"), "{seen:?}");
        assert_eq!(seen.len(), 2, "4 and 5 before the gap at 6");
        // The visitor's first error stops the visit.
        let mut visited = 0;
        let stopped = store.visit_records(1, 5, 10, |position, _| {
            visited += 1;
            if position == 2 {
                return Err(StoreError::Corrupt {
                    position,
                    reason: "stop".into(),
                });
            }
            Ok(())
        });
        assert!(stopped.is_err());
        assert_eq!(visited, 2);
        // With hashes, a position without one is an error at it.
        assert_eq!(store.read_range(1, 3, 10).expect("hashed").len(), 3);
        let error = store.read_range(1, 5, 10).expect_err("4 has no hash");
        assert!(
            matches!(error, StoreError::Corrupt { position: 4, .. }),
            "{error}"
        );
    }

    #[test]
    fn below_the_log_reserve_a_durable_write_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.set_free_space_reserve(FreeSpaceReserve {
            log_bytes: u64::MAX,
            views_bytes: 0,
        });
        let refused = store.write_durable(put(&store, CF_LOG, b"k1"));
        match refused {
            Err(StoreError::DiskFull {
                available_bytes,
                reserve_bytes,
            }) => {
                assert_eq!(reserve_bytes, u64::MAX);
                assert!(available_bytes < u64::MAX);
            }
            other => panic!("refused for a full disk: {other:?}"),
        }
        let read = store.db().get_cf(store.cf(CF_LOG), b"k1").expect("read");
        assert_eq!(read, None, "nothing of the refused batch was written");
        // The views' lower mark still lets rebuildable writes through.
        store
            .write_relaxed(put(&store, CF_VIEWS, b"v1"))
            .expect("relaxed write above the views' reserve");
        store.set_free_space_reserve(FreeSpaceReserve::default());
        store
            .write_durable(put(&store, CF_LOG, b"k1"))
            .expect("a disk with room takes the write");
    }

    #[test]
    fn below_the_views_reserve_relaxed_writes_and_flushes_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.set_free_space_reserve(FreeSpaceReserve {
            log_bytes: u64::MAX,
            views_bytes: u64::MAX,
        });
        for refused in [
            store.write_relaxed(put(&store, CF_VIEWS, b"v")),
            store.write_unlogged(put(&store, CF_VIEWS, b"v")),
            store.flush_cf(CF_VIEWS),
        ] {
            let error = refused.expect_err("refused");
            assert!(error.is_disk_full(), "{error}");
            assert!(error.is_transient(), "{error}");
        }
    }

    #[test]
    fn a_zero_reserve_turns_the_guard_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.set_free_space_reserve(FreeSpaceReserve {
            log_bytes: 0,
            views_bytes: 0,
        });
        store
            .write_durable(put(&store, CF_LOG, b"k"))
            .expect("no guard");
        assert!(store.available_bytes().expect("statvfs") > 0);
    }

    #[test]
    #[should_panic(expected = "the views' free-space reserve is at most the log's")]
    fn the_views_reserve_may_not_exceed_the_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.set_free_space_reserve(FreeSpaceReserve {
            log_bytes: 1,
            views_bytes: 2,
        });
    }

    #[test]
    fn injected_relaxed_faults_fail_only_relaxed_writes_until_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.set_free_space_reserve(FreeSpaceReserve {
            log_bytes: 0,
            views_bytes: 0,
        });
        store.faults().fail_next_relaxed_writes(u64::MAX);
        for _ in 0..3 {
            assert!(matches!(
                store.write_relaxed(put(&store, CF_VIEWS, b"v")),
                Err(StoreError::Injected)
            ));
        }
        store
            .write_durable(put(&store, CF_LOG, b"k"))
            .expect("durable writes are not affected");
        store.faults().fail_next_relaxed_writes(0);
        store
            .write_relaxed(put(&store, CF_VIEWS, b"v"))
            .expect("cleared");
    }

    #[test]
    fn only_corruption_is_not_transient() {
        let full = StoreError::DiskFull {
            available_bytes: 0,
            reserve_bytes: 1,
        };
        assert!(full.is_disk_full() && full.is_transient());
        assert!(StoreError::Injected.is_transient());
        assert!(!StoreError::Injected.is_disk_full());
        let corrupt = StoreError::Corrupt {
            position: 1,
            reason: "x".into(),
        };
        assert!(!corrupt.is_transient() && !corrupt.is_disk_full());
    }

    /// A figure from a family's aggregated table properties, as RocksDB
    /// prints them (`name=value; ...`).
    fn table_figure(store: &Store, cf: &str, name: &str) -> u64 {
        let properties = store
            .db()
            .property_value_cf(store.cf(cf), "rocksdb.aggregated-table-properties")
            .expect("property")
            .expect("table files");
        properties
            .split("; ")
            .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {properties}"))
            .parse()
            .expect("a number")
    }

    /// 20,000 rows of 64 bytes, rewritten into the family's last level.
    fn fill_and_compact(store: &Store, cf: &str) {
        let mut batch = WriteBatch::default();
        for row in 0..20_000u32 {
            batch.put_cf(store.cf(cf), format!("member-{row:08}"), [7u8; 64]);
        }
        store.write_durable(batch).expect("write");
        let mut options = CompactOptions::default();
        options.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        store
            .db()
            .compact_range_cf_opt(store.cf(cf), None::<&[u8]>, None::<&[u8]>, &options);
    }

    /// Goal: the table readers' memory, which grows with the store, holds
    /// no filter the reads do not use and compact index blocks.
    #[test]
    fn the_views_last_level_has_no_filter_and_index_keys_are_delta_encoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for cf in [CF_VIEWS, CF_IDEMPOTENCY] {
            fill_and_compact(&store, cf);
        }
        // The idempotency family's reads mostly miss: its filters stay on
        // every level. The views' reads hit, so their last level has none.
        assert!(table_figure(&store, CF_IDEMPOTENCY, "filter block size") > 0);
        assert_eq!(table_figure(&store, CF_VIEWS, "filter block size"), 0);
        for cf in [CF_VIEWS, CF_IDEMPOTENCY] {
            let blocks = table_figure(&store, cf, "# data blocks");
            let index = table_figure(&store, cf, "index block size (user-key? 1, delta-value? 1)");
            assert!(blocks > 100, "{cf}: {blocks} data blocks");
            assert!(
                index < blocks * 8,
                "{cf}: {index} index bytes for {blocks} data blocks"
            );
        }
    }
}
