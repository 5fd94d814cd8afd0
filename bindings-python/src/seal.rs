//! Writes of a read sealed off the request path: with background writes, a
//! read hands its loaded and back-filled values out unsealed (`SealJob`),
//! and `stratacache.background`'s writer thread seals, chunks and writes
//! them (issue 16: a first read does not wait for the sealing of a large
//! value).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use stratacache::tiered::{Effect, RawRead, SealJob};

use crate::util::PyVal;

/// The tag of the step tuple `("seal", [SealJob, ...])`.
pub const SEAL: &str = "seal";

/// The writes of one value, sealed when the background writer gets to it.
///
/// ```python
/// for kind, tier, entries in job.seal():   # ("store", tier, [(key, bytes, ttl_ms)])
///     tiers[tier].set_many(entries)
/// ```
#[pyclass(name = "SealJob", module = "stratacache._core", frozen)]
pub struct PySealJob {
    job: parking_lot::Mutex<Option<SealJob>>,
    key: String,
    size: usize,
}

#[pymethods]
impl PySealJob {
    /// The key written (queued writes of a key a `set` superseded are skipped).
    #[getter]
    fn key(&self) -> &str {
        &self.key
    }

    /// About how many bytes it writes (for the queue's byte bound).
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// Seals the value (the GIL released) and returns its store steps, in
    /// order: `("store", tier, [(key, bytes, ttl_ms), ...])` per tier,
    /// chunks before their manifest. A second call returns `[]`.
    fn seal<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let Some(job) = self.job.lock().take() else {
            return Ok(out);
        };
        let effects = py.detach(move || job.seal());
        for effect in effects {
            if let Effect::Store { tier, entries } = effect {
                let entries: Vec<_> = entries
                    .into_iter()
                    .map(|e| (e.key, PyBytes::new(py, &e.value), e.ttl_ms))
                    .collect();
                out.append(("store", tier, entries))?;
            }
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!("<SealJob {:?} ({} bytes)>", self.key, self.size)
    }
}

/// `("seal", [SealJob, ...])` when the read has planned unsealed writes.
pub fn seal_step<'py>(
    py: Python<'py>,
    read: &mut RawRead<PyVal>,
) -> Option<PyResult<Bound<'py, PyTuple>>> {
    if !read.has_seal_jobs() {
        return None;
    }
    let jobs = read
        .take_seal_jobs()
        .into_iter()
        .map(|job| PySealJob {
            key: job.key().to_owned(),
            size: job.size(),
            job: parking_lot::Mutex::new(Some(job)),
        })
        .collect::<Vec<_>>();
    Some((SEAL, jobs).into_pyobject(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySealJob>()
}
