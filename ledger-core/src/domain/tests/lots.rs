//! The due-time indexes of a member's lots: they are derived, so a member
//! encodes exactly as its lots alone would (snapshots keep their format),
//! and decoding rebuilds them. Method: a member with pending, expiring and
//! matured lots, encoded with bincode, compared byte for byte with the map
//! of its lots encoded alone, then decoded and compared in full.

use super::*;
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
