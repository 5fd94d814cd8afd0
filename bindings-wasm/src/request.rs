//! The core's `RequestCache`, holding JS values (by slot), for one request.

use std::cell::RefCell;
use std::rc::Rc;

use stratacache::{Lookup, Namespace, RequestCache};
use wasm_bindgen::prelude::*;

use crate::js;
use crate::slots::{take_fresh, Slot};

/// Values cached for one request, in namespaces, shared with the reads
/// given it (they answer from it first and fill it, under an internal
/// namespace). JS keeps one per request (`js/request.js`).
#[wasm_bindgen]
pub struct RequestRef(pub(crate) Rc<RefCell<RequestCache<Slot>>>);

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
    /// export for all (wasm size): `op` 0 get (the value's slot, -1 for a
    /// miss), 1 set the value filed by `fileSlots`, 2 delete (1 if it was
    /// stored), 3 clear `ns` (absent: every namespace), 4 size of `ns`
    /// (absent: of all).
    pub fn call(&self, op: u8, key: &str, ns: Option<String>) -> Result<f64, JsValue> {
        let mut cache = self.0.borrow_mut();
        let name = match &ns {
            None => Namespace::DEFAULT,
            Some(name) => Namespace::new(name).map_err(|e| js::type_error(&e.to_string()))?,
        };
        Ok(match (op, ns) {
            (0, _) => match cache.get(&name, key) {
                Lookup::Hit(v) => v.id() as f64,
                Lookup::Miss => -1.0,
            },
            (1, _) => {
                if let Some(value) = take_fresh().pop() {
                    cache.set(&name, key, value);
                }
                0.0
            }
            (2, _) => cache.delete(&name, key).is_found() as u8 as f64,
            (3, None) => {
                cache.clear_all();
                0.0
            }
            (3, Some(_)) => {
                cache.clear(&name);
                0.0
            }
            (_, None) => cache.total_len() as f64,
            (_, Some(_)) => cache.len(&name) as f64,
        })
    }
}

impl Default for RequestRef {
    fn default() -> Self {
        Self::new()
    }
}
