//! Small helpers for errors and (for the `tools` feature) plain JS objects.

#[cfg(feature = "tools")]
use js_sys::{Array, Uint8Array};
#[cfg(feature = "tools")]
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

#[cfg(feature = "tools")]
/// A new empty object.
pub fn object() -> Object {
    Object::new()
}

#[cfg(feature = "tools")]
/// Sets `obj[name] = value`.
pub fn set(obj: &Object, name: &str, value: impl Into<JsValue>) {
    // Setting a property of a plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(name), &value.into());
}

#[cfg(feature = "tools")]
/// `obj[name]`, or `undefined`.
pub fn get(obj: &JsValue, name: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

#[cfg(feature = "tools")]
/// `obj[name]` as a boolean, if it is one.
pub fn get_bool(obj: &JsValue, name: &str) -> Option<bool> {
    get(obj, name).as_bool()
}

#[cfg(feature = "tools")]
/// `obj[name]` as a string, if it is one.
pub fn get_string(obj: &JsValue, name: &str) -> Option<String> {
    get(obj, name).as_string()
}

/// A JS number as a u64: non-finite or huge values saturate, negative and
/// NaN give 0.
/// A JS TTL: `undefined`/NaN → the default, `Infinity` → never, `<= 0` →
/// expire at once (a delete, for the tiered cache).
#[inline(always)]
pub fn expiry(ttl_ms: f64) -> stratacache::Expiry {
    use stratacache::Expiry;
    if ttl_ms.is_nan() {
        Expiry::Default
    } else if ttl_ms == f64::INFINITY {
        Expiry::Never
    } else {
        Expiry::AfterMs(to_u64(ttl_ms.ceil()))
    }
}

#[inline(always)]
pub fn to_u64(n: f64) -> u64 {
    if n.is_nan() || n <= 0.0 {
        0
    } else if n >= u64::MAX as f64 {
        u64::MAX
    } else {
        n as u64
    }
}

#[cfg(feature = "tools")]
/// An array of strings.
pub fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Array {
    items.into_iter().map(|s| JsValue::from_str(s)).collect()
}

#[cfg(feature = "tools")]
/// A copy of bytes as a new `Uint8Array` (owned by JS).
pub fn bytes(data: &[u8]) -> Uint8Array {
    Uint8Array::from(data)
}

/// A type error to throw.
pub fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

/// A range error to throw.
pub fn range_error(message: &str) -> JsValue {
    js_sys::RangeError::new(message).into()
}

/// An error with a `kind` property, to throw.
#[wasm_bindgen]
extern "C" {
    /// An `Error` given a `kind` by a plain setter (`Reflect.set` would
    /// cost its exception handling glue).
    #[wasm_bindgen(extends = js_sys::Error)]
    type KindError;
    #[wasm_bindgen(method, setter)]
    fn set_kind(this: &KindError, kind: &str);
}

pub fn error_with_kind(message: &str, kind: &str) -> JsValue {
    let error: KindError = js_sys::Error::new(message).unchecked_into();
    error.set_kind(kind);
    error.into()
}

/// `text` in double quotes, escaped (the core's quoting for messages).
pub fn quote(text: &str) -> String {
    stratacache::Quoted(text).to_string()
}
