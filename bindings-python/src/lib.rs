//! `stratacache._core`: the Rust core of the `stratacache` Python package.
//!
//! A translation layer only: Python values, the host clock and host I/O are
//! turned into calls of the `stratacache` crate, which holds every caching
//! rule. The pure-Python package (`python/stratacache`) drives the sans-I/O
//! read machine and adapts memcached, Redis, S3 and Django.

mod client_args;
mod envelope;
mod fast;
mod key;
mod local;
mod memcached;
mod redis;
mod request;
mod seal;
mod tiered;
mod util;

use pyo3::prelude::*;

/// The extension's own Rust allocations (keys, envelopes, read state) go to
/// mimalloc: a tiered read makes hundreds of small allocations, and glibc's
/// malloc spends a third of a 100-key read merging its free lists. Python
/// objects still come from Python's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Milliseconds since the Unix epoch on the clock the caches use.
#[pyfunction]
fn now_ms() -> u64 {
    util::now_ms()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MISSING", util::missing(py).clone_ref(py))?;
    m.add("DEFAULT_TTL", util::default_ttl_object(py).clone_ref(py))?;
    // Format identifiers the Python side matches on (docs/key-format.md):
    // the reserved namespace prefix and the start of every chunk key.
    m.add("RESERVED_PREFIX", stratacache::namespace::RESERVED_PREFIX)?;
    m.add(
        "CHUNK_KEY_PREFIX",
        format!(
            "{}.chunk|v{}|",
            stratacache::namespace::RESERVED_PREFIX,
            stratacache::chunk::CHUNK_KEY_VERSION
        ),
    )?;
    m.add_function(wrap_pyfunction!(now_ms, m)?)?;
    request::register(m)?;
    local::register(m)?;
    key::register(m)?;
    envelope::register(m)?;
    tiered::register(m)?;
    fast::register(m)?;
    memcached::register(m)?;
    redis::register(m)?;
    seal::register(m)?;
    Ok(())
}
