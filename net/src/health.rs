//! One server's health, shared by the memcached and Redis clients: down
//! until a time, one probe per `retry_after`, and counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::ServerHealth;

#[derive(Default)]
pub(crate) struct Health {
    /// Set while down: when the next probe may go.
    down_until: Mutex<Option<Instant>>,
    failures: AtomicU64,
    failed_keys: AtomicU64,
    probes: AtomicU64,
    recoveries: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Health {
    /// Not marked down.
    pub(crate) fn is_up(&self) -> bool {
        self.down_until.lock().is_none()
    }

    /// Up, or down with a probe due at `now` (no side effect).
    pub(crate) fn usable_at(&self, now: Instant) -> bool {
        self.down_until.lock().is_none_or(|until| now >= until)
    }

    /// A request goes to this server at `now`: when it is down, that request
    /// is its probe and the next one waits `retry_after` again.
    pub(crate) fn probing(&self, now: Instant, retry_after: Duration) {
        let mut until = self.down_until.lock();
        if until.is_some() {
            *until = Some(now + retry_after);
            self.probes.fetch_add(1, Relaxed);
        }
    }

    /// Up, or down with a probe due (then this caller is the probe).
    pub(crate) fn usable(&self, retry_after: Duration) -> bool {
        let now = Instant::now();
        let mut until = self.down_until.lock();
        match *until {
            None => true,
            Some(t) if now >= t => {
                *until = Some(now + retry_after);
                self.probes.fetch_add(1, Relaxed);
                true
            }
            Some(_) => false,
        }
    }

    /// Keys that failed without a request (their server is down).
    pub(crate) fn keys_failed(&self, keys: usize) {
        self.failed_keys.fetch_add(keys as u64, Relaxed);
    }

    /// A request succeeded: up again.
    pub(crate) fn ok(&self) {
        if self.down_until.lock().take().is_some() {
            self.recoveries.fetch_add(1, Relaxed);
        }
    }

    /// A request for `keys` keys failed with `error`; `down`: the server
    /// (not just the connection) is at fault, so it is left alone for
    /// `retry_after`.
    pub(crate) fn failed(&self, keys: usize, error: String, down: bool, retry_after: Duration) {
        self.failures.fetch_add(1, Relaxed);
        self.keys_failed(keys);
        *self.last_error.lock() = Some(error);
        if down {
            *self.down_until.lock() = Some(Instant::now() + retry_after);
        }
    }

    /// The public report for the server `name`.
    pub(crate) fn report(&self, name: &str) -> ServerHealth {
        ServerHealth {
            name: name.to_owned(),
            up: self.is_up(),
            failures: self.failures.load(Relaxed),
            failed_keys: self.failed_keys.load(Relaxed),
            probes: self.probes.load(Relaxed),
            recoveries: self.recoveries.load(Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }
}
