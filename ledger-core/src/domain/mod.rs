//! The pure domain of Points Ledger: `decide(state, command, rules, now) ->
//! events` and `apply(state, event)`.
//!
//! Architecture invariants, stated as absences:
//! - the domain does no IO, reads no clock, draws no random number and uses
//!   no floating point; time and ids are arguments;
//! - `apply` holds no rules and makes no decision; it cannot fail;
//! - points arithmetic never wraps: overflow is an error from `decide` and
//!   an assertion in `apply` (whose input was checked by `decide`);
//! - events are never rewritten: a rules change affects later decisions only.
//!
//! Code map: `command` (what is asked) -> `decide` (entry points, due work)
//! -> `earn`, `redeem`, `reverse`, `adjust`, `transfer`, `tier` (the rules
//! of each command) -> `event` (what happened) -> `apply` -> `member` (the
//! write model, due schedule). `rules` validates a program's raw rules;
//! `program` decides and folds the program stream. Ids, limits and field
//! errors are the crate's (`crate::ids`, `crate::limits`, `crate::error`);
//! the log record form of events and rules is in `crate::record`.
//!
//! ```
//! use ledger_core::domain::{
//!     apply, decide, Command, Currency, Member, Money, ProgramRules, Rules,
//! };
//!
//! let mut raw = ProgramRules::basic("USD");
//! raw.earn_rate_bps = 10_000; // one point per dollar
//! let rules = Rules::from_raw(&raw)?;
//! let usd = Currency::from_code("USD", "spend.currency")?;
//! let command = Command::RecordPurchase {
//!     order_id: "order-1".to_owned(),
//!     spend: Money::new(12_50, usd),
//!     tags: Vec::new(),
//! };
//! let mut member = Member::default();
//! let now_us = 1_700_000_000_000_000;
//! for event in decide(&member, &command, &rules, now_us)? {
//!     apply(&mut member, &event);
//! }
//! assert_eq!(member.balance_points().get(), 12);
//! # Ok::<(), ledger_core::domain::DomainError>(())
//! ```

// Request-, file- and log-fed paths must not panic; tests may. These hold
// for the domain only: other modules of the crate slice storage keys.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
// Points and money are integers; no decision may depend on float rounding.
#![deny(clippy::float_arithmetic)]

pub mod apply;
pub mod command;
pub mod decide;
pub mod error;
pub mod event;
pub mod lot;
pub mod member;
pub mod money;
pub mod paging;
pub mod points;
pub mod program;
pub mod rules;
pub mod time;

mod adjust;
mod earn;
mod redeem;
mod reverse;
mod text;
mod tier;
mod transfer;

#[cfg(test)]
mod tests;

pub use apply::apply;
pub use command::{Command, ProgramCommand, TransferPoints};
pub use decide::{InPlaceError, decide, decide_in_place, decide_transfer};
pub use error::DomainError;
pub use event::{
    AppliedCampaign, EarnReversed, Event, EventKind, ExpiryReason, MemberEnrolled, PointsAdjusted,
    PointsAwarded, PointsEarned, PointsExpired, PointsMatured, PointsRedeemed, PointsTransferred,
    ProgramDefined, ProgramRulesChanged, RedemptionCancelled, TierChangeReason, TierChanged,
};
pub use lot::{
    FEFO_KEY_MAX, FEFO_KEY_MIN, FefoKey, Lot, LotDraw, MATURITY_KEY_MAX, MATURITY_KEY_MIN,
    MaturityKey, OpenLot,
};
pub use member::{DueKind, DueSchedule, LotsNeeded, Member, Purchase, QualifyingDay, Redemption};
pub use money::{Currency, Money};
pub use paging::{KeptLots, PagedDecision, decide_in_place_paged};
pub use points::Points;
pub use program::{Program, apply_program, decide_program};
pub use rules::{
    Campaign, CampaignEffect, CampaignRule, LotExpiry, LotExpiryRule, ProgramRules,
    QualifyingMeasure, ReturnPolicy, Rounding, RoundingMode, Rules, ShortfallPolicy, Tier,
    TierMeasure, TierWindow,
};
