//! `stratacache._core.RedisClient`: a thin pyo3 wrapper of
//! `stratacache_net::redis::Client` (one node with read replicas, or a Redis
//! Cluster). Every call releases the GIL around its I/O.

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use stratacache::tiered::{Fetched, StoreItem};
use stratacache_net::redis::{Client, Config, Tls};
use stratacache_net::{Error, Outcome};

use crate::client_args::{duration, entry_list, health_dict, key_list, values_list};

/// The error of a batch whose keys failed: the first server error's kind
/// (`ConnectionRefusedError`, `TimeoutError`, ...), every failure in the text.
fn outcome_err<T>(o: &Outcome<T>) -> PyErr {
    let text = o.describe().unwrap_or_default();
    match o.errors.first() {
        Some(e) => std::io::Error::new(e.error.kind(), text).into(),
        None => PyOSError::new_err(text),
    }
}

/// A Redis client (see `stratacache-net`).
#[pyclass(frozen, module = "stratacache._core", name = "RedisClient")]
pub struct RedisClient {
    client: Client,
}

/// The native read path (`PyRead.advance`): the core's keys and entries in
/// and out with no Python objects, as `MemcachedClient` offers.
impl RedisClient {
    /// One outcome per key: a failed node's keys are `Fetched::Failed` (they
    /// go on to the next tier); an error only when every key failed and no
    /// node is up, so one dead master does not cool the whole tier down.
    pub fn fetch_core(&self, keys: &[String]) -> std::io::Result<Vec<Fetched>> {
        let outcome = self.client.get_many(keys);
        if outcome.all_failed() && !self.client.any_up() {
            return Err(std::io::Error::other(
                outcome.describe().unwrap_or_default(),
            ));
        }
        let reason = outcome.describe().unwrap_or_default();
        let mut fetched: Vec<Fetched> = outcome.values.into_iter().map(Fetched::from).collect();
        for i in outcome.failed {
            fetched[i] = Fetched::Failed(reason.clone());
        }
        Ok(fetched)
    }

    /// A store step's entries; an error only when every entry failed and no
    /// node is up (a failed node's entries are later misses).
    pub fn store_core_entries(&self, entries: &[StoreItem]) -> std::io::Result<()> {
        let items: Vec<(&str, &[u8], Option<u64>)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_slice(), e.ttl_ms))
            .collect();
        let outcome = self.client.set_many(&items);
        if outcome.all_failed() && !self.client.any_up() {
            return Err(std::io::Error::other(format!(
                "redis did not store {} item(s): {}",
                items.len(),
                outcome.describe().unwrap_or_default()
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl RedisClient {
    /// `nodes`: one URL (`redis://host:port/db`) or, with `cluster=True`,
    /// the seed nodes of a Redis Cluster. `replicas`: URLs of read replicas
    /// of a single node. `read_from_replicas`: cluster reads go to replicas.
    /// `sentinel_service`: `nodes` are Redis Sentinel URLs and the primary is
    /// the one they name for this service (database `db`), found again after
    /// a failover; with `read_from_replicas`, reads go to the replicas they
    /// list. `password` / `username`: the data nodes' credentials when their
    /// URL has none; `sentinel_password` / `sentinel_username`: the
    /// sentinels'. `tls_ca_certs` (PEM bytes) / `tls_insecure` /
    /// `tls_skip_hostname`: how `rediss://` nodes are checked;
    /// `tls_client_cert` and `tls_client_key` (PEM bytes): a client
    /// certificate for servers that ask for one. `sentinel_tls`: the nodes
    /// the sentinels name speak TLS.
    #[new]
    #[pyo3(signature = (nodes, *, replicas = Vec::new(), cluster = false, read_from_replicas = false, key_prefix = "", connect_timeout = 0.25, timeout = 0.5, retry_after = 2.0, max_idle = 8, sentinel_service = None, db = 0, password = None, username = None, sentinel_password = None, sentinel_username = None, tls_ca_certs = None, tls_insecure = false, tls_skip_hostname = false, tls_client_cert = None, tls_client_key = None, sentinel_tls = false))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        nodes: Vec<String>,
        replicas: Vec<String>,
        cluster: bool,
        read_from_replicas: bool,
        key_prefix: &str,
        connect_timeout: f64,
        timeout: f64,
        retry_after: f64,
        max_idle: usize,
        sentinel_service: Option<String>,
        db: i64,
        password: Option<String>,
        username: Option<String>,
        sentinel_password: Option<String>,
        sentinel_username: Option<String>,
        tls_ca_certs: Option<Vec<u8>>,
        tls_insecure: bool,
        tls_skip_hostname: bool,
        tls_client_cert: Option<Vec<u8>>,
        tls_client_key: Option<Vec<u8>>,
        sentinel_tls: bool,
    ) -> PyResult<Self> {
        let client_cert = match (tls_client_cert, tls_client_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "a TLS client certificate needs both the certificate and its key",
                ))
            }
        };
        if sentinel_service.is_some() && (cluster || nodes.is_empty()) {
            return Err(PyValueError::new_err(
                "Redis Sentinel takes the sentinels' URLs (one or more), not cluster=True",
            ));
        }
        if !cluster && sentinel_service.is_none() && nodes.len() != 1 {
            return Err(PyValueError::new_err(
                "a single Redis node takes one URL (pass replicas=[...] for read replicas, or cluster=True)",
            ));
        }
        let config = Config {
            nodes,
            replicas,
            cluster,
            read_from_replicas,
            sentinel_service,
            db,
            key_prefix: key_prefix.to_owned(),
            connect_timeout: duration(connect_timeout, "connect_timeout")?,
            timeout: duration(timeout, "timeout")?,
            retry_after: duration(retry_after, "retry_after")?,
            max_idle,
            password,
            username,
            sentinel_password,
            sentinel_username,
            sentinel_tls,
            tls: Tls {
                ca_certs: tls_ca_certs,
                insecure: tls_insecure,
                skip_hostname: tls_skip_hostname,
                client_cert,
            },
        };
        let client = Client::new(config).map_err(|e| match e {
            Error::Io(e) => e.into(),
            other => PyValueError::new_err(other.to_string()),
        })?;
        Ok(RedisClient { client })
    }

    /// `(values, failed)`: one `bytes` or `None` per key, and the keys whose
    /// node failed or is down.
    fn get_many_outcome<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, Vec<String>)> {
        let keys = key_list(keys, "redis")?;
        let outcome = py.detach(|| self.client.get_many(&keys));
        let failed = outcome.failed.iter().map(|&i| keys[i].clone()).collect();
        Ok((values_list(py, outcome.values)?, failed))
    }

    /// One `bytes` or `None` per key; raises `OSError` only when every key
    /// failed.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let keys = key_list(keys, "redis")?;
        let outcome = py.detach(|| self.client.get_many(&keys));
        if outcome.all_failed() && !self.client.any_up() {
            return Err(outcome_err(&outcome));
        }
        values_list(py, outcome.values)
    }

    /// `SET .. PX` of `(key, value, ttl_ms)` entries: the keys not stored
    /// (their node failed).
    fn set_many(&self, py: Python<'_>, entries: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let owned = entry_list(entries, "redis")?;
        let items: Vec<(&str, &[u8], Option<u64>)> = owned
            .iter()
            .map(|(k, v, t)| (k.as_str(), v.as_slice(), *t))
            .collect();
        let outcome = py.detach(|| self.client.set_many(&items));
        Ok(owned
            .iter()
            .zip(outcome.values)
            .filter(|(_, stored)| !stored)
            .map(|((k, _, _), _)| k.clone())
            .collect())
    }

    /// `SET .. NX PX`: one bool (stored) per item; raises `OSError` if an
    /// item's node failed.
    fn add_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let owned = entry_list(items, "redis")?;
        let items: Vec<(&str, &[u8], Option<u64>)> = owned
            .iter()
            .map(|(k, v, t)| (k.as_str(), v.as_slice(), *t))
            .collect();
        let outcome = py.detach(|| self.client.add_many(&items));
        if !outcome.is_complete() {
            return Err(outcome_err(&outcome));
        }
        Ok(outcome.values)
    }

    /// Deletes `keys`; raises `OSError` if a key's node failed.
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<()> {
        let keys = key_list(keys, "redis")?;
        let outcome = py.detach(|| self.client.delete_many(&keys));
        if !outcome.is_complete() {
            return Err(outcome_err(&outcome));
        }
        Ok(())
    }

    /// `FLUSHDB` (cluster: `FLUSHALL` on every primary).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.client.flush())
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// Per node: `{"up", "failures", "failed_keys", "probes", "recoveries", "last_error"}`.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        health_dict(py, self.client.health())
    }

    /// `INFO` of the primary (cluster: of one node) as a dict of strings.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let pairs = py
            .detach(|| self.client.info())
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        let out = PyDict::new(py);
        for (k, v) in pairs {
            out.set_item(k, v)?;
        }
        Ok(out)
    }

    /// Some node is up.
    fn any_up(&self) -> bool {
        self.client.any_up()
    }

    /// Closes idle connections.
    fn close(&self) {
        self.client.close();
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RedisClient>()?;
    Ok(())
}
