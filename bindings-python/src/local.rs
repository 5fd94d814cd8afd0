//! `LocalCache`: the core's bounded cache (adaptive W-TinyLFU eviction by
//! default, `policy="lru"` for exact LRU) with per-entry TTL, holding Python
//! objects as they are, keyed by any hashable Python object.

use std::hash::{Hash, Hasher};

use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use stratacache::NamedCounters;
use stratacache::{Eviction, LocalCache, Lookup, SetOutcome};

use crate::request::CachedResponse;
use crate::util::{clock_ms, lock, seconds_to_ms, PyVal, TtlArg};

/// A Python key: the object and its Python hash. Equality is Python's `==`
/// (identity first), so keys behave as they do in a dict.
pub struct PyKey {
    obj: PyVal,
    hash: isize,
}

impl PyKey {
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyKey {
            hash: obj.hash()?,
            obj: obj.clone().unbind(),
        })
    }
}

impl Hash for PyKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_isize(self.hash);
    }
}

impl PartialEq for PyKey {
    fn eq(&self, other: &Self) -> bool {
        if self.obj.as_ptr() == other.obj.as_ptr() {
            return true;
        }
        if self.hash != other.hash {
            return false;
        }
        // SAFETY: keys are only compared inside calls made from Python,
        // with the thread attached to the interpreter.
        let py = unsafe { Python::assume_attached() };
        self.obj.bind(py).eq(other.obj.bind(py)).unwrap_or(false)
    }
}

impl Eq for PyKey {}

/// A bounded in-process cache of Python objects (no pickling), bounded by
/// entry count and by total weight, with per-entry TTL; expired entries are
/// reclaimed without waiting for a read.
#[pyclass(frozen, module = "stratacache._core", name = "LocalCache")]
pub struct PyLocalCache {
    pub(crate) inner: Mutex<LocalCache<PyKey, PyVal>>,
    weigher: Option<PyVal>,
    pub(crate) clock: Option<PyVal>,
    ttl_ms: Option<u64>,
}

impl PyLocalCache {
    fn now(&self, py: Python<'_>) -> PyResult<u64> {
        clock_ms(py, self.clock.as_ref())
    }

    fn weigh(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<u64> {
        let weight = match &self.weigher {
            Some(weigher) => weigher.bind(py).call1((value,))?,
            None => {
                let sys = py.import("sys")?;
                sys.getattr("getsizeof")?.call1((value,))?
            }
        };
        let weight: i64 = weight.extract()?;
        if weight < 0 {
            return Err(PyValueError::new_err(format!(
                "the weigher returned {weight}; weights are sizes in bytes and cannot be negative"
            )));
        }
        Ok(weight as u64)
    }
}

#[pymethods]
impl PyLocalCache {
    #[new]
    #[pyo3(signature = (max_entries = 10_000, max_bytes = 64 * 1024 * 1024, ttl = None, *, weigher = None, clock = None, policy = "adaptive"))]
    fn py_new(
        max_entries: usize,
        max_bytes: u64,
        ttl: Option<f64>,
        weigher: Option<PyVal>,
        clock: Option<PyVal>,
        policy: &str,
    ) -> PyResult<Self> {
        let eviction = match policy {
            "adaptive" => Eviction::Adaptive,
            "lru" => Eviction::Lru,
            other => {
                return Err(PyValueError::new_err(format!(
                    "policy must be \"adaptive\" (the default: scan-resistant, frequency-aware) or \"lru\", not {other:?}"
                )))
            }
        };
        let ttl_ms = match ttl {
            None => None,
            Some(s) => match seconds_to_ms(s)? {
                0 => {
                    return Err(PyValueError::new_err(
                        "ttl must be positive (seconds), or None for entries that never expire",
                    ))
                }
                u64::MAX => None,
                ms => Some(ms),
            },
        };
        let cache = LocalCache::new(max_entries, max_bytes)
            .and_then(|c| c.with_default_ttl(ttl_ms))
            .map(|c| c.with_eviction(eviction))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyLocalCache {
            inner: Mutex::new(cache),
            weigher,
            clock,
            ttl_ms,
        })
    }

    /// The value of `key`, or `default` if it is missing or expired.
    #[pyo3(signature = (key, default = None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<PyVal>,
    ) -> PyResult<PyVal> {
        self.lookup(py, key, default)
    }

    /// A `CachedResponse` for `key` (tells a stored `None` from a miss).
    fn get_cached_response(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<CachedResponse> {
        let k = PyKey::new(key)?;
        let now = self.now(py)?;
        let key_obj = key.clone().unbind();
        Ok(match lock(py, &self.inner).get(&k, now) {
            Lookup::Hit(value) => CachedResponse::hit(key_obj, value.clone_ref(py)),
            Lookup::Miss => CachedResponse::miss(key_obj),
        })
    }

    /// A dict of the keys of `keys` that are cached, with their values.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let found = PyDict::new(py);
        let now = self.now(py)?;
        for key in keys.try_iter()? {
            let key = key?;
            let k = PyKey::new(&key)?;
            let hit = lock(py, &self.inner).get(&k, now).map(|v| v.clone_ref(py));
            if let Lookup::Hit(value) = hit {
                found.set_item(key, value)?;
            }
        }
        Ok(found)
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyVal> {
        let k = PyKey::new(key)?;
        let now = self.now(py)?;
        match lock(py, &self.inner).get(&k, now) {
            Lookup::Hit(value) => Ok(value.clone_ref(py)),
            Lookup::Miss => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = PyKey::new(key)?;
        let now = self.now(py)?;
        Ok(lock(py, &self.inner).contains(&k, now))
    }

    /// Stores `value` under `key`. `ttl`: seconds; `None`: never expire;
    /// left out: the cache's TTL; zero or less: delete the key. `weight`:
    /// bytes, instead of asking the weigher. Returns False if the value
    /// was not stored (heavier than the whole cache, or a zero TTL).
    #[pyo3(signature = (key, value, ttl = TtlArg::Default, *, weight = None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: TtlArg,
        weight: Option<u64>,
    ) -> PyResult<bool> {
        let k = PyKey::new(key)?;
        let weight = match weight {
            Some(w) => w,
            None => self.weigh(py, value)?,
        };
        let expiry = ttl.expiry()?;
        let now = self.now(py)?;
        let outcome = lock(py, &self.inner).set(k, value.clone().unbind(), weight, expiry, now);
        Ok(outcome == SetOutcome::Stored)
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.set(py, key, value, TtlArg::Default, None).map(|_| ())
    }

    /// Stores every item of `mapping` with one TTL; returns how many were stored.
    #[pyo3(signature = (mapping, ttl = TtlArg::Default))]
    fn set_many(
        &self,
        py: Python<'_>,
        mapping: &Bound<'_, PyDict>,
        ttl: TtlArg,
    ) -> PyResult<usize> {
        let mut stored = 0;
        for (key, value) in mapping.iter() {
            stored += usize::from(self.set(py, &key, &value, ttl, None)?);
        }
        Ok(stored)
    }

    /// The cached value of `key`; on a miss, calls `loader()`, stores its
    /// result (a `None` result is stored too) and returns it.
    #[pyo3(signature = (key, loader, ttl = TtlArg::Default))]
    fn get_or_load(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        loader: &Bound<'_, PyAny>,
        ttl: TtlArg,
    ) -> PyResult<PyVal> {
        let k = PyKey::new(key)?;
        let now = self.now(py)?;
        if let Lookup::Hit(value) = lock(py, &self.inner).get(&k, now) {
            return Ok(value.clone_ref(py));
        }
        let value = loader.call0()?;
        self.set(py, key, &value, ttl, None)?;
        Ok(value.unbind())
    }

    /// Removes `key`; returns True if it was cached.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = PyKey::new(key)?;
        let old = lock(py, &self.inner).delete(&k);
        Ok(old.is_found())
    }

    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.delete(py, key)? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// Gives a cached key a new TTL (Django's `touch`); False if it is not cached.
    #[pyo3(signature = (key, ttl = TtlArg::Default))]
    fn touch(&self, py: Python<'_>, key: &Bound<'_, PyAny>, ttl: TtlArg) -> PyResult<bool> {
        let k = PyKey::new(key)?;
        let expiry = ttl.expiry()?;
        let now = self.now(py)?;
        Ok(lock(py, &self.inner).touch(&k, expiry, now))
    }

    /// Seconds `key` has left: None if it never expires; KeyError if it is
    /// not cached.
    fn ttl(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let k = PyKey::new(key)?;
        let now = self.now(py)?;
        match lock(py, &self.inner).ttl_remaining(&k, now) {
            Lookup::Hit(ms) => Ok(ms.map(|ms| ms as f64 / 1000.0)),
            Lookup::Miss => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes every entry (counters are kept).
    fn clear(&self, py: Python<'_>) {
        let mut cache = lock(py, &self.inner);
        cache.clear();
    }

    /// Reclaims every expired entry now; returns how many. (Expired entries
    /// are also reclaimed as writes move the clock on.)
    fn purge_expired(&self, py: Python<'_>) -> PyResult<usize> {
        let now = self.now(py)?;
        Ok(lock(py, &self.inner).purge_expired(now))
    }

    /// Keys from most to least recently used.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let cache = lock(py, &self.inner);
        PyList::new(py, cache.keys_by_recency().map(|k| k.obj.clone_ref(py)))
    }

    /// Counters (hits, misses, inserts, updates, evictions, expirations,
    /// rejected, admissions_rejected) and gauges (entries, weight,
    /// window_entries, window_weight) as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = lock(py, &self.inner).stats();
        let d = PyDict::new(py);
        for (name, value) in s.named() {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    /// Sets every counter back to zero.
    fn reset_stats(&self, py: Python<'_>) {
        lock(py, &self.inner).reset_stats();
    }

    #[getter]
    fn max_entries(&self, py: Python<'_>) -> usize {
        lock(py, &self.inner).max_entries()
    }

    #[getter]
    fn max_bytes(&self, py: Python<'_>) -> u64 {
        lock(py, &self.inner).max_weight()
    }

    /// The default TTL in seconds (None: entries never expire).
    #[getter(ttl_seconds)]
    fn ttl_seconds(&self) -> Option<f64> {
        self.ttl_ms.map(|ms| ms as f64 / 1000.0)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        lock(py, &self.inner).len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let cache = lock(py, &self.inner);
        format!(
            "<LocalCache entries={}/{} bytes={}/{} ttl={}>",
            cache.len(),
            cache.max_entries(),
            cache.weight(),
            cache.max_weight(),
            self.ttl_ms
                .map_or("None".to_owned(), |ms| format!("{}s", ms as f64 / 1000.0))
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLocalCache>()
}

impl PyLocalCache {
    /// `get`, shared by the pyo3 method and the vectorcall entry point
    /// (`fast.rs`), so the two cannot drift.
    pub(crate) fn lookup(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<PyVal>,
    ) -> PyResult<PyVal> {
        let k = PyKey::new(key)?;
        let now = self.now(py)?;
        if let Lookup::Hit(value) = lock(py, &self.inner).get(&k, now) {
            return Ok(value.clone_ref(py));
        }
        Ok(default.unwrap_or_else(|| py.None()))
    }
}
