//! Batch results shared by the clients: per-key values, per-key failures
//! apart from misses, and per-server health.

use std::io;

/// The result of a batch: one value per key in order, the keys whose server
/// failed (their values are the default: `None`, `false`), and each failing
/// server's error.
///
/// ```
/// use stratacache_net::Outcome;
/// let o: Outcome<Option<Vec<u8>>> = Outcome { values: vec![None], failed: vec![], errors: vec![] };
/// assert!(o.is_complete());
/// ```
#[derive(Debug)]
pub struct Outcome<T> {
    /// One per key, in the order given.
    pub values: Vec<T>,
    /// Indexes of the keys whose server failed or is down.
    pub failed: Vec<usize>,
    /// Each server that failed in this batch.
    pub errors: Vec<ServerError>,
}

impl<T> Outcome<T> {
    /// Every key answered.
    pub(crate) fn complete(values: Vec<T>) -> Self {
        Outcome {
            values,
            failed: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// No key failed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// Every key failed (and there was at least one): the whole tier is out.
    pub fn all_failed(&self) -> bool {
        !self.values.is_empty() && self.failed.len() == self.values.len()
    }

    /// A one-line description of the failures, or None.
    pub fn describe(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let mut text = format!(
            "{} of {} key(s) failed",
            self.failed.len(),
            self.values.len()
        );
        for e in &self.errors {
            text.push_str(&format!("; {}", e.error));
        }
        if self.errors.is_empty() {
            text.push_str(" (server down, probed again later)");
        }
        Some(text)
    }
}

/// A server's failure within one batch.
#[derive(Debug)]
pub struct ServerError {
    /// The server's name.
    pub server: String,
    /// What went wrong.
    pub error: io::Error,
}

/// What a client knows of one server.
///
/// ```no_run
/// # use stratacache_net::memcached::{Client, Config};
/// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
/// for h in client.health() {
///     println!("{}: up={} failed_keys={}", h.name, h.up, h.failed_keys);
/// }
/// # Ok::<(), stratacache_net::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerHealth {
    /// The server's name.
    pub name: String,
    /// Not marked down.
    pub up: bool,
    /// Batches in which it failed.
    pub failures: u64,
    /// Keys that failed because of it (including those not sent while down).
    pub failed_keys: u64,
    /// Requests that tried it while it was marked down.
    pub probes: u64,
    /// Times it came back after being down.
    pub recoveries: u64,
    /// Its last error.
    pub last_error: Option<String>,
}
