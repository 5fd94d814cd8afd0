//! The sans-I/O tiered cache as Python objects: `TieredCore` (shared state
//! of one cache in one process) and `Read` (one read, driven step by step by
//! `stratacache._driver`, which does the I/O).

use parking_lot::Mutex;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMapping, PyTuple};
use stratacache::stampede::WaitId;
use stratacache::tiered::{
    AnswerError, Fetched, HostValue, Loaded, LoaderOutput, Prechecker, RawRead, ReadOptions,
    ReadResult, Source, Step, TierConfig, TieredCache, TieredConfig, TieredSpec,
};
use stratacache::{Lookup, NamedCounters};

use crate::envelope::codec_from;
use crate::key::{django_core_key, django_core_keys};
use crate::memcached::MemcachedClient;
use crate::redis::RedisClient;
use crate::request::current_scope;
use crate::request::RequestScope;
use crate::util::{clock_ms, lock, new_error, now_ms, PyVal, TtlArg};

/// The cache's configuration: one dict, deserialized by the core
/// (`stratacache::tiered::TieredSpec`; `None` or absent = the core's default).
fn config_from(d: &Bound<'_, PyAny>) -> PyResult<TieredConfig> {
    let spec: TieredSpec = pythonize::depythonize(d)
        .map_err(|e| PyValueError::new_err(format!("cache configuration: {e}")))?;
    TieredConfig::try_from(spec).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn source_obj(py: Python<'_>, source: Option<Source>) -> PyResult<PyVal> {
    Ok(match source {
        None => py.None(),
        Some(Source::Request) => "request".into_pyobject(py)?.into_any().unbind(),
        Some(Source::Local) => "local".into_pyobject(py)?.into_any().unbind(),
        Some(Source::Loader) => "loader".into_pyobject(py)?.into_any().unbind(),
        Some(Source::Flight) => "flight".into_pyobject(py)?.into_any().unbind(),
        Some(Source::Tier(n)) => n.into_pyobject(py)?.into_any().unbind(),
    })
}

fn results_list<'py>(
    py: Python<'py>,
    results: Vec<ReadResult<PyVal>>,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for r in results {
        let (found, value) = match r.lookup {
            Lookup::Hit(v) => (true, v),
            Lookup::Miss => (false, py.None()),
        };
        let item = PyTuple::new(
            py,
            [
                found.into_pyobject(py)?.to_owned().into_any().unbind(),
                value,
                source_obj(py, r.source)?,
                r.refresh.into_pyobject(py)?.to_owned().into_any().unbind(),
                r.error.into_pyobject(py)?.into_any().unbind(),
            ],
        )?;
        list.append(item)?;
    }
    Ok(list)
}

/// `{user_keys[i]: value}` for the hits among `results` (in key order):
/// what `TieredCache.get_many` returns, without a tuple per key.
fn results_dict<'py>(
    py: Python<'py>,
    results: Vec<ReadResult<PyVal>>,
    user_keys: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyDict>> {
    if user_keys.len() != results.len() {
        return Err(PyValueError::new_err(format!(
            "{} user keys for {} results",
            user_keys.len(),
            results.len()
        )));
    }
    let dict = PyDict::new(py);
    for (i, r) in results.into_iter().enumerate() {
        if let Lookup::Hit(value) = r.lookup {
            dict.set_item(user_keys.get_item(i)?, value)?;
        }
    }
    Ok(dict)
}

/// `Type: message` of an exception, as `stratacache._driver.describe` writes it.
fn describe(py: Python<'_>, err: &PyErr) -> String {
    let name = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_owned());
    let text = err.value(py).to_string();
    if text.is_empty() {
        name
    } else {
        format!("{name}: {text}")
    }
}

/// The native client of tier `tier`, if the host gave one.
/// A tier's client that the read loop calls directly (no Python per key).
enum Native<'py> {
    Memcached(Bound<'py, MemcachedClient>),
    Redis(Bound<'py, RedisClient>),
}

impl Native<'_> {
    /// The client itself (shareable with the thread that does the I/O).
    fn get(&self) -> NativeRef<'_> {
        match self {
            Native::Memcached(c) => NativeRef::Memcached(c.get()),
            Native::Redis(c) => NativeRef::Redis(c.get()),
        }
    }
}

#[derive(Clone, Copy)]
enum NativeRef<'a> {
    Memcached(&'a MemcachedClient),
    Redis(&'a RedisClient),
}

impl NativeRef<'_> {
    fn fetch_core(self, keys: &[String]) -> std::io::Result<Vec<Fetched>> {
        match self {
            NativeRef::Memcached(c) => c.fetch_core(keys),
            NativeRef::Redis(c) => c.fetch_core(keys),
        }
    }

    fn store_core_entries(self, entries: &[stratacache::tiered::StoreItem]) -> std::io::Result<()> {
        match self {
            NativeRef::Memcached(c) => c.store_core_entries(entries),
            NativeRef::Redis(c) => c.store_core_entries(entries),
        }
    }
}

fn native<'py>(natives: &Bound<'py, PyTuple>, tier: usize) -> Option<Native<'py>> {
    let client = natives.get_item(tier).ok()?;
    match client.cast_into::<MemcachedClient>() {
        Ok(c) => Some(Native::Memcached(c)),
        Err(e) => e
            .into_inner()
            .cast_into::<RedisClient>()
            .ok()
            .map(Native::Redis),
    }
}

fn ids(waiters: Vec<WaitId>) -> Vec<u64> {
    waiters.into_iter().map(WaitId::into_raw).collect()
}

/// `f(arg)` without a tuple per call (`PyObject_CallFunctionObjArgs`
/// passes its arguments by vectorcall to functions that take it, such as
/// `pickle.loads`): one call per value decoded.
fn call_one<'py>(f: &Bound<'py, PyAny>, arg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = f.py();
    // SAFETY: two live objects and the NULL that ends the argument list;
    // the call returns a new reference or NULL with an exception set.
    unsafe {
        let out = pyo3::ffi::PyObject_CallFunctionObjArgs(
            f.as_ptr(),
            arg.as_ptr(),
            std::ptr::null_mut::<pyo3::ffi::PyObject>(),
        );
        Bound::from_owned_ptr_or_err(py, out)
    }
}

/// `outcomes` of a fetch of `keys` with each value found checked by
/// `checker` (`Fetched::Prechecked`): the read then skips its own check of
/// those values.
fn precheck(checker: &Prechecker, keys: Vec<String>, outcomes: Vec<Fetched>) -> Vec<Fetched> {
    if keys.len() != outcomes.len() {
        return outcomes; // the read refuses the answer as it is
    }
    keys.into_iter()
        .zip(outcomes)
        .map(|(key, outcome)| match outcome {
            Fetched::Found(bytes) => Fetched::Prechecked(checker.check(key, bytes)),
            other => other,
        })
        .collect()
}

/// Tags of what `PyRead.advance` returns besides the core's steps.
const TIER_ERROR: &str = "tier_error";
const DECODE_ERRORS: &str = "decode_errors";

/// A step as a tuple whose first item names it (`Step::kind`).
fn step_obj<'py>(py: Python<'py>, step: Step) -> PyResult<Bound<'py, PyTuple>> {
    let kind = step.kind();
    Ok(match step {
        Step::Fetch { tier, keys } | Step::Delete { tier, keys } => {
            (kind, tier, keys).into_pyobject(py)?
        }
        Step::Decode { items } => {
            let items: Vec<_> = items
                .into_iter()
                .map(|i| (i.index, i.key, i.codec.name(), PyBytes::new(py, &i.payload)))
                .collect();
            (kind, items).into_pyobject(py)?
        }
        Step::Lease { tier, items } => {
            let items: Vec<_> = items
                .into_iter()
                .map(|i| (i.key, PyBytes::new(py, &i.token), i.ttl_ms))
                .collect();
            (kind, tier, items).into_pyobject(py)?
        }
        Step::Sleep { ms } => (kind, ms).into_pyobject(py)?,
        Step::Load { keys } => (kind, keys).into_pyobject(py)?,
        Step::Notify { waiters: ids_ } | Step::Wait { waits: ids_ } => {
            (kind, ids(ids_)).into_pyobject(py)?
        }
        Step::Store { tier, entries } => {
            let entries: Vec<_> = entries
                .into_iter()
                .map(|e| (e.key, PyBytes::new(py, &e.value), e.ttl_ms))
                .collect();
            (kind, tier, entries).into_pyobject(py)?
        }
        Step::Done => (kind,).into_pyobject(py)?,
    })
}

/// A tier's limits and policies as a dict.
fn tier_dict<'py>(py: Python<'py>, t: &TierConfig) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &t.name)?;
    d.set_item("item_limit", t.item_limit)?;
    d.set_item("max_ttl_ms", t.max_ttl_ms)?;
    d.set_item("min_ttl_ms", t.min_ttl_ms)?;
    d.set_item("storage", t.storage)?;
    d.set_item("backfill", t.backfill)?;
    d.set_item("replicas", t.replicas)?;
    d.set_item("leases", t.leases)?;
    Ok(d)
}

/// A batch loader's return value shaped by the core: one `(True, value)`
/// or `(False, message)` per key of `user_keys` (a dict is looked up by
/// key, anything else is a list in key order).
#[pyfunction]
fn shape_loaded<'py>(
    py: Python<'py>,
    user_keys: Vec<Bound<'py, PyAny>>,
    produced: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let shown = user_keys
        .iter()
        .map(|k| Ok(k.repr()?.to_string()))
        .collect::<PyResult<Vec<_>>>()?;
    let output = match produced.cast::<PyMapping>() {
        Ok(map) => {
            let mut values = Vec::with_capacity(user_keys.len());
            for key in &user_keys {
                values.push(if map.contains(key)? {
                    Some(map.get_item(key)?)
                } else {
                    None
                });
            }
            LoaderOutput::Map(values)
        }
        Err(_) => LoaderOutput::List(produced.try_iter()?.collect::<PyResult<Vec<_>>>()?),
    };
    let out = PyList::empty(py);
    for result in output.shape(&shown) {
        match result {
            Ok(value) => out.append((true, value))?,
            Err(e) => out.append((false, e.to_string()))?,
        }
    }
    Ok(out)
}

/// The core's preset of a tier kind (`"memcached"`, `"redis"`, `"storage"`,
/// ...): its item limit, TTL bounds and policies.
#[pyfunction]
fn tier_preset<'py>(py: Python<'py>, kind: &str) -> PyResult<Bound<'py, PyDict>> {
    let tier = TierConfig::preset(kind, kind).map_err(|e| PyValueError::new_err(e.to_string()))?;
    tier_dict(py, &tier)
}

fn steps_list<'py>(py: Python<'py>, steps: Vec<Step>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for step in steps {
        list.append(step_obj(py, step)?)?;
    }
    Ok(list)
}

/// What `PyRead.finish` returns when not given `user_keys`.
enum Answer {
    /// One `(found, value, source, refresh, error)` tuple per key.
    List,
    /// `{user_keys[i]: value}` of the hits.
    Dict(Py<PyList>),
    /// The value of the one key, or this default.
    One(PyVal),
}

impl Answer {
    fn shape<'py>(
        &self,
        py: Python<'py>,
        results: Vec<ReadResult<PyVal>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Answer::List => Ok(results_list(py, results)?.into_any()),
            Answer::Dict(user_keys) => {
                Ok(results_dict(py, results, user_keys.bind(py))?.into_any())
            }
            Answer::One(default) => Ok(match results.into_iter().next().map(|r| r.lookup) {
                Some(Lookup::Hit(value)) => value.into_bound(py),
                _ => default.clone_ref(py).into_bound(py),
            }),
        }
    }
}

/// What a read needs from its host to run in the extension (built once per
/// cache by `stratacache.django.backend`): the tiers' native clients (an
/// empty tuple for async reads: every fetch comes back to the host), the
/// codec's `loads` and name, whether stores are deferred to a background
/// writer, and the cache's clock (None: the system clock).
///
/// ```python
/// host = _core.ReadHost(cache._natives, pickle.loads, "pickle", False, None)
/// ```
#[pyclass(frozen, module = "stratacache._core", name = "ReadHost")]
pub struct ReadHost {
    natives: Py<PyTuple>,
    loads: PyVal,
    codec: String,
    defer_stores: bool,
    clock: Option<PyVal>,
}

#[pymethods]
impl ReadHost {
    #[new]
    #[pyo3(signature = (natives, loads, codec, defer_stores, clock = None))]
    fn py_new(
        natives: Py<PyTuple>,
        loads: PyVal,
        codec: String,
        defer_stores: bool,
        clock: Option<PyVal>,
    ) -> Self {
        ReadHost {
            natives,
            loads,
            codec,
            defer_stores,
            clock,
        }
    }
}

/// A fresh 64-bit random number per read (the core mixes it per key), from
/// a process-wide counter through splitmix64: no Python call per read.
fn read_random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(now_ms().wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The shared state of one tiered cache in this process: configuration,
/// local tier, single-flight bookkeeping, tier health and counters. Driven
/// by `stratacache.TieredCache`; not meant to be used directly.
#[pyclass(frozen, module = "stratacache._core", name = "TieredCore")]
pub struct TieredCore {
    inner: Mutex<TieredCache<PyVal>>,
    /// The cache's envelope checks, run on fetched values with the GIL
    /// released (see `precheck`).
    prechecker: Prechecker,
}

impl TieredCore {
    /// `{key: value}` of the hits among `keys`: the core's keys and, in the
    /// same order, the caller's (see `read_in_extension`).
    fn read_dict<'py>(
        slf: &Bound<'py, Self>,
        host: &Bound<'py, ReadHost>,
        (core_keys, user_keys): (Vec<String>, Bound<'py, PyList>),
    ) -> PyResult<Bound<'py, PyAny>> {
        if core_keys.is_empty() {
            return Ok(PyDict::new(slf.py()).into_any());
        }
        Self::read_in_extension(slf, host.get(), core_keys, Answer::Dict(user_keys.unbind()))
    }

    /// Starts a read of `keys` (no loader, the default TTL) in the current
    /// request scope and runs it in the extension as far as `host` allows:
    /// the answer shaped by `answer` when it finished, else a `Read` whose
    /// first step is the one the host must do (drive it with
    /// `Driver.run`/`arun`; its `finish` returns the same shape).
    fn read_in_extension<'py>(
        slf: &Bound<'py, Self>,
        host: &ReadHost,
        keys: Vec<String>,
        answer: Answer,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let scope = current_scope(py)?;
        let scope = scope.as_ref();
        let options = ReadOptions {
            load: false,
            force_miss: scope.is_some_and(|s| s.get().force_miss()),
            ttl: stratacache::Expiry::Default,
            skip_request_tier: scope.is_none(),
        };
        let now = clock_ms(py, host.clock.as_ref())?;
        let mut read = match Self::start(slf, scope, keys, options, now, read_random(), answer)? {
            Ok(answered) => return Ok(answered),
            Err(read) => read,
        };
        let step = read.drive(
            py,
            host.natives.bind(py),
            host.loads.bind(py),
            &host.codec,
            host.defer_stores,
        )?;
        match step {
            None => read.finish_shaped(py, scope, None),
            Some(step) => {
                read.pending = Some(step.unbind());
                Ok(Bound::new(py, read)?.into_any())
            }
        }
    }

    /// Starts a read and takes its first step: `Ok` with the answer shaped
    /// by `answer` when the request and local tiers answered every key,
    /// else `Err` with the `Read` waiting on that step.
    fn start<'py>(
        slf: &Bound<'py, Self>,
        scope: Option<&Bound<'py, RequestScope>>,
        keys: Vec<String>,
        options: ReadOptions,
        now: u64,
        random: u64,
        answer: Answer,
    ) -> PyResult<Result<Bound<'py, PyAny>, PyRead>> {
        let py = slf.py();
        let mut cache = lock(py, &slf.get().inner);
        let mut read = {
            let request = scope.map(|s| lock(py, &s.get().cache));
            cache
                .read_raw(keys, options, now, random, request.as_deref())
                .map_err(|e| PyValueError::new_err(e.to_string()))?
        };
        let first = read.next(&mut cache);
        if first == Step::Done {
            let results = Self::with_scope(py, scope, |request| read.finish(&mut cache, request));
            drop(cache);
            let results = results.map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
            return Ok(Ok(answer.shape(py, results)?));
        }
        Ok(Err(PyRead {
            read: Some(read),
            core: slf.clone().unbind(),
            first: Some(first),
            pending: None,
            answer,
        }))
    }

    fn with_scope<R>(
        py: Python<'_>,
        scope: Option<&Bound<'_, RequestScope>>,
        f: impl FnOnce(Option<&mut stratacache::RequestCache<PyVal>>) -> R,
    ) -> R {
        match scope {
            Some(scope) => {
                let mut guard = lock(py, &scope.get().cache);
                f(Some(&mut guard))
            }
            None => f(None),
        }
    }
}

#[pymethods]
impl TieredCore {
    #[new]
    fn py_new(config: &Bound<'_, PyAny>) -> PyResult<Self> {
        let config = config_from(config)?;
        let cache = TieredCache::new(config).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(TieredCore {
            prechecker: cache.prechecker(),
            inner: Mutex::new(cache),
        })
    }

    /// Starts a read. Returns the list of results if the request and local
    /// tiers answered every key, else a `Read` to drive.
    ///
    /// With `user_keys` (one per key, in order), finished results are a dict
    /// `{user_key: value}` of the hits instead of a list of tuples.
    #[pyo3(signature = (keys, scope, load, force_miss, ttl, skip_request, now, random, user_keys = None))]
    #[allow(clippy::too_many_arguments)]
    fn read<'py>(
        slf: &Bound<'py, Self>,
        keys: Vec<String>,
        scope: Option<&Bound<'py, RequestScope>>,
        load: bool,
        force_miss: bool,
        ttl: TtlArg,
        skip_request: bool,
        now: u64,
        random: u64,
        user_keys: Option<&Bound<'py, PyList>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let options = ReadOptions {
            load,
            force_miss,
            ttl: ttl.expiry()?,
            skip_request_tier: skip_request,
        };
        let answer = match user_keys {
            Some(user_keys) => Answer::Dict(user_keys.clone().unbind()),
            None => Answer::List,
        };
        match Self::start(slf, scope, keys, options, now, random, answer)? {
            Ok(answered) => Ok(answered),
            Err(read) => Ok(Bound::new(py, read)?.into_any()),
        }
    }

    /// Django's `get_many` in one call: each of `keys` made into a cache
    /// key as Django's default key function does (`prefix` is
    /// `"{KEY_PREFIX}:{version}:"`), mapped to its core key, read from every
    /// tier (in the extension as far as `host` allows) and returned as
    /// `{key: value}` of the hits; or a `Read` to drive when a step needs
    /// the host (see `read_in_extension`).
    ///
    /// ```python
    /// found = core.get_many_made(host, ["a", "b"], "site:1:")
    /// ```
    fn get_many_made<'py>(
        slf: &Bound<'py, Self>,
        host: &Bound<'py, ReadHost>,
        keys: &Bound<'py, PyAny>,
        prefix: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::read_dict(slf, host, django_core_keys(slf.py(), keys, prefix)?)
    }

    /// `TieredCache.get_many` in one call: each of `keys` (a `str`) through
    /// `normalize_key`, read from every tier (in the extension as far as
    /// `host` allows) and returned as `{key: value}` of the hits; or a
    /// `Read` to drive when a step needs the host (see `read_in_extension`).
    ///
    /// ```python
    /// found = core.get_many_keys(host, ["a", "b"])
    /// ```
    fn get_many_keys<'py>(
        slf: &Bound<'py, Self>,
        host: &Bound<'py, ReadHost>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::read_dict(slf, host, crate::key::core_keys(slf.py(), keys)?)
    }

    /// Django's `get` in one call: `key` made as in `get_many_made`, its
    /// value, else `default`; or a `Read` to drive.
    ///
    /// ```python
    /// value = core.get_made(host, "a", "site:1:", None)
    /// ```
    fn get_made<'py>(
        slf: &Bound<'py, Self>,
        host: &Bound<'py, ReadHost>,
        key: &Bound<'py, PyAny>,
        prefix: &str,
        default: PyVal,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut buf = String::with_capacity(prefix.len() + 32);
        let core_key = django_core_key(key, prefix, &mut buf)?;
        Self::read_in_extension(slf, host.get(), vec![core_key], Answer::One(default))
    }

    /// Writes a value to the request and local tiers now; returns the
    /// store steps for the remote tiers.
    #[pyo3(signature = (key, value, codec, payload, weight, ttl, scope, now, random))]
    #[allow(clippy::too_many_arguments)]
    fn set_all_tiers<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        value: PyVal,
        codec: &str,
        payload: Vec<u8>,
        weight: u64,
        ttl: TtlArg,
        scope: Option<&Bound<'py, RequestScope>>,
        now: u64,
        random: u64,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut loaded = Loaded::new(value, codec_from(codec)?, payload);
        loaded.weight = weight;
        let expiry = ttl.expiry()?;
        let steps = {
            let mut cache = lock(py, &self.inner);
            Self::with_scope(py, scope, |request| {
                cache.set_all_tiers(key, loaded, expiry, now, random, request)
            })
        }
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        steps_list(py, steps)
    }

    /// Removes a key from the request and local tiers now; returns the
    /// delete steps for the remote tiers.
    fn delete_all_tiers<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        scope: Option<&Bound<'py, RequestScope>>,
        now: u64,
    ) -> PyResult<Bound<'py, PyList>> {
        let steps = {
            let mut cache = lock(py, &self.inner);
            Self::with_scope(py, scope, |request| {
                cache.delete_all_tiers(key, now, request)
            })
        }
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        steps_list(py, steps)
    }

    /// Records a failed operation on `tier` outside a read (a store or delete).
    fn tier_failed(&self, py: Python<'_>, tier: usize, now: u64) {
        lock(py, &self.inner).tier_failed(tier, now);
    }

    /// Records a successful store or delete on `tier`: it ends the tier's
    /// cool-down, as a successful read does.
    fn tier_succeeded(&self, py: Python<'_>, tier: usize) {
        lock(py, &self.inner).tier_succeeded(tier);
    }

    /// True if `tier` is being skipped after repeated failures.
    fn is_cooling_down(&self, py: Python<'_>, tier: usize, now: u64) -> bool {
        lock(py, &self.inner).is_cooling_down(tier, now)
    }

    /// The local tier's value for `key` (found, value), without counting.
    fn peek_local(&self, py: Python<'_>, key: &str, now: u64) -> (bool, PyVal) {
        match lock(py, &self.inner).peek_local(key, now) {
            Lookup::Hit(v) => (true, v.clone_ref(py)),
            Lookup::Miss => (false, py.None()),
        }
    }

    /// Empties the local tier.
    fn clear_local(&self, py: Python<'_>) {
        lock(py, &self.inner).clear_local();
    }

    /// Drops `keys` from the local tier only (an invalidation from another
    /// process); returns how many were there.
    fn delete_local(&self, py: Python<'_>, keys: Vec<String>) -> usize {
        let mut cache = lock(py, &self.inner);
        keys.iter().filter(|k| cache.delete_local(k)).count()
    }

    /// Reclaims expired local entries; returns how many.
    fn purge_expired(&self, py: Python<'_>, now: u64) -> usize {
        lock(py, &self.inner).purge_expired(now)
    }

    /// Counters: per tier, of the read path, of the local tier and of
    /// single-flight.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let cache = lock(py, &self.inner);
        let out = PyDict::new(py);
        let tiers = PyList::empty(py);
        for (config, s) in cache.config().tiers.iter().zip(cache.tier_stats()) {
            let d = PyDict::new(py);
            d.set_item("name", &config.name)?;
            for (k, v) in s.named() {
                d.set_item(k, v)?;
            }
            tiers.append(d)?;
        }
        out.set_item("tiers", tiers)?;
        let r = cache.read_stats();
        let reads = PyDict::new(py);
        for (k, v) in r.named() {
            reads.set_item(k, v)?;
        }
        out.set_item("reads", reads)?;
        match cache.local_stats() {
            Some(s) => {
                let d = PyDict::new(py);
                for (k, v) in s.named() {
                    d.set_item(k, v)?;
                }
                out.set_item("local", d)?;
            }
            None => out.set_item("local", py.None())?,
        }
        let flights = PyDict::new(py);
        for (k, v) in cache.flight_stats().named() {
            flights.set_item(k, v)?;
        }
        out.set_item("flights", flights)?;
        Ok(out)
    }

    /// The tiers' names, limits and policies as the core sees them.
    fn tier_configs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let cache = lock(py, &self.inner);
        let list = PyList::empty(py);
        for t in &cache.config().tiers {
            list.append(tier_dict(py, t)?)?;
        }
        Ok(list)
    }

    /// The configuration the core built (its defaults filled in), in ms.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let cache = lock(py, &self.inner);
        let c = cache.config();
        let d = PyDict::new(py);
        d.set_item("default_ttl_ms", c.default_ttl_ms)?;
        d.set_item("stale_ms", c.stale_ms)?;
        d.set_item("ttl_jitter", c.ttl_jitter)?;
        d.set_item("xfetch_beta", c.xfetch_beta)?;
        d.set_item("refresh_timeout_ms", c.refresh_timeout_ms)?;
        d.set_item("compress_at", c.compress_at)?;
        d.set_item("max_payload_len", c.max_payload_len)?;
        d.set_item("strict", c.strict)?;
        d.set_item("request_namespace", c.request_namespace.as_str())?;
        let local = c.local.map(|l| (l.max_entries, l.max_weight, l.ttl_ms));
        d.set_item("local", local)?;
        let lease = c
            .lease
            .map(|l| (l.ttl_ms, l.max_wait_ms, l.poll_interval_ms));
        d.set_item("lease", lease)?;
        let cooldown = (c.cooldown.failures_to_trip, c.cooldown.cooldown_ms);
        d.set_item("cooldown", cooldown)?;
        Ok(d)
    }

    /// True if values are signed and unsigned values are refused.
    #[getter]
    fn signed(&self, py: Python<'_>) -> bool {
        lock(py, &self.inner).config().keyring.is_some()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<TieredCore {:?}>", lock(py, &self.inner))
    }
}

/// One read in progress (see `stratacache._driver`).
#[pyclass(module = "stratacache._core", name = "Read")]
pub struct PyRead {
    read: Option<RawRead<PyVal>>,
    core: Py<TieredCore>,
    first: Option<Step>,
    /// A step the extension already turned into a tuple for the host
    /// (`read_in_extension`): `advance`/`next` return it first.
    pending: Option<Py<PyTuple>>,
    /// The shape of `finish`'s answer when it is not given `user_keys`.
    answer: Answer,
}

impl PyRead {
    fn parts(&mut self) -> PyResult<(&mut RawRead<PyVal>, &Py<TieredCore>)> {
        match &mut self.read {
            Some(read) => Ok((read, &self.core)),
            None => Err(PyRuntimeError::new_err("this read is finished")),
        }
    }

    /// `advance`'s loop: `None` when the read is done, else the step the
    /// host must do.
    fn drive<'py>(
        &mut self,
        py: Python<'py>,
        natives: &Bound<'py, PyTuple>,
        loads: &Bound<'py, PyAny>,
        codec: &str,
        defer_stores: bool,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        loop {
            if defer_stores {
                let (read, _) = self.parts()?;
                read.defer_sealing();
                if let Some(seal) = crate::seal::seal_step(py, read) {
                    return seal.map(Some);
                }
            }
            let step = match self.first.take() {
                Some(step) => step,
                None => {
                    let (read, core) = self.parts()?;
                    read.next(&mut lock(py, &core.get().inner))
                }
            };
            match step {
                Step::Fetch { tier, keys } => {
                    let Some(client) = native(natives, tier) else {
                        return step_obj(py, Step::Fetch { tier, keys }).map(Some);
                    };
                    let client = client.get();
                    let checker = &self.core.get().prechecker;
                    let started = std::time::Instant::now();
                    // The values' signatures are checked here too, with the
                    // GIL released, not under it in `fetched_outcomes`.
                    let result = py.detach(|| {
                        client
                            .fetch_core(&keys)
                            .map(|outcomes| precheck(checker, keys, outcomes))
                    });
                    let (read, core) = self.parts()?;
                    match result {
                        Ok(outcomes) => read
                            .fetched_outcomes(&mut lock(py, &core.get().inner), tier, outcomes)
                            .map_err(answer_error)?,
                        Err(e) => {
                            let err = PyErr::from(e);
                            let message = describe(py, &err);
                            // Known after the call's own time (a timeout):
                            // the cool-down runs from then.
                            let elapsed = started.elapsed().as_millis() as u64;
                            let now = read.now().saturating_add(elapsed);
                            read.failed(&mut lock(py, &core.get().inner), tier, message, now);
                            return Ok(Some(
                                (TIER_ERROR, tier, "get", err.into_value(py)).into_pyobject(py)?,
                            ));
                        }
                    }
                }
                Step::Store { tier, entries } => {
                    let client = native(natives, tier).filter(|_| !defer_stores);
                    let Some(client) = client else {
                        return step_obj(py, Step::Store { tier, entries }).map(Some);
                    };
                    let client = client.get();
                    if let Err(e) = py.detach(|| client.store_core_entries(&entries)) {
                        return Ok(Some(
                            (TIER_ERROR, tier, "set", PyErr::from(e).into_value(py))
                                .into_pyobject(py)?,
                        ));
                    }
                    // The tier answered: that ends its cool-down.
                    lock(py, &self.parts()?.1.get().inner).tier_succeeded(tier);
                }
                Step::Decode { items } if items.iter().all(|i| i.codec.name() == codec) => {
                    let mut out = Vec::with_capacity(items.len());
                    let mut errors = Vec::new();
                    for item in &items {
                        match call_one(loads, &PyBytes::new(py, &item.payload)) {
                            Ok(value) => out.push(Ok(HostValue::new(
                                value.unbind(),
                                item.payload.len() as u64,
                            ))),
                            Err(err) if err.is_instance_of::<PyException>(py) => {
                                let message = format!("could not decode: {}", describe(py, &err));
                                errors.push((item.key.clone(), message.clone()));
                                out.push(Err(message));
                            }
                            Err(err) => return Err(err),
                        }
                    }
                    let (read, core) = self.parts()?;
                    read.decoded(&mut lock(py, &core.get().inner), out)
                        .map_err(answer_error)?;
                    if !errors.is_empty() {
                        return Ok(Some((DECODE_ERRORS, errors).into_pyobject(py)?));
                    }
                }
                Step::Done => return Ok(None),
                other => return step_obj(py, other).map(Some),
            }
        }
    }

    /// The results, after the `done` step: shaped by `user_keys` when given,
    /// else by the read's own answer shape.
    fn finish_shaped<'py>(
        &mut self,
        py: Python<'py>,
        scope: Option<&Bound<'py, RequestScope>>,
        user_keys: Option<&Bound<'py, PyList>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let read = self
            .read
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this read is finished"))?;
        let results = {
            let mut cache = lock(py, &self.core.get().inner);
            TieredCore::with_scope(py, scope, |request| read.finish(&mut cache, request))
        };
        match results {
            Ok(results) => match user_keys {
                Some(user_keys) => Ok(results_dict(py, results, user_keys)?.into_any()),
                None => self.answer.shape(py, results),
            },
            Err(failure) => Err(new_error(
                py,
                "TierError",
                (
                    failure.tier_name.clone(),
                    failure.message.clone(),
                    failure.to_string(),
                ),
            )),
        }
    }
}

#[pymethods]
impl PyRead {
    /// The next step, as a tuple whose first item names it. With
    /// `defer_stores`, loaded and back-filled values come out unsealed as
    /// `("seal", [SealJob, ...])` (see `advance`).
    #[pyo3(signature = (defer_stores = false))]
    fn next<'py>(&mut self, py: Python<'py>, defer_stores: bool) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(step) = self.pending.take() {
            return Ok(step.into_bound(py));
        }
        if defer_stores {
            let (read, _) = self.parts()?;
            read.defer_sealing();
            if let Some(seal) = crate::seal::seal_step(py, read) {
                return seal;
            }
        }
        if let Some(step) = self.first.take() {
            return step_obj(py, step);
        }
        let (read, core) = self.parts()?;
        let step = read.next(&mut lock(py, &core.get().inner));
        step_obj(py, step)
    }

    /// Does, in the extension, the steps it can do without the host, and
    /// returns the first step the host must do (as `next` does):
    ///
    /// - `fetch` and `store` of tier `i` when `natives[i]` is a
    ///   `MemcachedClient` (the GIL is released for the I/O; values go from
    ///   the socket to the core without becoming Python objects);
    /// - `decode` when every payload is in the cache's codec `codec`: each is
    ///   passed to `loads`.
    ///
    /// It also returns `("tier_error", tier, op, exception)` after a native
    /// tier failed (the read knows already; the host logs it and, for a
    /// store, records the failure with `TieredCore.tier_failed`), and
    /// `("decode_errors", [(key, message), ...])` after `loads` raised for
    /// some payloads (those keys are misses; the host logs them).
    ///
    /// With `defer_stores`, store steps always come back to the host (which
    /// queues them for a background writer instead of writing them on the
    /// caller's thread), and loaded and back-filled values come back
    /// unsealed, as `("seal", [SealJob, ...])`: the writer thread signs,
    /// compresses and chunks them, off the request path.
    #[pyo3(signature = (natives, loads, codec, defer_stores = false))]
    fn advance<'py>(
        &mut self,
        py: Python<'py>,
        natives: &Bound<'py, PyTuple>,
        loads: &Bound<'py, PyAny>,
        codec: &str,
        defer_stores: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(step) = self.pending.take() {
            return Ok(step.into_bound(py));
        }
        match self.drive(py, natives, loads, codec, defer_stores)? {
            Some(step) => Ok(step),
            None => step_obj(py, Step::Done),
        }
    }

    /// One entry per key asked (`bytes` or `None`), in order; `failed`
    /// lists the positions of keys the tier could not answer (their server
    /// is down): they go on to the next tier, the others are kept.
    #[pyo3(signature = (tier, values, failed = None))]
    fn fetched(
        &mut self,
        py: Python<'_>,
        tier: usize,
        values: Vec<Option<Vec<u8>>>,
        failed: Option<Vec<usize>>,
    ) -> PyResult<()> {
        let (read, core) = self.parts()?;
        let mut outcomes: Vec<Fetched> = values.into_iter().map(Fetched::from).collect();
        for i in failed.unwrap_or_default() {
            if let Some(outcome) = outcomes.get_mut(i) {
                *outcome = Fetched::Failed(String::new());
            }
        }
        read.fetched_outcomes(&mut lock(py, &core.get().inner), tier, outcomes)
            .map_err(answer_error)
    }

    /// The tier failed (timeout, refused connection), as known at `now` (ms;
    /// the tier's cool-down runs from then).
    fn failed(&mut self, py: Python<'_>, tier: usize, message: &str, now: u64) -> PyResult<()> {
        let (read, core) = self.parts()?;
        read.failed(
            &mut lock(py, &core.get().inner),
            tier,
            message.to_owned(),
            now,
        );
        Ok(())
    }

    /// One `(value, weight)` or error message per decode item, in order.
    fn decoded(&mut self, py: Python<'_>, values: &Bound<'_, PyList>) -> PyResult<()> {
        let mut out = Vec::with_capacity(values.len());
        for item in values.iter() {
            if let Ok(message) = item.extract::<String>() {
                out.push(Err(message));
            } else {
                let (value, weight): (PyVal, u64) = item.extract()?;
                out.push(Ok(HostValue::new(value, weight)));
            }
        }
        let (read, core) = self.parts()?;
        read.decoded(&mut lock(py, &core.get().inner), out)
            .map_err(answer_error)
    }

    /// One bool (lease taken) per lease item.
    fn leased(&mut self, py: Python<'_>, taken: Vec<bool>) -> PyResult<()> {
        let (read, core) = self.parts()?;
        read.leased(&mut lock(py, &core.get().inner), taken)
            .map_err(answer_error)
    }

    /// The time after sleeping.
    fn slept(&mut self, now: u64) -> PyResult<()> {
        let (read, _) = self.parts()?;
        read.slept(now).map_err(answer_error)
    }

    /// One `(value, codec, payload, weight)` or error message per key
    /// loaded, and how long the loader took.
    fn loaded(&mut self, py: Python<'_>, values: &Bound<'_, PyList>, load_ms: u64) -> PyResult<()> {
        let mut out = Vec::with_capacity(values.len());
        for item in values.iter() {
            if let Ok(message) = item.extract::<String>() {
                out.push(Err(message));
            } else {
                let (value, codec, payload, weight): (PyVal, String, Vec<u8>, u64) =
                    item.extract()?;
                let mut loaded = Loaded::new(value, codec_from(&codec)?, payload);
                loaded.weight = weight;
                out.push(Ok(loaded));
            }
        }
        let (read, core) = self.parts()?;
        read.loaded(&mut lock(py, &core.get().inner), out, load_ms)
            .map_err(answer_error)
    }

    /// The waiters of the last `wait` step were notified (or timed out).
    fn woke(&mut self, py: Python<'_>) -> PyResult<()> {
        let (read, core) = self.parts()?;
        read.woke(&mut lock(py, &core.get().inner))
            .map_err(answer_error)
    }

    /// The results, after the `done` step; values found are put in `scope`.
    /// With `user_keys`, a dict `{user_key: value}` of the hits (see
    /// `TieredCore.read`).
    #[pyo3(signature = (scope, user_keys = None))]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        scope: Option<&Bound<'py, RequestScope>>,
        user_keys: Option<&Bound<'py, PyList>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.finish_shaped(py, scope, user_keys)
    }

    /// Gives up the read; returns the waiter ids to wake.
    fn cancel(&mut self, py: Python<'_>) -> Vec<u64> {
        match self.read.take() {
            Some(read) => ids(read.cancel(&mut lock(py, &self.core.get().inner))),
            None => Vec::new(),
        }
    }

    fn __repr__(&self) -> String {
        match &self.read {
            Some(read) => format!("<Read {read:?}>"),
            None => "<Read finished>".to_owned(),
        }
    }
}

impl Drop for PyRead {
    fn drop(&mut self) {
        // A read dropped without finish (an exception in the driver) must
        // release its single-flight claims, or other readers wait for it.
        if let Some(read) = self.read.take() {
            Python::attach(|py| {
                let _ = read.cancel(&mut lock(py, &self.core.get().inner));
            });
        }
    }
}

/// A reply the core refused (the wrong step, or the wrong number of
/// values): `stratacache.AnswerError`, a driver bug.
fn answer_error(error: AnswerError) -> PyErr {
    Python::attach(|py| new_error(py, "AnswerError", (error.to_string(),)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TieredCore>()?;
    m.add_class::<PyRead>()?;
    m.add_class::<ReadHost>()?;
    m.add_function(wrap_pyfunction!(tier_preset, m)?)?;
    m.add_function(wrap_pyfunction!(shape_loaded, m)?)?;
    // Every tag a step tuple can carry: the driver handles exactly these.
    let mut kinds: Vec<&str> = Step::KINDS.to_vec();
    kinds.extend([TIER_ERROR, DECODE_ERRORS, crate::seal::SEAL]);
    m.add("STEP_KINDS", kinds)?;
    Ok(())
}
