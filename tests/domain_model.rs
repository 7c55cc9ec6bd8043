//! Model test: the domain against a deliberately simple reference model.
//!
//! Goal: catch any divergence between `decide`/`apply` and the rules as
//! documented, under random programs, random command sequences and random
//! clock jumps (minutes to years, and small steps backwards).
//!
//! Method: the model below is written from the rules' documentation, not
//! from the domain's code. It shares only the command and rules types and
//! the limit constants. It
//! keeps every lot ever created in a `Vec` (closed ones too), every
//! activity time, every qualifying entry and every purchase and redemption,
//! and recomputes everything by brute force (balances by summing lots,
//! windows by scanning entries, calendars by counting days from 1970).
//! After every step it requires: the same accept/reject answer (by error
//! code); the same available, pending, debt, tier and set of open lots;
//! balance = open available lots - debt; points conservation over the
//! domain's own events; and that replaying every produced event from
//! `Member::default()` gives the live state. Every decision is made a
//! second time holding only a window of zero to two lots of each order, the
//! others read back a page at a time when the decision asks (as the engine
//! reads a paged member's rows): the same answer, and the same state once
//! every lot is given back. A second property folds the
//! same scenarios into the balance and tier views (see "The balance and
//! tier views against the model" below). Shrunk failures are kept as
//! named regression tests at the bottom. `MODEL_CASES=20000 cargo test
//! --release --test domain_model` runs a longer hunt than the default.

use std::collections::BTreeMap;

use ledger_core::clock::{Clock, ManualClock};
use ledger_core::domain::ProgramDefined;
use ledger_core::domain::{
    Campaign, Command, Currency, DomainError, Event, EventKind, ExpiryReason, InPlaceError,
    KeptLots, LotExpiry, LotExpiryRule, Member, Money, Points, ProgramRules, ProgramRulesChanged,
    ReturnPolicy, Rounding, Rules, ShortfallPolicy, Tier, TierChangeReason, TierMeasure,
    TransferPoints, apply, decide, decide_in_place_paged, decide_transfer,
};
use ledger_core::ids::{IdempotencyKey, MemberId, ProgramId, StreamName};
use ledger_core::limits::{POINTS_PER_COMMAND_MAX, RECORD_RETENTION_DAYS, SPEND_MINOR_UNITS_MAX};
use ledger_core::pb;
use ledger_core::store::Store;
use ledger_core::writer::{Append, Envelope, PassThrough, Writer, WriterConfig};
use projections::runtime::{Folder, ViewKind};
use projections::{QueryError, balance, tier};
use proptest::prelude::*;
use std::sync::Arc;

const DAY: i64 = 86_400_000_000;
const MINUTE: i64 = 60_000_000;
/// 2023-06-01T00:00:00Z: 19,509 days after the epoch.
const START: i64 = 19_509 * DAY;

// ---------------------------------------------------------------------------
// Brute-force calendar: count days from 1970, no clever formulas.

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn month_lengths(year: i64) -> [i64; 12] {
    [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ]
}

/// (year, month 1..=12) of a day number >= 0.
fn year_month(mut day: i64) -> (i64, usize) {
    let mut year = 1970;
    loop {
        let length = if is_leap(year) { 366 } else { 365 };
        if day < length {
            break;
        }
        day -= length;
        year += 1;
    }
    for (index, length) in month_lengths(year).iter().enumerate() {
        if day < *length {
            return (year, index + 1);
        }
        day -= length;
    }
    unreachable!("a day of the year fits its months")
}

/// Day number of the first day of `month` in `year`.
fn first_day(year: i64, month: usize) -> i64 {
    let mut day = 0;
    for y in 1970..year {
        day += if is_leap(y) { 366 } else { 365 };
    }
    day + month_lengths(year)[..month - 1].iter().sum::<i64>()
}

fn day_of(us: i64) -> i64 {
    us.div_euclid(DAY)
}

// ---------------------------------------------------------------------------
// The model.

#[derive(Clone, Debug)]
struct ModelLot {
    id: u64,
    left: i64,
    pending: bool,
    available_at: i64,
    expires_at: Option<i64>,
}

#[derive(Clone, Debug)]
struct ModelPurchase {
    order_id: String,
    lot_id: u64,
    spend: i64,
    currency: &'static str,
    base: i64,
    points: i64,
    at: i64,
    refunded: i64,
}

#[derive(Clone, Debug)]
struct ModelRedemption {
    id: String,
    at: i64,
    draws: Vec<(u64, i64)>,
    cancelled: bool,
}

#[derive(Clone, Debug, Default)]
struct ModelMember {
    enrolled: bool,
    clock: i64,
    lots: Vec<ModelLot>,
    debt: i64,
    tier: String,
    floor: String,
    period_start: i64,
    activities: Vec<i64>,
    /// (time, base points, spend) of purchases (+) and returns (-).
    qualifying: Vec<(i64, i64, i64)>,
    purchases: Vec<ModelPurchase>,
    redemptions: Vec<ModelRedemption>,
}

type Answer = Result<(), &'static str>;

impl ModelMember {
    fn available(&self) -> i64 {
        self.lots
            .iter()
            .filter(|lot| !lot.pending)
            .map(|lot| lot.left)
            .sum()
    }

    fn pending(&self) -> i64 {
        self.lots
            .iter()
            .filter(|lot| lot.pending)
            .map(|lot| lot.left)
            .sum()
    }

    fn balance(&self) -> i64 {
        self.available() - self.debt
    }

    fn spendable(&self) -> i64 {
        self.balance().max(0)
    }

    fn open_lots(&self) -> Vec<(u64, i64, bool, Option<i64>)> {
        let mut lots: Vec<_> = self
            .lots
            .iter()
            .filter(|lot| lot.left > 0)
            .map(|lot| (lot.id, lot.left, lot.pending, lot.expires_at))
            .collect();
        lots.sort();
        lots
    }

    fn last_activity(&self) -> i64 {
        self.activities.iter().copied().max().unwrap_or(0)
    }

    fn lot_mut(&mut self, id: u64) -> &mut ModelLot {
        self.lots
            .iter_mut()
            .find(|lot| lot.id == id)
            .expect("lot exists")
    }

    /// Draws FEFO from available lots other than `skip`.
    fn draw_fefo(&mut self, mut amount: i64, skip: Option<u64>) -> (Vec<(u64, i64)>, i64) {
        let mut order: Vec<(bool, i64, u64)> = self
            .lots
            .iter()
            .filter(|lot| lot.left > 0 && !lot.pending && Some(lot.id) != skip)
            .map(|lot| {
                (
                    lot.expires_at.is_none(),
                    lot.expires_at.unwrap_or(0),
                    lot.id,
                )
            })
            .collect();
        order.sort();
        let mut draws = Vec::new();
        for (_, _, id) in order {
            if amount == 0 {
                break;
            }
            let lot = self.lot_mut(id);
            let take = amount.min(lot.left);
            lot.left -= take;
            amount -= take;
            draws.push((id, take));
        }
        (draws, amount)
    }

    fn add_lot(
        &mut self,
        points: i64,
        now: i64,
        available_at: i64,
        expires_at: Option<i64>,
    ) -> u64 {
        let id = self.lots.len() as u64 + 1;
        self.lots.push(ModelLot {
            id,
            left: points,
            pending: available_at > now,
            available_at,
            expires_at,
        });
        id
    }

    fn enroll(&mut self, now: i64) {
        self.enrolled = true;
        self.activities.push(now);
        self.period_start = now;
    }

    fn repay(&mut self, points: i64) -> i64 {
        let repaid = points.min(self.debt);
        self.debt -= repaid;
        repaid
    }
}

/// Reading the raw rules the way the documentation states them.
struct ModelRules<'a>(&'a ProgramRules);

impl ModelRules<'_> {
    fn exponent(&self) -> u32 {
        match self.0.currency.as_str() {
            "JPY" => 0,
            "KWD" => 3,
            _ => 2,
        }
    }

    fn round(&self, numerator: i128, denominator: i128) -> i128 {
        let quotient = numerator / denominator;
        let remainder = numerator % denominator;
        match self.0.rounding {
            Rounding::Floor => quotient,
            Rounding::Ceiling => quotient + i128::from(remainder > 0),
            Rounding::HalfUp => quotient + i128::from(2 * remainder >= denominator),
            Rounding::Unspecified => unreachable!("validated"),
        }
    }

    fn expires_at(&self, earned: i64) -> Option<i64> {
        match self.0.lot_expiry.and_then(|expiry| expiry.rule) {
            None => None,
            Some(LotExpiryRule::AfterDays(days)) => Some(earned + i64::from(days) * DAY),
            Some(LotExpiryRule::AfterMonthsEnd(months)) => {
                let (year, month) = year_month(day_of(earned));
                // Step month by month to the first month after the Nth.
                let (mut y, mut m) = (year, month);
                for _ in 0..=months {
                    m += 1;
                    if m == 13 {
                        m = 1;
                        y += 1;
                    }
                }
                Some(first_day(y, m) * DAY)
            }
        }
    }

    fn tier_index(&self, name: &str) -> (usize, bool) {
        if name.is_empty() {
            return (0, true);
        }
        match self.0.tiers.iter().position(|tier| tier.name == name) {
            Some(index) => (index, true),
            None => (0, false),
        }
    }

    fn tier_for(&self, measure: i64) -> usize {
        let mut best = 0;
        for (index, tier) in self.0.tiers.iter().enumerate() {
            if tier.threshold <= measure {
                best = index;
            }
        }
        best
    }

    fn measure_entry(&self, entry: &(i64, i64, i64)) -> i64 {
        match self.0.tier_measure {
            TierMeasure::Spend => entry.2,
            _ => entry.1,
        }
    }

    /// Measure over entries whose day `d` satisfies `first <= d < end`.
    fn measure_days(&self, member: &ModelMember, first: i64, end: i64) -> i64 {
        member
            .qualifying
            .iter()
            .filter(|entry| (first..end).contains(&day_of(entry.0)))
            .map(|entry| self.measure_entry(entry))
            .sum()
    }

    /// The window as of instant `now`, its day included.
    fn measure_as_of(&self, member: &ModelMember, now: i64) -> i64 {
        let today = day_of(now);
        if self.0.tier_window_days == 0 {
            let (year, _) = year_month(today);
            self.measure_days(member, first_day(year, 1), today + 1)
        } else {
            self.measure_days(
                member,
                today + 1 - i64::from(self.0.tier_window_days),
                today + 1,
            )
        }
    }

    /// The window that ends at the period end `end` (a midnight).
    fn measure_before(&self, member: &ModelMember, end: i64) -> i64 {
        let end_day = day_of(end);
        if self.0.tier_window_days == 0 {
            let (year, _) = year_month(end_day - 1);
            self.measure_days(member, first_day(year, 1), end_day)
        } else {
            self.measure_days(
                member,
                end_day - i64::from(self.0.tier_window_days),
                end_day,
            )
        }
    }

    fn period_end(&self, start: i64) -> i64 {
        if self.0.tier_window_days == 0 {
            let (year, _) = year_month(day_of(start));
            first_day(year + 1, 1) * DAY
        } else {
            (day_of(start) + i64::from(self.0.tier_window_days)) * DAY
        }
    }

    fn reviewable(&self, member: &ModelMember) -> bool {
        let (index, known) = self.tier_index(&member.tier);
        !self.0.tiers.is_empty() && member.enrolled && (index > 0 || !known)
    }

    fn tier_name(&self, index: usize) -> String {
        self.0
            .tiers
            .get(index)
            .map(|tier| tier.name.clone())
            .unwrap_or_default()
    }
}

/// Runs all due work up to `now`, earliest first; true if any was due.
fn model_catch_up(member: &mut ModelMember, rules: &ModelRules<'_>, now: i64) -> bool {
    let mut worked = false;
    loop {
        let mut due: Vec<(i64, u8)> = Vec::new();
        for lot in member.lots.iter().filter(|lot| lot.left > 0) {
            if lot.pending {
                due.push((lot.available_at, 0));
            }
            if let Some(expires_at) = lot.expires_at {
                due.push((expires_at, 1));
            }
        }
        let any_open = member.lots.iter().any(|lot| lot.left > 0);
        if rules.0.inactivity_expiry_days > 0 && any_open {
            due.push((
                member.last_activity() + i64::from(rules.0.inactivity_expiry_days) * DAY,
                2,
            ));
        }
        if rules.reviewable(member) {
            due.push((rules.period_end(member.period_start), 3));
        }
        let Some(&(at, kind)) = due.iter().min() else {
            return worked;
        };
        if at > now {
            return worked;
        }
        worked = true;
        match kind {
            0 => {
                let lot = member
                    .lots
                    .iter_mut()
                    .filter(|lot| lot.left > 0 && lot.pending && lot.available_at == at)
                    .min_by_key(|lot| lot.id)
                    .expect("a lot is due");
                lot.pending = false;
            }
            1 => {
                for lot in member
                    .lots
                    .iter_mut()
                    .filter(|lot| lot.expires_at == Some(at))
                {
                    lot.left = 0;
                }
            }
            2 => member.lots.iter_mut().for_each(|lot| lot.left = 0),
            _ => {
                let (index, known) = rules.tier_index(&member.tier);
                let measured = rules.tier_for(rules.measure_before(member, at));
                let target = if rules.0.tier_soft_landing && known && measured < index {
                    measured.max(index - 1)
                } else {
                    measured
                };
                member.tier = rules.tier_name(target);
                member.floor = member.tier.clone();
                member.period_start = now;
            }
        }
    }
}

fn within_retention(at: i64, now: i64) -> bool {
    now - at <= RECORD_RETENTION_DAYS * DAY
}

fn currency_code(money: &Money) -> &'static str {
    money.currency.code()
}

fn model_command(
    member: &mut ModelMember,
    rules: &ModelRules<'_>,
    command: &Command,
    occurred_at: i64,
) -> Answer {
    if !(0..=253_402_300_799_999_999).contains(&occurred_at) {
        return Err("invalid_field");
    }
    model_validate(rules, command)?;
    let now = occurred_at.max(member.clock);
    // The member's clock is the latest time of its events: a system command
    // with nothing due records nothing and leaves it.
    if model_catch_up(member, rules, now) || !is_system(command) {
        member.clock = now;
    }
    match command {
        Command::Enroll => {
            if member.enrolled {
                return Err("already_enrolled");
            }
            member.enroll(now);
            Ok(())
        }
        Command::RecordPurchase {
            order_id,
            spend,
            tags,
        } => model_purchase(member, rules, order_id, spend, tags, now),
        Command::AwardPoints { points, .. } => {
            if !member.enrolled {
                member.enroll(now);
            }
            let points = points.get();
            let repaid = member.repay(points);
            let available_at = if rules.0.bonus_points_pending {
                now + i64::from(rules.0.pending_days) * DAY
            } else {
                now
            };
            member.add_lot(points - repaid, now, available_at, rules.expires_at(now));
            member.activities.push(now);
            Ok(())
        }
        Command::Redeem {
            redemption_id,
            points,
        } => model_redeem(member, rules, redemption_id, points.get(), now),
        Command::CancelRedemption { redemption_id } => {
            model_cancel(member, rules, redemption_id, now)
        }
        Command::RecordReturn { order_id, refund } => {
            model_return(member, rules, order_id, refund, now)
        }
        Command::AdjustPoints { points, .. } => {
            if !member.enrolled {
                return Err("not_enrolled");
            }
            let points = points.get();
            if points > 0 {
                let repaid = member.repay(points);
                member.add_lot(points - repaid, now, now, rules.expires_at(now));
                member.activities.push(now);
            } else {
                if -points > member.spendable() {
                    return Err("insufficient_points");
                }
                member.draw_fefo(-points, None);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn is_system(command: &Command) -> bool {
    matches!(
        command,
        Command::MaturePending
            | Command::ExpireLots
            | Command::ExpireInactive
            | Command::EvaluateTier
    )
}

fn model_validate(rules: &ModelRules<'_>, command: &Command) -> Answer {
    let in_points = |points: &Points| (1..=POINTS_PER_COMMAND_MAX).contains(&points.get());
    let ok = match command {
        Command::RecordPurchase {
            order_id, spend, ..
        } => {
            !order_id.is_empty()
                && currency_code(spend) == rules.0.currency
                && (1..=SPEND_MINOR_UNITS_MAX).contains(&spend.minor_units)
        }
        Command::AwardPoints { points, .. } | Command::Redeem { points, .. } => in_points(points),
        Command::RecordReturn { refund, .. } => {
            (1..=SPEND_MINOR_UNITS_MAX).contains(&refund.minor_units)
        }
        Command::AdjustPoints { points, .. } => {
            points.get() != 0 && points.get().abs() <= POINTS_PER_COMMAND_MAX
        }
        _ => true,
    };
    if ok { Ok(()) } else { Err("invalid_field") }
}

fn model_purchase(
    member: &mut ModelMember,
    rules: &ModelRules<'_>,
    order_id: &str,
    spend: &Money,
    tags: &[String],
    now: i64,
) -> Answer {
    if member
        .purchases
        .iter()
        .any(|p| p.order_id == order_id && within_retention(p.at, now))
    {
        return Err("duplicate_order");
    }
    let raw = rules.0;
    let base = rules.round(
        i128::from(spend.minor_units) * i128::from(raw.earn_rate_bps),
        10_000 * 10_i128.pow(rules.exponent()),
    );
    if base > i128::from(POINTS_PER_COMMAND_MAX) {
        return Err("invalid_field");
    }
    let (tier_index, _) = rules.tier_index(&member.tier);
    let tier_bps = raw
        .tiers
        .get(tier_index)
        .map_or(10_000, |tier| tier.earn_multiplier_bps);
    let tier_name = rules.tier_name(tier_index);
    let eligible: Vec<&Campaign> = raw
        .campaigns
        .iter()
        .filter(|c| c.starts_at_us <= now && now < c.ends_at_us)
        .filter(|c| c.tiers.is_empty() || c.tiers.contains(&tier_name))
        .filter(|c| c.tags.is_empty() || c.tags.iter().any(|tag| tags.contains(tag)))
        .filter(|c| spend.minor_units >= c.min_spend_minor_units)
        .collect();
    let value = |set: &[&Campaign]| -> i128 {
        let extra: i64 = set
            .iter()
            .filter(|c| c.multiplier_bps > 0)
            .map(|c| c.multiplier_bps - 10_000)
            .sum();
        let bonus: i64 = set.iter().map(|c| c.bonus_points).sum();
        rules.round(base * i128::from(tier_bps + extra), 10_000) + i128::from(bonus)
    };
    let stack: Vec<&Campaign> = eligible.iter().copied().filter(|c| c.stackable).collect();
    let mut best = value(&stack);
    for single in eligible.iter().filter(|c| !c.stackable) {
        best = best.max(value(&[*single]));
    }
    if best > i128::from(POINTS_PER_COMMAND_MAX) {
        return Err("invalid_field");
    }
    let points = best as i64;
    let base = base as i64;
    if !member.enrolled {
        member.enroll(now);
    }
    let repaid = member.repay(points);
    let lot_id = member.add_lot(
        points - repaid,
        now,
        now + i64::from(raw.pending_days) * DAY,
        rules.expires_at(now),
    );
    member.activities.push(now);
    member.qualifying.push((now, base, spend.minor_units));
    member.purchases.push(ModelPurchase {
        order_id: order_id.to_owned(),
        lot_id,
        spend: spend.minor_units,
        currency: currency_code(spend),
        base,
        points,
        at: now,
        refunded: 0,
    });
    if !raw.tiers.is_empty() {
        let target = rules.tier_for(rules.measure_as_of(member, now));
        if target > tier_index {
            member.tier = rules.tier_name(target);
            member.period_start = now;
        }
    }
    Ok(())
}

fn model_redeem(
    member: &mut ModelMember,
    rules: &ModelRules<'_>,
    id: &str,
    points: i64,
    now: i64,
) -> Answer {
    if !member.enrolled {
        return Err("not_enrolled");
    }
    if member
        .redemptions
        .iter()
        .any(|r| r.id == id && within_retention(r.at, now))
    {
        return Err("duplicate_redemption");
    }
    if points < rules.0.min_redeem_points {
        return Err("below_minimum_redeem");
    }
    if points > member.spendable() {
        return Err("insufficient_points");
    }
    let (draws, missing) = member.draw_fefo(points, None);
    assert_eq!(missing, 0);
    member.activities.push(now);
    member.redemptions.push(ModelRedemption {
        id: id.to_owned(),
        at: now,
        draws,
        cancelled: false,
    });
    Ok(())
}

fn model_cancel(member: &mut ModelMember, rules: &ModelRules<'_>, id: &str, now: i64) -> Answer {
    if !member.enrolled {
        return Err("not_enrolled");
    }
    let Some(index) = member
        .redemptions
        .iter()
        .rposition(|r| r.id == id && within_retention(r.at, now))
    else {
        return Err("unknown_redemption");
    };
    if member.redemptions[index].cancelled {
        return Err("redemption_already_cancelled");
    }
    let redemption = member.redemptions[index].clone();
    // Would the points have expired by inactivity since the redemption?
    let period = i64::from(rules.0.inactivity_expiry_days) * DAY;
    let mut times: Vec<i64> = member
        .activities
        .iter()
        .copied()
        .filter(|t| *t >= redemption.at)
        .collect();
    times.sort();
    times.push(now);
    let inactive = period > 0 && times.windows(2).any(|pair| pair[1] - pair[0] >= period);
    for (lot_id, points) in &redemption.draws {
        let lot = member.lot_mut(*lot_id);
        let expired = inactive || lot.expires_at.is_some_and(|at| at <= now);
        if !expired {
            lot.left += points;
        }
    }
    member.redemptions[index].cancelled = true;
    Ok(())
}

fn model_return(
    member: &mut ModelMember,
    rules: &ModelRules<'_>,
    order_id: &str,
    refund: &Money,
    now: i64,
) -> Answer {
    if !member.enrolled {
        return Err("not_enrolled");
    }
    let Some(index) = member
        .purchases
        .iter()
        .rposition(|p| p.order_id == order_id && within_retention(p.at, now))
    else {
        return Err("unknown_order");
    };
    let purchase = member.purchases[index].clone();
    if currency_code(refund) != purchase.currency {
        return Err("invalid_field");
    }
    let refunded = purchase.refunded + refund.minor_units;
    if refunded > purchase.spend {
        return Err("refund_exceeds_spend");
    }
    let share = |total: i64, part: i64| {
        (i128::from(total) * i128::from(part) / i128::from(purchase.spend)) as i64
    };
    let points = share(purchase.points, refunded) - share(purchase.points, purchase.refunded);
    let base = share(purchase.base, refunded) - share(purchase.base, purchase.refunded);
    let own = member.lot_mut(purchase.lot_id);
    let take = points.min(own.left);
    own.left -= take;
    let (_, shortfall) = member.draw_fefo(points - take, Some(purchase.lot_id));
    if rules.0.return_policy == ShortfallPolicy::Debt {
        member.debt += shortfall;
    }
    member.purchases[index].refunded = refunded;
    member.qualifying.push((now, -base, -refund.minor_units));
    if !rules.0.tiers.is_empty() {
        let (index, _) = rules.tier_index(&member.tier);
        let (floor, _) = rules.tier_index(&member.floor);
        let target = rules.tier_for(rules.measure_as_of(member, now)).max(floor);
        if target < index {
            member.tier = rules.tier_name(target);
            member.period_start = now;
        }
    }
    Ok(())
}

fn model_transfer(
    from: &mut ModelMember,
    to: &mut ModelMember,
    rules: &ModelRules<'_>,
    points: i64,
    occurred_at: i64,
) -> Answer {
    if !(1..=POINTS_PER_COMMAND_MAX).contains(&points) {
        return Err("invalid_field");
    }
    let from_now = occurred_at.max(from.clock);
    let to_now = occurred_at.max(to.clock);
    model_catch_up(from, rules, from_now);
    model_catch_up(to, rules, to_now);
    if !from.enrolled || !to.enrolled {
        return Err("not_enrolled");
    }
    if points > from.spendable() {
        return Err("insufficient_points");
    }
    let (draws, missing) = from.draw_fefo(points, None);
    assert_eq!(missing, 0);
    for (lot_id, drawn) in draws {
        let expires_at = from.lot_mut(lot_id).expires_at;
        let repaid = to.repay(drawn);
        if drawn > repaid {
            to.add_lot(drawn - repaid, to_now, to_now, expires_at);
        }
    }
    from.clock = from_now;
    to.clock = to_now;
    Ok(())
}

// ---------------------------------------------------------------------------
// Scenarios.

#[derive(Clone, Debug)]
enum Action {
    Command(Command),
    /// Transfer from member `from` to the other member.
    Transfer {
        from: usize,
        points: i64,
    },
    ChangeRules(ProgramRules),
}

/// How the clock moves before a step. Besides random jumps, it may land
/// exactly on the next due time of a member (or a microsecond before it) or
/// on a campaign's start or end, where off-by-one mistakes live.
#[derive(Clone, Debug)]
enum Jump {
    By(i64),
    ToNextDue { member: usize, minus_one: bool },
    ToCampaignEdge { campaign: usize, end: bool },
}

#[derive(Clone, Debug)]
struct Step {
    jump: Jump,
    member: usize,
    action: Action,
}

fn tier_names() -> [&'static str; 4] {
    ["Blue", "Silver", "Gold", "Platinum"]
}

fn arb_tiers() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec((1i64..=40_000, 5_000i64..=30_000), 0..=4).prop_map(|specs| {
        let mut threshold = 0;
        specs
            .into_iter()
            .enumerate()
            .map(|(index, (step, multiplier))| {
                if index > 0 {
                    threshold += step;
                }
                Tier {
                    name: tier_names()[index].to_owned(),
                    threshold,
                    earn_multiplier_bps: if index == 0 { 10_000 } else { multiplier },
                }
            })
            .collect()
    })
}

fn arb_campaign(index: usize) -> impl Strategy<Value = Campaign> {
    (
        (0i64..=1_100, 1i64..=400),
        prop_oneof![
            (10_001i64..=40_000).prop_map(|m| (m, 0i64)),
            (1i64..=300).prop_map(|b| (0i64, b))
        ],
        prop::collection::vec(prop::sample::select(tier_names().to_vec()), 0..=2),
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..=2),
        prop_oneof![Just(0i64), 1i64..=50_000],
        any::<bool>(),
    )
        .prop_map(
            move |(
                (start_day, length_days),
                (multiplier_bps, bonus_points),
                tiers,
                tags,
                min_spend,
                stackable,
            )| {
                let mut tiers: Vec<String> = tiers.into_iter().map(str::to_owned).collect();
                tiers.dedup();
                Campaign {
                    campaign_id: format!("c{index}"),
                    starts_at_us: START + start_day * DAY,
                    ends_at_us: START + (start_day + length_days) * DAY,
                    multiplier_bps,
                    bonus_points,
                    tiers,
                    tags: tags.into_iter().map(str::to_owned).collect(),
                    min_spend_minor_units: min_spend,
                    stackable,
                }
            },
        )
}

fn arb_rules(currency: &'static str) -> impl Strategy<Value = ProgramRules> {
    let earn = (
        0i64..=40_000,
        prop_oneof![
            Just(Rounding::Floor),
            Just(Rounding::HalfUp),
            Just(Rounding::Ceiling)
        ],
    );
    let tiers = (
        arb_tiers(),
        prop_oneof![
            Just(TierMeasure::QualifyingPoints),
            Just(TierMeasure::Spend)
        ],
        prop_oneof![Just(0u32), 1u32..=400],
        any::<bool>(),
    );
    let expiry = (
        prop_oneof![
            Just(None),
            (1u32..=400).prop_map(|days| Some(LotExpiryRule::AfterDays(days))),
            (1u32..=24).prop_map(|months| Some(LotExpiryRule::AfterMonthsEnd(months))),
        ],
        prop_oneof![Just(0u32), 1u32..=800],
        prop_oneof![Just(0u32), 1u32..=40],
        any::<bool>(),
    );
    let other = (
        prop_oneof![Just(0i64), 1i64..=60],
        prop_oneof![Just(ShortfallPolicy::Forfeit), Just(ShortfallPolicy::Debt)],
        (
            arb_campaign(0),
            arb_campaign(1),
            arb_campaign(2),
            0usize..=3,
        ),
    );
    (earn, tiers, expiry, other).prop_map(
        move |(
            (rate, rounding),
            (tiers, measure, window, soft),
            (lot_rule, inactivity, pending, bonus_pending),
            (min_redeem, policy, (c0, c1, c2, campaigns)),
        )| {
            let tier_count = tiers.len();
            let mut all = vec![c0, c1, c2];
            all.truncate(campaigns);
            // Campaign tier conditions may only name tiers that exist.
            for campaign in &mut all {
                campaign
                    .tiers
                    .retain(|name| tier_names()[..tier_count].contains(&name.as_str()));
            }
            ProgramRules {
                name: "Model".to_owned(),
                currency: currency.to_owned(),
                earn_rate_bps: rate,
                rounding,
                point_value_minor_units: 1,
                point_value_per_points: 100,
                tiers,
                tier_measure: measure,
                tier_window_days: window,
                tier_soft_landing: soft,
                campaigns: all,
                lot_expiry: Some(LotExpiry { rule: lot_rule }),
                inactivity_expiry_days: inactivity,
                pending_days: pending,
                bonus_points_pending: bonus_pending,
                min_redeem_points: min_redeem,
                return_policy: policy,
                utc_offset_minutes: 0,
                rfm_window_days: 0,
            }
        },
    )
}

fn money(minor_units: i64, code: &str) -> Money {
    Money::new(
        minor_units,
        Currency::from_code(code, "currency").expect("known currency"),
    )
}

fn arb_command(currency: &'static str) -> impl Strategy<Value = Command> {
    let tags = prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..=2)
        .prop_map(|tags| tags.into_iter().map(str::to_owned).collect::<Vec<_>>());
    let spend = prop_oneof![8 => 1i64..=100_000, 1 => Just(0i64), 1 => 100_000i64..=5_000_000];
    let refund = prop_oneof![6 => 1i64..=20_000, 2 => 20_000i64..=100_000, 1 => Just(0i64)];
    // Small id pools, so that returns and cancels often find their purchase
    // or redemption, and duplicates happen.
    prop_oneof![
        1 => Just(Command::Enroll),
        6 => (0u8..6, spend, tags, prop::bool::weighted(0.03)).prop_map(move |(order, minor, tags, foreign)| {
            Command::RecordPurchase {
                order_id: format!("o{order}"),
                spend: money(minor, if foreign { "EUR" } else { currency }),
                tags,
            }
        }),
        2 => (0i64..=500).prop_map(|points| Command::AwardPoints { reason: "bonus".to_owned(), points: Points::new(points) }),
        4 => (0u8..4, prop_oneof![3 => 1i64..=150, 1 => 150i64..=1_000]).prop_map(|(id, points)| Command::Redeem {
            redemption_id: format!("r{id}"),
            points: Points::new(points),
        }),
        3 => (0u8..4).prop_map(|id| Command::CancelRedemption { redemption_id: format!("r{id}") }),
        4 => (0u8..6, refund).prop_map(move |(order, minor)| Command::RecordReturn { order_id: format!("o{order}"), refund: money(minor, currency) }),
        2 => (-600i64..=600).prop_map(|points| Command::AdjustPoints { reason: "ops".to_owned(), points: Points::new(points) }),
        1 => Just(Command::MaturePending),
        1 => Just(Command::ExpireLots),
        1 => Just(Command::ExpireInactive),
        1 => Just(Command::EvaluateTier),
    ]
}

fn arb_jump() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => Just(0i64),
        4 => (1i64..=600).prop_map(|m| m * MINUTE),
        4 => (1i64..=45).prop_map(|d| d * DAY),
        2 => (30i64..=250).prop_map(|d| d * DAY + 7 * MINUTE),
        1 => (300i64..=900).prop_map(|d| d * DAY),
        1 => (1i64..=3 * 24 * 60).prop_map(|m| -m * MINUTE),
    ]
}

fn arb_scenario() -> impl Strategy<Value = (ProgramRules, Vec<Step>)> {
    prop_oneof![8 => Just("USD"), 1 => Just("JPY"), 1 => Just("KWD")].prop_flat_map(|currency| {
        let action = prop_oneof![
            20 => arb_command(currency).prop_map(Action::Command),
            3 => (0usize..=1, 1i64..=600).prop_map(|(from, points)| Action::Transfer { from, points }),
            1 => arb_rules(currency).prop_map(Action::ChangeRules),
        ];
        let jump = prop_oneof![
            12 => arb_jump().prop_map(Jump::By),
            3 => (0usize..=1, any::<bool>()).prop_map(|(member, minus_one)| Jump::ToNextDue { member, minus_one }),
            1 => (0usize..3, any::<bool>()).prop_map(|(campaign, end)| Jump::ToCampaignEdge { campaign, end }),
        ];
        let step = (jump, 0usize..=1, action).prop_map(|(jump, member, action)| Step { jump, member, action });
        (arb_rules(currency), prop::collection::vec(step, 1..80))
    })
}

// ---------------------------------------------------------------------------
// The check.

struct Live {
    member: Member,
    model: ModelMember,
    history: Vec<Event>,
}

fn member_id(index: usize) -> MemberId {
    MemberId::parse("member_id", if index == 0 { "alice" } else { "bob" }).expect("valid id")
}

fn code(result: &Result<impl Sized, DomainError>) -> Result<(), &'static str> {
    match result {
        Ok(_) => Ok(()),
        Err(error) => Err(error.code()),
    }
}

/// Points conservation over the domain's own events: the member's points
/// (balance + pending) move only by earn, award, adjust, transfer, redeem,
/// cancel, expire, reverse and debt, by exactly the amounts the events say.
fn conserved_points(history: &[Event]) -> i64 {
    let mut total: i64 = 0;
    for event in history {
        total += match &event.kind {
            EventKind::PointsEarned(e) => e.points.get(),
            EventKind::PointsAwarded(e) => e.points.get(),
            EventKind::PointsAdjusted(e) => e.points.get(),
            EventKind::PointsRedeemed(e) => -e.points.get(),
            EventKind::RedemptionCancelled(e) => {
                assert_eq!(
                    e.points.get(),
                    e.restored
                        .iter()
                        .chain(&e.expired)
                        .map(|d| d.points.get())
                        .sum::<i64>(),
                    "cancel: restored + expired = redeemed"
                );
                e.restored.iter().map(|d| d.points.get()).sum()
            }
            EventKind::PointsExpired(e) => {
                assert_eq!(
                    e.points.get(),
                    e.draws.iter().map(|d| d.points.get()).sum::<i64>()
                );
                -e.points.get()
            }
            EventKind::EarnReversed(e) => {
                let drawn: i64 = e.draws.iter().map(|d| d.points.get()).sum();
                assert_eq!(
                    e.points.get(),
                    drawn + e.shortfall_points.get(),
                    "reversal: drawn + shortfall"
                );
                -drawn
                    - if e.shortfall_policy == ReturnPolicy::Debt {
                        e.shortfall_points.get()
                    } else {
                        0
                    }
            }
            EventKind::PointsTransferred(e) => {
                if e.draws.is_empty() {
                    let created: i64 = e.lots.iter().map(|l| l.points.get()).sum();
                    assert_eq!(
                        e.points.get(),
                        created + e.debt_repaid.get(),
                        "transfer: received = lots + debt"
                    );
                    e.points.get()
                } else {
                    -e.points.get()
                }
            }
            _ => 0,
        };
    }
    total
}

/// Decides `command` again on `member` holding a window of `index % 3`
/// lots of each order, the others read back `1 + index % 2` at a time:
/// the answer must be `decided`'s, and with every lot given back, the
/// member must be what `decided`'s events make of it.
fn check_paged(
    member: &Member,
    command: &Command,
    rules: &Rules,
    now: i64,
    decided: &Result<Vec<Event>, DomainError>,
    index: usize,
    label: &str,
) {
    let mut paged = member.clone();
    let kept = KeptLots::take_from(&mut paged, index % 3);
    let outcome = decide_in_place_paged(&mut paged, &kept, command, rules, now, 1 + index % 2);
    let mut expected = member.clone();
    match (decided, outcome.decided) {
        (Ok(events), Ok(paged_events)) => {
            assert_eq!(*events, paged_events, "{label}: paged, the same events");
            for event in events {
                apply(&mut expected, event);
            }
        }
        (Err(error), Err(InPlaceError::Rejected(paged_error))) => {
            assert_eq!(*error, paged_error, "{label}: paged, the same rejection");
        }
        (decided, paged) => panic!("{label}: paged {paged:?}, holding every lot {decided:?}"),
    }
    kept.give_back(&mut paged);
    assert_eq!(paged, expected, "{label}: paged, the state the events give");
}

/// [`check_paged`] for a transfer: both members hold a window, and each
/// side reads back what the decision says that side needs.
fn check_paged_transfer(
    (from, to): (&Member, &Member),
    command: &TransferPoints,
    rules: &Rules,
    now: i64,
    decided: &Result<(Vec<Event>, Vec<Event>), DomainError>,
    index: usize,
    label: &str,
) {
    let (mut paged_from, mut paged_to) = (from.clone(), to.clone());
    let kept_from = KeptLots::take_from(&mut paged_from, index % 3);
    let kept_to = KeptLots::take_from(&mut paged_to, (index + 1) % 3);
    let paged = loop {
        match decide_transfer(&paged_from, &paged_to, command, rules, now) {
            Err(DomainError::LotsNotHeld { needed, receiver }) => {
                let served = if receiver {
                    kept_to.serve(&mut paged_to, needed, 1)
                } else {
                    kept_from.serve(&mut paged_from, needed, 1)
                };
                assert!(served, "{label}: paged transfer, {needed:?} can be read");
            }
            other => break other,
        }
    };
    let (mut expected_from, mut expected_to) = (from.clone(), to.clone());
    match (decided, paged) {
        (Ok((sent, received)), Ok(paged_events)) => {
            assert_eq!(
                (sent, received),
                (&paged_events.0, &paged_events.1),
                "{label}: paged transfer, the same events"
            );
            for (member, expected, events) in [
                (&mut paged_from, &mut expected_from, sent),
                (&mut paged_to, &mut expected_to, received),
            ] {
                for event in events {
                    apply(member, event);
                    apply(expected, event);
                }
            }
        }
        (Err(error), Err(paged_error)) => {
            assert_eq!(
                *error, paged_error,
                "{label}: paged transfer, the same rejection"
            );
        }
        (decided, paged) => {
            panic!("{label}: paged transfer {paged:?}, holding every lot {decided:?}")
        }
    }
    kept_from.give_back(&mut paged_from);
    kept_to.give_back(&mut paged_to);
    assert_eq!(
        paged_from, expected_from,
        "{label}: paged transfer, the sender"
    );
    assert_eq!(
        paged_to, expected_to,
        "{label}: paged transfer, the receiver"
    );
}

fn check_member(live: &Live, label: &str) {
    let member = &live.member;
    let model = &live.model;
    assert_eq!(member.is_enrolled(), model.enrolled, "{label}: enrolled");
    assert_eq!(
        member.available_points().get(),
        model.available(),
        "{label}: available"
    );
    assert_eq!(
        member.pending_points().get(),
        model.pending(),
        "{label}: pending"
    );
    assert_eq!(member.debt_points().get(), model.debt, "{label}: debt");
    assert_eq!(
        member.balance_points().get(),
        model.balance(),
        "{label}: balance"
    );
    assert_eq!(
        member.balance_points().get(),
        member.available_points().get() - member.debt_points().get(),
        "{label}: balance = open available lots - debt"
    );
    assert_eq!(member.tier(), model.tier, "{label}: tier");
    let lots: Vec<_> = member
        .lots()
        .map(|lot| {
            (
                lot.lot_id().get(),
                lot.remaining().get(),
                lot.is_pending(),
                lot.expires_at_us(),
            )
        })
        .collect();
    assert_eq!(lots, model.open_lots(), "{label}: open lots");
    assert_eq!(
        member.balance_points().get() + member.pending_points().get(),
        conserved_points(&live.history),
        "{label}: points conservation"
    );
    let mut replayed = Member::default();
    for event in &live.history {
        apply(&mut replayed, event);
    }
    assert_eq!(&replayed, member, "{label}: replay equals live state");
}

/// Runs a scenario, checking every step; returns how often each event kind
/// and each rejection code occurred, so that coverage can be checked.
fn run_scenario(initial: &ProgramRules, steps: &[Step]) -> BTreeMap<&'static str, usize> {
    run_scenario_recorded(initial, steps).0
}

/// One step of a scenario as the views see it: the events it produced (by
/// member index; `None` for the program stream) and, per member, what the
/// model holds after it.
struct Transcribed {
    now: i64,
    events: Vec<(Option<usize>, Event)>,
    after: Vec<Expected>,
}

/// What the model says of one member, in the views' terms.
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    /// The member's business time (the domain's clock).
    clock: i64,
    enrolled: bool,
    available: i64,
    pending: i64,
    debt: i64,
    open_lots: Vec<(u64, i64, bool, Option<i64>)>,
    tier: String,
    /// Qualifying measure of the window as of the step's time.
    qualifying: i64,
}

/// `run_scenario`, also returning the transcript of every step.
fn run_scenario_recorded(
    initial: &ProgramRules,
    steps: &[Step],
) -> (BTreeMap<&'static str, usize>, Vec<Transcribed>) {
    let mut transcript = Vec::new();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut raw = initial.clone();
    let mut rules = Rules::from_raw(&raw).expect("generated rules are valid");
    let mut members: Vec<Live> = (0..2)
        .map(|_| Live {
            member: Member::default(),
            model: ModelMember::default(),
            history: Vec::new(),
        })
        .collect();
    let mut now = START;
    for (index, step) in steps.iter().enumerate() {
        now = match step.jump {
            Jump::By(jump_us) => (now + jump_us).max(0),
            Jump::ToNextDue { member, minus_one } => {
                match members[member].member.next_due(&rules) {
                    Some((due, _)) => due - i64::from(minus_one),
                    None => now,
                }
            }
            Jump::ToCampaignEdge { campaign, end } => match raw.campaigns.get(campaign) {
                Some(c) => {
                    if end {
                        c.ends_at_us
                    } else {
                        c.starts_at_us
                    }
                }
                None => now,
            },
        };
        let label = format!("step {index} {:?} at {now}", step.action);
        let mut produced: Vec<(Option<usize>, Event)> = Vec::new();
        match &step.action {
            Action::ChangeRules(next) => {
                produced.push((
                    None,
                    Event {
                        occurred_at_us: now,
                        kind: EventKind::ProgramRulesChanged(ProgramRulesChanged {
                            rules: next.clone(),
                        }),
                    },
                ));
                raw = next.clone();
                rules = Rules::from_raw(&raw).expect("generated rules are valid");
            }
            Action::Command(command) => {
                let live = &mut members[step.member];
                let decided = decide(&live.member, command, &rules, now);
                check_paged(&live.member, command, &rules, now, &decided, index, &label);
                let mut model = live.model.clone();
                let answer = model_command(&mut model, &ModelRules(&raw), command, now);
                assert_eq!(code(&decided), answer, "{label}: answer ({decided:?})");
                count(&mut seen, &decided);
                if let Ok(events) = decided {
                    for event in &events {
                        assert_eq!(
                            event.occurred_at_us, now,
                            "{label}: events carry the command time"
                        );
                        apply(&mut live.member, event);
                    }
                    produced.extend(
                        events
                            .iter()
                            .map(|event| (Some(step.member), event.clone())),
                    );
                    live.history.extend(events);
                    live.model = model;
                    // Every decision does all work due up to its time first.
                    if let Some((due, kind)) = live.member.next_due(&rules) {
                        assert!(
                            due > live.member.clock_us().max(now),
                            "{label}: {kind:?} left due at {due}"
                        );
                    }
                }
            }
            Action::Transfer { from, points } => {
                let to = 1 - from;
                let command = TransferPoints {
                    transfer_id: format!("t{index}"),
                    from_member_id: member_id(*from),
                    to_member_id: member_id(to),
                    points: Points::new(*points),
                };
                let decided = decide_transfer(
                    &members[*from].member,
                    &members[to].member,
                    &command,
                    &rules,
                    now,
                );
                check_paged_transfer(
                    (&members[*from].member, &members[to].member),
                    &command,
                    &rules,
                    now,
                    &decided,
                    index,
                    &label,
                );
                let mut model_from = members[*from].model.clone();
                let mut model_to = members[to].model.clone();
                let answer = model_transfer(
                    &mut model_from,
                    &mut model_to,
                    &ModelRules(&raw),
                    *points,
                    now,
                );
                assert_eq!(code(&decided), answer, "{label}: answer ({decided:?})");
                match &decided {
                    Ok((from_events, to_events)) => {
                        count(&mut seen, &Ok::<_, DomainError>(from_events.clone()));
                        count(&mut seen, &Ok::<_, DomainError>(to_events.clone()));
                    }
                    Err(error) => count(&mut seen, &Err::<Vec<Event>, _>(error.clone())),
                }
                if let Ok((from_events, to_events)) = decided {
                    for (side, events, model) in
                        [(*from, from_events, model_from), (to, to_events, model_to)]
                    {
                        for event in &events {
                            apply(&mut members[side].member, event);
                            produced.push((Some(side), event.clone()));
                        }
                        members[side].history.extend(events);
                        members[side].model = model;
                    }
                }
            }
        }
        for (side, live) in members.iter().enumerate() {
            check_member(live, &format!("{label} member {side}"));
        }
        transcript.push(Transcribed {
            now,
            events: produced,
            after: members
                .iter()
                .map(|live| Expected {
                    clock: live.member.clock_us(),
                    enrolled: live.model.enrolled,
                    available: live.model.available(),
                    pending: live.model.pending(),
                    debt: live.model.debt,
                    open_lots: live.model.open_lots(),
                    tier: live.model.tier.clone(),
                    qualifying: ModelRules(&raw).measure_as_of(&live.model, now),
                })
                .collect(),
        });
    }
    // Transfers move points between members: what one sent the other got.
    let sent: i64 = members
        .iter()
        .flat_map(|live| &live.history)
        .map(|event| match &event.kind {
            EventKind::PointsTransferred(e) if e.draws.is_empty() => e.points.get(),
            EventKind::PointsTransferred(e) => -e.points.get(),
            _ => 0,
        })
        .sum();
    assert_eq!(sent, 0, "transfers create no points");
    (seen, transcript)
}

fn count(seen: &mut BTreeMap<&'static str, usize>, decided: &Result<Vec<Event>, DomainError>) {
    match decided {
        Ok(events) => {
            for event in events {
                let name = match &event.kind {
                    EventKind::PointsExpired(e) if e.reason == ExpiryReason::Inactivity => {
                        "PointsExpired(inactivity)"
                    }
                    EventKind::TierChanged(e) if e.reason == TierChangeReason::Return => {
                        "TierChanged(return)"
                    }
                    EventKind::TierChanged(e)
                        if e.reason == TierChangeReason::PeriodEnd && e.from_tier != e.to_tier =>
                    {
                        "TierChanged(period end, down)"
                    }
                    EventKind::EarnReversed(e)
                        if e.shortfall_points.get() > 0
                            && e.shortfall_policy == ReturnPolicy::Debt =>
                    {
                        "EarnReversed(debt)"
                    }
                    EventKind::RedemptionCancelled(e) if !e.expired.is_empty() => {
                        "RedemptionCancelled(expired)"
                    }
                    EventKind::PointsEarned(e) if !e.campaigns.is_empty() => {
                        "PointsEarned(campaign)"
                    }
                    EventKind::PointsEarned(e) if e.debt_repaid.get() > 0 => {
                        "PointsEarned(debt repaid)"
                    }
                    other => other.name(),
                };
                *seen.entry(name).or_default() += 1;
            }
        }
        Err(error) => *seen.entry(error.code()).or_default() += 1,
    }
}

/// The generator must reach every kind of event and rejection, or the model
/// test proves little. Deterministic: a fixed seed.
#[test]
fn the_generator_covers_every_event_and_rejection() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..300 {
        let (rules, steps) = arb_scenario()
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        for (name, times) in run_scenario(&rules, &steps) {
            *seen.entry(name).or_default() += times;
        }
    }
    eprintln!("coverage over 300 scenarios: {seen:#?}");
    for name in [
        "MemberEnrolled",
        "PointsEarned",
        "PointsEarned(campaign)",
        "PointsEarned(debt repaid)",
        "PointsAwarded",
        "PointsRedeemed",
        "RedemptionCancelled",
        "RedemptionCancelled(expired)",
        "EarnReversed",
        "EarnReversed(debt)",
        "PointsAdjusted",
        "PointsTransferred",
        "PointsMatured",
        "PointsExpired",
        "PointsExpired(inactivity)",
        "TierChanged",
        "TierChanged(return)",
        "TierChanged(period end, down)",
        "invalid_field",
        "not_enrolled",
        "already_enrolled",
        "insufficient_points",
        "below_minimum_redeem",
        "unknown_order",
        "duplicate_order",
        "refund_exceeds_spend",
        "unknown_redemption",
        "duplicate_redemption",
        "redemption_already_cancelled",
    ] {
        assert!(
            seen.get(name).copied().unwrap_or(0) > 0,
            "never generated: {name}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // MODEL_CASES=20000 for a longer hunt.
        cases: std::env::var("MODEL_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(512),
        max_shrink_iters: 20_000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/domain_model.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn domain_matches_the_reference_model((rules, steps) in arb_scenario()) {
        let _coverage = run_scenario(&rules, &steps); // checked by the coverage test
    }
}

// ---------------------------------------------------------------------------
// The balance and tier views against the model.
//
// A scenario's events are appended to a real log (one command per step, as
// the engine would append them) and folded by the views step by step. After
// every step each member's view must hold what the model holds: available,
// pending, debt, open lots, tier and qualifying progress; the newest
// statement line must carry the balance after the step. At the end the
// statement, read page by page, must add up to the balance, and the
// balance as of every member's past business times must be the model's
// balance then.

fn check_views(initial: &ProgramRules, transcript: &[Transcribed]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let clock = ManualClock::new(START);
    let config = WriterConfig::with_clock(Arc::new(clock.clone()));
    let writer = Writer::start(store.clone(), PassThrough, config).expect("writer");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let program = ProgramId::parse("program_id", "model").expect("valid");
    let mut folders: Vec<Folder> = ViewKind::ALL
        .iter()
        .map(|kind| Folder::open(&store, *kind, 1).expect("folder"))
        .collect();
    for folder in &mut folders {
        folder.activate(&store).expect("activate");
    }
    let mut submit = |key: String, now: i64, events: &[(Option<usize>, Event)]| {
        clock.set(now.max(clock.now_us()));
        let events = events.iter().map(|(side, event)| {
            let stream = match side {
                Some(side) => StreamName::member(&program, &member_id(*side)),
                None => StreamName::program(&program),
            };
            (stream, pb::Event::from(&event.kind))
        });
        let envelope = Envelope {
            program_id: program.clone(),
            idempotency_key: IdempotencyKey::parse("idempotency_key", &key).expect("valid"),
            occurred_at_us: now,
            principal: "model".into(),
            metadata: vec![],
            expected_version: None,
            command: Append::new(events),
        };
        tokio
            .block_on(writer.handle().submit(envelope))
            .expect("appended");
        let head = store.head().expect("head").position;
        for folder in &mut folders {
            while folder.checkpoint().position < head {
                folder
                    .step(&store, head)
                    .expect("the views fold every event");
            }
        }
    };
    let define = Event {
        occurred_at_us: START,
        kind: EventKind::ProgramDefined(ProgramDefined {
            rules: initial.clone(),
        }),
    };
    submit("define".into(), START, &[(None, define)]);
    let mut rules = Rules::from_raw(initial).expect("valid rules");
    for (index, entry) in transcript.iter().enumerate() {
        if !entry.events.is_empty() {
            submit(format!("step-{index}"), entry.now, &entry.events);
        }
        for (_, event) in &entry.events {
            if let EventKind::ProgramRulesChanged(changed) = &event.kind {
                rules = Rules::from_raw(&changed.rules).expect("valid rules");
            }
        }
        for (side, expected) in entry.after.iter().enumerate() {
            let label = format!("step {index} member {side}");
            let moved = entry.events.iter().any(|(who, event)| {
                *who == Some(side)
                    && !matches!(
                        event.kind,
                        EventKind::MemberEnrolled(_) | EventKind::TierChanged(_)
                    )
            });
            check_member_view(
                &store, &rules, &program, side, expected, entry.now, moved, &label,
            );
        }
    }
    for side in 0..2 {
        check_history_view(&store, &program, side, transcript);
    }
    writer.shutdown();
}

#[allow(clippy::too_many_arguments)]
fn check_member_view(
    store: &Store,
    rules: &Rules,
    program: &ProgramId,
    side: usize,
    expected: &Expected,
    now: i64,
    moved: bool,
    label: &str,
) {
    let member = member_id(side);
    let row = match balance::get_balance(store, program, &member) {
        Ok(answer) => answer.value,
        Err(QueryError::NotFound { .. }) => {
            assert!(
                !expected.enrolled,
                "{label}: an enrolled member is in the view"
            );
            return;
        }
        Err(error) => panic!("{label}: {error}"),
    };
    assert_eq!(row.enrolled, expected.enrolled, "{label}: enrolled");
    assert_eq!(row.available, expected.available, "{label}: available");
    assert_eq!(row.pending, expected.pending, "{label}: pending");
    assert_eq!(row.debt, expected.debt, "{label}: debt");
    assert_eq!(
        row.effective_at_us, expected.clock,
        "{label}: business time"
    );
    let lots: Vec<_> = balance::list_lots(store, program, &member, false)
        .expect("lots")
        .value
        .iter()
        .map(|lot| (lot.lot_id, lot.remaining, lot.pending, lot.expires_at_us))
        .collect();
    assert_eq!(lots, expected.open_lots, "{label}: open lots");
    assert_eq!(row.open_lots, lots.len() as u64, "{label}: open lot count");
    if moved {
        let page = balance::statement(store, program, &member, 1, None).expect("statement");
        let line = page.value.lines.first().expect("a line for the step");
        assert_eq!(
            (line.balance_after, line.pending_after, line.debt_after),
            (
                expected.available - expected.debt,
                expected.pending,
                expected.debt
            ),
            "{label}: newest statement line"
        );
    }
    let tier = tier::member_tier(store, program, &member, now)
        .expect("tier")
        .value;
    let expected_tier = if expected.tier.is_empty() {
        rules.tier_name(0)
    } else {
        expected.tier.as_str()
    };
    assert_eq!(tier.tier, expected_tier, "{label}: tier");
    assert_eq!(
        tier.qualifying, expected.qualifying,
        "{label}: qualifying progress"
    );
}

/// The statement, read 7 lines a page, adds up to the balance; the balance
/// as of each business time the member had (and a microsecond before it) is
/// the model's balance after the last step at or before that time.
fn check_history_view(store: &Store, program: &ProgramId, side: usize, transcript: &[Transcribed]) {
    let member = member_id(side);
    let Some(last) = transcript.last().map(|entry| &entry.after[side]) else {
        return;
    };
    if !last.enrolled {
        return;
    }
    let mut total = 0i64;
    let mut token: Option<String> = None;
    let mut previous: Option<(i64, u64)> = None;
    loop {
        let page = balance::statement(store, program, &member, 7, token.as_deref())
            .expect("statement page")
            .value;
        for line in &page.lines {
            if let Some(newer) = previous {
                assert!(
                    (line.effective_at_us, line.position) < newer,
                    "member {side}: statement lines newest first"
                );
            }
            previous = Some((line.effective_at_us, line.position));
            total += line.points;
        }
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(
        total,
        last.available + last.pending - last.debt,
        "member {side}: the statement adds up"
    );
    for probe in transcript.iter().flat_map(|entry| {
        let clock = entry.after[side].clock;
        [clock, clock - 1]
    }) {
        let expected = transcript
            .iter()
            .map(|entry| &entry.after[side])
            .rfind(|after| after.clock <= probe)
            .map_or((0, 0, 0), |after| {
                (after.available - after.debt, after.pending, after.debt)
            });
        let as_of = balance::balance_as_of(store, program, &member, probe)
            .expect("balance as of")
            .value;
        assert_eq!(
            (as_of.balance, as_of.pending, as_of.debt),
            expected,
            "member {side}: balance as of {probe}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("VIEW_MODEL_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(48),
        max_shrink_iters: 2_000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/domain_model.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn views_match_the_reference_model((rules, steps) in arb_scenario()) {
        let (_, transcript) = run_scenario_recorded(&rules, &steps);
        check_views(&rules, &transcript);
    }
}

// ---------------------------------------------------------------------------
// Regression cases: shrunk failures, kept by name.

fn step(jump_us: i64, action: Action) -> Step {
    Step {
        jump: Jump::By(jump_us),
        member: 0,
        action,
    }
}

fn plain_rules(edit: impl FnOnce(&mut ProgramRules)) -> ProgramRules {
    let mut raw = ProgramRules::basic("USD");
    raw.point_value_per_points = 100;
    edit(&mut raw);
    raw
}

/// Shrunk failure 1 (a domain bug, fixed): a member with no command for
/// three years. The next command's catch-up first expired a lot (applied at
/// the new time, which pruned qualifying history older than ~3 years) and
/// then ran the overdue tier review, which measured the pruned window and
/// downgraded a member who had qualified. Pruning now keeps history back
/// from the start of the tier period too.
#[test]
fn regression_late_review_reads_history_pruned_by_its_own_catch_up() {
    let rules = plain_rules(|raw| {
        raw.earn_rate_bps = 10_135;
        raw.tiers = vec![
            Tier {
                name: "Blue".to_owned(),
                threshold: 0,
                earn_multiplier_bps: 10_000,
            },
            Tier {
                name: "Silver".to_owned(),
                threshold: 1,
                earn_multiplier_bps: 5_000,
            },
        ];
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(1)),
        });
    });
    let steps = vec![
        step(0, Action::Command(Command::Enroll)),
        step(
            0,
            Action::Command(Command::RecordPurchase {
                order_id: "o0".to_owned(),
                spend: money(100_000, "USD"),
                tags: vec![],
            }),
        ),
        // Rejected (the lot expired long ago); its catch-up is discarded.
        step(
            749 * DAY,
            Action::Command(Command::Redeem {
                redemption_id: "r0".to_owned(),
                points: Points::new(1),
            }),
        ),
        step(
            352 * DAY,
            Action::Command(Command::AdjustPoints {
                reason: "ops".to_owned(),
                points: Points::new(1),
            }),
        ),
    ];
    run_scenario(&rules, &steps);
}

/// Shrunk failure 2 (a model bug, kept for the rule it pins down): a system
/// command with nothing due records nothing, so it does not move the
/// member's clock; a later command stamped a minute earlier is decided at
/// its own time.
#[test]
fn regression_a_system_command_with_nothing_due_leaves_the_clock() {
    let rules = plain_rules(|raw| {
        raw.earn_rate_bps = 8;
        raw.rounding = Rounding::HalfUp;
        raw.lot_expiry = Some(LotExpiry {
            rule: Some(LotExpiryRule::AfterDays(1)),
        });
    });
    let steps = vec![
        step(0, Action::Command(Command::MaturePending)),
        step(
            -MINUTE,
            Action::Command(Command::RecordPurchase {
                order_id: "o0".to_owned(),
                spend: money(62_500, "USD"),
                tags: vec![],
            }),
        ),
    ];
    run_scenario(&rules, &steps);
}
