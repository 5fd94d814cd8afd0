//! Keys: the core's versioned key builder and `safe_key`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyList, PyString, PyType};
use stratacache::key::{KeyBuilder, OwnedPart, KEY_FORMAT};
use stratacache::{is_valid_memcached_key, Namespace};

use crate::util::as_str;

/// Builds versioned keys `{namespace}|v{version}|{part}|...` (format
/// `tiercache-key-1`, shared with every host). Parts are `str`, `int` or
/// `bytes`; different part lists always give different keys, and every key
/// is a valid memcached key of at most `max_len` bytes.
#[pyclass(frozen, module = "stratacache._core", name = "KeyBuilder")]
pub struct PyKeyBuilder {
    inner: KeyBuilder,
}

fn part_of(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<OwnedPart> {
    if obj.is_instance_of::<PyString>() {
        return Ok(OwnedPart::Str(as_str(obj, "key part")?.to_owned()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "key part {index} is a bool: pass int(flag) or a str such as \"yes\"/\"no\", so the key says what it means"
        )));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i128>().map(OwnedPart::Int).map_err(|_| {
            PyValueError::new_err(format!(
                "key part {index} is an int outside the signed 128-bit range"
            ))
        });
    }
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(OwnedPart::Bytes(bytes.as_bytes().to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "key part {index} is a {}: parts are str, int or bytes; convert other values explicitly (e.g. str(course_key))",
        obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
    )))
}

#[pymethods]
impl PyKeyBuilder {
    #[new]
    #[pyo3(signature = (namespace, version = 1, max_len = stratacache::DEFAULT_MAX_KEY_LEN))]
    fn py_new(namespace: &str, version: u64, max_len: usize) -> PyResult<Self> {
        let namespace =
            Namespace::new(namespace).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let inner = KeyBuilder::new(namespace, version)
            .with_max_len(max_len)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyKeyBuilder { inner })
    }

    /// The key for `parts` (a sequence of str, int and bytes).
    fn build(&self, parts: &Bound<'_, PyAny>) -> PyResult<String> {
        let owned: Vec<OwnedPart> = parts
            .try_iter()?
            .enumerate()
            .map(|(i, p)| part_of(&p?, i))
            .collect::<PyResult<_>>()?;
        Ok(self.inner.build_owned(&owned))
    }

    #[getter]
    fn namespace(&self) -> &str {
        self.inner.namespace().as_str()
    }

    #[getter]
    fn version(&self) -> u64 {
        self.inner.version()
    }

    #[getter]
    fn max_len(&self) -> usize {
        self.inner.max_len()
    }

    fn __repr__(&self) -> String {
        format!(
            "KeyBuilder({:?}, version={}, max_len={})",
            self.inner.namespace().as_str(),
            self.inner.version(),
            self.inner.max_len()
        )
    }
}

/// Makes any non-empty string a valid memcached key: percent-escapes what
/// memcached refuses (and `%|#!`), and shortens keys over `max_len` bytes
/// to a readable prefix plus a digest. Injective: different strings never
/// give the same key.
#[pyfunction]
#[pyo3(signature = (raw, max_len = stratacache::DEFAULT_MAX_KEY_LEN))]
fn safe_key(raw: &Bound<'_, PyAny>, max_len: usize) -> PyResult<String> {
    let raw = as_str(raw, "key")?;
    stratacache::safe_key(raw, max_len).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// What `safe_key` keeps as it is: a key of bytes it never escapes, short
/// enough not to be shortened.
fn kept_as_is(raw: &str, max_len: usize) -> bool {
    !raw.is_empty()
        && raw.len() <= max_len
        && raw
            .bytes()
            .all(|b| matches!(b, 0x21..=0x7E) && !matches!(b, b'%' | b'|' | b'#' | b'!'))
}

/// `stratacache.keys.normalize_key` of each key, in one call: keys of type
/// `kept` (`BuiltKey`) as they are, other `str` keys through `safe_key`
/// (returning the same object when `safe_key` would not change it).
/// Returns `(core_keys, user_keys)`, two lists in the order of `keys`.
#[pyfunction]
#[pyo3(signature = (keys, kept, max_len = stratacache::DEFAULT_MAX_KEY_LEN))]
fn normalize_keys<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    kept: &Bound<'py, PyType>,
    max_len: usize,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    stratacache::safe_key("k", max_len).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let user = match keys.cast::<PyList>() {
        // A copy: the caller may change its list while the read waits for I/O.
        Ok(list) => list.get_slice(0, list.len()),
        Err(_) => PyList::new(py, keys.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
    };
    let core = PyList::empty(py);
    for key in user.iter() {
        if key.get_type().is(kept) {
            core.append(key)?;
            continue;
        }
        if !key.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "cache keys are str, not {}: build them with stratacache.Key or convert them with str()",
                key.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            )));
        }
        let raw = as_str(&key, "key")?;
        if kept_as_is(raw, max_len) {
            core.append(key)?;
        } else {
            let safe = stratacache::safe_key(raw, max_len)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            core.append(PyString::new(py, &safe))?;
        }
    }
    Ok((core, user))
}

/// True if memcached accepts `key` as it is.
#[pyfunction(name = "is_valid_memcached_key")]
fn py_is_valid_memcached_key(key: &str) -> bool {
    is_valid_memcached_key(key)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKeyBuilder>()?;
    m.add_function(wrap_pyfunction!(safe_key, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_keys, m)?)?;
    m.add_function(wrap_pyfunction!(py_is_valid_memcached_key, m)?)?;
    m.add("KEY_FORMAT", KEY_FORMAT)?;
    m.add("DEFAULT_MAX_KEY_LEN", stratacache::DEFAULT_MAX_KEY_LEN)?;
    Ok(())
}
