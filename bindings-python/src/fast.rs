//! Vectorcall entry points for the hottest methods.
//!
//! An abi3-py39 extension gets `METH_VARARGS` methods from pyo3 (the fast
//! calling convention joined the limited API only in 3.10), which costs a
//! tuple per call: more than a whole `LocalCache` hit. `METH_FASTCALL` has
//! the same value and meaning in every CPython since 3.7, so these few
//! methods are installed by hand with it: `LocalCache.get`,
//! `RequestCache.get_cached_response` and `RequestCache.get`. Each parses
//! its arguments and calls the one function the pyo3 method it replaces
//! calls too (`PyLocalCache::lookup`, `PyRequestCache::cached_response`,
//! `PyRequestCache::value`), so the two entry points cannot drift. Kept
//! because it pays: `LocalCache.get` hit 69.6 ns with it, 105.7 ns without
//! (best of interleaved runs of 1,000-key get loops; functools.lru_cache
//! hit 60–62 ns; `bash scripts/bench-python.sh` prints the ratio).

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PySystemError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::local::PyLocalCache;
use crate::request::PyRequestCache;

const METH_FASTCALL: c_int = 0x0080;
const METH_KEYWORDS: c_int = 0x0002;

type FastWithKeywords = unsafe extern "C" fn(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// Runs `f` with the interpreter attached, turning errors and panics into a
/// raised exception and a NULL return.
fn trampoline(f: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>>) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the thread attached.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(|| f(py))) {
        Ok(Ok(value)) => value.into_ptr(),
        Ok(Err(err)) => {
            err.restore(py);
            std::ptr::null_mut()
        }
        Err(_) => {
            PySystemError::new_err("stratacache panicked (a bug: please report it)").restore(py);
            std::ptr::null_mut()
        }
    }
}

/// Positional `key` and optional `default` (positional or keyword).
///
/// # Safety
/// `args`/`nargs`/`kwnames` as CPython passes them to a
/// `METH_FASTCALL | METH_KEYWORDS` function.
unsafe fn key_and_default<'py>(
    py: Python<'py>,
    name: &str,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let nkw = if kwnames.is_null() {
        0
    } else {
        ffi::PyTuple_Size(kwnames)
    };
    let total = nargs + nkw;
    let arg = |i: ffi::Py_ssize_t| Bound::from_borrowed_ptr(py, *args.offset(i));
    let mut key = None;
    let mut default = None;
    for i in 0..nargs {
        match i {
            0 => key = Some(arg(0)),
            1 => default = Some(arg(1)),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "{name}() takes at most 2 arguments ({nargs} given)"
                )))
            }
        }
    }
    for i in nargs..total {
        let kw = Bound::from_borrowed_ptr(py, ffi::PyTuple_GetItem(kwnames, i - nargs));
        let kw = kw.str()?;
        match kw.to_cow()?.as_ref() {
            "key" if key.is_none() => key = Some(arg(i)),
            "default" if default.is_none() => default = Some(arg(i)),
            other => {
                return Err(PyTypeError::new_err(format!(
                    "{name}() got an unexpected or repeated keyword argument {other:?}"
                )))
            }
        }
    }
    match key {
        Some(key) => Ok((key, default)),
        None => Err(PyTypeError::new_err(format!(
            "{name}() missing required argument 'key'"
        ))),
    }
}

unsafe extern "C" fn local_get(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    trampoline(|py| {
        let slf = Bound::from_borrowed_ptr(py, slf);
        let cache = slf.cast::<PyLocalCache>()?.get();
        let (key, default) = key_and_default(py, "get", args, nargs, kwnames)?;
        cache.lookup(py, &key, default.map(Bound::unbind))
    })
}

unsafe extern "C" fn request_get_cached_response(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    trampoline(|py| {
        let slf = Bound::from_borrowed_ptr(py, slf);
        let this = slf.cast::<PyRequestCache>()?.get();
        let (key, extra) = key_and_default(py, "get_cached_response", args, nargs, kwnames)?;
        if extra.is_some() {
            return Err(PyTypeError::new_err(
                "get_cached_response() takes exactly one argument (the key)",
            ));
        }
        this.cached_response(py, &key)
    })
}

unsafe extern "C" fn request_get(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    trampoline(|py| {
        let slf = Bound::from_borrowed_ptr(py, slf);
        let this = slf.cast::<PyRequestCache>()?.get();
        let (key, default) = key_and_default(py, "get", args, nargs, kwnames)?;
        this.value(py, &key, default.map(Bound::unbind))
    })
}

fn install(
    ty: &Bound<'_, pyo3::types::PyType>,
    name: &'static std::ffi::CStr,
    f: FastWithKeywords,
    doc: &'static std::ffi::CStr,
) -> PyResult<()> {
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        // SAFETY: the union holds one function pointer; CPython calls it with
        // the signature METH_FASTCALL | METH_KEYWORDS selects.
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: unsafe { std::mem::transmute::<FastWithKeywords, ffi::PyCFunction>(f) },
        },
        ml_flags: METH_FASTCALL | METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    let py = ty.py();
    // SAFETY: a heap type and a 'static method definition.
    unsafe {
        let descr = ffi::PyDescr_NewMethod(ty.as_ptr().cast::<ffi::PyTypeObject>(), def);
        if descr.is_null() {
            return Err(PyErr::fetch(py));
        }
        let descr = Bound::from_owned_ptr(py, descr);
        ty.setattr(name.to_str().expect("ASCII method name"), descr)?;
    }
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let local = py.get_type::<PyLocalCache>();
    install(
        &local,
        c"get",
        local_get,
        c"get(key, default=None)\n--\n\nThe value of `key`, or `default` if it is missing or expired.",
    )?;
    let request = py.get_type::<PyRequestCache>();
    install(
        &request,
        c"get_cached_response",
        request_get_cached_response,
        c"get_cached_response(key)\n--\n\nA CachedResponse for `key`: `is_found` and, for a hit, `value`.",
    )?;
    install(
        &request,
        c"get",
        request_get,
        c"get(key, default=MISSING)\n--\n\nThe value of `key`, or `default` (stratacache.MISSING unless given).",
    )?;
    Ok(())
}
