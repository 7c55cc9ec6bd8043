//! Points Ledger projections: read views folded from the log.
//!
//! The log is the truth; views are rebuildable. [`runtime`] runs one worker
//! per view that folds the log from the view's checkpoint and then follows
//! the live head, writing rows and checkpoint together, and takes the
//! records another worker has just read from [`recent`]; [`rows`] is how
//! views keep their rows (generations, checkpoints, digests); [`balance`],
//! [`tier`], [`liability`] and [`rfm`] are the views and their queries, and
//! [`reconcile`] ties the liability to the log and the balances. Every query
//! answer says
//! the log position it reflects ([`Answer`]); [`runtime::Runtime::wait_for`]
//! gives read-your-writes.
#![deny(missing_docs)]
// Views are fed by the log and by requests: no panics on their paths.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod balance;
pub mod error;
pub mod event;
pub mod liability;
pub mod recent;
pub mod reconcile;
pub mod rfm;
pub mod rows;
pub mod runtime;
pub mod tier;

pub use error::{QueryError, ViewError};
pub use runtime::{ProjectionStatus, RebuildOutcome, Runtime, ViewKind, WorkerState};

/// A query's answer and the log position the view reflected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    /// Every event up to this position is in the answer, none after it.
    pub position: u64,
    /// The answer.
    pub value: T,
}
