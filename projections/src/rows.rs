//! How views keep their rows in the store's `views` column family.
//!
//! Every projection has a one-byte tag and writes into a numbered
//! *generation*; a rebuild fills the next generation while queries read the
//! active one, then switches the active pointer in one write. Keys:
//!
//! - `'a' || tag` -> `be_u32(generation)`: the active generation;
//! - `'c' || tag || be_u32(generation)` -> checkpoint (`be_u64(position) ||
//!   be_i64(recorded_at_us)` of the last applied record);
//! - `'r' || tag || be_u32(generation) || row key` -> row value.
//!
//! A projection's rows and its checkpoint are written in one batch, without
//! fsync (views are rebuildable): after a crash the checkpoint and the rows
//! agree, at some position at or before the last one applied.
//!
//! Row values are bincode (the standard configuration, as the write model's
//! snapshots), so a view state has exactly one encoding and a rebuilt view
//! is byte-equal to one built incrementally.

use crate::error::{QueryError, ViewError};
use crate::event::LogEvent;
use ledger_core::domain::{EventKind, ProgramRules, Rules};
use ledger_core::ids::ProgramId;
use ledger_core::store::{CF_VIEWS, OrderedBatch, Store};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

const ACTIVE: u8 = b'a';
const CHECKPOINT: u8 = b'c';
const ROWS: u8 = b'r';

/// The last record a view has applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Its log position (0: nothing applied).
    pub position: u64,
    /// When it was recorded (engine time, µs), for lag in seconds.
    pub recorded_at_us: i64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.position.to_be_bytes());
        out[8..].copy_from_slice(&self.recorded_at_us.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Checkpoint, ViewError> {
        let corrupt = || ViewError::row("checkpoint", "not 16 bytes");
        let (position, recorded) = bytes.split_at_checked(8).ok_or_else(corrupt)?;
        Ok(Checkpoint {
            position: u64::from_be_bytes(position.try_into().map_err(|_| corrupt())?),
            recorded_at_us: i64::from_be_bytes(recorded.try_into().map_err(|_| corrupt())?),
        })
    }
}

/// One generation of one projection's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// The projection's tag.
    pub tag: u8,
    /// The generation.
    pub generation: u32,
}

impl Space {
    fn rows_prefix(&self) -> [u8; 6] {
        let mut out = [0u8; 6];
        out[0] = ROWS;
        out[1] = self.tag;
        out[2..].copy_from_slice(&self.generation.to_be_bytes());
        out
    }

    fn checkpoint_key(&self) -> [u8; 6] {
        let mut out = self.rows_prefix();
        out[0] = CHECKPOINT;
        out
    }

    fn row_key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(6 + suffix.len());
        key.extend_from_slice(&self.rows_prefix());
        key.extend_from_slice(suffix);
        key
    }
}

fn active_key(tag: u8) -> [u8; 2] {
    [ACTIVE, tag]
}

/// Encodes a row value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain structs into a Vec cannot fail; an empty value would
    // fail to decode later and be reported there.
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

/// Decodes a row value; `what` names it in the error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ViewError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|error| ViewError::row(what, error.to_string()))
}

/// Decodes a row value through `seed`, which may borrow from `bytes` and
/// fold what it reads instead of building the value (a query over many
/// rows, without an allocation per row); `what` names it in the error.
pub fn decode_seed<'de, S: DeserializeSeed<'de>>(
    seed: S,
    bytes: &'de [u8],
    what: &str,
) -> Result<S::Value, ViewError> {
    bincode::serde::seed_decode_from_slice(seed, bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|error| ViewError::row(what, error.to_string()))
}

/// Appends `value` as eight big-endian bytes that sort like the signed
/// number (the sign bit flipped).
pub fn push_i64_ordered(key: &mut Vec<u8>, value: i64) {
    key.extend_from_slice(&i64_ordered(value));
}

/// A signed number as eight big-endian bytes that sort like it.
pub fn i64_ordered(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

/// Reads a number written by [`push_i64_ordered`].
pub fn read_i64_ordered(bytes: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(bytes.try_into().ok()?) ^ (1 << 63)) as i64)
}

/// A row key: `kind || name`, where `name` is a stream name or a program id
/// (neither holds a zero byte).
pub fn keyed(kind: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + name.len() + 8);
    key.push(kind);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The prefix of a name's rows of one kind: `kind || name || 0`.
pub fn prefixed(kind: u8, name: &str) -> Vec<u8> {
    let mut key = keyed(kind, name);
    key.push(0);
    key
}

/// Rows of one kind cached between chunks, and the keys a chunk changed:
/// a flush writes those alone. (Scanning the whole cache for changed rows
/// at every flush costs more than the chunk's events when the views follow
/// the log live, in chunks of a few events.)
pub struct RowCache<K, T> {
    rows: HashMap<K, Cached<T>>,
    /// Keys whose row changed since the last flush, each once.
    dirty: Vec<K>,
}

struct Cached<T> {
    value: T,
    /// In `dirty`.
    dirty: bool,
    /// Found cached by a `get_mut` since it was read or last kept by a trim.
    hit: bool,
}

/// Trims a cache of `max` entries or more (run after its changes are
/// written): keeps up to half of `max` of the entries that `hit` says were
/// found cached since they were read or last kept (the hot rows of a
/// skewed load), and forgets every other. `hit` also resets the mark of
/// each entry kept. Clearing every row at the bound instead made each
/// view read a Zipf population's hot members back after every clear. A
/// new map, not `retain`: a map keeps its capacity, and the memory of its
/// largest chunk, for good.
pub fn trim_hot<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    mut hit: impl FnMut(&mut V) -> bool,
) {
    if map.len() < max {
        return;
    }
    let keep = max / 2;
    let mut kept = HashMap::with_capacity(keep);
    for (key, mut value) in map.drain() {
        if kept.len() < keep && hit(&mut value) {
            kept.insert(key, value);
        }
    }
    *map = kept;
}

impl<K, T> Default for RowCache<K, T> {
    fn default() -> Self {
        RowCache {
            rows: HashMap::new(),
            dirty: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone, T> RowCache<K, T> {
    /// The row of `key`, read from `row_key` on a miss (or started from
    /// `fresh`), marked changed: the next flush writes it.
    pub fn get_mut(
        &mut self,
        rows: &RowWriter<'_>,
        key: K,
        row_key: &[u8],
        what: &str,
        fresh: impl FnOnce() -> T,
    ) -> Result<&mut T, ViewError>
    where
        T: DeserializeOwned,
    {
        self.get_mut_unless_new(rows, key, row_key, what, false, fresh)
    }

    /// As [`RowCache::get_mut`], except that a row the caller knows was
    /// never written (`new`: the stream's first event, a member's first
    /// event of a day) starts from `fresh` without a read. Most such reads
    /// would find nothing, after a search of every level of the store.
    pub fn get_mut_unless_new(
        &mut self,
        rows: &RowWriter<'_>,
        key: K,
        row_key: &[u8],
        what: &str,
        new: bool,
        fresh: impl FnOnce() -> T,
    ) -> Result<&mut T, ViewError>
    where
        T: DeserializeOwned,
    {
        let cached = match self.rows.entry(key) {
            Entry::Occupied(entry) => {
                if !entry.get().dirty {
                    self.dirty.push(entry.key().clone());
                }
                let cached = entry.into_mut();
                cached.hit = true;
                cached
            }
            Entry::Vacant(entry) => {
                let value = if new {
                    rows.debug_assert_absent::<T>(row_key, what);
                    fresh()
                } else {
                    rows.get_value(row_key, what)?.unwrap_or_else(fresh)
                };
                self.dirty.push(entry.key().clone());
                entry.insert(Cached {
                    value,
                    dirty: false,
                    hit: false,
                })
            }
        };
        cached.dirty = true;
        Ok(&mut cached.value)
    }

    /// Hands each row changed since the last flush to `write`, once, and
    /// marks it unchanged.
    pub fn flush(&mut self, mut write: impl FnMut(&K, &T)) {
        for key in self.dirty.drain(..) {
            if let Some(cached) = self.rows.get_mut(&key) {
                cached.dirty = false;
                write(&key, &cached.value);
            }
        }
    }

    /// Rows cached.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// At `max` rows or more, after a flush: see [`trim_hot`].
    pub fn trim(&mut self, max: usize) {
        debug_assert!(self.dirty.is_empty(), "a trim follows a flush");
        trim_hot(&mut self.rows, max, |cached| {
            std::mem::take(&mut cached.hit)
        });
    }

    /// Drops every cached row, changed or not. A new map, not `clear()`: a
    /// cleared map keeps its capacity, and the memory of its largest chunk
    /// for good.
    pub fn reset(&mut self) {
        *self = RowCache::default();
    }
}

/// The row key of a program's current rules in a view: `'p' || program_id`.
pub fn program_rules_key(program_id: &str) -> Vec<u8> {
    keyed(b'p', program_id)
}

/// Folds a program's rules event: writes its rules row and returns the
/// rules; `None` (and nothing written) for any other event.
pub fn put_program_rules<'e>(
    rows: &mut RowWriter<'_>,
    event: &'e LogEvent,
) -> Option<&'e ProgramRules> {
    let rules = match &event.event.kind {
        EventKind::ProgramDefined(defined) => &defined.rules,
        EventKind::ProgramRulesChanged(changed) => &changed.rules,
        _ => return None,
    };
    rows.put_value(&program_rules_key(&event.program_id), rules);
    Some(rules)
}

/// A program's current rules from a view's rules row; an unknown program is
/// [`QueryError::NotFound`].
pub fn program_rules(view: &ViewSnapshot<'_>, program_id: &ProgramId) -> Result<Rules, QueryError> {
    let raw: ProgramRules = view
        .get_value(&program_rules_key(program_id.as_str()), "program rules")?
        .ok_or_else(|| QueryError::NotFound {
            what: format!("program {program_id}"),
            position: view.position(),
        })?;
    Rules::from_raw(&raw)
        .map_err(|error| QueryError::View(ViewError::row("program rules", error.to_string())))
}

/// The active generation of `tag`, if one was ever set.
pub fn active_generation(store: &Store, tag: u8) -> Result<Option<u32>, ViewError> {
    match store
        .db()
        .get_pinned_cf(store.cf(CF_VIEWS), active_key(tag))?
    {
        None => Ok(None),
        Some(bytes) => {
            let bytes: [u8; 4] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| ViewError::row("active generation", "not 4 bytes"))?;
            Ok(Some(u32::from_be_bytes(bytes)))
        }
    }
}

/// The checkpoint of a generation (position 0 when it has none).
pub fn checkpoint(store: &Store, space: Space) -> Result<Checkpoint, ViewError> {
    match store
        .db()
        .get_pinned_cf(store.cf(CF_VIEWS), space.checkpoint_key())?
    {
        None => Ok(Checkpoint::default()),
        Some(bytes) => Checkpoint::decode(&bytes),
    }
}

/// Adds to `batch` the deletion of every generation of `tag` except `keep`
/// (leftovers of an interrupted rebuild, or the generation a rebuild
/// replaced).
pub fn delete_other_generations(store: &Store, batch: &mut WriteBatch, tag: u8, keep: u32) {
    let cf = store.cf(CF_VIEWS);
    for kind in [ROWS, CHECKPOINT] {
        let first = [kind, tag, 0, 0, 0, 0];
        let mut keep_start = first;
        keep_start[2..].copy_from_slice(&keep.to_be_bytes());
        batch.delete_range_cf(cf, first, keep_start);
        if let Some(next) = keep.checked_add(1) {
            let mut after_keep = first;
            after_keep[2..].copy_from_slice(&next.to_be_bytes());
            // Up to the next tag; tags are ASCII letters, so `tag + 1` fits.
            batch.delete_range_cf(cf, &after_keep[..], &[kind, tag.saturating_add(1)][..]);
        }
    }
}

/// Adds to `batch` the switch of `tag`'s active generation.
pub fn set_active(store: &Store, batch: &mut WriteBatch, tag: u8, generation: u32) {
    batch.put_cf(
        store.cf(CF_VIEWS),
        active_key(tag),
        generation.to_be_bytes(),
    );
}

/// Buffered writes of one chunk of events, and reads of what earlier chunks
/// wrote. The projection keeps its own caches for rows it rewrites within a
/// chunk; reads here see only committed rows. The chunk's rows reach
/// RocksDB in key order, each once ([`OrderedBatch`]).
pub struct RowWriter<'a> {
    store: &'a Store,
    space: Space,
    batch: OrderedBatch,
}

impl<'a> RowWriter<'a> {
    /// An empty chunk for `space`.
    pub fn new(store: &'a Store, space: Space) -> Self {
        RowWriter {
            store,
            space,
            batch: OrderedBatch::default(),
        }
    }

    /// The committed value of a row.
    pub fn get(&self, suffix: &[u8]) -> Result<Option<Vec<u8>>, ViewError> {
        Ok(self
            .store
            .db()
            .get_cf(self.store.cf(CF_VIEWS), self.space.row_key(suffix))?)
    }

    /// The committed value of a row, decoded.
    pub fn get_value<T: DeserializeOwned>(
        &self,
        suffix: &[u8],
        what: &str,
    ) -> Result<Option<T>, ViewError> {
        self.get(suffix)?
            .map(|bytes| decode(&bytes, what))
            .transpose()
    }

    /// For a read skipped because the row cannot exist yet: debug builds
    /// read it anyway and assert that nothing is there.
    pub fn debug_assert_absent<T: DeserializeOwned>(&self, suffix: &[u8], what: &str) {
        debug_assert!(
            self.get_value::<T>(suffix, what)
                .is_ok_and(|row| row.is_none()),
            "a {what} row that cannot exist yet is there"
        );
    }

    /// Writes a row.
    pub fn put(&mut self, suffix: &[u8], value: &[u8]) {
        self.put_with(&[suffix], |bytes| bytes.extend_from_slice(value));
    }

    /// Writes a row, encoded.
    pub fn put_value<T: Serialize>(&mut self, suffix: &[u8], value: &T) {
        self.put_value_parts(&[suffix], value);
    }

    /// Writes a row whose key suffix is the concatenation of `parts`,
    /// encoded; no allocation per row (the hot path of a rebuild).
    pub fn put_value_parts<T: Serialize>(&mut self, parts: &[&[u8]], value: &T) {
        self.put_with(parts, |bytes| {
            // Writing plain structs into a Vec cannot fail; an empty value
            // would fail to decode later and be reported there.
            let _ =
                bincode::serde::encode_into_std_write(value, bytes, bincode::config::standard());
        });
    }

    fn put_with(&mut self, parts: &[&[u8]], value: impl FnOnce(&mut Vec<u8>)) {
        let prefix = self.space.rows_prefix();
        let key = |bytes: &mut Vec<u8>| {
            bytes.extend_from_slice(&prefix);
            for part in parts {
                bytes.extend_from_slice(part);
            }
        };
        self.batch.put_with(CF_VIEWS, key, value);
    }

    /// Deletes a row.
    pub fn delete(&mut self, suffix: &[u8]) {
        self.batch.delete(CF_VIEWS, self.space.row_key(suffix));
    }

    /// Writes everything buffered together with `checkpoint`, without the
    /// WAL (see [`Store::write_unlogged`]): rows are rebuildable, and the
    /// rows and their checkpoint reach disk together when the views'
    /// memtable is flushed, so a crash takes the view back to a checkpoint
    /// that matches its rows, and the worker folds the rest again.
    pub fn commit(self, checkpoint: Checkpoint) -> Result<(), ViewError> {
        let mut batch = self.batch.into_write_batch(self.store);
        batch.put_cf(
            self.store.cf(CF_VIEWS),
            self.space.checkpoint_key(),
            checkpoint.encode(),
        );
        self.store.write_unlogged(batch)?;
        Ok(())
    }
}

/// A consistent read of one projection's active generation: the checkpoint
/// and every row as of one RocksDB snapshot.
pub struct ViewSnapshot<'a> {
    store: &'a Store,
    snapshot: rocksdb::Snapshot<'a>,
    space: Option<Space>,
    checkpoint: Checkpoint,
}

impl<'a> ViewSnapshot<'a> {
    /// Takes a snapshot of `tag`'s active generation.
    pub fn take(store: &'a Store, tag: u8) -> Result<ViewSnapshot<'a>, ViewError> {
        let snapshot = store.db().snapshot();
        let cf = store.cf(CF_VIEWS);
        let active = match snapshot.get_cf(cf, active_key(tag))? {
            None => None,
            Some(bytes) => {
                Some(u32::from_be_bytes(bytes.as_slice().try_into().map_err(
                    |_| ViewError::row("active generation", "not 4 bytes"),
                )?))
            }
        };
        let space = active.map(|generation| Space { tag, generation });
        let checkpoint = match space {
            None => Checkpoint::default(),
            Some(space) => match snapshot.get_cf(cf, space.checkpoint_key())? {
                None => Checkpoint::default(),
                Some(bytes) => Checkpoint::decode(&bytes)?,
            },
        };
        Ok(ViewSnapshot {
            store,
            snapshot,
            space,
            checkpoint,
        })
    }

    /// The position the rows reflect.
    pub fn position(&self) -> u64 {
        self.checkpoint.position
    }

    /// A row, decoded.
    pub fn get_value<T: DeserializeOwned>(
        &self,
        suffix: &[u8],
        what: &str,
    ) -> Result<Option<T>, ViewError> {
        let Some(space) = self.space else {
            return Ok(None);
        };
        self.snapshot
            .get_cf(self.store.cf(CF_VIEWS), space.row_key(suffix))?
            .map(|bytes| decode(&bytes, what))
            .transpose()
    }

    /// Rows whose key starts with `prefix`, from `start` (a key suffix at or
    /// after `prefix`) forwards, or from `start` backwards when `reverse`
    /// (the first row returned is the last one at or before `start`). Calls
    /// `visit(key after prefix, value)` until it returns false.
    pub fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        reverse: bool,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, ViewError>,
    ) -> Result<(), ViewError> {
        let Some(space) = self.space else {
            return Ok(());
        };
        let full_prefix = space.row_key(prefix);
        let full_start = space.row_key(start);
        let mut options = ReadOptions::default();
        options.set_snapshot(&self.snapshot);
        let direction = if reverse {
            Direction::Reverse
        } else {
            Direction::Forward
        };
        let iter = self.store.db().iterator_cf_opt(
            self.store.cf(CF_VIEWS),
            options,
            IteratorMode::From(&full_start, direction),
        );
        for item in iter {
            let (key, value) = item?;
            let Some(rest) = key.strip_prefix(full_prefix.as_slice()) else {
                break;
            };
            if !visit(rest, &value)? {
                break;
            }
        }
        Ok(())
    }
}

/// SHA-256 over a generation's checkpoint and every row (key without the
/// generation prefix, and value, each length-prefixed): equal digests mean
/// byte-equal views.
pub fn digest(store: &Store, space: Space) -> Result<[u8; 32], ViewError> {
    let mut hasher = Sha256::new();
    hasher.update(checkpoint(store, space)?.encode());
    let prefix = space.rows_prefix();
    let iter = store.db().iterator_cf(
        store.cf(CF_VIEWS),
        IteratorMode::From(&prefix, Direction::Forward),
    );
    for item in iter {
        let (key, value) = item?;
        let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
            break;
        };
        hasher.update((rest.len() as u64).to_be_bytes());
        hasher.update(rest);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(&value);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_numbers_sort_like_the_numbers() {
        let values = [i64::MIN, -86_400, -1, 0, 1, 86_400, i64::MAX];
        for pair in values.windows(2) {
            assert!(i64_ordered(pair[0]) < i64_ordered(pair[1]), "{pair:?}");
        }
        for value in values {
            assert_eq!(read_i64_ordered(&i64_ordered(value)), Some(value));
        }
        assert_eq!(read_i64_ordered(&[1, 2, 3]), None);
    }

    #[test]
    fn deleting_other_generations_keeps_only_the_one_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let tag = b'b';
        for generation in 1..=3 {
            let space = Space { tag, generation };
            let mut rows = RowWriter::new(&store, space);
            rows.put(b"k", &[generation as u8]);
            let checkpoint = Checkpoint {
                position: u64::from(generation),
                recorded_at_us: 0,
            };
            rows.commit(checkpoint).expect("commit");
        }
        // Another view's rows are never touched.
        let other = Space {
            tag: b't',
            generation: 1,
        };
        let mut rows = RowWriter::new(&store, other);
        rows.put(b"k", b"t");
        rows.commit(Checkpoint::default()).expect("commit");
        let mut batch = WriteBatch::default();
        delete_other_generations(&store, &mut batch, tag, 2);
        store.write_relaxed(batch).expect("delete");
        for generation in 1..=3 {
            let space = Space { tag, generation };
            let kept = RowWriter::new(&store, space).get(b"k").expect("read");
            let expected = (generation == 2).then(|| vec![2u8]);
            assert_eq!(kept, expected, "generation {generation}");
            let position = checkpoint(&store, space).expect("checkpoint").position;
            assert_eq!(position, if generation == 2 { 2 } else { 0 });
        }
        let other_row = RowWriter::new(&store, other).get(b"k").expect("read");
        assert_eq!(other_row, Some(b"t".to_vec()));
    }

    /// Goal: at its bound a row cache keeps the rows found cached since the
    /// last trim (a skewed load's hot rows), at most half the bound, and
    /// forgets the others; those kept must be found again to stay after
    /// the next trim. Clearing every row instead made each view read its
    /// hot rows back after each clear.
    #[test]
    fn a_trim_keeps_the_rows_found_cached_up_to_half_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let rows = RowWriter::new(
            &store,
            Space {
                tag: b'x',
                generation: 1,
            },
        );
        let mut cache: RowCache<u32, u32> = RowCache::default();
        let touch = |cache: &mut RowCache<u32, u32>, key: u32| {
            cache
                .get_mut(&rows, key, &key.to_be_bytes(), "test row", || key)
                .map(|value| *value)
                .expect("row")
        };
        // Rows 0..10 read, then 0..3 found again: the hot ones.
        for key in (0..10).chain(0..3) {
            touch(&mut cache, key);
        }
        cache.flush(|_, _| {});
        cache.trim(11);
        assert_eq!(cache.len(), 10, "under the bound nothing is forgotten");
        cache.trim(10);
        let mut kept: Vec<u32> = cache.rows.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![0, 1, 2], "the rows found again, and only they");
        // Row 1 is found again; rows 10..19 are new. At the bound, only
        // row 1 was found since the last trim.
        for key in [1].into_iter().chain(10..19) {
            touch(&mut cache, key);
        }
        cache.flush(|_, _| {});
        cache.trim(10);
        assert_eq!(cache.rows.keys().copied().collect::<Vec<_>>(), vec![1]);
        // More hot rows than half the bound: half the bound of them stay.
        for key in (20..30).chain(20..30) {
            touch(&mut cache, key);
        }
        cache.flush(|_, _| {});
        cache.trim(10);
        assert_eq!(cache.len(), 5);
        assert!(cache.rows.keys().all(|key| (20..30).contains(key)));
    }
}
