//! A keeper of a member's lots in memory: the reference for the engine's
//! lot rows, against which a decision made holding part of the lots is
//! checked.
//!
//! The engine keeps a paged member's lots as rows and answers a decision's
//! [`LotsNeeded`] by reading them. [`KeptLots`] does the same from a map, a
//! page of `page` lots at a time, so that tests and the fuzz target can
//! decide every command both ways, holding every lot and holding a window
//! of them, and require the same events and the same state.

use std::collections::BTreeMap;

use super::command::Command;
use super::decide::{InPlaceError, decide_in_place};
use super::event::Event;
use super::lot::{FefoKey, MaturityKey, OpenLot};
use super::member::{LotsNeeded, Member};
use super::points::Points;
use super::rules::Rules;
use crate::ids::LotId;

/// A member's lots as a keeper holds them: every open lot, as of when it
/// took them. A lot the member changes afterwards is held by the member,
/// which is newer; what is kept here is only ever read for the others.
#[derive(Debug, Clone, Default)]
pub struct KeptLots {
    lots: BTreeMap<LotId, OpenLot>,
}

impl KeptLots {
    /// Keeps every lot of `member`, which must hold them all, and lets the
    /// member go of all but the first `keep` of each order.
    pub fn take_from(member: &mut Member, keep: usize) -> KeptLots {
        debug_assert!(member.holds_every_lot(), "a keeper takes every lot");
        let lots = member
            .lots()
            .map(|lot| (lot.lot_id(), lot.clone()))
            .collect();
        member.keep_lots_elsewhere();
        member.release_lots(keep);
        KeptLots { lots }
    }

    fn fefo_page(&self, from: FefoKey, page: usize) -> (Vec<OpenLot>, Option<FefoKey>) {
        let mut order: Vec<&OpenLot> = self
            .lots
            .values()
            .filter(|lot| lot.fefo_key() >= from)
            .collect();
        order.sort_by_key(|lot| lot.fefo_key());
        let next = order.get(page).map(|lot| lot.fefo_key());
        (order.into_iter().take(page).cloned().collect(), next)
    }

    fn pending_page(&self, from: MaturityKey, page: usize) -> (Vec<OpenLot>, Option<MaturityKey>) {
        let mut order: Vec<&OpenLot> = self
            .lots
            .values()
            .filter(|lot| lot.is_pending() && lot.maturity_key() >= from)
            .collect();
        order.sort_by_key(|lot| lot.maturity_key());
        let next = order.get(page).map(|lot| lot.maturity_key());
        (order.into_iter().take(page).cloned().collect(), next)
    }

    /// Gives `member` what `needed` asks for, reading pages of `page` lots
    /// (at least one) as the engine reads its rows. Returns false when
    /// nothing new could be given.
    pub fn serve(&self, member: &mut Member, needed: LotsNeeded, page: usize) -> bool {
        let page = page.max(1);
        let before = (member.held_lot_count(), member.lots_held_below());
        match needed {
            LotsNeeded::FefoThrough(through) => loop {
                let (lots, next) = self.fefo_page(member.lots_held_below().0, page);
                member.page_in_fefo(lots, next);
                if next.is_none_or(|next| next > through) {
                    break;
                }
            },
            LotsNeeded::FefoPoints(points) => {
                let mut found = 0_i64;
                loop {
                    let (lots, next) = self.fefo_page(member.lots_held_below().0, page);
                    found += lots
                        .iter()
                        .filter(|lot| !lot.is_pending() && member.lot(lot.lot_id()).is_none())
                        .map(|lot| lot.remaining().get())
                        .sum::<i64>();
                    member.page_in_fefo(lots, next);
                    if next.is_none() || Points::new(found) >= points {
                        break;
                    }
                }
            }
            LotsNeeded::PendingThrough(through) => loop {
                let (lots, next) = self.pending_page(member.lots_held_below().1, page);
                member.page_in_pending(lots, next);
                if next.is_none_or(|next| next > through) {
                    break;
                }
            },
            LotsNeeded::Lot(lot_id) => {
                return member.page_in_lot(lot_id, self.lots.get(&lot_id).cloned()) > 0;
            }
            LotsNeeded::All => {
                member.page_in_all(self.lots.values().cloned());
            }
        }
        (member.held_lot_count(), member.lots_held_below()) != before
    }

    /// Gives every lot back to `member`, which keeps them itself again:
    /// the lots it changed since are its own, newer copies.
    pub fn give_back(self, member: &mut Member) {
        member.page_in_all(self.lots.into_values());
        member.keep_lots_here();
    }
}

/// What [`decide_in_place_paged`] found: the decision, and how many times
/// it asked for lots.
#[derive(Debug)]
pub struct PagedDecision {
    /// The decision as [`decide_in_place`] gives it once every lot it asked
    /// for is held.
    pub decided: Result<Vec<Event>, InPlaceError>,
    /// How many reads it took.
    pub reads: usize,
}

/// [`decide_in_place`] on `member`, whose lots `kept` keeps: each time the
/// decision needs lots, `kept` gives them `page` at a time and it is
/// decided again, as the engine does with its rows.
pub fn decide_in_place_paged(
    member: &mut Member,
    kept: &KeptLots,
    command: &Command,
    rules: &Rules,
    now_us: i64,
    page: usize,
) -> PagedDecision {
    let mut reads = 0;
    loop {
        match decide_in_place(member, command, rules, now_us) {
            Err(InPlaceError::NeedsLots(needed)) => {
                reads += 1;
                if !kept.serve(member, needed, page) {
                    return PagedDecision {
                        decided: Err(InPlaceError::NeedsLots(needed)),
                        reads,
                    };
                }
            }
            decided => return PagedDecision { decided, reads },
        }
    }
}
