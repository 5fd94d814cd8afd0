//! The request tier: `RequestScope` (one per request, carried by a
//! `contextvars.ContextVar`), `RequestCache` (a namespaced view of the
//! current scope) and `CachedResponse`.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use stratacache::{Lookup, Namespace, RequestCache};

use crate::util::{as_str, context_var_get, lock, missing, new_error, PyVal};

static SCOPE_VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The `ContextVar` holding the current request scope (created once).
pub fn scope_var(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    SCOPE_VAR.get_or_try_init(py, || {
        let contextvars = py.import("contextvars")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("default", py.None())?;
        Ok(contextvars
            .getattr("ContextVar")?
            .call(("stratacache.request_scope",), Some(&kwargs))?
            .unbind())
    })
}

/// The current request scope, if one is set.
pub fn current_scope<'py>(py: Python<'py>) -> PyResult<Option<Bound<'py, RequestScope>>> {
    let var = scope_var(py)?.bind(py);
    match context_var_get(var)? {
        Some(value) if !value.is_none() => Ok(Some(value.cast_into::<RequestScope>()?)),
        _ => Ok(None),
    }
}

/// The current request scope, created (and set in the current context) if
/// there is none: a thread, or an asyncio task started outside any request,
/// gets its own.
pub fn current_scope_or_new<'py>(py: Python<'py>) -> PyResult<Bound<'py, RequestScope>> {
    if let Some(scope) = current_scope(py)? {
        return Ok(scope);
    }
    let scope = Bound::new(py, RequestScope::create(py, false))?;
    scope_var(py)?.bind(py).call_method1("set", (&scope,))?;
    Ok(scope)
}

/// The values cached for one request: namespaces of Python objects, cleared
/// as a whole. One is set per request by the middleware (or
/// `stratacache.request_scope()`), in a `ContextVar`, so threads, asyncio
/// tasks and ASGI requests never see each other's.
#[pyclass(frozen, module = "stratacache._core", name = "RequestScope")]
pub struct RequestScope {
    pub(crate) cache: Mutex<RequestCache<PyVal>>,
    /// The edx-django-utils compatible caches: namespace -> live dict.
    edx: Py<PyDict>,
    force_miss: AtomicBool,
}

impl RequestScope {
    fn create(py: Python<'_>, force_cache_miss: bool) -> Self {
        RequestScope {
            cache: Mutex::new(RequestCache::new()),
            edx: PyDict::new(py).unbind(),
            force_miss: AtomicBool::new(force_cache_miss),
        }
    }

    pub fn force_miss(&self) -> bool {
        self.force_miss.load(Ordering::Relaxed)
    }
}

#[pymethods]
impl RequestScope {
    #[new]
    #[pyo3(signature = (force_cache_miss = false))]
    fn py_new(py: Python<'_>, force_cache_miss: bool) -> Self {
        RequestScope::create(py, force_cache_miss)
    }

    /// Reads of tiered caches in this scope skip the local and remote tiers
    /// and reload (set by the middleware for `?force_cache_miss=true` from
    /// active staff users).
    #[getter]
    fn get_force_cache_miss(&self) -> bool {
        self.force_miss()
    }

    #[setter]
    fn set_force_cache_miss(&self, value: bool) {
        self.force_miss.store(value, Ordering::Relaxed);
    }

    /// The edx-django-utils compatible namespaces (namespace -> dict).
    #[getter]
    fn edx_data(&self, py: Python<'_>) -> Py<PyDict> {
        self.edx.clone_ref(py)
    }

    /// Removes every entry of every namespace.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        // Values are dropped after the lock is released (a __del__ may use
        // the cache).
        let old = std::mem::take(&mut *lock(py, &self.cache));
        drop(old);
        self.edx.bind(py).clear();
        Ok(())
    }

    /// Names of the namespaces holding entries.
    fn namespaces(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let mut names: Vec<String> = lock(py, &self.cache)
            .namespaces()
            .map(|n| n.as_str().to_owned())
            .collect();
        for key in self.edx.bind(py).keys() {
            names.push(key.str()?.to_string());
        }
        names.sort();
        Ok(names)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let mut total = lock(py, &self.cache).total_len();
        for (_, data) in self.edx.bind(py).iter() {
            total += data.len().unwrap_or(0);
        }
        Ok(total)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<RequestScope entries={} namespaces={:?} force_cache_miss={}>",
            self.__len__(py)?,
            self.namespaces(py)?,
            if self.force_miss() { "True" } else { "False" }
        ))
    }
}

/// The answer of a cache lookup: a hit (with the value, which may be `None`)
/// or a miss. It refuses `bool()` so that `if cache.get_cached_response(k):`
/// cannot be written by mistake; test `is_found`.
#[pyclass(frozen, module = "stratacache._core", name = "CachedResponse")]
pub struct CachedResponse {
    is_found: bool,
    key: PyVal,
    value: Option<PyVal>,
}

impl CachedResponse {
    pub fn hit(key: PyVal, value: PyVal) -> Self {
        CachedResponse {
            is_found: true,
            key,
            value: Some(value),
        }
    }

    pub fn miss(key: PyVal) -> Self {
        CachedResponse {
            is_found: false,
            key,
            value: None,
        }
    }
}

#[pymethods]
impl CachedResponse {
    #[new]
    #[pyo3(signature = (is_found, key, value = None))]
    fn py_new(is_found: bool, key: PyVal, value: Option<PyVal>) -> Self {
        CachedResponse {
            is_found,
            key,
            value: if is_found {
                Some(value.unwrap_or_else(|| Python::attach(|py| py.None())))
            } else {
                None
            },
        }
    }

    /// True for a hit (also when the stored value is `None`).
    #[getter]
    fn is_found(&self) -> bool {
        self.is_found
    }

    /// The key that was looked up.
    #[getter]
    fn key(&self, py: Python<'_>) -> PyVal {
        self.key.clone_ref(py)
    }

    /// The value of a hit. A miss has no value: reading it raises
    /// `CachedResponseMissError` (an `AttributeError`).
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<PyVal> {
        match &self.value {
            Some(value) => Ok(value.clone_ref(py)),
            None => {
                let key = self
                    .key
                    .bind(py)
                    .repr()
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                Err(new_error(
                    py,
                    "CachedResponseMissError",
                    (format!(
                        "the cached response for key {key} is a miss and has no value: check is_found first, \
                         or use get_value_or_default(default)"
                    ),),
                ))
            }
        }
    }

    /// The value of a hit, or `default` for a miss.
    fn get_value_or_default(&self, py: Python<'_>, default: PyVal) -> PyVal {
        match &self.value {
            Some(value) => value.clone_ref(py),
            None => default,
        }
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Err(new_error(py, "CachedResponseError", ()))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<CachedResponse>() else {
            return Err(new_error(py, "CachedResponseError", ()));
        };
        let other = other.get();
        if self.is_found != other.is_found {
            return Ok(false);
        }
        if !self.key.bind(py).eq(other.key.bind(py))? {
            return Ok(false);
        }
        match (&self.value, &other.value) {
            (Some(a), Some(b)) => a.bind(py).eq(b.bind(py)),
            _ => Ok(true),
        }
    }

    fn __ne__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.__eq__(py, other).map(|eq| !eq)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // The value is never shown: responses get logged, values may be secret.
        Ok(format!(
            "CachedResponse(is_found={}, key={}, value='*****')",
            if self.is_found { "True" } else { "False" },
            self.key.bind(py).str()?
        ))
    }
}

fn namespace_from(name: Option<&str>) -> PyResult<Namespace> {
    match name {
        None => Ok(Namespace::DEFAULT),
        Some(name) => Namespace::new(name).map_err(|e| PyValueError::new_err(e.to_string())),
    }
}

/// A namespace of the current request's cache. Values are Python objects,
/// stored as they are; a stored `None` is a hit.
///
/// Instances are cheap and hold no data: every call works on the request
/// scope of the current context, so one module-level `RequestCache("x")` is
/// correct under threads, asyncio tasks and ASGI.
#[pyclass(frozen, module = "stratacache._core", name = "RequestCache")]
pub struct PyRequestCache {
    pub(crate) namespace: Namespace,
}

/// The value of an entry of a user namespace. Entries are stored as the
/// `CachedResponse` of a hit, so a hit returns that object without
/// allocating.
pub fn stored_value(py: Python<'_>, stored: &PyVal) -> PyVal {
    match stored.bind(py).cast::<CachedResponse>() {
        Ok(response) => response
            .get()
            .value
            .as_ref()
            .map_or_else(|| py.None(), |v| v.clone_ref(py)),
        Err(_) => stored.clone_ref(py),
    }
}

impl PyRequestCache {
    /// The `CachedResponse` for `key` (the stored one for a hit).
    pub(crate) fn cached_response(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<PyVal> {
        let k = as_str(key, "request cache key")?;
        if let Some(scope) = current_scope(py)? {
            if let Lookup::Hit(stored) = lock(py, &scope.get().cache).get(&self.namespace, k) {
                return Ok(stored.clone_ref(py));
            }
        }
        Ok(Py::new(py, CachedResponse::miss(key.clone().unbind()))?.into_any())
    }

    fn stored(py: Python<'_>, key: &Bound<'_, PyAny>, value: PyVal) -> PyResult<PyVal> {
        Ok(Py::new(py, CachedResponse::hit(key.clone().unbind(), value))?.into_any())
    }
}

#[pymethods]
impl PyRequestCache {
    #[new]
    #[pyo3(signature = (namespace = None))]
    fn py_new(namespace: Option<&str>) -> PyResult<Self> {
        Ok(PyRequestCache {
            namespace: namespace_from(namespace)?,
        })
    }

    /// The namespace name.
    #[getter]
    fn namespace(&self) -> &str {
        self.namespace.as_str()
    }

    /// A `CachedResponse` for `key`: `is_found` and, for a hit, `value`.
    fn get_cached_response(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyVal> {
        self.cached_response(py, key)
    }

    /// The value of `key`, or `default` (`stratacache.MISSING` unless given).
    #[pyo3(signature = (key, default = None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<PyVal>,
    ) -> PyResult<PyVal> {
        self.value(py, key, default)
    }

    /// Stores `value` under `key` for the rest of the request.
    fn set(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: PyVal) -> PyResult<()> {
        let k = as_str(key, "request cache key")?;
        let stored = Self::stored(py, key, value)?;
        let scope = current_scope_or_new(py)?;
        let old = lock(py, &scope.get().cache).set(&self.namespace, k, stored);
        drop(old);
        Ok(())
    }

    /// Stores `value` under `key` unless the key is set; returns the value
    /// the key holds afterwards.
    fn setdefault(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: PyVal) -> PyResult<PyVal> {
        let k = as_str(key, "request cache key")?;
        let stored = Self::stored(py, key, value)?;
        let scope = current_scope_or_new(py)?;
        let mut cache = lock(py, &scope.get().cache);
        Ok(stored_value(
            py,
            cache.setdefault(&self.namespace, k, stored),
        ))
    }

    /// Removes `key`; returns True if it was set. A missing key is not an error.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = as_str(key, "request cache key")?;
        let Some(scope) = current_scope(py)? else {
            return Ok(false);
        };
        let old = lock(py, &scope.get().cache).delete(&self.namespace, k);
        Ok(old.is_found())
    }

    /// Removes every entry of this namespace (other namespaces are kept).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(scope) = current_scope(py)? {
            lock(py, &scope.get().cache).clear(&self.namespace);
        }
        Ok(())
    }

    /// Removes every entry of every namespace of the current request.
    #[staticmethod]
    fn clear_all_namespaces(py: Python<'_>) -> PyResult<()> {
        if let Some(scope) = current_scope(py)? {
            scope.get().clear(py)?;
        }
        Ok(())
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = as_str(key, "request cache key")?;
        Ok(match current_scope(py)? {
            Some(scope) => lock(py, &scope.get().cache)
                .get(&self.namespace, k)
                .is_found(),
            None => false,
        })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(match current_scope(py)? {
            Some(scope) => lock(py, &scope.get().cache).len(&self.namespace),
            None => 0,
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<RequestCache namespace={:?} entries={}>",
            self.namespace.as_str(),
            self.__len__(py)?
        ))
    }
}

/// The current scope (`create=True`: make one if none is set).
#[pyfunction]
#[pyo3(signature = (create = false))]
pub fn current_request_scope(
    py: Python<'_>,
    create: bool,
) -> PyResult<Option<Bound<'_, RequestScope>>> {
    if create {
        current_scope_or_new(py).map(Some)
    } else {
        current_scope(py)
    }
}

/// The `ContextVar` that carries the request scope.
#[pyfunction]
pub fn request_scope_var(py: Python<'_>) -> PyResult<PyVal> {
    Ok(scope_var(py)?.clone_ref(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RequestScope>()?;
    m.add_class::<CachedResponse>()?;
    m.add_class::<PyRequestCache>()?;
    m.add_function(wrap_pyfunction!(current_request_scope, m)?)?;
    m.add_function(wrap_pyfunction!(request_scope_var, m)?)?;
    Ok(())
}

impl PyRequestCache {
    /// `get`, shared by the pyo3 method and the vectorcall entry point
    /// (`fast.rs`), so the two cannot drift.
    pub(crate) fn value(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<PyVal>,
    ) -> PyResult<PyVal> {
        let k = as_str(key, "request cache key")?;
        if let Some(scope) = current_scope(py)? {
            if let Lookup::Hit(stored) = lock(py, &scope.get().cache).get(&self.namespace, k) {
                return Ok(stored_value(py, stored));
            }
        }
        Ok(default.unwrap_or_else(|| missing(py).clone_ref(py)))
    }
}
