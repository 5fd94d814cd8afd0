//! The core's tiered cache and its sans-I/O read machine, stepped from JS.
//!
//! JS builds a [`Tiered`] from a plain config object, starts a read with
//! [`Tiered::read`], and loops on [`ReadHandle::next`], which returns a
//! plain object `{ kind, ... }` for each step (fetch, decode, lease, sleep,
//! load, notify, wait, store, delete, done). JS performs the I/O with
//! `await` and reports back with the matching method. Values are `JsValue`
//! handles: the local and request tiers keep them as they are.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Object, Uint8Array};
use tiercache::envelope::{Codec, Keyring};
use tiercache::stampede::{LeasePolicy, WaitId};
use tiercache::tiered::{
    ConfigError, CooldownPolicy, HostValue, InvalidKey, Loaded, LocalTierConfig, Read, ReadOptions,
    ReadResult, Source, Step, TierConfig, TieredCache, TieredConfig,
};
use tiercache::{Expiry, Lookup, NamedCounters};
use wasm_bindgen::prelude::*;

use crate::js::{self, get, get_bool, get_f64, get_string, object, set, to_u64};
use crate::request::RequestCacheHandle;

type Shared = Rc<RefCell<TieredCache<JsValue>>>;

/// A tiered cache: configuration, local tier, single-flight bookkeeping,
/// tier health and counters, shared by every read of the isolate.
#[wasm_bindgen]
pub struct Tiered {
    cache: Shared,
}

fn tier_config(index: usize, tier: &JsValue) -> Result<TierConfig, JsValue> {
    let name = get_string(tier, "name").unwrap_or_default();
    let kind = get_string(tier, "kind").unwrap_or_else(|| "memcached".to_owned());
    let mut config = match kind.as_str() {
        "memcached" => TierConfig::memcached(&name),
        "redis" => TierConfig::redis(&name),
        "workers_kv" => TierConfig::workers_kv(&name),
        "storage" => TierConfig::storage(&name),
        other => {
            return Err(js::type_error(&format!(
                "tier {index} ({}) has kind {}: use \"memcached\", \"redis\", \"workers_kv\" or \"storage\"",
                js::quote(&name),
                js::quote(other)
            )))
        }
    };
    if let Some(limit) = get_f64(tier, "itemLimit") {
        config.item_limit = to_u64(limit) as usize;
    }
    match get(tier, "maxTtlMs") {
        v if v.is_null() => config.max_ttl_ms = None,
        v => {
            if let Some(ms) = v.as_f64() {
                config.max_ttl_ms = (ms.is_finite()).then(|| to_u64(ms));
            }
        }
    }
    if let Some(ms) = get_f64(tier, "minTtlMs") {
        config.min_ttl_ms = to_u64(ms);
    }
    if let Some(storage) = get_bool(tier, "storage") {
        config.storage = storage;
    }
    if let Some(backfill) = get_bool(tier, "backfill") {
        config.backfill = backfill;
    }
    if let Some(replicas) = get_f64(tier, "replicas") {
        config.replicas = replicas.clamp(0.0, 255.0) as u8;
    }
    if let Some(leases) = get_bool(tier, "leases") {
        config.leases = leases;
    }
    Ok(config)
}

fn keyring(keys: &JsValue) -> Result<Option<Keyring>, JsValue> {
    if keys.is_undefined() || keys.is_null() {
        return Ok(None);
    }
    let list = Array::from(keys);
    if list.length() == 0 {
        return Ok(None);
    }
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in list.iter() {
        let id = get_string(&entry, "id").unwrap_or_default();
        let secret = get(&entry, "secret");
        if !secret.is_instance_of::<Uint8Array>() {
            return Err(js::type_error(&format!(
                "signing key {}: secret must be a Uint8Array or a string",
                js::quote(&id)
            )));
        }
        owned.push((id, Uint8Array::from(secret).to_vec()));
    }
    Keyring::from_keys(owned.iter().map(|(id, s)| (id.as_str(), s.as_slice())))
        .map(Some)
        .map_err(|e| js::type_error(&e.to_string()))
}

/// The TTL a JS caller gave: NaN/undefined → the default, `Infinity` →
/// never, `<= 0` → expire at once (delete).
fn expiry(ttl_ms: f64) -> Expiry {
    if ttl_ms.is_nan() {
        Expiry::Default
    } else if ttl_ms == f64::INFINITY {
        Expiry::Never
    } else {
        Expiry::AfterMs(to_u64(ttl_ms.ceil()))
    }
}

fn source_name(cache: &TieredCache<JsValue>, source: Option<Source>) -> JsValue {
    match source {
        None => JsValue::NULL,
        Some(Source::Request) => "request".into(),
        Some(Source::Local) => "local".into(),
        Some(Source::Loader) => "loader".into(),
        Some(Source::Flight) => "flight".into(),
        Some(Source::Tier(n)) => cache
            .config()
            .tiers
            .get(n)
            .map_or_else(|| "tier".into(), |t| t.name.as_str().into()),
    }
}

fn waits(ids: &[WaitId]) -> Array {
    ids.iter()
        .map(|id| JsValue::from_f64(id.into_raw() as f64))
        .collect()
}

fn ttl_value(ttl: Option<u64>) -> JsValue {
    ttl.map_or(JsValue::NULL, |ms| JsValue::from_f64(ms as f64))
}

/// A step as a plain JS object; `weights` gets the payload lengths of a
/// decode step (the local tier's weights).
fn step_object(step: Step, weights: &mut Vec<u64>) -> Object {
    let o = object();
    match step {
        Step::Fetch { tier, keys } => {
            set(&o, "kind", "fetch");
            set(&o, "tier", tier as u32);
            set(&o, "keys", js::strings(&keys));
        }
        Step::Decode { items } => {
            set(&o, "kind", "decode");
            weights.clear();
            let list: Array = items
                .iter()
                .map(|item| {
                    weights.push(item.payload.len() as u64);
                    let i = object();
                    set(&i, "key", item.key.as_str());
                    set(&i, "codec", item.codec.name());
                    set(&i, "payload", js::bytes(&item.payload));
                    JsValue::from(i)
                })
                .collect();
            set(&o, "items", list);
        }
        Step::Lease { tier, items } => {
            set(&o, "kind", "lease");
            set(&o, "tier", tier as u32);
            let list: Array = items
                .iter()
                .map(|item| {
                    let i = object();
                    set(&i, "key", item.key.as_str());
                    set(&i, "value", js::bytes(&item.token));
                    set(&i, "ttlMs", item.ttl_ms as f64);
                    JsValue::from(i)
                })
                .collect();
            set(&o, "entries", list);
        }
        Step::Sleep { ms } => {
            set(&o, "kind", "sleep");
            set(&o, "ms", ms as f64);
        }
        Step::Load { keys } => {
            set(&o, "kind", "load");
            set(&o, "keys", js::strings(&keys));
        }
        Step::Notify { waiters } => {
            set(&o, "kind", "notify");
            set(&o, "waits", waits(&waiters));
        }
        Step::Wait { waits: ids } => {
            set(&o, "kind", "wait");
            set(&o, "waits", waits(&ids));
        }
        Step::Store { tier, entries } => {
            set(&o, "kind", "store");
            set(&o, "tier", tier as u32);
            let list: Array = entries
                .iter()
                .map(|e| {
                    let i = object();
                    set(&i, "key", e.key.as_str());
                    set(&i, "value", js::bytes(&e.value));
                    set(&i, "ttlMs", ttl_value(e.ttl_ms));
                    JsValue::from(i)
                })
                .collect();
            set(&o, "entries", list);
        }
        Step::Delete { tier, keys } => {
            set(&o, "kind", "delete");
            set(&o, "tier", tier as u32);
            set(&o, "keys", js::strings(&keys));
        }
        Step::Done => set(&o, "kind", "done"),
    }
    o
}

fn steps_array(steps: Vec<Step>) -> Array {
    let mut weights = Vec::new();
    steps
        .into_iter()
        .map(|s| JsValue::from(step_object(s, &mut weights)))
        .collect()
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
            format!("tiercache: {name} is out of range: it must be {range}")
        }
        ConfigError::TooManyTiers(n) => format!("tiercache: {n} remote tiers configured; at most 8 are supported"),
        ConfigError::ItemLimitTooSmall { name, limit } => {
            format!("tiercache: tier {} has an item limit of {limit} bytes; the minimum is 1024", js::quote(name))
        }
        ConfigError::UnnamedTier(i) => format!("tiercache: tier {i} has an empty name"),
        ConfigError::ZeroReplicas(name) => format!("tiercache: tier {} has 0 replicas: use 1 for no replicas", js::quote(name)),
        ConfigError::NoLeaseTier => {
            "tiercache: a lease policy is set but no tier has leases on: turn it on for the tier that has add()".to_owned()
        }
        ConfigError::Local(e) => format!("tiercache: local tier: {e}"),
    }
}

fn invalid_key(e: InvalidKey) -> JsValue {
    js::type_error(&format!(
        "tiercache: cache key {} is not a valid memcached key ({}): build keys with Key, or pass any string through safeKey()",
        js::quote(&e.shown),
        e.reason
    ))
}

#[wasm_bindgen]
impl Tiered {
    /// A tiered cache from a normalized config object (see `js/tiered.js`).
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Tiered, JsValue> {
        let tiers_js = Array::from(&get(&options, "tiers"));
        let mut tiers = Vec::new();
        for (i, tier) in tiers_js.iter().enumerate() {
            tiers.push(tier_config(i, &tier)?);
        }
        let mut config = TieredConfig::new(tiers);
        let local = get(&options, "local");
        config.local = if local.is_null() || local.is_undefined() || local.as_bool() == Some(false)
        {
            None
        } else {
            let defaults = LocalTierConfig::default();
            Some(LocalTierConfig {
                max_entries: get_f64(&local, "maxEntries")
                    .map_or(defaults.max_entries, |n| to_u64(n) as usize),
                max_weight: get_f64(&local, "maxBytes").map_or(defaults.max_weight, to_u64),
                ttl_ms: get_f64(&local, "ttlMs").map_or(defaults.ttl_ms, to_u64),
            })
        };
        config.keyring = keyring(&get(&options, "signingKeys"))?;
        match get(&options, "compressAt") {
            v if v.is_null() => config.compress_at = None,
            v => {
                if let Some(n) = v.as_f64() {
                    config.compress_at = Some(to_u64(n) as usize);
                }
            }
        }
        match get(&options, "defaultTtlMs") {
            v if v.is_null() => config.default_ttl_ms = None,
            v => {
                if let Some(n) = v.as_f64() {
                    config.default_ttl_ms = n.is_finite().then(|| to_u64(n));
                }
            }
        }
        if let Some(n) = get_f64(&options, "staleMs") {
            config.stale_ms = to_u64(n);
        }
        if let Some(n) = get_f64(&options, "ttlJitter") {
            config.ttl_jitter = n;
        }
        if let Some(n) = get_f64(&options, "xfetchBeta") {
            config.xfetch_beta = n;
        }
        if let Some(n) = get_f64(&options, "refreshTimeoutMs") {
            config.refresh_timeout_ms = to_u64(n);
        }
        if let Some(b) = get_bool(&options, "strict") {
            config.strict = b;
        }
        if let Some(n) = get_f64(&options, "maxPayloadLen") {
            config.max_payload_len = to_u64(n) as usize;
        }
        let lease = get(&options, "lease");
        if lease.is_object() {
            let d = LeasePolicy::default();
            config.lease = Some(LeasePolicy {
                ttl_ms: get_f64(&lease, "ttlMs").map_or(d.ttl_ms, to_u64),
                max_wait_ms: get_f64(&lease, "maxWaitMs").map_or(d.max_wait_ms, to_u64),
                poll_interval_ms: get_f64(&lease, "pollIntervalMs")
                    .map_or(d.poll_interval_ms, to_u64),
            });
        }
        let cooldown = get(&options, "cooldown");
        if cooldown.is_object() {
            let d = CooldownPolicy::default();
            config.cooldown = CooldownPolicy {
                failures_to_trip: get_f64(&cooldown, "failuresToTrip")
                    .map_or(d.failures_to_trip, |n| n as u32),
                cooldown_ms: get_f64(&cooldown, "cooldownMs").map_or(d.cooldown_ms, to_u64),
            };
        }
        let cache = TieredCache::new(config).map_err(|e| js::type_error(&config_error(&e)))?;
        Ok(Tiered {
            cache: Rc::new(RefCell::new(cache)),
        })
    }

    /// Starts a read of `keys`. `flags`: 1 load, 2 force-miss, 4 skip the
    /// request tier. `ttl_ms` is the expiry of loaded values (NaN: default).
    /// `random` is a fresh random integer below 2^53.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        keys: Vec<String>,
        flags: u32,
        ttl_ms: f64,
        now: f64,
        random: f64,
        request: Option<RequestRef>,
    ) -> Result<ReadHandle, JsValue> {
        let options = ReadOptions {
            load: flags & 1 != 0,
            force_miss: flags & 2 != 0,
            ttl: expiry(ttl_ms),
            skip_request_tier: flags & 4 != 0,
        };
        let mut cache = self.cache.borrow_mut();
        let read = {
            let req = request.as_ref().map(|r| r.0.borrow());
            cache
                .read(
                    keys,
                    options,
                    to_u64(now),
                    to_u64(random),
                    req.as_ref().map(|r| &r.inner),
                )
                .map_err(invalid_key)?
        };
        Ok(ReadHandle {
            read: Some(read),
            cache: self.cache.clone(),
            request,
            weights: Vec::new(),
        })
    }

    /// Writes `value` (serialized as `payload` with codec tag `codec`) to
    /// the request and local tiers now; returns the store steps for every
    /// remote tier. A TTL `<= 0` deletes instead.
    #[wasm_bindgen(js_name = setAllTiers)]
    #[allow(clippy::too_many_arguments)]
    pub fn set_all_tiers(
        &self,
        key: &str,
        value: JsValue,
        codec: u8,
        payload: Vec<u8>,
        ttl_ms: f64,
        now: f64,
        random: f64,
        request: Option<RequestRef>,
    ) -> Result<Array, JsValue> {
        let loaded = Loaded::new(value, codec_of(codec), payload);
        let mut cache = self.cache.borrow_mut();
        let mut req = request.as_ref().map(|r| r.0.borrow_mut());
        let steps = cache
            .set_all_tiers(
                key,
                loaded,
                expiry(ttl_ms),
                to_u64(now),
                to_u64(random),
                req.as_mut().map(|r| &mut r.inner),
            )
            .map_err(invalid_key)?;
        Ok(steps_array(steps))
    }

    /// Removes `key` from the request and local tiers now; returns the
    /// delete steps for every remote tier.
    #[wasm_bindgen(js_name = deleteAllTiers)]
    pub fn delete_all_tiers(
        &self,
        key: &str,
        now: f64,
        request: Option<RequestRef>,
    ) -> Result<Array, JsValue> {
        let mut cache = self.cache.borrow_mut();
        let mut req = request.as_ref().map(|r| r.0.borrow_mut());
        let steps = cache
            .delete_all_tiers(key, to_u64(now), req.as_mut().map(|r| &mut r.inner))
            .map_err(invalid_key)?;
        Ok(steps_array(steps))
    }

    /// Reports that a write (store, delete) to `tier` failed.
    #[wasm_bindgen(js_name = tierFailed)]
    pub fn tier_failed(&self, tier: usize, now: f64) {
        self.cache.borrow_mut().tier_failed(tier, to_u64(now));
    }

    /// True if `tier` is cooling down after failures.
    #[wasm_bindgen(js_name = isCoolingDown)]
    pub fn is_cooling_down(&self, tier: usize, now: f64) -> bool {
        self.cache.borrow().is_cooling_down(tier, to_u64(now))
    }

    /// Empties the local tier.
    #[wasm_bindgen(js_name = clearLocal)]
    pub fn clear_local(&self) {
        self.cache.borrow_mut().clear_local();
    }

    /// Reclaims expired local entries; returns how many.
    #[wasm_bindgen(js_name = purgeExpired)]
    pub fn purge_expired(&self, now: f64) -> usize {
        self.cache.borrow_mut().purge_expired(to_u64(now))
    }

    /// `[true, value]` if the local tier holds `key` at `now`, else
    /// `[false]` (nothing is counted or refreshed).
    #[wasm_bindgen(js_name = peekLocal)]
    pub fn peek_local(&self, key: &str, now: f64) -> Array {
        match self.cache.borrow().peek_local(key, to_u64(now)) {
            Lookup::Hit(v) => [JsValue::TRUE, v.clone()].into_iter().collect(),
            Lookup::Miss => [JsValue::FALSE].into_iter().collect(),
        }
    }

    /// Every counter, as a plain object.
    pub fn stats(&self) -> Object {
        let cache = self.cache.borrow();
        let o = object();
        let r = cache.read_stats();
        let reads = object();
        for (name, v) in r.named() {
            set(&reads, &camel_case(name), v as f64);
        }
        set(&o, "reads", reads);
        let tiers: Array = cache
            .tier_stats()
            .iter()
            .zip(&cache.config().tiers)
            .map(|(t, c)| {
                let s = object();
                set(&s, "name", c.name.as_str());
                for (name, v) in t.named() {
                    set(&s, &camel_case(name), v as f64);
                }
                JsValue::from(s)
            })
            .collect();
        set(&o, "tiers", tiers);
        match cache.local_stats() {
            Some(l) => {
                let s = object();
                for (name, v) in [
                    ("hits", l.hits),
                    ("misses", l.misses),
                    ("inserts", l.inserts),
                    ("updates", l.updates),
                    ("evictions", l.evictions),
                    ("expirations", l.expirations),
                    ("rejected", l.rejected),
                    ("entries", l.entries as u64),
                    ("bytes", l.weight),
                ] {
                    set(&s, name, v as f64);
                }
                set(&o, "local", s);
            }
            None => set(&o, "local", JsValue::NULL),
        }
        let f = cache.flight_stats();
        let flights = object();
        for (name, v) in [
            ("started", f.flights_started),
            ("waitersJoined", f.waiters_joined),
            ("finished", f.finished),
            ("abandoned", f.abandoned),
            ("withdrawn", f.withdrawn),
        ] {
            set(&flights, name, v as f64);
        }
        set(&o, "flights", flights);
        o
    }
}

/// A request cache shared with reads (JS keeps one per request).
#[wasm_bindgen]
pub struct RequestRef(Rc<RefCell<RequestCacheHandle>>);

#[wasm_bindgen]
impl RequestRef {
    /// A new, empty request cache.
    #[wasm_bindgen(constructor)]
    pub fn new() -> RequestRef {
        RequestRef(Rc::new(RefCell::new(RequestCacheHandle::new())))
    }

    /// A second handle to the same request cache (reads consume one).
    pub fn share(&self) -> RequestRef {
        RequestRef(self.0.clone())
    }

    /// `[true, value]` or `[false]`.
    pub fn get(&self, key: &str, ns: Option<String>) -> Result<Array, JsValue> {
        self.0.borrow().get(key, ns)
    }

    /// Stores `value` under `key`.
    pub fn set(&self, key: &str, value: JsValue, ns: Option<String>) -> Result<(), JsValue> {
        self.0.borrow_mut().set(key, value, ns)
    }

    /// Removes `key`; true if it was stored.
    pub fn delete(&self, key: &str, ns: Option<String>) -> Result<bool, JsValue> {
        self.0.borrow_mut().delete(key, ns)
    }

    /// Removes the entries of `ns`, or all.
    pub fn clear(&self, ns: Option<String>) -> Result<(), JsValue> {
        self.0.borrow_mut().clear(ns)
    }

    /// Number of entries in `ns`, or in all namespaces.
    pub fn size(&self, ns: Option<String>) -> Result<usize, JsValue> {
        self.0.borrow().size(ns)
    }
}

impl Default for RequestRef {
    fn default() -> Self {
        Self::new()
    }
}

/// One read in progress.
#[wasm_bindgen]
pub struct ReadHandle {
    read: Option<Read<JsValue>>,
    cache: Shared,
    request: Option<RequestRef>,
    weights: Vec<u64>,
}

impl ReadHandle {
    fn with<R>(
        &mut self,
        f: impl FnOnce(&mut Read<JsValue>, &mut TieredCache<JsValue>) -> R,
    ) -> Option<R> {
        let read = self.read.as_mut()?;
        let mut cache = self.cache.borrow_mut();
        Some(f(read, &mut cache))
    }
}

#[wasm_bindgen]
impl ReadHandle {
    /// The next step, as `{ kind, ... }`; `{ kind: "done" }` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Object {
        let Some(read) = self.read.as_mut() else {
            let o = object();
            set(&o, "kind", "done");
            return o;
        };
        let step = read.next(&mut self.cache.borrow_mut());
        step_object(step, &mut self.weights)
    }

    /// The answer to a fetch: one `Uint8Array` or `null` per key.
    pub fn fetched(&mut self, tier: usize, values: Vec<JsValue>) {
        let values: Vec<Option<Vec<u8>>> = values
            .iter()
            .map(|v| {
                v.is_instance_of::<Uint8Array>()
                    .then(|| Uint8Array::from(v.clone()).to_vec())
            })
            .collect();
        self.with(|read, cache| read.fetched(cache, tier, values));
    }

    /// The operation asked of `tier` failed (rejected, timed out), as known
    /// at `now` (the tier's cool-down runs from then).
    pub fn failed(&mut self, tier: usize, message: &str, now: f64) {
        self.with(|read, cache| read.failed(cache, tier, message, to_u64(now)));
    }

    /// The answer to a decode: a value per item, `ok[i] == 0` where the
    /// payload could not be deserialized.
    pub fn decoded(&mut self, values: Vec<JsValue>, ok: &[u8]) {
        let weights = std::mem::take(&mut self.weights);
        let results = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| match ok.get(i) {
                Some(1) => Ok(HostValue::new(v, weights.get(i).copied().unwrap_or(0))),
                _ => Err("the payload could not be deserialized".to_owned()),
            })
            .collect();
        self.with(|read, cache| read.decoded(cache, results));
    }

    /// The answer to a load: for key `i`, `errors[i]` is a message (the
    /// load failed) or `undefined`, and then `values[i]` is the value,
    /// `codecs[i]` its codec tag and `payloads[i]` its serialized bytes.
    pub fn loaded(
        &mut self,
        values: Vec<JsValue>,
        codecs: &[u8],
        payloads: Vec<JsValue>,
        errors: Vec<JsValue>,
        load_ms: f64,
    ) {
        let mut payloads = payloads.into_iter();
        let results = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let payload = payloads.next().unwrap_or(JsValue::UNDEFINED);
                if let Some(message) = errors.get(i).and_then(JsValue::as_string) {
                    return Err(message);
                }
                if !payload.is_instance_of::<Uint8Array>() {
                    return Err("the value was not serialized".to_owned());
                }
                let bytes = Uint8Array::from(payload).to_vec();
                Ok(Loaded::new(
                    value,
                    codec_of(codecs.get(i).copied().unwrap_or(0)),
                    bytes,
                ))
            })
            .collect();
        self.with(|read, cache| read.loaded(cache, results, to_u64(load_ms)));
    }

    /// The answer to a lease step: `taken[i] == 1` where `add` took it.
    pub fn leased(&mut self, taken: &[u8]) {
        let taken = taken.iter().map(|&t| t == 1).collect();
        self.with(|read, cache| read.leased(cache, taken));
    }

    /// The answer to a sleep step, with the time after sleeping.
    pub fn slept(&mut self, now: f64) {
        if let Some(read) = self.read.as_mut() {
            read.slept(to_u64(now));
        }
    }

    /// The answer to a wait step: the waiters were notified (or the host
    /// stopped waiting).
    pub fn woke(&mut self) {
        self.with(|read, cache| read.woke(cache));
    }

    /// The results after `done`: one `{ key, hit, value, source, refresh,
    /// error }` per key, in order. Throws in strict mode after a tier
    /// failure.
    pub fn finish(&mut self) -> Result<Array, JsValue> {
        let Some(read) = self.read.take() else {
            return Err(js::type_error("tiercache: this read was already finished"));
        };
        let mut cache = self.cache.borrow_mut();
        let results = {
            let mut req = self.request.as_ref().map(|r| r.0.borrow_mut());
            read.finish(&mut cache, req.as_mut().map(|r| &mut r.inner))
        };
        match results {
            Ok(results) => Ok(results
                .into_iter()
                .map(|r| JsValue::from(result_object(&cache, r)))
                .collect()),
            Err(failure) => Err(js::error_with_kind(
                &format!(
                    "tiercache: tier {} failed in strict mode: {}",
                    js::quote(&failure.tier_name),
                    failure.message
                ),
                "tier_failure",
            )),
        }
    }

    /// Gives the read up; returns the waiters to wake (as `notify` would).
    pub fn cancel(&mut self) -> Array {
        match self.read.take() {
            Some(read) => waits(&read.cancel(&mut self.cache.borrow_mut())),
            None => Array::new(),
        }
    }
}

fn result_object(cache: &TieredCache<JsValue>, r: ReadResult<JsValue>) -> Object {
    let o = object();
    set(&o, "key", r.key.as_str());
    let source = source_name(cache, r.source);
    match r.lookup {
        Lookup::Hit(v) => {
            set(&o, "hit", true);
            set(&o, "value", v);
        }
        Lookup::Miss => {
            set(&o, "hit", false);
            set(&o, "value", JsValue::UNDEFINED);
        }
    }
    set(&o, "source", source);
    set(&o, "refresh", r.refresh);
    set(
        &o,
        "error",
        r.error.map_or(JsValue::NULL, |e| JsValue::from_str(&e)),
    );
    o
}

/// `skipped_cooling_down` -> `skippedCoolingDown`: the core names counters
/// once (`NamedCounters`); JS gets its own naming convention.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
