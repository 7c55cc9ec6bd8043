//! The engine's clock. Every time-based behaviour reads it, so tests can
//! drive time instead of waiting for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now", in microseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now_us(&self) -> i64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        let now = std::time::SystemTime::now();
        match now.duration_since(std::time::UNIX_EPOCH) {
            // i64 microseconds reach the year 294,247: the cast cannot wrap.
            Ok(since) => since.as_micros() as i64,
            // A clock set before 1970 is reported as the epoch itself.
            Err(_) => 0,
        }
    }
}

/// A clock that moves only when told to (tests, replays, imports).
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_us: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `now_us`.
    pub fn new(now_us: i64) -> Self {
        ManualClock {
            now_us: Arc::new(AtomicI64::new(now_us)),
        }
    }

    /// Moves the clock to `now_us`.
    pub fn set(&self, now_us: i64) {
        self.now_us.store(now_us, Ordering::SeqCst);
    }

    /// Moves the clock forward by `delta_us`.
    pub fn advance(&self, delta_us: i64) {
        self.now_us.fetch_add(delta_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.now_us.load(Ordering::SeqCst)
    }
}
