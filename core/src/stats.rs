//! Counters kept by the tiered cache, per remote tier and for the read path.

/// Counters of one remote tier (memcached, Redis, KV, storage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Keys found (and valid) in this tier.
    pub hits: u64,
    /// Keys asked of this tier and not found, or found unusable.
    pub misses: u64,
    /// Operations the host reported as failed (timeouts, refused connections).
    pub errors: u64,
    /// Batched fetch operations asked of the host (round trips).
    pub fetches: u64,
    /// Batched store and delete operations asked of the host.
    pub writes: u64,
    /// Bytes received from this tier.
    pub bytes_read: u64,
    /// Bytes handed to the host to write to this tier.
    pub bytes_written: u64,
    /// Values read back from chunks.
    pub chunked_reads: u64,
    /// Chunked values that could not be reassembled (a chunk lost, evicted or
    /// mismatched): served as misses.
    pub chunk_misses: u64,
    /// Values refused: not an envelope, corrupt, truncated, too large, or
    /// unsigned / badly signed when signing is on. Never handed to the host's
    /// deserializer.
    pub rejected: u64,
    /// Values served past their soft expiry (stale-while-revalidate).
    pub stale_served: u64,
    /// Values found expired (past their hard expiry): misses.
    pub expired: u64,
    /// Keys handed back for an early refresh (XFetch) or a stale refresh.
    pub early_refreshes: u64,
    /// Times a reader waited for another process's lease.
    pub lock_waits: u64,
    /// Operations skipped because the tier was cooling down after failures.
    pub skipped_cooling_down: u64,
}

/// Counters of the read path as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Reads (calls of `read`), whatever their number of keys.
    pub reads: u64,
    /// Keys asked for.
    pub keys: u64,
    /// Keys answered by the request tier.
    pub request_hits: u64,
    /// Keys answered by the local tier.
    pub local_hits: u64,
    /// Keys answered by a remote tier.
    pub remote_hits: u64,
    /// Keys loaded by this reader's loader.
    pub loads: u64,
    /// Keys whose loader raised.
    pub load_errors: u64,
    /// Keys answered by another reader's load in this process (single-flight).
    pub flight_waits: u64,
    /// Keys no tier had and that were not loaded (plain `get`).
    pub misses: u64,
    /// Host values whose payload the host could not deserialize.
    pub decode_errors: u64,
    /// Keys handed back to a reader to refresh (stale, or XFetch early).
    pub refreshes: u64,
}

/// Counters as `(name, value)` pairs, in a fixed order, so every host
/// reports them under the same names (`stats()` in Python and JS).
pub trait NamedCounters {
    /// The counters' names, in the order of [`named`](NamedCounters::named).
    const NAMES: &'static [&'static str];

    /// The counters, by name.
    fn named(&self) -> Vec<(&'static str, u64)>;
}

macro_rules! named_counters {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl NamedCounters for $ty {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            fn named(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field as u64)),*]
            }
        }
    };
}

named_counters!(TierStats {
    hits,
    misses,
    errors,
    fetches,
    writes,
    bytes_read,
    bytes_written,
    chunked_reads,
    chunk_misses,
    rejected,
    stale_served,
    expired,
    early_refreshes,
    lock_waits,
    skipped_cooling_down,
});
named_counters!(ReadStats {
    reads,
    keys,
    request_hits,
    local_hits,
    remote_hits,
    loads,
    load_errors,
    flight_waits,
    misses,
    decode_errors,
    refreshes,
});
named_counters!(crate::stampede::FlightStats {
    flights_started,
    waiters_joined,
    finished,
    abandoned,
    promoted,
    withdrawn,
    stale_tokens,
});
named_counters!(crate::local::LocalStats {
    hits,
    misses,
    inserts,
    updates,
    evictions,
    expirations,
    rejected,
    entries,
    weight,
    admissions_rejected,
    window_entries,
    window_weight,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_counters_list_every_field_by_name() {
        let stats = TierStats {
            hits: 3,
            skipped_cooling_down: 9,
            ..TierStats::default()
        };
        let named = stats.named();
        assert_eq!(named.len(), 15);
        assert_eq!(named[0], ("hits", 3));
        assert_eq!(named[14], ("skipped_cooling_down", 9));
        assert_eq!(ReadStats::default().named().len(), 11);
        let local = crate::local::LocalStats {
            entries: 4,
            ..Default::default()
        };
        assert!(local.named().contains(&("entries", 4)));
        let flights = crate::stampede::FlightStats {
            promoted: 2,
            ..Default::default()
        };
        assert!(flights.named().contains(&("promoted", 2)));
        let names: Vec<&str> = named.iter().map(|(name, _)| *name).collect();
        assert_eq!(TierStats::NAMES, names.as_slice());
    }
}
