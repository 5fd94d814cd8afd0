//! Keys: the core's versioned key builder, `plain_key`, `safe_key` and the
//! signing-key derivation.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyList, PyString, PyType};
use std::borrow::Cow;

use stratacache::key::{KeyBuilder, OwnedPart, KEY_FORMAT, PLAIN_KEY_FORMAT};
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

/// The remote key for a plain string key (format `stratacache-plain-key-1`,
/// the same in every host): a valid memcached key of at most `max_len`
/// bytes not starting with `%~` as it is (so `str()` of a built key is the
/// same key), any other string `%~` and its escaping. Injective.
#[pyfunction]
#[pyo3(signature = (raw, max_len = stratacache::DEFAULT_MAX_KEY_LEN))]
fn plain_key(raw: &Bound<'_, PyAny>, max_len: usize) -> PyResult<String> {
    let raw = as_str(raw, "key")?;
    stratacache::plain_key(raw, max_len)
        .map(|k| k.into_owned())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `stratacache.keys.normalize_key` of each key, in one call: every `str`
/// key (a `Key` result or any other string) through the core's `plain_key`,
/// returning the same object when it is kept as it is. `kept` is accepted
/// for callers of the earlier signature; a built key needs no special case.
/// Returns `(core_keys, user_keys)`, two lists in the order of `keys`.
#[pyfunction]
#[pyo3(signature = (keys, kept = None, max_len = stratacache::DEFAULT_MAX_KEY_LEN))]
fn normalize_keys<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    kept: Option<&Bound<'py, PyType>>,
    max_len: usize,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let _ = kept;
    stratacache::plain_key("k", max_len).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let user = user_key_list(py, keys)?;
    let core = PyList::empty(py);
    for key in user.iter() {
        match core_key(&key, max_len)? {
            Cow::Borrowed(_) => core.append(key)?,
            Cow::Owned(remote) => core.append(PyString::new(py, &remote))?,
        }
    }
    Ok((core, user))
}

/// A copy of `keys` as a list: the caller may change its list while the
/// read waits for I/O.
fn user_key_list<'py>(py: Python<'py>, keys: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    match keys.cast::<PyList>() {
        Ok(list) => Ok(list.get_slice(0, list.len())),
        Err(_) => PyList::new(py, keys.try_iter()?.collect::<PyResult<Vec<_>>>()?),
    }
}

/// `normalize_key` of one user key (a `str`, else a `TypeError`).
fn core_key<'a>(key: &'a Bound<'_, PyAny>, max_len: usize) -> PyResult<Cow<'a, str>> {
    if !key.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "cache keys are str, not {}: build them with stratacache.Key or convert them with str()",
            key.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        )));
    }
    let raw = as_str(key, "key")?;
    stratacache::plain_key(raw, max_len).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `normalize_keys` for a read in the extension: the core keys as Rust
/// strings (in the order of `keys`, repeats kept) and the user keys.
pub(crate) fn core_keys<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
) -> PyResult<(Vec<String>, Bound<'py, PyList>)> {
    let user = user_key_list(py, keys)?;
    let mut core = Vec::with_capacity(user.len());
    for key in user.iter() {
        core.push(core_key(&key, stratacache::DEFAULT_MAX_KEY_LEN)?.into_owned());
    }
    Ok((core, user))
}

/// The core key of a Django cache key made by Django's default key
/// function (`"%s:%s:%s" % (KEY_PREFIX, version, key)`): `prefix` is
/// `"{KEY_PREFIX}:{version}:"`, the key is formatted as `%s` formats it (an
/// exact `str` as it is, anything else through `str()`), and the made key
/// goes through `plain_key` as `normalize_key` does. `buf` is reused.
pub(crate) fn django_core_key(
    key: &Bound<'_, PyAny>,
    prefix: &str,
    buf: &mut String,
) -> PyResult<String> {
    buf.clear();
    buf.push_str(prefix);
    if key.is_exact_instance_of::<PyString>() {
        buf.push_str(as_str(key, "key")?);
    } else {
        let text = key.str()?;
        buf.push_str(as_str(text.as_any(), "key")?);
    }
    stratacache::plain_key(buf, stratacache::DEFAULT_MAX_KEY_LEN)
        .map(Cow::into_owned)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `django_core_key` of each of `keys`, without repeats: the core keys in
/// first-seen order and, for each, the last user key that made it (as
/// Django's memcached and Redis backends map made keys back to keys).
pub(crate) fn django_core_keys<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    prefix: &str,
) -> PyResult<(Vec<String>, Bound<'py, PyList>)> {
    let n = keys.len().unwrap_or(0);
    let mut buf = String::with_capacity(prefix.len() + 32);
    let mut core: Vec<String> = Vec::with_capacity(n);
    let mut users: Vec<Bound<'py, PyAny>> = Vec::with_capacity(n);
    let mut add = |key: Bound<'py, PyAny>| -> PyResult<()> {
        core.push(django_core_key(&key, prefix, &mut buf)?);
        users.push(key);
        Ok(())
    };
    match keys.cast::<PyList>() {
        Ok(list) => {
            for key in list.iter() {
                add(key)?;
            }
        }
        Err(_) => {
            for key in keys.try_iter()? {
                add(key?)?;
            }
        }
    }
    // Repeats are rare: find them without copying a key (the map borrows
    // the made keys), and only then merge them.
    let first: Vec<usize> = {
        let mut seen: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(core.len());
        core.iter()
            .enumerate()
            .map(|(i, k)| *seen.entry(k.as_str()).or_insert(i))
            .collect()
    };
    if first.iter().enumerate().all(|(i, &f)| f == i) {
        return Ok((core, PyList::new(py, users)?));
    }
    let mut kept_core = Vec::with_capacity(core.len());
    let mut kept_users: Vec<Bound<'py, PyAny>> = Vec::with_capacity(core.len());
    let mut position = vec![usize::MAX; core.len()];
    for (i, (made, user)) in core.into_iter().zip(users).enumerate() {
        if first[i] == i {
            position[i] = kept_core.len();
            kept_core.push(made);
            kept_users.push(user);
        } else {
            // The last user key that made it names it.
            kept_users[position[first[i]]] = user;
        }
    }
    Ok((kept_core, PyList::new(py, kept_users)?))
}

/// The signing key (32 bytes) derived from an application secret (`str`,
/// UTF-8, or `bytes`), as every host derives it: SHA-256 of the label
/// `tiercache.signing.v1`, a NUL byte and the secret.
#[pyfunction]
fn signing_key_from_secret<'py>(
    py: Python<'py>,
    secret: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes: Vec<u8> = if secret.is_instance_of::<PyString>() {
        as_str(secret, "secret")?.as_bytes().to_vec()
    } else if let Ok(b) = secret.cast::<PyBytes>() {
        b.as_bytes().to_vec()
    } else {
        return Err(PyTypeError::new_err(format!(
            "a secret is str or bytes, not {}",
            secret
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )));
    };
    let key = stratacache::signing_key_from_secret(&bytes)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &key))
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
    m.add_function(wrap_pyfunction!(plain_key, m)?)?;
    m.add_function(wrap_pyfunction!(signing_key_from_secret, m)?)?;
    m.add("PLAIN_KEY_FORMAT", PLAIN_KEY_FORMAT)?;
    m.add_function(wrap_pyfunction!(py_is_valid_memcached_key, m)?)?;
    m.add("KEY_FORMAT", KEY_FORMAT)?;
    m.add("DEFAULT_MAX_KEY_LEN", stratacache::DEFAULT_MAX_KEY_LEN)?;
    Ok(())
}
