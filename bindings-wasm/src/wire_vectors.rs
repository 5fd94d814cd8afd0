//! The wire layout of steps and read results, derived from the core's types
//! (test only: nothing of this is in the wasm module).
//!
//! Every core [`Step`] variant and a read result of every source and flag,
//! built with distinctive field values, go through the writers the wasm
//! module uses ([`write_step`], [`steps_bytes`], `write_result!`); next to
//! the bytes, the fields JS must read back, taken from the Rust values by
//! patterns that name every field (a field added to a core type fails to
//! compile here). `test/wire.test.mjs` reads the bytes with `js/wire.js` and
//! compares. The vectors are checked in (`test/wire-vectors.json`) and this
//! test fails when they are not current; regenerate them with
//! `STRATACACHE_WRITE_VECTORS=1 cargo test -p stratacache-wasm wire_vectors`.

use serde_json::{json, Value};
use stratacache::envelope::Codec;
use stratacache::namespace::RESERVED_PREFIX;
use stratacache::stampede::WaitId;
use stratacache::tiered::{DecodeItem, LeaseItem, ReadResult, Source, Step, StoreItem};
use stratacache::Lookup;

use super::{source_code, steps_bytes, write_step};
use crate::slots::Slot;
use crate::wire::Wire;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Distinctive payload bytes: every byte differs, so a misread length or
/// offset shows.
fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8 * 7)).collect()
}

fn waits(ids: &[WaitId]) -> Vec<u64> {
    ids.iter().map(|id| id.into_raw()).collect()
}

/// A store entry as `readStep` gives it (`ttlMs` null: no TTL).
fn store_entry(e: &StoreItem) -> Value {
    let StoreItem { key, value, ttl_ms } = e;
    json!({ "key": key, "value": hex(value), "ttlMs": ttl_ms })
}

/// The steps JS reads for `step`, with the names `readStep` gives the
/// fields (one step, or two for a store with chunks: chunks first).
fn expected(step: &Step) -> Vec<Value> {
    let kind = step.kind();
    let one = match step {
        Step::Fetch { tier, keys } => json!({ "kind": kind, "tier": tier, "keys": keys }),
        Step::Decode { items } => {
            let items: Vec<Value> = items
                .iter()
                .map(|item| {
                    // `index` is not sent: JS answers the items in order.
                    let DecodeItem {
                        index: _,
                        key,
                        codec,
                        payload,
                    } = item;
                    json!({ "key": key, "codec": codec.name(), "payload": hex(payload) })
                })
                .collect();
            json!({ "kind": kind, "items": items })
        }
        Step::Lease { tier, items } => {
            let entries: Vec<Value> = items
                .iter()
                .map(|item| {
                    let LeaseItem { key, token, ttl_ms } = item;
                    json!({ "key": key, "value": hex(token), "ttlMs": ttl_ms })
                })
                .collect();
            json!({ "kind": kind, "tier": tier, "entries": entries })
        }
        Step::Sleep { ms } => json!({ "kind": kind, "ms": ms }),
        Step::Load { keys } => json!({ "kind": kind, "keys": keys }),
        Step::Notify { waiters } => json!({ "kind": kind, "waits": waits(waiters) }),
        Step::Wait { waits: ids } => json!({ "kind": kind, "waits": waits(ids) }),
        Step::Store { tier, entries } => {
            // A value's chunks go in a step before its manifest's.
            let chunk_prefix = format!("{RESERVED_PREFIX}.chunk|");
            let (chunks, rest): (Vec<&StoreItem>, Vec<&StoreItem>) = entries
                .iter()
                .partition(|e| e.key.starts_with(&chunk_prefix));
            return [chunks, rest]
                .into_iter()
                .filter(|part| !part.is_empty())
                .map(|part| {
                    let entries: Vec<Value> = part.into_iter().map(store_entry).collect();
                    json!({ "kind": kind, "tier": tier, "entries": entries })
                })
                .collect();
        }
        Step::Delete { tier, keys } => json!({ "kind": kind, "tier": tier, "keys": keys }),
        Step::Done => json!({ "kind": kind }),
    };
    vec![one]
}

/// One of each step, with distinctive values: tiers past 255, integers past
/// 2^32 (a `u32` read shows), UTF-8 keys, empty and long lists.
fn steps() -> Vec<(&'static str, Step)> {
    let keys = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}|k{i}|é✓")).collect()
    };
    vec![
        (
            "fetch",
            Step::Fetch {
                tier: 300,
                keys: keys("fetch", 3),
            },
        ),
        (
            "fetch of no keys",
            Step::Fetch {
                tier: 0,
                keys: vec![],
            },
        ),
        (
            "decode of every codec",
            Step::Decode {
                items: Codec::ALL
                    .into_iter()
                    .enumerate()
                    .map(|(i, codec)| DecodeItem {
                        index: 10 + i,
                        key: format!("decode|{}|ü", codec.name()),
                        codec,
                        payload: payload(i as u8 * 40, 3 + i * 5),
                    })
                    .collect(),
            },
        ),
        (
            "lease",
            Step::Lease {
                tier: 2,
                items: vec![
                    LeaseItem {
                        key: "tiercache.lease|a".into(),
                        token: payload(0x51, 16),
                        ttl_ms: 5_000_000_000_123,
                    },
                    LeaseItem {
                        key: "tiercache.lease|b".into(),
                        token: vec![],
                        ttl_ms: 1,
                    },
                ],
            },
        ),
        (
            "sleep",
            Step::Sleep {
                ms: 4_294_967_301_007,
            },
        ),
        (
            "load",
            Step::Load {
                keys: keys("load", 2),
            },
        ),
        (
            "notify",
            Step::Notify {
                waiters: [1, 4_294_967_297, 9_007_199_254_740_991]
                    .map(WaitId::from_raw)
                    .to_vec(),
            },
        ),
        (
            "wait",
            Step::Wait {
                waits: [77, 8_589_934_593].map(WaitId::from_raw).to_vec(),
            },
        ),
        (
            "store with chunks after their manifest",
            Step::Store {
                tier: 1,
                entries: vec![
                    StoreItem {
                        key: "v1|main".into(),
                        value: payload(0x10, 12),
                        ttl_ms: Some(3_600_000_000_001),
                    },
                    StoreItem {
                        key: format!("{RESERVED_PREFIX}.chunk|v1|main|ab|#0"),
                        value: payload(0x20, 9),
                        ttl_ms: None,
                    },
                    StoreItem {
                        key: "v1|other".into(),
                        value: vec![],
                        ttl_ms: None,
                    },
                    StoreItem {
                        key: format!("{RESERVED_PREFIX}.chunk|v1|main|ab|#1"),
                        value: payload(0x30, 4),
                        ttl_ms: Some(60_000),
                    },
                ],
            },
        ),
        (
            "store",
            Step::Store {
                tier: 7,
                entries: vec![StoreItem {
                    key: "v1|only|ß".into(),
                    value: payload(0x99, 5),
                    ttl_ms: Some(0),
                }],
            },
        ),
        (
            "delete",
            Step::Delete {
                tier: 65_537,
                keys: keys("delete", 2),
            },
        ),
        ("done", Step::Done),
    ]
}

/// A test-only slot (not in the slot table: dropping it changes nothing).
fn slot(id: u32) -> Slot {
    Slot::for_test(id)
}

/// Results of every source with every combination of hit, refresh and
/// error (not all of which a read produces: the layout carries them all).
fn results() -> Vec<ReadResult<Slot>> {
    let sources = [
        None,
        Some(Source::Request),
        Some(Source::Local),
        Some(Source::Loader),
        Some(Source::Flight),
        Some(Source::Tier(0)),
        Some(Source::Tier(7)),
    ];
    let mut out = Vec::new();
    for source in sources {
        for flags in 0..8u32 {
            let i = out.len() as u32;
            out.push(ReadResult {
                key: format!("result|{i}"),
                lookup: if flags & 1 != 0 {
                    Lookup::Hit(slot(0x0a0b_0c00 + i))
                } else {
                    Lookup::Miss
                },
                source,
                refresh: flags & 2 != 0,
                error: (flags & 4 != 0).then(|| format!("load {i} failed: ü✓")),
            });
        }
    }
    out
}

/// The fields `readResults` gives one result (the key is not sent: JS has
/// the keys it asked for; the source is its code, named by `js/tiered.js`).
fn expected_result(r: &ReadResult<Slot>) -> Value {
    let ReadResult {
        key: _,
        lookup,
        source,
        refresh,
        error,
    } = r;
    let slot = match lookup {
        Lookup::Hit(slot) => Some(slot.id()),
        Lookup::Miss => None,
    };
    json!({
        "hit": slot.is_some(),
        "slot": slot,
        "source": source_code(*source),
        "refresh": refresh,
        "error": error,
    })
}

fn generate() -> Value {
    let mut vectors = Vec::new();
    let mut all = Vec::new();
    for (name, step) in steps() {
        let mut w = Wire::new();
        write_step(&mut w, step.clone(), &mut Vec::new());
        vectors.push(json!({
            "name": name,
            "hex": hex(&w.into_inner()),
            "steps": expected(&step),
        }));
        all.push(step);
    }
    let write = json!({
        "name": "every step, one after another (a write's steps)",
        "hex": hex(&steps_bytes(all.clone())),
        "steps": all.iter().flat_map(expected).collect::<Vec<_>>(),
    });
    vectors.push(write);
    let results = results();
    let mut w = Wire::new();
    for r in &results {
        write_result!(w, r);
    }
    json!({
        "about": "The byte layout of steps and read results from the wasm module to JS (bindings-wasm/src/wire.rs, src/tiered.rs; read by js/wire.js), with the fields JS reads back, derived from the core's types. Generated by src/wire_vectors.rs (STRATACACHE_WRITE_VECTORS=1 cargo test -p stratacache-wasm wire_vectors); checked by test/wire.test.mjs.",
        "steps": vectors,
        "results": {
            "name": "every source with every combination of hit, refresh and error",
            "hex": hex(&w.into_inner()),
            "results": results.iter().map(expected_result).collect::<Vec<_>>(),
        },
    })
}

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test/wire-vectors.json")
}

#[test]
fn wire_vectors_are_current() {
    let mut text = serde_json::to_string_pretty(&generate()).unwrap();
    text.push('\n');
    if std::env::var_os("STRATACACHE_WRITE_VECTORS").is_some() {
        std::fs::write(path(), &text).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(path()).unwrap_or_default();
    assert!(
        on_disk == text,
        "{} is not what the Rust types and writers give now: regenerate it with \
         `STRATACACHE_WRITE_VECTORS=1 cargo test -p stratacache-wasm wire_vectors` \
         (then test/wire.test.mjs checks js/wire.js reads it)",
        path().display()
    );
}

/// The vectors cover every step kind and every result flag and source kind.
#[test]
fn wire_vectors_cover_every_kind() {
    let kinds: std::collections::BTreeSet<&str> = steps().iter().map(|(_, s)| s.kind()).collect();
    assert_eq!(kinds.len(), Step::KINDS.len());
    let results = results();
    for bit in 0..3 {
        let flags = |r: &ReadResult<Slot>| {
            [
                matches!(r.lookup, Lookup::Hit(_)),
                r.refresh,
                r.error.is_some(),
            ][bit]
        };
        assert!(results.iter().any(flags) && !results.iter().all(flags));
    }
    // A source variant added to the core fails to compile here.
    let variants: std::collections::BTreeSet<u8> = results
        .iter()
        .map(|r| match r.source {
            None => 0,
            Some(Source::Request) => 1,
            Some(Source::Local) => 2,
            Some(Source::Tier(_)) => 3,
            Some(Source::Loader) => 4,
            Some(Source::Flight) => 5,
        })
        .collect();
    assert_eq!(variants.len(), 6);
}
