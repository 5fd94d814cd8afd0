//! The core's tiered cache and its sans-I/O read machine, stepped from JS.
//!
//! JS builds a [`Tiered`] from a config it has already checked and
//! flattened into numbers (`js/tiered.js`), starts a read with
//! [`Tiered::read`], and loops on [`ReadHandle::next`], which returns each
//! step (fetch, decode, lease, sleep, load, notify, wait, store, delete,
//! done) in the byte layout of [`crate::wire`]. JS performs the I/O with
//! `await` and reports back with the matching methods, one value per call.
//! Values are [`Slot`]s: the local and request tiers keep the JS values'
//! numbers, and a hit crosses back as its number.

use std::cell::RefCell;
use std::rc::Rc;

use stratacache::envelope::{Codec, Keyring};
use stratacache::namespace::RESERVED_PREFIX;
use stratacache::stampede::FlightStats;
use stratacache::stampede::{LeasePolicy, WaitId};
use stratacache::tiered::{
    AnswerError, ConfigError, CooldownPolicy, Fetched, HostValue, InvalidKey, Loaded,
    LocalTierConfig, RawRead, ReadOptions, ReadResult, Source, Step, TierConfig, TieredCache,
    TieredConfig,
};
use stratacache::{LocalStats, Lookup, NamedCounters, ReadStats, RequestCache, TierStats};
use wasm_bindgen::prelude::*;

use crate::js::{self, expiry, to_u64};
use crate::request::RequestRef;
use crate::slots::{take_fresh, Slot};
use crate::wire::Wire;

/// A tiered cache: configuration, local tier, single-flight bookkeeping,
/// tier health and counters, shared by every read of the isolate.
#[wasm_bindgen]
pub struct Tiered {
    cache: TieredCache<Slot>,
    /// Reads waiting for the host, with their ids (never reused: a late
    /// `cancel` cannot reach another read).
    reads: Vec<(u32, Pending)>,
    last_id: u32,
    /// The key strings of finished reads, refilled with the next read's
    /// keys: a warm read allocates no string per key.
    spare: Vec<String>,
    /// A read's keys, UTF-8 one after another, and their byte lengths:
    /// written by JS straight into wasm memory (`keyBuffers`), no copy
    /// through the glue's own buffers.
    key_bytes: Vec<u8>,
    key_lengths: Vec<u32>,
    /// What `read` returns, in wasm memory (reused: a read allocates no
    /// buffer and the glue copies none).
    out: Wire,
}

/// At most this many spare key strings are kept. They are remote keys:
/// their buffers stay small (a host key over 200 bytes is replaced by its
/// shortened form, in a buffer of its own).
const SPARE_KEYS: usize = 1024;

/// Numbers per tier in `Tiered::new`'s `tier_numbers`, in this order; NaN
/// leaves the core's default.
const TIER_FIELDS: usize = 8;

/// A config number JS left out (NaN): `None`.
fn given(n: f64) -> Option<f64> {
    (!n.is_nan()).then_some(n)
}

/// A config flag (0 or 1; NaN: not given).
fn flag(n: f64) -> Option<bool> {
    given(n).map(|n| n != 0.0)
}

/// A TTL or size where `Infinity` means none.
fn finite(n: f64) -> Option<u64> {
    n.is_finite().then(|| to_u64(n))
}

fn tier_config(name: &str, n: &[f64]) -> TierConfig {
    // [kind, itemLimit, maxTtlMs, minTtlMs, storage, backfill, replicas, leases]
    let mut config = match n[0] as u8 {
        1 => TierConfig::redis(name),
        2 => TierConfig::workers_kv(name),
        3 => TierConfig::storage(name),
        _ => TierConfig::memcached(name),
    };
    if let Some(limit) = given(n[1]) {
        config.item_limit = to_u64(limit) as usize;
    }
    if let Some(ms) = given(n[2]) {
        config.max_ttl_ms = finite(ms);
    }
    if let Some(ms) = given(n[3]) {
        config.min_ttl_ms = to_u64(ms);
    }
    if let Some(storage) = flag(n[4]) {
        config.storage = storage;
    }
    if let Some(backfill) = flag(n[5]) {
        config.backfill = backfill;
    }
    if let Some(replicas) = given(n[6]) {
        config.replicas = replicas.clamp(0.0, 255.0) as u8;
    }
    if let Some(leases) = flag(n[7]) {
        config.leases = leases;
    }
    config
}

/// The keyring of `ids[i]` with the secret of `lengths[i]` bytes, the
/// secrets one after another in `secrets`.
fn keyring(ids: &[String], secrets: &[u8], lengths: &[u32]) -> Result<Option<Keyring>, JsValue> {
    if ids.is_empty() {
        return Ok(None);
    }
    let mut at = 0;
    let mut keys = Vec::with_capacity(ids.len());
    for (id, &len) in ids.iter().zip(lengths) {
        let end = (at + len as usize).min(secrets.len());
        keys.push((id.as_str(), &secrets[at..end]));
        at = end;
    }
    Keyring::from_keys(keys)
        .map(Some)
        .map_err(|e| js::type_error(&e.to_string()))
}

/// Where a result came from, as `js/wire.js` reads it: 0 nowhere, 1 the
/// request tier, 2 local, 3 the loader, 4 another read's load, 16 + i
/// remote tier i.
fn source_code(source: Option<Source>) -> u8 {
    match source {
        None => 0,
        Some(Source::Request) => 1,
        Some(Source::Local) => 2,
        Some(Source::Loader) => 3,
        Some(Source::Flight) => 4,
        Some(Source::Tier(n)) => 16 + n.min(239) as u8,
    }
}

/// The keys of `joined`, cut at `lengths` (UTF-8 bytes, counted by
/// `js/tiered.js`); a length off a character boundary takes the rest.
/// The strings come from `spare` while it has some.
fn split_keys(joined: &[u8], lengths: &[u32], spare: &mut Vec<String>) -> Vec<String> {
    // TextEncoder's output is UTF-8: the fallback is never taken.
    let mut rest = std::str::from_utf8(joined).unwrap_or_default();
    let mut keys = Vec::with_capacity(lengths.len());
    for &len in lengths {
        let end = (len as usize).min(rest.len());
        // `get`, not `split_at`: its panic would link `char`'s `Debug` (2 KB).
        let key = rest.get(..end).unwrap_or(rest);
        let mut s = spare.pop().unwrap_or_default();
        s.clear();
        s.push_str(key);
        keys.push(s);
        rest = rest.get(end..).unwrap_or("");
    }
    keys
}

fn waits(w: &mut Wire, ids: &[WaitId]) {
    w.u32(ids.len());
    for id in ids {
        w.f64(id.into_raw() as f64);
    }
}

/// Appends a step (its kind code first, as in `js/wire.js`); `weights`
/// gets the payload lengths of a decode step (the local tier's weights).
fn write_step(w: &mut Wire, step: Step, weights: &mut Vec<u64>) {
    match step {
        Step::Done => {
            w.u8(0);
        }
        Step::Fetch { tier, keys } => {
            w.u8(1).u32(tier).strs(&keys);
        }
        Step::Decode { items } => {
            w.u8(2).u32(items.len());
            weights.clear();
            for item in &items {
                weights.push(item.payload.len() as u64);
                w.str(&item.key).str(item.codec.name()).bytes(&item.payload);
            }
        }
        Step::Lease { tier, items } => {
            w.u8(3).u32(tier).u32(items.len());
            for item in &items {
                w.str(&item.key).bytes(&item.token).f64(item.ttl_ms as f64);
            }
        }
        Step::Sleep { ms } => {
            w.u8(4).f64(ms as f64);
        }
        Step::Load { keys } => {
            w.u8(5).strs(&keys);
        }
        Step::Notify { waiters } => waits(w.u8(6), &waiters),
        Step::Wait { waits: ids } => waits(w.u8(7), &ids),
        Step::Store { tier, entries } => {
            // A value's chunks in a step of their own before its manifest:
            // an adapter may write one batch's entries all at once.
            let is_chunk = |e: &&stratacache::tiered::StoreItem| {
                e.key
                    .strip_prefix(RESERVED_PREFIX)
                    .is_some_and(|k| k.starts_with(".chunk|"))
            };
            let chunks = entries.iter().filter(is_chunk).count();
            for (chunk, n) in [(true, chunks), (false, entries.len() - chunks)] {
                if n == 0 {
                    continue;
                }
                w.u8(8).u32(tier).u32(n);
                for e in entries.iter().filter(|e| is_chunk(e) == chunk) {
                    w.str(&e.key).bytes(&e.value);
                    w.f64(e.ttl_ms.map_or(f64::NAN, |ms| ms as f64));
                }
            }
        }
        Step::Delete { tier, keys } => {
            w.u8(9).u32(tier).strs(&keys);
        }
    }
}

/// Appends the result of one key of a finished read, as `readResults` in
/// `js/wire.js` reads it: a flags byte (1 hit, 2 refresh, 4 an error
/// message follows), the source code, the value's slot for a hit, the
/// message. The key is not sent: JS has the keys it asked for, in order.
/// A macro, not a function, so `src/wire_vectors.rs` can write results
/// with it: an `#[inline(always)]` function measured 4 bytes more wasm.
macro_rules! write_result {
    ($w:expr, $r:expr) => {{
        let r: &ReadResult<Slot> = $r;
        let hit = if matches!(r.lookup, Lookup::Hit(_)) {
            $crate::tiered::HIT
        } else {
            0
        };
        let refresh = if r.refresh {
            $crate::tiered::REFRESH
        } else {
            0
        };
        let error = if r.error.is_some() {
            $crate::tiered::ERROR
        } else {
            0
        };
        $w.u8(hit | refresh | error);
        $w.u8(source_code(r.source));
        // Read by JS before its next call into wasm: a slot freed with
        // `r` keeps its value until then.
        if let Lookup::Hit(v) = &r.lookup {
            $w.u32(v.id() as usize);
        }
        if let Some(message) = &r.error {
            $w.str(message);
        }
    }};
}

/// Steps of a write, one after another.
fn steps_bytes(steps: Vec<Step>) -> Vec<u8> {
    let mut w = Wire::new();
    let mut weights = Vec::new();
    for step in steps {
        write_step(&mut w, step, &mut weights);
    }
    w.into_inner()
}

fn codec_of(tag: u8) -> Codec {
    Codec::from_tag(tag).unwrap_or(Codec::Raw)
}

/// The message of a refused config (without the core's float formatting,
/// which would add 15 KB of wasm for one error message).
fn config_error(e: &ConfigError) -> String {
    match e {
        ConfigError::OutOfRange { field, range, .. } => {
            let name = match *field {
                "ttl_jitter" => "ttlJitter",
                "xfetch_beta" => "xfetchBeta",
                other => other,
            };
            format!("stratacache: {name} is out of range: it must be {range}")
        }
        ConfigError::TooManyTiers(n) => format!("stratacache: {n} remote tiers configured; at most 8 are supported"),
        ConfigError::ItemLimitTooSmall { name, limit } => {
            format!("stratacache: tier {} has an item limit of {limit} bytes; the minimum is 1024", js::quote(name))
        }
        ConfigError::UnnamedTier(i) => format!("stratacache: tier {i} has an empty name"),
        ConfigError::ZeroReplicas(name) => format!("stratacache: tier {} has 0 replicas: use 1 for no replicas", js::quote(name)),
        ConfigError::NoLeaseTier => {
            "stratacache: a lease policy is set but no tier has leases on: turn it on for the tier that has add()".to_owned()
        }
        ConfigError::Local(e) => format!("stratacache: local tier: {e}"),
        // Only from the core's serde configuration, which this binding does not use.
        ConfigError::UnknownKind { .. } | ConfigError::Invalid { .. } => "stratacache: invalid configuration".to_owned(),
    }
}

/// The config of `Tiered::new`'s `local` and `numbers` (the tiers and
/// keyring aside): see there for the layout.
fn tiered_config(tiers: Vec<TierConfig>, local: &[f64], numbers: &[f64]) -> TieredConfig {
    let mut config = TieredConfig::new(tiers);
    config.local = match local {
        [entries, bytes, ttl] => {
            let defaults = LocalTierConfig::default();
            Some(LocalTierConfig {
                max_entries: given(*entries).map_or(defaults.max_entries, |n| to_u64(n) as usize),
                max_weight: given(*bytes).map_or(defaults.max_weight, to_u64),
                ttl_ms: given(*ttl).map_or(defaults.ttl_ms, to_u64),
            })
        }
        _ => None,
    };
    let n = |i: usize| numbers.get(i).copied().and_then(given);
    if let Some(at) = n(0) {
        config.compress_at = finite(at).map(|at| at as usize);
    }
    if let Some(ms) = n(1) {
        config.default_ttl_ms = finite(ms);
    }
    if let Some(ms) = n(2) {
        config.stale_ms = to_u64(ms);
    }
    if let Some(x) = n(3) {
        config.ttl_jitter = x;
    }
    if let Some(x) = n(4) {
        config.xfetch_beta = x;
    }
    if let Some(ms) = n(5) {
        config.refresh_timeout_ms = to_u64(ms);
    }
    if let Some(strict) = n(6) {
        config.strict = strict != 0.0;
    }
    if let Some(len) = n(7) {
        config.max_payload_len = to_u64(len) as usize;
    }
    if n(8) == Some(1.0) {
        let d = LeasePolicy::default();
        config.lease = Some(LeasePolicy {
            ttl_ms: n(9).map_or(d.ttl_ms, to_u64),
            max_wait_ms: n(10).map_or(d.max_wait_ms, to_u64),
            poll_interval_ms: n(11).map_or(d.poll_interval_ms, to_u64),
        });
    }
    let d = CooldownPolicy::default();
    config.cooldown = CooldownPolicy {
        failures_to_trip: n(12).map_or(d.failures_to_trip, |n| n as u32),
        cooldown_ms: n(13).map_or(d.cooldown_ms, to_u64),
    };
    config
}

fn invalid_key(e: InvalidKey) -> JsValue {
    js::type_error(&format!(
        "stratacache: cache key {} is not a valid memcached key ({}): build keys with Key, or pass any string through safeKey()",
        js::quote(&e.shown),
        e.reason
    ))
}

#[wasm_bindgen]
impl Tiered {
    /// A tiered cache from the config `js/tiered.js` checked and flattened:
    /// the tier names and signing key ids come joined, with their UTF-8
    /// lengths (as a read's keys, see `read`), `tier_numbers` holds
    /// [`TIER_FIELDS`] numbers per tier (kind code,
    /// itemLimit, maxTtlMs, minTtlMs, storage, backfill, replicas, leases);
    /// `local` is empty (no local tier) or [maxEntries, maxBytes, ttlMs];
    /// signing key `key_ids[i]` has the next `secret_lengths[i]` bytes of
    /// `secrets`; `numbers` is [compressAt, defaultTtlMs, staleMs,
    /// ttlJitter, xfetchBeta, refreshTimeoutMs, strict, maxPayloadLen,
    /// lease (0/1), lease.ttlMs, lease.maxWaitMs, lease.pollIntervalMs,
    /// cooldown.failuresToTrip, cooldown.cooldownMs]. NaN leaves the core's
    /// default; `Infinity` as a TTL or compressAt means none.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)] // flat numbers and strings: the cheapest crossing
    pub fn new(
        tier_names: &[u8],
        tier_name_lengths: &[u32],
        tier_numbers: &[f64],
        local: &[f64],
        key_ids: &[u8],
        key_id_lengths: &[u32],
        secrets: &[u8],
        secret_lengths: &[u32],
        numbers: &[f64],
    ) -> Result<Tiered, JsValue> {
        let tiers = split_keys(tier_names, tier_name_lengths, &mut Vec::new())
            .iter()
            .zip(tier_numbers.chunks_exact(TIER_FIELDS))
            .map(|(name, n)| tier_config(name, n))
            .collect();
        let mut config = tiered_config(tiers, local, numbers);
        config.keyring = keyring(
            &split_keys(key_ids, key_id_lengths, &mut Vec::new()),
            secrets,
            secret_lengths,
        )?;
        let cache = TieredCache::new(config).map_err(|e| js::type_error(&config_error(&e)))?;
        Ok(Tiered {
            cache,
            reads: Vec::new(),
            last_id: 0,
            spare: Vec::new(),
            key_bytes: Vec::new(),
            key_lengths: Vec::new(),
            out: Wire::new(),
        })
    }

    /// Makes room for a read of up to `keys` keys of up to `bytes` UTF-8
    /// bytes in all (never less than before), for JS to write into wasm
    /// memory: the address of the bytes and that of the lengths (`u32`s).
    /// The addresses hold until the next call of this.
    #[wasm_bindgen(js_name = keyBuffers)]
    pub fn key_buffers(&mut self, bytes: usize, keys: usize) -> Vec<f64> {
        // Zeroed allocations, not `resize`: less code.
        if self.key_bytes.len() < bytes {
            self.key_bytes = vec![0; bytes];
        }
        if self.key_lengths.len() < keys {
            self.key_lengths = vec![0; keys];
        }
        // Two numbers, not one: a pair packed in one f64 loses the low bits
        // of the second address once the first is past 8 MB.
        vec![
            self.key_bytes.as_ptr() as usize as f64,
            self.key_lengths.as_ptr() as usize as f64,
        ]
    }

    /// Starts a read of the `keys` keys JS wrote to the buffers of
    /// `keyBuffers`: `bytes` bytes of UTF-8, one key after another, key `i`
    /// being `lengths[i]` bytes long (no string crosses the boundary).
    /// `flags`: 1 load, 2 force-miss, 4 skip
    /// the request tier. `ttl_ms` is the expiry of loaded values (NaN:
    /// default). `random` is a fresh random integer below 2^53. Runs the
    /// read as far as it goes without the host, and returns the address of
    /// its output in wasm memory (valid until the next call into wasm): a
    /// `u32` byte length, then the bytes of [`Tiered::advance`] (a read
    /// answered by the request and local tiers is over in this one call).
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &mut self,
        keys: usize,
        bytes: usize,
        flags: u32,
        ttl_ms: f64,
        now: f64,
        random: f64,
        request: Option<RequestRef>,
    ) -> Result<usize, JsValue> {
        let options = ReadOptions {
            load: flags & LOAD != 0,
            force_miss: flags & FORCE_MISS != 0,
            ttl: expiry(ttl_ms),
            skip_request_tier: flags & SKIP_REQUEST != 0,
        };
        let mut keys = split_keys(
            &self.key_bytes[..bytes.min(self.key_bytes.len())],
            &self.key_lengths[..keys.min(self.key_lengths.len())],
            &mut self.spare,
        );
        crate::keys::to_remote(&mut keys);
        let read = {
            let req = request.as_ref().map(|r| r.0.borrow());
            self.cache
                .read_raw(keys, options, to_u64(now), to_u64(random), req.as_deref())
                .map_err(invalid_key)?
        };
        let mut w = std::mem::take(&mut self.out);
        w.reset();
        let pending = Pending {
            read,
            request: request.map(|r| r.0),
            weights: Vec::new(),
            tier: 0,
        };
        let advanced = self.advance(pending, &mut w);
        w.seal();
        self.out = w;
        advanced.map(|()| self.out.as_ptr())
    }

    /// Answers the step read `id` waits for, then runs it on (see
    /// [`Tiered::advance`]). `kind` says what the answer is (the core
    /// refuses the answer to another step than the one asked):
    ///
    /// * 0, the tier operation failed: `bytes` its message, `n` the time then;
    /// * 1, fetched: per key `lengths[i]` bytes of `bytes` (in order),
    ///   `u32::MAX` not found, `u32::MAX - 1` failed for this key;
    /// * 2, decoded: the values filed by `fileSlots`, `lengths[i] == 1`
    ///   where item `i` failed;
    /// * 3, loaded: the values filed by `fileSlots`, and per key a pair in
    ///   `lengths`: the payload's
    ///   byte length in `bytes` and its codec tag; tag 255: the key failed,
    ///   the bytes are the message; `n` the loader's milliseconds;
    /// * 4, leased: `bytes[i] == 1` where the lease was taken;
    /// * 5, slept until `n`; 6, woke;
    /// * 7, cancel: the read is given up (nothing for a read that is
    ///   over); the answer is a notify step of the waiters to wake.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &mut self,
        id: u32,
        kind: u8,
        bytes: &[u8],
        lengths: &[u32],
        n: f64,
    ) -> Result<Vec<u8>, JsValue> {
        let Some(mut p) = self.take(id) else {
            if kind == CANCEL {
                return Ok(Vec::new());
            }
            return Err(js::type_error("stratacache: this read is over"));
        };
        if kind == CANCEL {
            let mut w = Wire::new();
            waits(w.u8(6), &p.read.cancel(&mut self.cache));
            return Ok(w.into_inner());
        }
        let cache = &mut self.cache;
        let mut at = 0;
        let mut cut = |len: u32| {
            let end = (at + len as usize).min(bytes.len());
            let out = &bytes[at.min(end)..end];
            at = end;
            out
        };
        let answered = match kind {
            FAILED => {
                let message = std::str::from_utf8(bytes).unwrap_or_default();
                p.read.failed(cache, p.tier, message.to_owned(), to_u64(n));
                Ok(())
            }
            FETCHED => {
                let fetched = lengths
                    .iter()
                    .map(|&len| match len {
                        NOT_FOUND => Fetched::NotFound,
                        FETCH_FAILED => Fetched::Failed(String::new()),
                        len => Fetched::Found(cut(len).to_vec()),
                    })
                    .collect();
                p.read.fetched_outcomes(cache, p.tier, fetched)
            }
            DECODED => {
                let weights = std::mem::take(&mut p.weights);
                let decoded = take_fresh()
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| match lengths.get(i) {
                        Some(1) => Err("the payload could not be deserialized".to_owned()),
                        _ => Ok(HostValue::new(value, weights.get(i).copied().unwrap_or(0))),
                    })
                    .collect();
                p.read.decoded(cache, decoded)
            }
            LOADED => {
                let loaded = take_fresh()
                    .into_iter()
                    .zip(lengths.chunks_exact(2))
                    .map(|(value, pair)| {
                        let bytes = cut(pair[0]);
                        match pair[1] {
                            255 => Err(std::str::from_utf8(bytes).unwrap_or_default().to_owned()),
                            tag => Ok(Loaded::new(value, codec_of(tag as u8), bytes.to_vec())),
                        }
                    })
                    .collect();
                p.read.loaded(cache, loaded, to_u64(n))
            }
            LEASED => p
                .read
                .leased(cache, bytes.iter().map(|&t| t == 1).collect()),
            SLEPT => p.read.slept(to_u64(n)),
            WOKE => p.read.woke(cache),
            _ => Err(AnswerError::WrongStep {
                expected: "a known answer",
                answered: "an unknown one",
            }),
        };
        if answered.is_err() {
            self.reads.push((id, p));
            return Err(js::error_with_kind(
                "stratacache: the core refused an answer to the wrong step or with the wrong number of values (a driver bug)",
                "answer_error",
            ));
        }
        let mut w = Wire::new();
        self.advance(p, &mut w)?;
        Ok(w.into_inner())
    }

    /// Writes the value filed by `fileSlots` (serialized as `payload` with codec tag `codec`) to
    /// the request and local tiers now; returns the store steps for every
    /// remote tier (one after another). A TTL `<= 0` deletes instead (the
    /// delete steps: `deleteAllTiers` in JS).
    #[wasm_bindgen(js_name = setAllTiers)]
    #[allow(clippy::too_many_arguments)]
    pub fn set_all_tiers(
        &mut self,
        key: &str,
        codec: u8,
        payload: Vec<u8>,
        ttl_ms: f64,
        now: f64,
        random: f64,
        request: Option<RequestRef>,
    ) -> Result<Vec<u8>, JsValue> {
        let Some(value) = take_fresh().pop() else {
            return Err(js::type_error(
                "stratacache: setAllTiers without a filed value (a driver bug)",
            ));
        };
        let loaded = Loaded::new(value, codec_of(codec), payload);
        let cache = &mut self.cache;
        let mut req = request.as_ref().map(|r| r.0.borrow_mut());
        let mut key = [key.to_owned()];
        crate::keys::to_remote(&mut key);
        let [key] = key;
        let steps = cache
            .set_all_tiers(
                &key,
                loaded,
                expiry(ttl_ms),
                to_u64(now),
                to_u64(random),
                req.as_deref_mut(),
            )
            .map_err(invalid_key)?;
        Ok(steps_bytes(steps))
    }

    /// Reports how a write (store, delete) to `tier` went: a failure counts
    /// toward its cool-down, a success ends one (the tier answered).
    #[wasm_bindgen(js_name = tierWrote)]
    pub fn tier_wrote(&mut self, tier: usize, ok: bool, now: f64) {
        if ok {
            self.cache.tier_succeeded(tier);
        } else {
            self.cache.tier_failed(tier, to_u64(now));
        }
    }

    /// Empties the local tier.
    #[wasm_bindgen(js_name = clearLocal)]
    pub fn clear_local(&mut self) {
        self.cache.clear_local();
    }

    /// The core's counter names (snake case), comma-separated, in the
    /// order of `stats`: the reads', `|`, each tier's, `|`, the local
    /// tier's, `|`, the flights'.
    #[wasm_bindgen(js_name = statNames)]
    pub fn stat_names(&self) -> String {
        let sections = [
            ReadStats::NAMES,
            TierStats::NAMES,
            LocalStats::NAMES,
            FlightStats::NAMES,
        ];
        // Pushed name by name: `join` would add its own copy loop.
        let mut out = String::new();
        for (i, names) in sections.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            for (j, name) in names.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push_str(name);
            }
        }
        out
    }

    /// Every counter: the reads', each tier's, the local tier's (if there
    /// is one), the flights'; named by `statNames`.
    pub fn stats(&self) -> Vec<f64> {
        let cache = &self.cache;
        let mut out: Vec<f64> = Vec::new();
        let mut push =
            |counters: Vec<(&str, u64)>| out.extend(counters.iter().map(|(_, v)| *v as f64));
        push(cache.read_stats().named());
        for t in cache.tier_stats() {
            push(t.named());
        }
        if let Some(l) = cache.local_stats() {
            push(l.named());
        }
        push(cache.flight_stats().named());
        out
    }
}

/// A read waiting for the host's answer to its last step.
struct Pending {
    read: RawRead<Slot>,
    request: Option<Rc<RefCell<RequestCache<Slot>>>>,
    /// Payload lengths of the last decode step (the local tier's weights).
    weights: Vec<u64>,
    /// The tier of the last fetch or lease step.
    tier: usize,
}

/// A fetched key its tier did not have / could not answer (`answer` kind 1).
const NOT_FOUND: u32 = u32::MAX;
const FETCH_FAILED: u32 = u32::MAX - 1;

// The flags of `read`, as `js/tiered.js` names them (a test checks).
const LOAD: u32 = 1;
const FORCE_MISS: u32 = 2;
const SKIP_REQUEST: u32 = 4;

// The flags byte of a result, as `js/wire.js` names them (a test checks).
const HIT: u8 = 1;
const REFRESH: u8 = 2;
const ERROR: u8 = 4;

// The kinds of `answer`, as `js/tiered.js` names them (a test checks).
const FAILED: u8 = 0;
const FETCHED: u8 = 1;
const DECODED: u8 = 2;
const LOADED: u8 = 3;
const LEASED: u8 = 4;
const SLEPT: u8 = 5;
const WOKE: u8 = 6;
const CANCEL: u8 = 7;

impl Tiered {
    /// The read waiting under `id`, taken out.
    fn take(&mut self, id: u32) -> Option<Pending> {
        let at = self.reads.iter().position(|(k, _)| *k == id)?;
        Some(self.reads.swap_remove(at).1)
    }

    /// Runs read `p` until it needs the host, writing to `w` (layout of
    /// `js/wire.js`) hold the steps that need no answer
    /// (notify, store, delete), then the one that does; after it the read's
    /// id (to `answer` with) or, after done, the results (per key a flags
    /// byte: 1 hit, 2 refresh, 4 an error message follows; the source code;
    /// the value's slot for a hit; the message). Throws in
    /// strict mode after a tier failure.
    fn advance(&mut self, mut p: Pending, w: &mut Wire) -> Result<(), JsValue> {
        loop {
            let step = p.read.next(&mut self.cache);
            let done = matches!(step, Step::Done);
            let effect = matches!(
                step,
                Step::Notify { .. } | Step::Store { .. } | Step::Delete { .. }
            );
            if let Step::Fetch { tier, .. } | Step::Lease { tier, .. } = step {
                p.tier = tier;
            }
            write_step(w, step, &mut p.weights);
            if done {
                break;
            }
            if !effect {
                self.last_id = self.last_id.wrapping_add(1);
                self.reads.push((self.last_id, p));
                w.u32(self.last_id as usize);
                return Ok(());
            }
        }
        let Pending { read, request, .. } = p;
        let spare = &mut self.spare;
        let mut req = request.as_ref().map(|r| r.borrow_mut());
        let finished = read.finish_each(&mut self.cache, req.as_deref_mut(), |r| {
            write_result!(w, &r);
            if spare.len() < SPARE_KEYS {
                spare.push(r.key);
            }
        });
        finished.map_err(|failure| {
            js::error_with_kind(
                &format!(
                    "stratacache: tier {} failed in strict mode: {}",
                    js::quote(&failure.tier_name),
                    failure.message
                ),
                "tier_failure",
            )
        })
    }
}

#[cfg(test)]
#[path = "wire_vectors.rs"]
mod wire_vectors;

#[cfg(test)]
mod tests {
    use super::*;
    use stratacache::tiered::StoreItem;

    /// The names of a `const NAMES = [...]` list, or of `const A = 0, B = 1`, in a JS file.
    fn js_list(js: &str, start: &str) -> Vec<String> {
        let list = js
            .split(start)
            .nth(1)
            .expect(start)
            .split([']', ';'])
            .next()
            .unwrap();
        list.split(',')
            .map(|s| s.trim().trim_matches('\'').to_owned())
            .collect()
    }

    /// A JS option name in snake_case (`maxTtlMs` -> `max_ttl_ms`).
    fn snake_case(field: &str) -> String {
        let mut snake = String::new();
        for c in field.chars() {
            if c.is_ascii_uppercase() {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        snake
    }

    /// The fields a serde struct with `deny_unknown_fields` knows, from the
    /// error an unknown field gets ("expected one of `a`, `b`").
    fn spec_fields(error: &str) -> Vec<String> {
        let list = error.split("expected one of ").nth(1).expect(error);
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// The global layout of `js/config.js` (`GLOBAL_FIELDS`, a lease flag,
    /// `LEASE_FIELDS`, `COOLDOWN_FIELDS`; `LOCAL_FIELDS` apart), derived from
    /// the core's serde configuration: each JS field set alone, to a value of
    /// its own, builds the config that the core's spec field of that name
    /// (snake_case, seconds for `Ms`) builds, so a field swapped, dropped or
    /// read at the wrong place fails; and every field of the core's spec is a
    /// JS field or named here as one the JS host does not take.
    #[test]
    fn js_global_layout_is_the_core_config() {
        use serde_json::{json, Value};
        let js = include_str!("../js/config.js");
        assert!(js.contains("const numbers = [...GLOBAL_FIELDS.map((f) => options[f]), lease !== undefined, ...LEASE_FIELDS.map((f) => lease?.[f]), ...COOLDOWN_FIELDS.map((f) => cooldown[f])];"));
        assert!(js.contains("LOCAL_FIELDS.map((f) => num(options.local?.[f]))"));
        let globals = js_list(js, "const GLOBAL_FIELDS = [");
        let lease = js_list(js, "const LEASE_FIELDS = [");
        let cooldown = js_list(js, "const COOLDOWN_FIELDS = [");
        let local = js_list(js, "const LOCAL_FIELDS = [");
        // (the spec object a field is in, the JS field, in `local` or not, its index)
        let lease_flag = globals.len();
        let mut layout: Vec<(Option<&str>, &String, bool, usize)> = Vec::new();
        layout.extend(globals.iter().enumerate().map(|(i, f)| (None, f, false, i)));
        layout.extend(
            lease
                .iter()
                .enumerate()
                .map(|(i, f)| (Some("lease"), f, false, lease_flag + 1 + i)),
        );
        let at = lease_flag + 1 + lease.len();
        layout.extend(
            cooldown
                .iter()
                .enumerate()
                .map(|(i, f)| (Some("cooldown"), f, false, at + i)),
        );
        layout.extend(
            local
                .iter()
                .enumerate()
                .map(|(i, f)| (Some("local"), f, true, i)),
        );
        let unset = vec![f64::NAN; at + cooldown.len()];
        let js_config = |numbers: &[f64], local: &[f64]| {
            format!("{:?}", tiered_config(Vec::new(), local, numbers))
        };
        let spec = |value: Value| {
            serde_json::from_value::<TieredConfig>(value)
                .ok()
                .map(|c| format!("{c:?}"))
        };
        assert_eq!(Some(js_config(&unset, &[f64::NAN; 3])), spec(json!({})));
        assert_eq!(
            js_config(&unset, &[]),
            spec(json!({"local": null})).unwrap()
        );
        let mut n = unset.clone();
        n[lease_flag] = 1.0;
        assert_eq!(
            Some(js_config(&n, &[f64::NAN; 3])),
            spec(json!({"lease": true}))
        );
        let mut covered = Vec::new();
        for (k, &(scope, field, in_local, i)) in layout.iter().enumerate() {
            let snake = snake_case(field);
            let (name, ms) = match snake.strip_suffix("_ms") {
                Some(name) => (name, true),
                None => (snake.as_str(), false),
            };
            // Where the spec's name is not the JS name's snake_case.
            let name = match (scope, name) {
                (None, "stale") => "stale_ttl",
                (Some("cooldown"), "failures_to_trip") => "failures",
                (Some("cooldown"), "cooldown") => "seconds",
                _ => name,
            };
            let wrap = |v: Value| match scope {
                None => json!({ name: v }),
                Some(scope) => json!({ scope: { name: v } }),
            };
            let js = |v: f64| {
                let (mut n, mut l) = (unset.clone(), [f64::NAN; 3]);
                if scope == Some("lease") {
                    n[lease_flag] = 1.0;
                }
                let target: &mut [f64] = if in_local { &mut l } else { &mut n };
                target[i] = v;
                js_config(&n, &l)
            };
            // A value of its own per field: a field read at another's place differs.
            let v = 100.0 + k as f64;
            if ms {
                assert_eq!(Some(js(v * 1000.0)), spec(wrap(v.into())), "{field}");
            } else if spec(wrap(true.into())).is_some() {
                for b in [false, true] {
                    assert_eq!(Some(js(b as u8 as f64)), spec(wrap(b.into())), "{field}");
                }
            } else {
                assert_eq!(Some(js(v)), spec(wrap((v as u64).into())), "{field}");
            }
            // `null` where the spec gives it a meaning of its own (none): Infinity in JS.
            let none = spec(wrap(Value::Null));
            let unset = spec(scope.map_or(json!({}), |scope| json!({ scope: {} })));
            if none.is_some() && none != unset {
                assert_eq!(Some(js(f64::INFINITY)), none, "{field} null");
            }
            covered.push(match scope {
                Some(scope @ "local") => format!("{scope}.{name}"),
                _ => name.to_owned(),
            });
        }
        let spec_error = |value: Value| {
            serde_json::from_value::<TieredConfig>(value)
                .unwrap_err()
                .to_string()
        };
        let top = spec_fields(&spec_error(json!({"?": 0})));
        let nested = ["tiers", "local", "lease", "cooldown", "signing_keys"];
        // Not taken from JS: the request namespace's name, the host codec and
        // pickles are Python's; JS has one cache per isolate and no pickle.
        let not_in_js = ["name", "codec", "allow_unsigned_pickle"];
        for field in &top {
            let field = field.as_str();
            assert!(
                covered.iter().any(|c| c == field)
                    || nested.contains(&field)
                    || not_in_js.contains(&field),
                "{field} of the core's spec is not in js/config.js"
            );
        }
        for field in spec_fields(&spec_error(json!({"local": {"?": 0}}))) {
            let field = format!("local.{field}");
            // An alias of `max_bytes`.
            let alias = field == "local.max_weight";
            assert!(
                alias || covered.contains(&field),
                "{field} of the core's spec is not in js/config.js"
            );
        }
    }

    /// The tier layout of `js/config.js` (`TIER_KINDS`, `TIER_FIELDS`),
    /// derived from the core's serde configuration: each JS kind code reads
    /// as the core's preset of that name, each JS field (camelCase, ms) as
    /// the core's spec field of that name (snake_case, seconds).
    #[test]
    fn js_tier_layout_is_the_core_config() {
        let js = include_str!("../js/config.js");
        let kinds = js_list(js, "const TIER_KINDS = [");
        let fields = js_list(js, "const TIER_FIELDS = [");
        assert_eq!(fields.len() + 1, TIER_FIELDS);
        let unset = [f64::NAN; TIER_FIELDS];
        for (code, kind) in kinds.iter().enumerate() {
            let mut n = unset;
            n[0] = code as f64;
            assert_eq!(
                tier_config("t", &n),
                TierConfig::preset(kind, "t").unwrap(),
                "{kind}"
            );
        }
        let spec = |field: &str, value: serde_json::Value| {
            let mut map = serde_json::Map::new();
            map.insert("name".into(), "t".into());
            map.insert(field.into(), value);
            serde_json::from_value::<TierConfig>(map.into()).ok()
        };
        let mut without_spec = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            let snake = snake_case(field);
            let js = |v: f64| {
                let mut n = unset;
                n[0] = 0.0;
                n[i + 1] = v;
                tier_config("t", &n)
            };
            if let Some(name) = snake.strip_suffix("_ms") {
                assert_eq!(Some(js(7500.0)), spec(name, 7.5.into()), "{field}");
            } else if spec(&snake, true.into()).is_some() {
                for b in [false, true] {
                    assert_eq!(Some(js(b as u8 as f64)), spec(&snake, b.into()), "{field}");
                }
            } else if spec(&snake, 3.into()).is_some() {
                assert_eq!(Some(js(3.0)), spec(&snake, 3.into()), "{field}");
            } else {
                without_spec.push(field.clone());
            }
        }
        // Set by the kind in the core's spec (`storage`), a field of its own here.
        assert_eq!(without_spec, ["storage"]);
    }

    /// The number of `const NAME = n` (or `, NAME = n`) in a JS file: one place only.
    fn js_const(js: &str, name: &str) -> u64 {
        let found: Vec<&str> = [format!("const {name} = "), format!(", {name} = ")]
            .iter()
            .flat_map(|start| js.split(start.as_str()).skip(1))
            .collect();
        assert_eq!(found.len(), 1, "{name}");
        let n = found[0].split([',', ';']).next().unwrap().trim();
        match n.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => n.parse().unwrap(),
        }
    }

    #[test]
    fn js_names_the_flags_and_marks_as_here() {
        let tiered = include_str!("../js/tiered.js");
        let wire = include_str!("../js/wire.js");
        for (name, n) in [
            ("LOAD", LOAD),
            ("FORCE_MISS", FORCE_MISS),
            ("SKIP_REQUEST", SKIP_REQUEST),
        ] {
            assert_eq!(js_const(tiered, name), n as u64, "{name}");
        }
        assert_eq!(js_const(tiered, "NOT_FOUND"), NOT_FOUND as u64);
        assert_eq!(js_const(tiered, "KEY_FAILED"), FETCH_FAILED as u64);
        for (name, n) in [("HIT", HIT), ("REFRESH", REFRESH), ("ERROR", ERROR)] {
            assert_eq!(js_const(wire, name), n as u64, "{name}");
        }
        // Where JS reads them.
        for read in [
            "(flags & HIT) !== 0",
            "if (flags & ERROR)",
            "if (flags & REFRESH)",
        ] {
            assert!(wire.contains(read), "{read}");
        }
    }

    #[test]
    fn js_reads_the_step_kinds_written_here() {
        let kinds = js_list(include_str!("../js/wire.js"), "const KINDS = [");
        let keys = vec!["k".to_owned()];
        let store = StoreItem {
            key: "k".into(),
            value: vec![1],
            ttl_ms: None,
        };
        let steps = [
            (Step::Done, "done"),
            (
                Step::Fetch {
                    tier: 0,
                    keys: keys.clone(),
                },
                "fetch",
            ),
            (Step::Decode { items: vec![] }, "decode"),
            (
                Step::Lease {
                    tier: 0,
                    items: vec![],
                },
                "lease",
            ),
            (Step::Sleep { ms: 1 }, "sleep"),
            (Step::Load { keys: keys.clone() }, "load"),
            (Step::Notify { waiters: vec![] }, "notify"),
            (Step::Wait { waits: vec![] }, "wait"),
            (
                Step::Store {
                    tier: 0,
                    entries: vec![store],
                },
                "store",
            ),
            (Step::Delete { tier: 0, keys }, "delete"),
        ];
        assert_eq!(kinds.len(), steps.len());
        for (step, name) in steps {
            let mut w = Wire::new();
            write_step(&mut w, step, &mut Vec::new());
            assert_eq!(kinds[w.into_inner()[0] as usize], name);
        }
    }

    #[test]
    fn js_names_the_sources_and_answers_as_here() {
        let js = include_str!("../js/tiered.js");
        let sources = js_list(js, "this.#sources = [");
        for (source, name) in [
            (Source::Request, "request"),
            (Source::Local, "local"),
            (Source::Loader, "loader"),
            (Source::Flight, "flight"),
        ] {
            assert_eq!(sources[source_code(Some(source)) as usize], name);
        }
        assert_eq!(sources[source_code(None) as usize], "undefined");
        assert!(js.contains("this.#sources[16 + i] = name"));
        assert_eq!(source_code(Some(Source::Tier(2))), 16 + 2);
        let answers = js_list(js, "const FAILED = 0,");
        let named = [
            ("FETCHED", FETCHED),
            ("DECODED", DECODED),
            ("LOADED", LOADED),
            ("LEASED", LEASED),
            ("SLEPT", SLEPT),
            ("WOKE", WOKE),
            ("CANCEL", CANCEL),
        ];
        assert_eq!(FAILED, 0);
        assert_eq!(answers.len(), named.len());
        for (entry, (name, code)) in answers.iter().zip(named) {
            assert_eq!(entry, &format!("{name} = {code}"));
        }
    }
}
