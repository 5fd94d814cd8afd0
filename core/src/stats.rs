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
