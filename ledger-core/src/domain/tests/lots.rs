//! A member's lots: their orders are derived and not encoded; a member
//! encodes as its counts and holds no lot once decoded, until the lots are
//! given back; a member holding part of its lots answers the questions it
//! can and names what it needs for the others.

use super::*;
use crate::domain::member::Lots;

/// Method: a member with pending, expiring and matured lots and a purchase
/// held, encoded with bincode, decoded, given its lots back, and compared
/// in full (its purchase is kept elsewhere: the engine's record rows).
#[test]
fn a_member_encodes_without_its_lots_and_records() {
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
    let bytes = bincode::serde::encode_to_vec(&given.member, config).unwrap();
    let (mut decoded, _): (Member, _) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(decoded.held_lot_count(), 0, "no lot is encoded");
    assert!(!decoded.holds_every_lot());
    assert_eq!(decoded.open_lot_count(), 2, "the counts are");
    assert!(decoded.purchase("o-1").is_none(), "no record is encoded");
    decoded.page_in_all(given.member.lots().cloned());
    for (id, purchase) in given.member.purchases() {
        decoded.hold_purchase(id, purchase.clone());
    }
    assert_eq!(decoded, given.member, "decoding rebuilds the orders");
    assert!(decoded.lots.indexes_agree());
    assert_eq!(
        decoded.next_due(&given.rules),
        given.member.next_due(&given.rules)
    );
}

/// A member holding part of its lots: the due times come from what it
/// holds and where the held part ends, a draw beyond it asks for points,
/// and a lot it never held is asked for by id. Method: six lots expiring
/// on six days, one of each order held, then pages read back.
#[test]
fn a_member_holding_part_of_its_lots_says_what_it_needs() {
    let rules = rules_with(|raw| {
        raw.pending_days = 0;
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(100)),
        });
    });
    let mut given = Given::new(rules);
    for day in 0..6 {
        given.run(
            purchase(&format!("o-{day}"), usd(10_00), &[]),
            t0() + day * DAY_US,
        );
    }
    let full = given.member.clone();
    let mut member = given.member.clone();
    let kept = KeptLots::take_from(&mut member, 1);
    assert_eq!(member.held_lot_count(), 1);
    assert_eq!(member.open_lot_count(), 6);
    assert_eq!(
        member.next_due(&given.rules),
        full.next_due(&given.rules),
        "the first lot held is the first to expire"
    );
    // Ten points from each lot: a redeem of 25 needs three lots.
    let needed = member.lots.draw_fefo(Points::new(25), None).unwrap_err();
    assert_eq!(needed, LotsNeeded::FefoPoints(Points::new(15)));
    assert!(kept.serve(&mut member, needed, 1));
    assert_eq!(
        member.held_lot_count(),
        3,
        "pages of one until 15 points are found"
    );
    let (draws, missing) = member.lots.draw_fefo(Points::new(25), None).unwrap();
    assert_eq!(missing, Points::ZERO);
    assert_eq!(draws, vec![draw(1, 10), draw(2, 10), draw(3, 5)]);
    assert_eq!(
        member.lots.state(LotId::new(6)),
        Err(LotsNeeded::Lot(LotId::new(6)))
    );
    assert!(kept.serve(&mut member, LotsNeeded::Lot(LotId::new(6)), 1));
    assert!(member.lots.state(LotId::new(6)).unwrap().is_some());
    assert!(matches!(member.lots.all(), Err(LotsNeeded::All)));
    assert!(kept.serve(&mut member, LotsNeeded::All, 1));
    assert!(member.holds_every_lot());
    let mut whole = member.clone();
    whole.keep_lots_here();
    assert_eq!(whole, full, "every lot given back: the member as it was");
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
        lots.open(open);
    }
    let mut sorted: Vec<&OpenLot> = lots.values().collect();
    sorted.sort_by_key(|lot| lot.fefo_key());
    let by_sort: Vec<u64> = sorted.iter().map(|lot| lot.lot_id().get()).collect();
    let by_index: Vec<u64> = lots.fefo().map(|lot| lot.lot_id().get()).collect();
    assert_eq!(by_index, by_sort);
    assert_eq!(by_index, vec![3, 7, 4, 2, 5, 1, 6]);
}
