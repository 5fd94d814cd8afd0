//! `stratacache._core.MemcachedClient`: a thin pyo3 wrapper of
//! `stratacache_net::memcached::Client` (the client itself, its hashing and
//! per-server health live in the `stratacache-net` crate). Every call
//! releases the GIL around its I/O.

use std::io;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use stratacache::tiered::{Fetched, StoreItem};
use stratacache_net::memcached::{self, Addr, Client, Config, Outcome, ServerSpec};
use stratacache_net::Error;

use crate::client_args::{duration, entry_list, health_dict, key_list, values_list};

/// A net error as a Python exception: bad keys and settings are
/// `ValueError`, server failures `OSError`.
fn py_err(e: Error) -> PyErr {
    match e {
        Error::Key(m) => PyValueError::new_err(format!(
            "{m}: build keys with stratacache.Key or pass them through stratacache.safe_key"
        )),
        Error::Config(m) => PyValueError::new_err(m),
        Error::Io(e) => e.into(),
    }
}

/// The error of a batch whose keys failed: the first server error's kind
/// (`ConnectionRefusedError`, `TimeoutError`, ...), every failure in the text.
fn outcome_err<T>(o: &Outcome<T>) -> PyErr {
    let text = o.describe().unwrap_or_default();
    match o.errors.first() {
        Some(e) => std::io::Error::new(e.error.kind(), text).into(),
        None => PyOSError::new_err(text),
    }
}

/// A memcached client over several servers (see `stratacache-net`).
#[pyclass(frozen, module = "stratacache._core", name = "MemcachedClient")]
pub struct MemcachedClient {
    client: Client,
}

#[pymethods]
impl MemcachedClient {
    /// `servers`: `(node, host, port)` for TCP or `(node, path, None)` for a
    /// Unix socket; `node` is the name keys are hashed with (pymemcache's:
    /// `"host:port"`, or the path). `hashing`: `"rendezvous"` (pymemcache)
    /// or `"ketama"` (libmemcached's `ketama_weighted`) or `"ketama_plain"`
    /// (pylibmc's `ketama`). `dead_keys`: `"move"` (a dead
    /// server's keys go to the live ones while it is down) or `"stay"`.
    /// `retry_after`: seconds before a dead server is probed again.
    #[new]
    #[pyo3(signature = (servers, *, key_prefix = "", connect_timeout = 0.25, timeout = 0.5, max_idle = 8, hashing = "rendezvous", dead_keys = "move", retry_after = 2.0))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        servers: Vec<(String, String, Option<u16>)>,
        key_prefix: &str,
        connect_timeout: f64,
        timeout: f64,
        max_idle: usize,
        hashing: &str,
        dead_keys: &str,
        retry_after: f64,
    ) -> PyResult<Self> {
        let mut specs = Vec::new();
        for (name, host, port) in servers {
            let addr = match port {
                Some(port) => Addr::Tcp(host, port),
                #[cfg(unix)]
                None => Addr::Unix(host),
                #[cfg(not(unix))]
                None => {
                    return Err(PyValueError::new_err(
                        "Unix sockets are not available on this platform",
                    ))
                }
            };
            specs.push(ServerSpec { name, addr });
        }
        let config = Config {
            servers: specs,
            key_prefix: key_prefix.to_owned(),
            connect_timeout: duration(connect_timeout, "connect_timeout")?,
            timeout: duration(timeout, "timeout")?,
            max_idle,
            hashing: hashing.parse().map_err(PyValueError::new_err)?,
            dead_keys: dead_keys.parse().map_err(PyValueError::new_err)?,
            retry_after: duration(retry_after, "retry_after")?,
        };
        Ok(MemcachedClient {
            client: Client::new(config).map_err(py_err)?,
        })
    }

    /// The node names, in the order given.
    #[getter]
    fn servers(&self) -> Vec<String> {
        self.client.server_names()
    }

    #[getter]
    fn key_prefix(&self) -> String {
        String::from_utf8_lossy(self.client.key_prefix()).into_owned()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.client.timeout().as_secs_f64()
    }

    #[getter]
    fn connect_timeout(&self) -> f64 {
        self.client.connect_timeout().as_secs_f64()
    }

    /// `"rendezvous"` or `"ketama"`.
    #[getter]
    fn hashing(&self) -> &'static str {
        match self.client.hashing() {
            memcached::Hashing::Rendezvous => "rendezvous",
            memcached::Hashing::Ketama => "ketama",
            memcached::Hashing::KetamaPlain => "ketama_plain",
        }
    }

    /// `"move"` or `"stay"`.
    #[getter]
    fn dead_keys(&self) -> &'static str {
        match self.client.dead_keys() {
            memcached::DeadKeys::Move => "move",
            memcached::DeadKeys::Stay => "stay",
        }
    }

    /// The node that holds `key` with every server up (the prefix is added).
    fn server_for(&self, key: &str) -> PyResult<String> {
        self.client.server_for(key.as_bytes()).map_err(py_err)
    }

    /// `(values, failed)`: one `bytes` or `None` per key in order, and the
    /// keys whose server failed or is down (their value is `None` but they
    /// were not found missing). One request per server.
    fn get_many_outcome<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, Vec<String>)> {
        let keys = key_list(keys, "memcached")?;
        let outcome = py.detach(|| self.client.get_many(&keys)).map_err(py_err)?;
        let out = values_list(py, outcome.values)?;
        let failed = outcome.failed.iter().map(|&i| keys[i].clone()).collect();
        Ok((out, failed))
    }

    /// One `bytes` or `None` per key, in order. Raises `OSError` only when
    /// every key failed and no server is up (the whole tier is out); keys of
    /// a failed server are `None` otherwise (use `get_many_outcome` to tell
    /// them from misses).
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let keys = key_list(keys, "memcached")?;
        let outcome = py.detach(|| self.client.get_many(&keys)).map_err(py_err)?;
        if outcome.all_failed() && !self.client.any_up() {
            return Err(outcome_err(&outcome));
        }
        let out = values_list(py, outcome.values)?;
        Ok(out)
    }

    /// `set` of `(key, value, ttl_ms)` entries (`ttl_ms` None: no expiry);
    /// returns the keys not stored (refused, or their server failed).
    #[pyo3(signature = (entries, *, flags = 0))]
    fn set_many(
        &self,
        py: Python<'_>,
        entries: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<Vec<String>> {
        let (keys, outcome) = self.storage(py, "set", entries, flags)?;
        Ok(keys
            .into_iter()
            .zip(outcome.values)
            .filter(|(_, stored)| !stored)
            .map(|(k, _)| k)
            .collect())
    }

    /// `(refused, failed)` of a `set`: the keys a server answered but did
    /// not store (too large, out of memory), and the keys whose server
    /// failed or is down.
    #[pyo3(signature = (entries, *, flags = 0))]
    fn set_many_outcome(
        &self,
        py: Python<'_>,
        entries: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<(Vec<String>, Vec<String>)> {
        let (keys, outcome) = self.storage(py, "set", entries, flags)?;
        let failed: Vec<String> = outcome.failed.iter().map(|&i| keys[i].clone()).collect();
        let mut is_failed = vec![false; keys.len()];
        outcome.failed.iter().for_each(|&i| is_failed[i] = true);
        let refused = keys
            .into_iter()
            .zip(outcome.values)
            .zip(is_failed)
            .filter(|((_, stored), failed)| !stored && !failed)
            .map(|((k, _), _)| k)
            .collect();
        Ok((refused, failed))
    }

    /// `add` of `(key, value, ttl_ms)` items: one bool (stored) per item;
    /// raises `OSError` if an item's server failed.
    #[pyo3(signature = (items, *, flags = 0))]
    fn add_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<Vec<bool>> {
        let (_, outcome) = self.storage(py, "add", items, flags)?;
        if !outcome.is_complete() {
            return Err(outcome_err(&outcome));
        }
        Ok(outcome.values)
    }

    /// Deletes `keys` (missing ones are fine); raises `OSError` if a key's
    /// server failed (a delete must not be lost silently).
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<()> {
        let keys = key_list(keys, "memcached")?;
        if keys.is_empty() {
            return Ok(());
        }
        let outcome = py
            .detach(|| self.client.delete_many(&keys))
            .map_err(py_err)?;
        if !outcome.is_complete() {
            return Err(outcome_err(&outcome));
        }
        Ok(())
    }

    /// `flush_all` on every server.
    fn flush_all(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.client.flush_all()).map_err(py_err)
    }

    /// `stats` (or `stats <arg>`, e.g. `"settings"`) of each server:
    /// `{node: {name: value}}`, or `{node: "error message"}` for a server
    /// that did not answer.
    #[pyo3(signature = (arg = None))]
    fn stats<'py>(&self, py: Python<'py>, arg: Option<&str>) -> PyResult<Bound<'py, PyDict>> {
        let all = py.detach(|| self.client.stats(arg)).map_err(py_err)?;
        let out = PyDict::new(py);
        for (name, stats) in all {
            match stats {
                Ok(stats) => {
                    let d = PyDict::new(py);
                    for (k, v) in stats {
                        d.set_item(k, v)?;
                    }
                    out.set_item(name, d)?;
                }
                Err(e) => out.set_item(name, PyString::new(py, &e.to_string()))?,
            }
        }
        Ok(out)
    }

    /// Per server: `{"up", "failures", "failed_keys", "probes",
    /// "recoveries", "last_error"}`.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        health_dict(py, self.client.health())
    }

    /// Closes the idle connections (the next operation connects again).
    fn close(&self) {
        self.client.close();
    }

    fn __repr__(&self) -> String {
        format!(
            "<MemcachedClient {} timeout={}s>",
            self.servers().join(","),
            self.timeout()
        )
    }
}

impl MemcachedClient {
    fn storage(
        &self,
        py: Python<'_>,
        command: &str,
        entries: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<(Vec<String>, Outcome<bool>)> {
        let owned = entry_list(entries, "memcached")?;
        let items: Vec<(&str, &[u8], Option<u64>)> = owned
            .iter()
            .map(|(k, v, t)| (k.as_str(), v.as_slice(), *t))
            .collect();
        if items.is_empty() {
            return Ok((
                Vec::new(),
                Outcome {
                    values: Vec::new(),
                    failed: Vec::new(),
                    errors: Vec::new(),
                },
            ));
        }
        let outcome = py
            .detach(|| self.client.store_with(command, &items, flags))
            .map_err(py_err)?;
        Ok((owned.into_iter().map(|(k, _, _)| k).collect(), outcome))
    }

    /// The native path of a fetch step (see `PyRead.advance`): the core's
    /// keys in, one outcome per key out, no Python objects on the way. Keys
    /// of a failed server are `Fetched::Failed` (they go on to the next
    /// tier; counted in `health()`); an error only when every key failed
    /// and no server is up, so one dead server of several does not cool the
    /// whole tier down.
    pub fn fetch_core(&self, keys: &[String]) -> io::Result<Vec<Fetched>> {
        let outcome = self
            .client
            .get_many(keys)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if outcome.all_failed() && !self.client.any_up() {
            return Err(io::Error::other(outcome.describe().unwrap_or_default()));
        }
        let reason = outcome.describe().unwrap_or_default();
        let mut fetched: Vec<Fetched> = outcome.values.into_iter().map(Fetched::from).collect();
        for i in outcome.failed {
            fetched[i] = Fetched::Failed(reason.clone());
        }
        Ok(fetched)
    }

    /// The native path of a store step: `(key, value, ttl_ms)` entries. An
    /// error when every entry failed or a server refused one; entries of a
    /// server that is down are left out (counted in `health()`).
    pub fn store_core_entries(&self, entries: &[StoreItem]) -> io::Result<()> {
        let items: Vec<(&str, &[u8], Option<u64>)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_slice(), e.ttl_ms))
            .collect();
        let outcome = self
            .client
            .set_many(&items)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut is_failed = vec![false; outcome.values.len()];
        outcome.failed.iter().for_each(|&i| is_failed[i] = true);
        let refused = outcome
            .values
            .iter()
            .zip(&is_failed)
            .filter(|(stored, failed)| !**stored && !**failed)
            .count();
        if (outcome.all_failed() && !self.client.any_up()) || refused > 0 {
            let why = outcome.describe().unwrap_or_else(|| {
                outcome
                    .errors
                    .first()
                    .map_or_else(|| "NOT_STORED".to_owned(), |e| e.error.to_string())
            });
            return Err(io::Error::other(format!(
                "memcached did not store {} of {} item(s): {why}",
                refused + outcome.failed.len(),
                outcome.values.len(),
            )));
        }
        Ok(())
    }
}

/// `murmur3_32(text)` as pymemcache computes it (for tests).
#[pyfunction]
#[pyo3(name = "murmur3_32", signature = (text, seed = 0))]
fn py_murmur3_32(text: &str, seed: u32) -> u32 {
    memcached::murmur3_32(&memcached::code_point_bytes(text), seed)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MemcachedClient>()?;
    m.add_function(wrap_pyfunction!(py_murmur3_32, m)?)?;
    Ok(())
}
