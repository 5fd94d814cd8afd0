//! What the memcached and Redis client wrappers share: their arguments
//! (keys, `(key, value, ttl_ms)` entries, timeouts) read from Python, and
//! their answers (values, per-server health) built for Python.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use stratacache_net::ServerHealth;

use crate::util::as_str;

/// A positive number of seconds, or an error naming `what`.
pub fn duration(seconds: f64, what: &str) -> PyResult<Duration> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, not {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The keys of an iterable of `str` (`server` names the client in errors).
pub fn key_list(keys: &Bound<'_, PyAny>, server: &str) -> PyResult<Vec<String>> {
    let what = format!("{server} key");
    let mut out = Vec::new();
    for key in keys.try_iter()? {
        out.push(as_str(&key?, &what)?.to_owned());
    }
    Ok(out)
}

/// A `(key, value, ttl_ms)` item.
pub type Entry = (String, Vec<u8>, Option<u64>);

/// The items of an iterable of `(key, value, ttl_ms)` tuples.
pub fn entry_list(entries: &Bound<'_, PyAny>, server: &str) -> PyResult<Vec<Entry>> {
    let what = format!("{server} key");
    let mut out = Vec::new();
    for item in entries.try_iter()? {
        let item = item?;
        let tuple = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 3)
            .ok_or_else(|| PyTypeError::new_err("entries are (key, value, ttl_ms) tuples"))?;
        let key = as_str(&tuple.get_item(0)?, &what)?.to_owned();
        let value = tuple.get_item(1)?;
        let value: Vec<u8> = match value.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().to_vec(),
            Err(_) => value
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{server} values are bytes")))?,
        };
        let ttl: Option<u64> = tuple.get_item(2)?.extract()?;
        out.push((key, value, ttl));
    }
    Ok(out)
}

/// One `bytes` or `None` per value.
pub fn values_list<'py>(
    py: Python<'py>,
    values: Vec<Option<Vec<u8>>>,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for value in values {
        match value {
            Some(v) => out.append(PyBytes::new(py, &v))?,
            None => out.append(py.None())?,
        }
    }
    Ok(out)
}

/// Per server: `{"up", "failures", "failed_keys", "probes", "recoveries",
/// "last_error"}`, keyed by the server's name.
pub fn health_dict(py: Python<'_>, health: Vec<ServerHealth>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for h in health {
        let d = PyDict::new(py);
        d.set_item("up", h.up)?;
        d.set_item("failures", h.failures)?;
        d.set_item("failed_keys", h.failed_keys)?;
        d.set_item("probes", h.probes)?;
        d.set_item("recoveries", h.recoveries)?;
        d.set_item("last_error", h.last_error)?;
        out.set_item(h.name, d)?;
    }
    Ok(out)
}
