//! WebAssembly bindings of stratacache: the wasm half of the npm package
//! `stratacache` (the JS half is in `bindings-wasm/js/`).
//!
//! This crate is a translation layer. It holds no caching logic: every rule
//! (eviction, expiry, keys, envelopes, chunking, the tiered read machine,
//! single-flight) is the core's. What it adds is the shape of the boundary:
//!
//! * [`LocalSlots`]: the core's [`SlotPolicy`](stratacache::local::SlotPolicy),
//!   the rules of `LocalCache` addressed by `u32` slot numbers. Values and
//!   string keys stay on the JS side; only integers cross, and reads are
//!   applied in batches.
//! * [`Tiered`]: the core's sans-I/O
//!   [`Read`](stratacache::tiered::Read) machine, stepped from JS with `await`.
//!   Values stay in a JS array; the core's tiers hold their slot numbers
//!   (`src/slots.rs`), so they are never serialized on the local path and a hit
//!   crosses back as a number.
//! * [`KeyBuilder`], [`safe_key`]: the core's key format, byte for byte.
//! * With the `tools` feature (the package's `stratacache/tools` entry, a
//!   module of its own): `EnvelopeCodec`, the envelope and chunk formats as
//!   they are, for tools and the golden vectors.
//!
//! Everything compiles natively too (for `cargo test`/`clippy` of the
//! workspace); functions that touch `JsValue`s only run on wasm32.

mod js;

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
mod keys;
mod local;
#[cfg(target_family = "wasm")]
mod mem;
mod request;
mod slots;
mod tiered;
#[cfg(feature = "tools")]
mod vectors;
mod wire;

pub use keys::{is_valid_key, safe_key, KeyBuilder};
pub use local::LocalSlots;
pub use request::RequestRef;
pub use slots::file_slots;
pub use tiered::Tiered;
#[cfg(feature = "tools")]
pub use vectors::EnvelopeCodec;
