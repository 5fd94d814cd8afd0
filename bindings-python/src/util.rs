//! Shared helpers: the host clock, fast string access, locking under the
//! GIL, errors defined in Python, and TTL arguments.

use std::os::raw::{c_char, c_int};

use parking_lot::{Mutex, MutexGuard};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};
use pyo3::types::{PyFloat, PyInt, PyString};
use stratacache::Expiry;

/// A Python object held by the core (request, local and tiered caches keep
/// Python objects as they are, never pickled).
pub type PyVal = Py<PyAny>;

// Both functions are exported by every CPython since 3.7 with the same
// signature (`PyUnicode_AsUTF8AndSize` joined the limited API in 3.10, and
// `PyContextVar_Get` is public API). Declaring them here lets the abi3-py39
// wheel read a `str` without copying it and read the request scope without a
// method call, on every Python version it supports.
extern "C" {
    fn PyUnicode_AsUTF8AndSize(o: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const c_char;
    fn PyContextVar_Get(
        var: *mut ffi::PyObject,
        default: *mut ffi::PyObject,
        value: *mut *mut ffi::PyObject,
    ) -> c_int;
}

/// The UTF-8 text of a `str` object, borrowed from the object (no copy).
pub fn as_str<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<&'a str> {
    if !obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a str, not {}: build keys with stratacache.Key, or convert them with str()",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        )));
    }
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `obj` is a live str; the buffer lives as long as the object,
    // which outlives the returned borrow.
    unsafe {
        let ptr = PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut size);
        if ptr.is_null() {
            let err = PyErr::fetch(obj.py());
            return Err(PyValueError::new_err(format!(
                "{what} cannot be encoded as UTF-8 (it holds a lone surrogate): {err}"
            )));
        }
        let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), size as usize);
        Ok(std::str::from_utf8_unchecked(bytes))
    }
}

/// The value of a `contextvars.ContextVar` in the current context, or
/// `None` if it has none (and no default).
pub fn context_var_get<'py>(var: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `var` is a ContextVar (checked when the module was set up).
    let rc = unsafe { PyContextVar_Get(var.as_ptr(), std::ptr::null_mut(), &mut value) };
    if rc < 0 {
        return Err(PyErr::fetch(var.py()));
    }
    if value.is_null() {
        return Ok(None);
    }
    // SAFETY: PyContextVar_Get returns a new reference.
    Ok(Some(unsafe { Bound::from_owned_ptr(var.py(), value) }))
}

/// Locks `mutex`, waiting with the GIL released if another thread holds it,
/// so a thread that holds the lock and needs the GIL can always go on.
pub fn lock<'a, T>(py: Python<'_>, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
    mutex.lock_py_attached(py)
}

/// Milliseconds since the Unix epoch, like `time.time() * 1000`.
///
/// On Linux this reads `CLOCK_REALTIME_COARSE` (a few nanoseconds, updated
/// every few milliseconds): the local tier reads the clock on every hit, and
/// expiry a few milliseconds late is harmless.
pub fn now_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a valid pointer.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000;
        }
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The time from an optional host clock (a callable returning seconds, like
/// `time.time`), in milliseconds.
pub fn clock_ms(py: Python<'_>, clock: Option<&PyVal>) -> PyResult<u64> {
    match clock {
        None => Ok(now_ms()),
        Some(clock) => {
            let seconds: f64 = clock.bind(py).call0()?.extract()?;
            if !seconds.is_finite() || seconds < 0.0 {
                return Err(PyValueError::new_err(format!(
                    "the clock returned {seconds}; it must return seconds since the epoch, like time.time()"
                )));
            }
            Ok((seconds * 1000.0) as u64)
        }
    }
}

/// Seconds (Django's unit for timeouts) to milliseconds; zero or negative
/// means "expire at once".
pub fn seconds_to_ms(seconds: f64) -> PyResult<u64> {
    match Expiry::from_secs(seconds).map_err(|e| PyValueError::new_err(e.to_string()))? {
        Expiry::AfterMs(ms) => Ok(ms),
        _ => Ok(u64::MAX),
    }
}

/// A `ttl=` argument: left out (the cache's default), `None` (never
/// expire), or seconds (zero or less: store nothing, delete the key, as
/// Django's `timeout=0` does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TtlArg {
    /// The cache's default TTL.
    Default,
    /// `None`: never expire.
    Never,
    /// Seconds.
    Seconds(f64),
}

impl TtlArg {
    /// The core's expiry for this argument.
    pub fn expiry(self) -> PyResult<Expiry> {
        Ok(match self {
            TtlArg::Default => Expiry::Default,
            TtlArg::Never => Expiry::Never,
            TtlArg::Seconds(s) => {
                Expiry::from_secs(s).map_err(|e| PyValueError::new_err(e.to_string()))?
            }
        })
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for TtlArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(TtlArg::Never);
        }
        if is_default_ttl(&obj) {
            return Ok(TtlArg::Default);
        }
        if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() {
            if obj.is_instance_of::<pyo3::types::PyBool>() {
                return Err(PyTypeError::new_err(
                    "ttl must be a number of seconds or None, not a bool",
                ));
            }
            return Ok(TtlArg::Seconds(obj.extract::<f64>()?));
        }
        if let Ok(total) = obj.call_method0("total_seconds") {
            return Ok(TtlArg::Seconds(total.extract::<f64>()?));
        }
        Err(PyTypeError::new_err(format!(
            "ttl must be seconds (int or float), a datetime.timedelta, or None for no expiry; got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        )))
    }
}

static DEFAULT_TTL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The object that stands for "the cache's default TTL" (`stratacache.DEFAULT_TTL`).
pub fn default_ttl_object(py: Python<'_>) -> &Py<PyAny> {
    DEFAULT_TTL.get_or_init(py, || {
        Py::new(py, DefaultTtl)
            .expect("creating the DEFAULT_TTL sentinel")
            .into_any()
    })
}

fn is_default_ttl(obj: &Borrowed<'_, '_, PyAny>) -> bool {
    DEFAULT_TTL
        .get(obj.py())
        .is_some_and(|d| d.as_ptr() == obj.as_ptr())
}

/// The type of `stratacache.DEFAULT_TTL`.
#[pyclass(frozen, module = "stratacache._core", name = "_DefaultTtl")]
pub struct DefaultTtl;

#[pymethods]
impl DefaultTtl {
    fn __repr__(&self) -> &'static str {
        "stratacache.DEFAULT_TTL"
    }
}

/// The type of `stratacache.MISSING`, the default of `get(key, default=MISSING)`.
#[pyclass(frozen, module = "stratacache._core", name = "_Missing")]
pub struct Missing;

#[pymethods]
impl Missing {
    fn __repr__(&self) -> &'static str {
        "stratacache.MISSING"
    }

    fn __bool__(&self) -> bool {
        false
    }
}

static MISSING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `stratacache.MISSING`.
pub fn missing(py: Python<'_>) -> &Py<PyAny> {
    MISSING.get_or_init(py, || {
        Py::new(py, Missing).expect("creating MISSING").into_any()
    })
}

/// An exception class defined in `stratacache._errors` (pure Python, so users
/// can subclass and pickle them like any other exception).
pub fn error_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module =
        ERRORS.get_or_try_init(py, || py.import("stratacache._errors").map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

/// A new exception of class `name` from `stratacache._errors` with `args`.
pub fn new_error<'py, A>(py: Python<'py>, name: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    match error_class(py, name).and_then(|class| class.call1(args)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(err) => err,
    }
}
