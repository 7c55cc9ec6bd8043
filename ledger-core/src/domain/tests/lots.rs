//! The due-time indexes of a member's lots: they are derived, so a member
//! encodes exactly as its lots alone would (snapshots keep their format),
//! and decoding rebuilds them. Method: a member with pending, expiring and
//! matured lots, encoded with bincode, compared byte for byte with the map
//! of its lots encoded alone, then decoded and compared in full.

use super::*;
use crate::domain::member::Lots;
use std::collections::BTreeMap;

#[test]
fn lots_encode_as_their_map_and_decode_with_their_indexes() {
    let rules = rules_with(|raw| {
        raw.pending_days = 30;
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(400)),
        });
    });
    let mut given = Given::new(rules);
    given.run(purchase("o-1", usd(10_00), &[]), t0());
    given.run(purchase("o-2", usd(20_00), &[]), t0() + 10 * DAY_US);
    // The first lot matures; the second stays pending.
    given.run(Command::MaturePending, t0() + 31 * DAY_US);
    assert!(matches!(
        given.member.next_due(&given.rules),
        Some((_, DueKind::MaturePending))
    ));
    assert_eq!(given.member.open_lot_count(), 2);
    let config = bincode::config::standard();
    let map: BTreeMap<LotId, OpenLot> = given
        .member
        .lots()
        .map(|lot| (lot.lot_id(), lot.clone()))
        .collect();
    let lots_bytes = bincode::serde::encode_to_vec(&given.member.lots, config).unwrap();
    let map_bytes = bincode::serde::encode_to_vec(&map, config).unwrap();
    assert_eq!(lots_bytes, map_bytes, "the indexes are not encoded");
    let bytes = bincode::serde::encode_to_vec(&given.member, config).unwrap();
    let (decoded, _): (Member, _) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(decoded, given.member, "decoding rebuilds the indexes");
    assert!(decoded.lots.indexes_agree());
    assert_eq!(
        decoded.next_due(&given.rules),
        given.member.next_due(&given.rules)
    );
}

/// The FEFO iterator that draws use gives exactly the order of sorting
/// every open lot by `fefo_key`. Method: lots with expiries out of id order,
/// equal expiries, never-expiring lots between them by id, and a pending
/// lot, inserted in a scrambled order.
#[test]
fn fefo_iterates_in_fefo_key_order() {
    let lot = |id: u64, expires_at_us: Option<i64>, pending: bool| {
        OpenLot::new(
            Lot {
                lot_id: LotId::new(id),
                points: Points::new(10),
                earned_at_us: 0,
                available_at_us: 0,
                expires_at_us,
            },
            Points::new(10),
            pending,
        )
    };
    let mut lots = Lots::default();
    for open in [
        lot(5, Some(300), false),
        lot(1, None, false),
        lot(3, Some(100), false),
        lot(7, Some(100), true),
        lot(2, Some(300), false),
        lot(6, None, false),
        lot(4, Some(200), false),
    ] {
        lots.insert(open);
    }
    let mut sorted: Vec<&OpenLot> = lots.values().collect();
    sorted.sort_by_key(|lot| lot.fefo_key());
    let by_sort: Vec<u64> = sorted.iter().map(|lot| lot.lot_id().get()).collect();
    let by_index: Vec<u64> = lots.fefo().map(|lot| lot.lot_id().get()).collect();
    assert_eq!(by_index, by_sort);
    assert_eq!(by_index, vec![3, 7, 4, 2, 5, 1, 6]);
}
