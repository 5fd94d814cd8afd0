//! For random tier contents, tampering, chunk losses and tier outages, every
//! result of a read is what the loader gives (stored entries hold the same
//! value), and nothing from a forged or badly signed value is ever returned.

mod support;

use proptest::prelude::*;
use stratacache::envelope::{encode, Codec, EncodeOptions, EnvelopeHeader, Keyring};
use stratacache::tiered::{Loaded, ReadOptions, TierConfig, TieredCache, TieredConfig};
use stratacache::Expiry;
use support::{tiers, Host};

#[derive(Debug, Clone, Copy)]
enum Damage {
    Absent,
    Intact,
    FlipByte(usize),
    Truncate(usize),
    ForgedUnsigned,
    SignedWithOtherSecret,
    DropChunk(usize),
    GarbageChunk(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::Absent),
        3 => Just(Damage::Intact),
        2 => any::<usize>().prop_map(Damage::FlipByte),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => Just(Damage::ForgedUnsigned),
        1 => Just(Damage::SignedWithOtherSecret),
        1 => any::<usize>().prop_map(Damage::DropChunk),
        1 => any::<usize>().prop_map(Damage::GarbageChunk),
    ]
}

fn config(keyring: &Keyring) -> TieredConfig {
    let mut config = TieredConfig::new(vec![
        TierConfig {
            item_limit: 2048,
            ..TierConfig::memcached("memcached")
        },
        TierConfig::storage("s3"),
    ]);
    config.keyring = Some(keyring.clone());
    config
}

const FORGED: &str = "FORGED";

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn reads_return_the_true_value_or_load_it(
        damages in prop::collection::vec((damage(), damage()), 1..8),
        down in (any::<bool>(), any::<bool>()),
        compress in any::<bool>(),
    ) {
        let keyring = Keyring::new("k1", b"0123456789abcdef0123456789abcdef").unwrap();
        let evil = Keyring::new("k1", b"an attacker's secret, not ours!!").unwrap();
        let mut config = config(&keyring);
        config.compress_at = compress.then_some(64);
        let h = Host::new(TieredCache::new(config.clone()).unwrap(), tiers(&[2048, usize::MAX]));
        let keys: Vec<String> = (0..damages.len())
            .map(|i| if i % 2 == 0 { format!("big|v1|{i}") } else { format!("small|v1|{i}") })
            .collect();
        // A writer stores the true values everywhere.
        for key in &keys {
            let value = Host::value_of(key);
            let payload = value.clone().into_bytes();
            let steps = h.cache.lock().unwrap()
                .set_all_tiers(key, Loaded::new(value, Codec::Raw, payload), Expiry::Default, h.now(), 3, None)
                .unwrap();
            h.run_writes(steps);
        }
        // Then each tier's copy is damaged as drawn.
        for (key, (d0, d1)) in keys.iter().zip(&damages) {
            for (tier, d) in [(0usize, d0), (1, d1)] {
                let mut t = h.tiers[tier].lock().unwrap();
                let chunk_keys: Vec<String> = {
                    let mut ks: Vec<String> = t.items.keys()
                        .filter(|k| k.starts_with("tiercache.chunk") && k.contains(&key.replace('|', "%7C")))
                        .cloned().collect();
                    ks.sort();
                    ks
                };
                match *d {
                    Damage::Absent => { t.items.remove(key); }
                    Damage::Intact => {}
                    Damage::FlipByte(at) => {
                        if let Some(v) = t.items.get_mut(key) { let n = v.len(); v[at % n] ^= 0x20; }
                    }
                    Damage::Truncate(at) => {
                        if let Some(v) = t.items.get_mut(key) { let n = v.len(); v.truncate(at % n); }
                    }
                    Damage::ForgedUnsigned => {
                        let forged = encode(&EnvelopeHeader::new(Codec::Raw, 0), FORGED.as_bytes(), &EncodeOptions::new());
                        t.items.insert(key.clone(), forged);
                    }
                    Damage::SignedWithOtherSecret => {
                        let forged = encode(&EnvelopeHeader::new(Codec::Raw, 0), FORGED.as_bytes(), &EncodeOptions::new().with_signing(&evil));
                        t.items.insert(key.clone(), forged);
                    }
                    Damage::DropChunk(n) if !chunk_keys.is_empty() => {
                        t.items.remove(&chunk_keys[n % chunk_keys.len()]);
                    }
                    Damage::GarbageChunk(n) if !chunk_keys.is_empty() => {
                        let k = chunk_keys[n % chunk_keys.len()].clone();
                        let len = t.items[&k].len();
                        t.items.insert(k, FORGED.repeat(len / FORGED.len() + 1).into_bytes()[..len].to_vec());
                    }
                    Damage::DropChunk(_) | Damage::GarbageChunk(_) => {}
                }
            }
        }
        h.tiers[0].lock().unwrap().down = down.0;
        h.tiers[1].lock().unwrap().down = down.1;
        let reader = h.other_process(TieredCache::new(config).unwrap());
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let results = reader.get(&key_refs, ReadOptions::load());
        for (key, result) in keys.iter().zip(&results) {
            let value = result.lookup.clone().hit().expect("read-through always answers");
            prop_assert!(!value.contains(FORGED), "forged content returned for {}", key);
            prop_assert_eq!(&value, &Host::value_of(key));
        }
        // Anything read from a tier was verified; what was not, was loaded.
        let loads = reader.load_count();
        let stats = reader.cache.lock().unwrap().read_stats();
        prop_assert_eq!(stats.remote_hits as usize + loads, keys.len());
    }
}
