//! The core's `RequestCache`, holding JS values, for one request.

use stratacache::{Lookup, Namespace, RequestCache};
use wasm_bindgen::prelude::*;

use crate::js;

/// Values cached for one request, in namespaces; the tiered cache's reads
/// answer from it first and fill it (under an internal namespace).
pub struct RequestCacheHandle {
    pub(crate) inner: RequestCache<JsValue>,
}

fn namespace(name: Option<String>) -> Result<Namespace, JsValue> {
    match name {
        None => Ok(Namespace::DEFAULT),
        Some(name) => Namespace::new(name).map_err(|e| js::type_error(&e.to_string())),
    }
}

impl RequestCacheHandle {
    /// An empty request cache.
    pub fn new() -> RequestCacheHandle {
        RequestCacheHandle {
            inner: RequestCache::new(),
        }
    }

    /// `[value]` for a stored value (which may be `undefined` or `null`),
    /// `[]` for a miss.
    pub fn get(&self, key: &str, ns: Option<String>) -> Result<Vec<JsValue>, JsValue> {
        let ns = namespace(ns)?;
        Ok(match self.inner.get(&ns, key) {
            Lookup::Hit(value) => vec![value.clone()],
            Lookup::Miss => Vec::new(),
        })
    }

    /// Stores `value` under `key`.
    pub fn set(&mut self, key: &str, value: JsValue, ns: Option<String>) -> Result<(), JsValue> {
        let ns = namespace(ns)?;
        self.inner.set(&ns, key, value);
        Ok(())
    }

    /// Removes `key`; true if it was stored.
    pub fn delete(&mut self, key: &str, ns: Option<String>) -> Result<bool, JsValue> {
        let ns = namespace(ns)?;
        Ok(self.inner.delete(&ns, key).is_found())
    }

    /// Removes every entry of `ns`, or of every namespace if `ns` is absent.
    pub fn clear(&mut self, ns: Option<String>) -> Result<(), JsValue> {
        match ns {
            None => self.inner.clear_all(),
            Some(name) => self.inner.clear(&namespace(Some(name))?),
        }
        Ok(())
    }

    /// Entries in `ns`, or in all namespaces if `ns` is absent.
    pub fn size(&self, ns: Option<String>) -> Result<usize, JsValue> {
        Ok(match ns {
            None => self.inner.total_len(),
            Some(name) => self.inner.len(&namespace(Some(name))?),
        })
    }
}

impl Default for RequestCacheHandle {
    fn default() -> Self {
        Self::new()
    }
}
