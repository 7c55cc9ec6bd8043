//! A write batch that reaches RocksDB in key order.
//!
//! Most rows of a group commit or of a view's chunk land at random places in
//! their family's memtable (a member's stream index, lots and records, an
//! idempotency key, a view's member rows). RocksDB inserts each row into a
//! skip list; a row inserted right after a nearby one, with the family's
//! insert hint (`memtable_insert_with_hint_prefix_extractor`, set in
//! `cf_options`), searches up from the last insert a few levels instead of
//! down from the top: with a write's rows sorted, the rows of one family are
//! about `entries / rows` apart, not anywhere. `perf` put those searches at
//! a tenth to a fifth of the server's CPU (BENCHMARKS.md).

use super::Store;
use rocksdb::WriteBatch;
use std::ops::Range;

/// Rows of one write, kept until [`OrderedBatch::into_write_batch`] hands
/// them to RocksDB sorted by family and key, each key once: the last write
/// to a key wins, as it would in a plain `WriteBatch`. A range delete keeps
/// its place: rows written before it are handed over before it, rows
/// written after it after it.
#[derive(Default)]
pub struct OrderedBatch {
    /// Rows written in key order already ([`OrderedBatch::put_in_order`]).
    in_order: WriteBatch,
    /// Every key and value written, back to back.
    bytes: Vec<u8>,
    /// Each put and delete, in the order made.
    ops: Vec<Op>,
    /// Each range delete, after the first `before` ops.
    ranges: Vec<RangeDelete>,
}

struct Op {
    family: &'static str,
    key: Range<usize>,
    /// The value's place in `bytes`; `None` deletes.
    value: Option<Range<usize>>,
}

struct RangeDelete {
    before: usize,
    family: &'static str,
    start: Range<usize>,
    end: Range<usize>,
}

impl std::fmt::Debug for OrderedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedBatch")
            .field("in_order", &self.in_order.len())
            .field("writes", &self.ops.len())
            .field("range_deletes", &self.ranges.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl OrderedBatch {
    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.in_order.is_empty() && self.ops.is_empty() && self.ranges.is_empty()
    }

    /// Writes made so far (puts, deletes and range deletes), overwritten
    /// ones included.
    pub fn len(&self) -> usize {
        self.in_order.len() + self.ops.len() + self.ranges.len()
    }

    fn push(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// Writes `value` under `key` in `family`.
    pub fn put(&mut self, family: &'static str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = self.push(key.as_ref());
        let value = Some(self.push(value.as_ref()));
        self.ops.push(Op { family, key, value });
    }

    /// Writes `value` under `key` in `family`, a family whose rows the
    /// caller writes in key order already (the log, the chain): straight to
    /// the RocksDB batch, before every other row. A key written this way is
    /// written this way only.
    pub fn put_in_order(
        &mut self,
        family: &rocksdb::ColumnFamily,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) {
        self.in_order.put_cf(family, key, value);
    }

    /// Writes in `family` a row whose key and value are what `key` and
    /// `value` append to the buffer they are given: no allocation per row.
    pub fn put_with(
        &mut self,
        family: &'static str,
        key: impl FnOnce(&mut Vec<u8>),
        value: impl FnOnce(&mut Vec<u8>),
    ) {
        let key_start = self.bytes.len();
        key(&mut self.bytes);
        let value_start = self.bytes.len();
        value(&mut self.bytes);
        self.ops.push(Op {
            family,
            key: key_start..value_start,
            value: Some(value_start..self.bytes.len()),
        });
    }

    /// Deletes `key` in `family`.
    pub fn delete(&mut self, family: &'static str, key: impl AsRef<[u8]>) {
        let key = self.push(key.as_ref());
        self.ops.push(Op {
            family,
            key,
            value: None,
        });
    }

    /// Deletes the keys in `[start, end)` in `family`.
    pub fn delete_range(
        &mut self,
        family: &'static str,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
    ) {
        let start = self.push(start.as_ref());
        let end = self.push(end.as_ref());
        self.ranges.push(RangeDelete {
            before: self.ops.len(),
            family,
            start,
            end,
        });
    }

    /// The RocksDB batch: between range deletes, the writes sorted by
    /// family and key, and of several writes to one key only the last.
    pub fn into_write_batch(mut self, store: &Store) -> WriteBatch {
        let mut batch = std::mem::take(&mut self.in_order);
        let bytes = &self.bytes;
        let mut last: Option<(&str, &rocksdb::ColumnFamily)> = None;
        let mut cf = |family: &'static str| match last {
            Some((name, handle)) if name == family => handle,
            _ => {
                let handle = store.cf(family);
                last = Some((family, handle));
                handle
            }
        };
        let mut from = 0;
        let ends = self.ranges.iter().map(|range| range.before);
        for (to, range) in ends
            .chain([self.ops.len()])
            .zip(self.ranges.iter().map(Some).chain([None]))
        {
            let run = &mut self.ops[from..to];
            from = to;
            // Stable: of writes to one key, the last made stays last.
            run.sort_by(|a, b| {
                (a.family, &bytes[a.key.clone()]).cmp(&(b.family, &bytes[b.key.clone()]))
            });
            for (index, op) in run.iter().enumerate() {
                let key = &bytes[op.key.clone()];
                let overwritten = run.get(index + 1).is_some_and(|next| {
                    next.family == op.family && &bytes[next.key.clone()] == key
                });
                if overwritten {
                    continue;
                }
                match &op.value {
                    Some(value) => batch.put_cf(cf(op.family), key, &bytes[value.clone()]),
                    None => batch.delete_cf(cf(op.family), key),
                }
            }
            if let Some(range) = range {
                batch.delete_range_cf(
                    cf(range.family),
                    &bytes[range.start.clone()],
                    &bytes[range.end.clone()],
                );
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CF_DUE, CF_SNAPSHOTS};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Write {
        Put(&'static str, Vec<u8>, Vec<u8>),
        Delete(&'static str, Vec<u8>),
        DeleteRange(&'static str, Vec<u8>, Vec<u8>),
    }

    fn family() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(CF_SNAPSHOTS), Just(CF_DUE)]
    }

    /// Few short keys, so that writes meet on one key and ranges cover some.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(b'a'..=b'c', 1..=3)
    }

    fn any_write() -> impl Strategy<Value = Write> {
        prop_oneof![
            4 => (family(), key(), key()).prop_map(|(f, k, v)| Write::Put(f, k, v)),
            2 => (family(), key()).prop_map(|(f, k)| Write::Delete(f, k)),
            1 => (family(), key(), key()).prop_map(|(f, a, b)| {
                Write::DeleteRange(f, a.clone().min(b.clone()), a.max(b))
            }),
        ]
    }

    /// The model: the writes applied one by one, in the order made.
    fn apply(rows: &mut BTreeMap<(&'static str, Vec<u8>), Vec<u8>>, write: &Write) {
        match write {
            Write::Put(family, key, value) => {
                rows.insert((family, key.clone()), value.clone());
            }
            Write::Delete(family, key) => {
                rows.remove(&(*family, key.clone()));
            }
            Write::DeleteRange(family, start, end) => {
                rows.retain(|(f, key), _| f != family || key < start || key >= end);
            }
        }
    }

    fn stored(store: &Store) -> BTreeMap<(&'static str, Vec<u8>), Vec<u8>> {
        let mut rows = BTreeMap::new();
        for family in [CF_SNAPSHOTS, CF_DUE] {
            for row in store
                .db()
                .iterator_cf(store.cf(family), rocksdb::IteratorMode::Start)
            {
                let (key, value) = row.expect("row");
                rows.insert((family, key.to_vec()), value.to_vec());
            }
        }
        rows
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the order of keys and the range deletes among them, a
        /// store written through an OrderedBatch holds what the writes
        /// applied one by one give.
        #[test]
        fn an_ordered_batch_writes_what_the_writes_in_order_give(
            before in proptest::collection::vec((family(), key(), key()), 0..8),
            writes in proptest::collection::vec(any_write(), 0..40),
        ) {
            let (_dir, store) = open();
            let mut model = BTreeMap::new();
            let mut existing = OrderedBatch::default();
            for (family, key, value) in before {
                existing.put(family, &key, &value);
                model.insert((family, key), value);
            }
            write(&store, existing);
            let mut batch = OrderedBatch::default();
            for write in &writes {
                apply(&mut model, write);
                match write.clone() {
                    Write::Put(family, key, value) => batch.put(family, key, value),
                    Write::Delete(family, key) => batch.delete(family, key),
                    Write::DeleteRange(family, start, end) => batch.delete_range(family, start, end),
                }
            }
            write(&store, batch);
            prop_assert_eq!(stored(&store), model);
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (dir, store)
    }

    fn write(store: &Store, batch: OrderedBatch) {
        store
            .write_relaxed(batch.into_write_batch(store))
            .expect("write");
    }

    fn read(store: &Store, family: &str, key: &[u8]) -> Option<Vec<u8>> {
        store.db().get_cf(store.cf(family), key).expect("read")
    }

    #[test]
    fn the_last_write_to_a_key_wins_in_any_order_of_keys() {
        let (_dir, store) = open();
        let mut batch = OrderedBatch::default();
        batch.put(CF_SNAPSHOTS, b"kept", b"old");
        batch.put(CF_SNAPSHOTS, b"deleted", b"1");
        batch.put(CF_DUE, b"kept", b"other family");
        batch.put(CF_SNAPSHOTS, b"rewritten", b"1");
        batch.delete(CF_SNAPSHOTS, b"deleted");
        batch.put_with(
            CF_SNAPSHOTS,
            |key| key.extend_from_slice(b"kept"),
            |value| value.extend_from_slice(b"new"),
        );
        batch.delete(CF_SNAPSHOTS, b"rewritten");
        batch.put(CF_SNAPSHOTS, b"rewritten", b"2");
        batch.put(CF_SNAPSHOTS, b"alone", b"1");
        write(&store, batch);
        assert_eq!(read(&store, CF_SNAPSHOTS, b"kept"), Some(b"new".to_vec()));
        assert_eq!(read(&store, CF_SNAPSHOTS, b"deleted"), None);
        assert_eq!(
            read(&store, CF_SNAPSHOTS, b"rewritten"),
            Some(b"2".to_vec())
        );
        assert_eq!(read(&store, CF_SNAPSHOTS, b"alone"), Some(b"1".to_vec()));
        assert_eq!(
            read(&store, CF_DUE, b"kept"),
            Some(b"other family".to_vec())
        );
    }

    #[test]
    fn a_range_delete_covers_only_the_writes_made_before_it() {
        let (_dir, store) = open();
        let mut batch = OrderedBatch::default();
        batch.put(CF_SNAPSHOTS, b"m/2", b"before");
        batch.put(CF_SNAPSHOTS, b"m/1", b"before");
        batch.put(CF_DUE, b"m/1", b"other family");
        batch.delete_range(CF_SNAPSHOTS, b"m/", b"m0");
        batch.put(CF_SNAPSHOTS, b"m/3", b"after");
        batch.put(CF_SNAPSHOTS, b"a", b"outside");
        write(&store, batch);
        assert_eq!(read(&store, CF_SNAPSHOTS, b"m/1"), None);
        assert_eq!(read(&store, CF_SNAPSHOTS, b"m/2"), None);
        assert_eq!(read(&store, CF_SNAPSHOTS, b"m/3"), Some(b"after".to_vec()));
        assert_eq!(read(&store, CF_SNAPSHOTS, b"a"), Some(b"outside".to_vec()));
        assert_eq!(read(&store, CF_DUE, b"m/1"), Some(b"other family".to_vec()));
    }
}
