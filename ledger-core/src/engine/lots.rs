//! The lots of a paged member as rows, and reading them back.
//!
//! A member with more than [`LOTS_INLINE_MAX`] open lots is *paged*: its
//! lots are rows beside its snapshot in the `snapshots` family, and its
//! cached state holds only part of them (see `domain::member::Lots`). Each
//! lot has up to three rows under the member's rows prefix `S || 0`:
//!
//! | kind | key after the prefix | value |
//! |---|---|---|
//! | lot | `'L' ‖ be_u64(lot id)` | bincode [`OpenLot`] |
//! | FEFO order | `'F' ‖ never ‖ be_i64'(expires_at) ‖ be_u64(lot id)` | empty |
//! | maturity order (pending lots) | `'M' ‖ be_i64'(available_at) ‖ be_u64(lot id)` | empty |
//!
//! (`be_i64'` is the big-endian two's complement with the sign bit flipped,
//! so that byte order is numeric order.) The rows of a paged member are
//! always the latest: every batch that changes a lot writes its rows, and
//! the member's snapshot with them, so that loading it is its snapshot
//! plus the first lots of each order, never a replay.
//!
//! Reading back is safe while batches are in flight because a lot is let
//! go only at the writer's durable trim point: a lot that is not held has
//! durable, current rows. A lot changed in a batch not yet durable is held
//! (it was changed in memory), and one closed since the last trim is
//! remembered as closed by the member, so a row read back that is older
//! than what the member knows is ignored (`Member::page_in_fefo`).

use super::{DecideError, member_rows_prefix, store_error};
use crate::domain::{
    EventKind, FefoKey, LotsNeeded, MATURITY_KEY_MAX, MaturityKey, Member, OpenLot, Points,
};
use crate::error::StoreError;
use crate::ids::{LotId, StreamName};
use crate::store::{CF_SNAPSHOTS, OrderedBatch, Store};

/// A member with more open lots than this keeps them as rows and holds
/// only part of them; one with fewer keeps them in its snapshot.
pub const LOTS_INLINE_MAX: u64 = 32;
/// Lots of each order a paged member keeps after its lots are released,
/// and the first page read back: enough for the draws and due work of
/// most commands without reading.
pub const LOT_WINDOW_LOTS: usize = 32;
/// Most lots read back in one page; pages double from [`LOT_WINDOW_LOTS`]
/// while a need is not met.
const LOT_PAGE_LOTS_MAX: usize = 4_096;

/// The row kinds, all below [`LOT_ROWS_END`] and above the records' kinds
/// (`p`, `r`), so one range holds every lot row of a member.
const FEFO_ROW: u8 = b'F';
const LOT_ROW: u8 = b'L';
const MATURITY_ROW: u8 = b'M';
const LOT_ROWS_END: u8 = b'N';
// One range, [FEFO_ROW, LOT_ROWS_END), holds every lot row and no record
// row (`p`, `r`).
const _: () = assert!(FEFO_ROW < LOT_ROW && LOT_ROW < MATURITY_ROW && MATURITY_ROW < LOT_ROWS_END);
const _: () = assert!(LOT_ROWS_END <= b'p' && LOT_ROWS_END <= b'r');

/// True for the kind byte of a lot row (beside the record rows).
pub(super) fn is_lot_row(kind: u8) -> bool {
    (FEFO_ROW..LOT_ROWS_END).contains(&kind)
}

/// Big-endian with the sign bit flipped: byte order is numeric order.
fn ordered(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

fn row_key(stream: &StreamName, kind: u8, extra: usize) -> Vec<u8> {
    let mut key = member_rows_prefix(stream);
    key.reserve(1 + extra);
    key.push(kind);
    key
}

/// The key of lot `lot_id`'s row.
pub(super) fn lot_key(stream: &StreamName, lot_id: LotId) -> Vec<u8> {
    let mut key = row_key(stream, LOT_ROW, 8);
    key.extend_from_slice(&lot_id.get().to_be_bytes());
    key
}

fn fefo_row_key(stream: &StreamName, (never, expires_at_us, lot_id): FefoKey) -> Vec<u8> {
    let mut key = row_key(stream, FEFO_ROW, 17);
    key.push(u8::from(never));
    key.extend_from_slice(&ordered(expires_at_us));
    key.extend_from_slice(&lot_id.get().to_be_bytes());
    key
}

fn maturity_row_key(stream: &StreamName, (available_at_us, lot_id): MaturityKey) -> Vec<u8> {
    let mut key = row_key(stream, MATURITY_ROW, 16);
    key.extend_from_slice(&ordered(available_at_us));
    key.extend_from_slice(&lot_id.get().to_be_bytes());
    key
}

fn be_u64(bytes: &[u8]) -> Option<[u8; 8]> {
    bytes.try_into().ok()
}

fn parse_fefo(rest: &[u8]) -> Option<FefoKey> {
    let (never, rest) = rest.split_first()?;
    if rest.len() != 16 || *never > 1 {
        return None;
    }
    let expires_at_us = from_ordered(be_u64(rest.get(..8)?)?);
    let lot_id = LotId::new(u64::from_be_bytes(be_u64(rest.get(8..)?)?));
    Some((*never == 1, expires_at_us, lot_id))
}

fn parse_maturity(rest: &[u8]) -> Option<MaturityKey> {
    if rest.len() != 16 {
        return None;
    }
    let available_at_us = from_ordered(be_u64(rest.get(..8)?)?);
    let lot_id = LotId::new(u64::from_be_bytes(be_u64(rest.get(8..)?)?));
    Some((available_at_us, lot_id))
}

/// What a batch did to one lot, beyond changing what is left of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct LotTouch {
    /// Created, or opened again by a cancel: it takes its place in the
    /// orders.
    pub opened: bool,
    /// Matured: it leaves the maturity order.
    pub matured: bool,
}

/// The lots an event creates, draws from, gives back to or matures.
pub(super) fn event_lots(kind: &EventKind, out: &mut Vec<(LotId, LotTouch)>) {
    let opened = LotTouch {
        opened: true,
        matured: false,
    };
    let drawn = LotTouch::default();
    let mut created = |lot: &crate::domain::Lot| {
        // A lot whose points all went to debt is never opened.
        if lot.points.is_positive() {
            out.push((lot.lot_id, opened));
        }
    };
    match kind {
        EventKind::PointsEarned(earned) => created(&earned.lot),
        EventKind::PointsAwarded(awarded) => created(&awarded.lot),
        EventKind::PointsAdjusted(adjusted) => {
            if let Some(lot) = &adjusted.lot {
                created(lot);
            }
            out.extend(adjusted.draws.iter().map(|draw| (draw.lot_id, drawn)));
        }
        EventKind::PointsTransferred(transferred) => {
            transferred.lots.iter().for_each(&mut created);
            out.extend(transferred.draws.iter().map(|draw| (draw.lot_id, drawn)));
        }
        EventKind::PointsRedeemed(redeemed) => {
            out.extend(redeemed.draws.iter().map(|draw| (draw.lot_id, drawn)));
        }
        EventKind::RedemptionCancelled(cancelled) => {
            out.extend(cancelled.restored.iter().map(|draw| (draw.lot_id, opened)));
        }
        EventKind::EarnReversed(reversed) => {
            out.extend(reversed.draws.iter().map(|draw| (draw.lot_id, drawn)));
        }
        EventKind::PointsExpired(expired) => {
            out.extend(expired.draws.iter().map(|draw| (draw.lot_id, drawn)));
        }
        EventKind::PointsMatured(matured) => out.push((
            matured.lot_id,
            LotTouch {
                opened: false,
                matured: true,
            },
        )),
        EventKind::ProgramDefined(_)
        | EventKind::ProgramRulesChanged(_)
        | EventKind::MemberEnrolled(_)
        | EventKind::TierChanged(_) => {}
    }
}

fn encode_lot(lot: &OpenLot) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(lot, bincode::config::standard())
        .map_err(|error| format!("lot {}: {error}", lot.lot_id()))
}

fn put_lot(
    batch: &mut OrderedBatch,
    stream: &StreamName,
    lot: &OpenLot,
    opened: bool,
) -> Result<(), String> {
    batch.put(
        CF_SNAPSHOTS,
        lot_key(stream, lot.lot_id()),
        encode_lot(lot)?,
    );
    if opened {
        batch.put(CF_SNAPSHOTS, fefo_row_key(stream, lot.fefo_key()), []);
        if lot.is_pending() {
            batch.put(
                CF_SNAPSHOTS,
                maturity_row_key(stream, lot.maturity_key()),
                [],
            );
        }
    }
    Ok(())
}

/// Stages the rows of lots `touched` of a paged member, as the member now
/// holds them: a lot held is written, a lot closed since the last release
/// has its rows deleted.
pub(super) fn stage_touched(
    batch: &mut OrderedBatch,
    stream: &StreamName,
    member: &Member,
    touched: &mut Vec<(LotId, LotTouch)>,
) -> Result<(), String> {
    touched.sort_unstable();
    let mut index = 0;
    while let Some(&(lot_id, first)) = touched.get(index) {
        // One lot touched by several events: the union of what they did.
        let mut touch = first;
        index += 1;
        while let Some((next_id, next)) = touched.get(index).filter(|(id, _)| *id == lot_id) {
            debug_assert_eq!(*next_id, lot_id);
            touch.opened |= next.opened;
            touch.matured |= next.matured;
            index += 1;
        }
        match (member.lot(lot_id), member.closed_lot(lot_id)) {
            (Some(lot), _) => {
                put_lot(batch, stream, lot, touch.opened)?;
                if touch.matured {
                    batch.delete(CF_SNAPSHOTS, maturity_row_key(stream, lot.maturity_key()));
                }
            }
            (None, Some(created)) => {
                batch.delete(CF_SNAPSHOTS, lot_key(stream, lot_id));
                batch.delete(CF_SNAPSHOTS, fefo_row_key(stream, created.fefo_key()));
                if created.was_pending() {
                    batch.delete(
                        CF_SNAPSHOTS,
                        maturity_row_key(stream, created.maturity_key()),
                    );
                }
            }
            (None, None) => {
                return Err(format!(
                    "{stream}: lot {lot_id} was changed but is neither held nor closed"
                ));
            }
        }
    }
    touched.clear();
    Ok(())
}

/// Deletes every lot row of a member: rows written under a snapshot that
/// can no longer be read are rewritten from a replay.
pub(super) fn clear_lot_rows(batch: &mut OrderedBatch, stream: &StreamName) {
    let start = row_key(stream, FEFO_ROW, 0);
    let end = row_key(stream, LOT_ROWS_END, 0);
    batch.delete_range(CF_SNAPSHOTS, start, end);
}

/// Stages the rows of every lot of a member that holds them all: the
/// member becomes paged.
pub(super) fn stage_all(
    batch: &mut OrderedBatch,
    stream: &StreamName,
    member: &Member,
) -> Result<(), String> {
    debug_assert!(
        member.holds_every_lot(),
        "paging starts with every lot held"
    );
    for lot in member.lots() {
        put_lot(batch, stream, lot, true)?;
    }
    Ok(())
}

fn decode_lot(stream: &StreamName, lot_id: LotId, bytes: &[u8]) -> Result<OpenLot, DecideError> {
    let (lot, _): (OpenLot, _) =
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|error| store_error(format!("lot {lot_id} of {stream}: {error}"), 0))?;
    if lot.lot_id() != lot_id {
        return Err(store_error(
            format!(
                "{stream}: the row of lot {lot_id} holds lot {}",
                lot.lot_id()
            ),
            0,
        ));
    }
    Ok(lot)
}

/// Reads the rows of `lot_ids` (all of which must exist).
fn read_lots(
    store: &Store,
    stream: &StreamName,
    lot_ids: &[LotId],
) -> Result<Vec<OpenLot>, DecideError> {
    let keys: Vec<Vec<u8>> = lot_ids.iter().map(|id| lot_key(stream, *id)).collect();
    let rows = store
        .db()
        .batched_multi_get_cf(store.cf(CF_SNAPSHOTS), &keys, false);
    let mut lots = Vec::with_capacity(lot_ids.len());
    for (lot_id, row) in lot_ids.iter().zip(rows) {
        let bytes = row.map_err(StoreError::from)?.ok_or_else(|| {
            store_error(
                format!("{stream}: an order row names lot {lot_id}, which has no row"),
                0,
            )
        })?;
        lots.push(decode_lot(stream, *lot_id, &bytes)?);
    }
    Ok(lots)
}

/// One order of a member's lot rows: its row kind and key form.
trait Order {
    type Key: Copy + Ord;
    const KIND: u8;
    fn row_key(stream: &StreamName, key: Self::Key) -> Vec<u8>;
    fn parse(rest: &[u8]) -> Option<Self::Key>;
    fn lot_id(key: Self::Key) -> LotId;
}

struct Fefo;

impl Order for Fefo {
    type Key = FefoKey;
    const KIND: u8 = FEFO_ROW;
    fn row_key(stream: &StreamName, key: FefoKey) -> Vec<u8> {
        fefo_row_key(stream, key)
    }
    fn parse(rest: &[u8]) -> Option<FefoKey> {
        parse_fefo(rest)
    }
    fn lot_id(key: FefoKey) -> LotId {
        key.2
    }
}

struct Maturity;

impl Order for Maturity {
    type Key = MaturityKey;
    const KIND: u8 = MATURITY_ROW;
    fn row_key(stream: &StreamName, key: MaturityKey) -> Vec<u8> {
        maturity_row_key(stream, key)
    }
    fn parse(rest: &[u8]) -> Option<MaturityKey> {
        parse_maturity(rest)
    }
    fn lot_id(key: MaturityKey) -> LotId {
        key.1
    }
}

/// Up to `limit` lots of an order from `from` on, skipping those `member`
/// holds, and the key after them (`None`: the order ends).
fn page<O: Order>(
    store: &Store,
    stream: &StreamName,
    member: &Member,
    from: O::Key,
    limit: usize,
) -> Result<(Vec<OpenLot>, Option<O::Key>), DecideError> {
    let prefix = row_key(stream, O::KIND, 0);
    let mut options = rocksdb::ReadOptions::default();
    options.set_iterate_upper_bound(row_key(stream, O::KIND + 1, 0));
    // A page is read once: keep the block cache for hot data.
    options.fill_cache(false);
    let mut iter = store
        .db()
        .raw_iterator_cf_opt(store.cf(CF_SNAPSHOTS), options);
    iter.seek(O::row_key(stream, from));
    let mut lot_ids = Vec::new();
    let mut seen = 0;
    let mut next = None;
    while let Some(key) = iter.key() {
        let rest = key.strip_prefix(prefix.as_slice()).unwrap_or_default();
        let parsed = O::parse(rest)
            .ok_or_else(|| store_error(format!("{stream}: a bad lot order row"), 0))?;
        if seen == limit {
            next = Some(parsed);
            break;
        }
        seen += 1;
        let lot_id = O::lot_id(parsed);
        if member.lot(lot_id).is_none() {
            lot_ids.push(lot_id);
        }
        iter.next();
    }
    iter.status().map_err(StoreError::from)?;
    Ok((read_lots(store, stream, &lot_ids)?, next))
}

/// Every lot row of a member, in lot id order.
pub(super) fn read_all(store: &Store, stream: &StreamName) -> Result<Vec<OpenLot>, DecideError> {
    let prefix = row_key(stream, LOT_ROW, 0);
    let mut options = rocksdb::ReadOptions::default();
    options.set_iterate_upper_bound(row_key(stream, LOT_ROW + 1, 0));
    options.fill_cache(false);
    let mut iter = store
        .db()
        .raw_iterator_cf_opt(store.cf(CF_SNAPSHOTS), options);
    iter.seek(&prefix);
    let mut lots = Vec::new();
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        let lot_id = key
            .strip_prefix(prefix.as_slice())
            .and_then(be_u64)
            .map(|bytes| LotId::new(u64::from_be_bytes(bytes)))
            .ok_or_else(|| store_error(format!("{stream}: a bad lot row key"), 0))?;
        lots.push(decode_lot(stream, lot_id, value)?);
        iter.next();
    }
    iter.status().map_err(StoreError::from)?;
    Ok(lots)
}

/// Reads the first [`LOT_WINDOW_LOTS`] lots of each order of a paged
/// member just loaded from its snapshot, which holds none.
pub(super) fn page_in_windows(
    store: &Store,
    stream: &StreamName,
    member: &mut Member,
) -> Result<(), DecideError> {
    let (fefo_from, maturity_from) = member.lots_held_below();
    if !member.holds_every_lot() {
        let (lots, next) = page::<Fefo>(store, stream, member, fefo_from, LOT_WINDOW_LOTS)?;
        member.page_in_fefo(lots, next);
    }
    if maturity_from < MATURITY_KEY_MAX && !member.holds_every_lot() {
        let (lots, next) = page::<Maturity>(store, stream, member, maturity_from, LOT_WINDOW_LOTS)?;
        member.page_in_pending(lots, next);
    }
    Ok(())
}

/// Reads what a decision said it needs. Returns false when nothing new
/// could be learned (the decision would only ask again).
pub(super) fn page_in(
    store: &Store,
    stream: &StreamName,
    member: &mut Member,
    needed: LotsNeeded,
) -> Result<bool, DecideError> {
    let before = (member.held_lot_count(), member.lots_held_below());
    let mut limit = LOT_WINDOW_LOTS;
    match needed {
        LotsNeeded::FefoThrough(through) => loop {
            let from = member.lots_held_below().0;
            let (lots, next) = page::<Fefo>(store, stream, member, from, limit)?;
            member.page_in_fefo(lots, next);
            if next.is_none_or(|next| next > through) {
                break;
            }
            limit = (limit * 2).min(LOT_PAGE_LOTS_MAX);
        },
        LotsNeeded::FefoPoints(points) => {
            let mut found = Points::ZERO;
            loop {
                let from = member.lots_held_below().0;
                let (lots, next) = page::<Fefo>(store, stream, member, from, limit)?;
                for lot in lots.iter().filter(|lot| !lot.is_pending()) {
                    found = Points::new(found.get().saturating_add(lot.remaining().get()));
                }
                member.page_in_fefo(lots, next);
                if next.is_none() || found >= points {
                    break;
                }
                limit = (limit * 2).min(LOT_PAGE_LOTS_MAX);
            }
        }
        LotsNeeded::PendingThrough(through) => loop {
            let from = member.lots_held_below().1;
            let (lots, next) = page::<Maturity>(store, stream, member, from, limit)?;
            member.page_in_pending(lots, next);
            if next.is_none_or(|next| next > through) {
                break;
            }
            limit = (limit * 2).min(LOT_PAGE_LOTS_MAX);
        },
        LotsNeeded::Lot(lot_id) => {
            let row = store
                .db()
                .get_pinned_cf(store.cf(CF_SNAPSHOTS), lot_key(stream, lot_id))
                .map_err(StoreError::from)?;
            let lot = match row {
                Some(bytes) => Some(decode_lot(stream, lot_id, &bytes)?),
                None => None,
            };
            return Ok(member.page_in_lot(lot_id, lot) > 0);
        }
        LotsNeeded::All => {
            let lots = read_all(store, stream)?;
            member.page_in_all(lots);
        }
    }
    Ok((member.held_lot_count(), member.lots_held_below()) != before)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the row keys sort as the orders do, and parse back. Method:
    /// keys of the extremes and of times either side of zero, sorted as
    /// bytes and as values.
    #[test]
    fn order_keys_sort_as_the_orders_and_parse_back() {
        let stream = StreamName::member(
            &crate::ids::ProgramId::parse("p", "p").expect("program"),
            &crate::ids::MemberId::parse("m", "m").expect("member"),
        );
        let id = LotId::new;
        let fefo: Vec<FefoKey> = vec![
            crate::domain::FEFO_KEY_MIN,
            (false, -5, id(9)),
            (false, 0, id(2)),
            (false, 0, id(3)),
            (false, 1_700_000_000_000_000, id(1)),
            (true, 0, id(1)),
            (true, 0, id(4)),
            crate::domain::FEFO_KEY_MAX,
        ];
        let keys: Vec<Vec<u8>> = fefo.iter().map(|key| fefo_row_key(&stream, *key)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "byte order is FEFO order");
        let prefix = row_key(&stream, FEFO_ROW, 0);
        for (key, bytes) in fefo.iter().zip(&keys) {
            assert_eq!(parse_fefo(&bytes[prefix.len()..]), Some(*key));
        }
        let maturity: Vec<MaturityKey> = vec![
            crate::domain::MATURITY_KEY_MIN,
            (-1, id(3)),
            (0, id(1)),
            (7, id(2)),
            (7, id(5)),
            MATURITY_KEY_MAX,
        ];
        let keys: Vec<Vec<u8>> = maturity
            .iter()
            .map(|key| maturity_row_key(&stream, *key))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "byte order is maturity order");
        let prefix = row_key(&stream, MATURITY_ROW, 0);
        for (key, bytes) in maturity.iter().zip(&keys) {
            assert_eq!(parse_maturity(&bytes[prefix.len()..]), Some(*key));
        }
    }
}
