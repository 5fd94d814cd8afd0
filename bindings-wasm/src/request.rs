//! The core's `RequestCache`, holding JS values, for one request.

use std::cell::RefCell;
use std::rc::Rc;

use stratacache::{Lookup, Namespace, RequestCache};
use wasm_bindgen::prelude::*;

use crate::js;

/// Values cached for one request, in namespaces, shared with the reads
/// given it (they answer from it first and fill it, under an internal
/// namespace). JS keeps one per request (`js/request.js`).
#[wasm_bindgen]
pub struct RequestRef(pub(crate) Rc<RefCell<RequestCache<JsValue>>>);

#[wasm_bindgen]
impl RequestRef {
    /// A new, empty request cache.
    #[wasm_bindgen(constructor)]
    pub fn new() -> RequestRef {
        RequestRef(Rc::new(RefCell::new(RequestCache::new())))
    }

    /// A second handle to the same request cache (reads consume one).
    pub fn share(&self) -> RequestRef {
        RequestRef(self.0.clone())
    }

    /// One operation on `key` in namespace `ns` (absent: the default), one
    /// export for all (wasm size): `op` 0 get (the value; `value`, a
    /// sentinel the caller passes, for a miss), 1 set `value`, 2 delete
    /// (true if it was stored), 3 clear `ns` (absent: every namespace), 4
    /// size of `ns` (absent: of all).
    pub fn call(
        &self,
        op: u8,
        key: &str,
        value: JsValue,
        ns: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let mut cache = self.0.borrow_mut();
        let name = match &ns {
            None => Namespace::DEFAULT,
            Some(name) => Namespace::new(name).map_err(|e| js::type_error(&e.to_string()))?,
        };
        Ok(match (op, ns) {
            (0, _) => match cache.get(&name, key) {
                Lookup::Hit(v) => v.clone(),
                Lookup::Miss => value,
            },
            (1, _) => {
                cache.set(&name, key, value);
                JsValue::UNDEFINED
            }
            (2, _) => JsValue::from_bool(cache.delete(&name, key).is_found()),
            (3, None) => {
                cache.clear_all();
                JsValue::UNDEFINED
            }
            (3, Some(_)) => {
                cache.clear(&name);
                JsValue::UNDEFINED
            }
            (_, None) => JsValue::from_f64(cache.total_len() as f64),
            (_, Some(_)) => JsValue::from_f64(cache.len(&name) as f64),
        })
    }
}

impl Default for RequestRef {
    fn default() -> Self {
        Self::new()
    }
}
