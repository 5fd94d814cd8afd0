//! Drives the tiered `Read` state machine with remote tiers whose answers the
//! fuzzer picks: honest stored values, values replayed from another key,
//! tampered or truncated copies, forged envelopes and manifests (unsigned or
//! signed with an attacker's key, claiming any chunk count or size),
//! arbitrary bytes, tier failures and wrong answer counts; leases, sleeps,
//! two interleaved reads (single-flight waits) and loader/decoder errors.
//!
//! Checks: never a panic; every read reaches `Step::Done` within a bounded
//! number of steps; `finish` returns one result per key; and when the cache
//! signs its values, every payload handed to the host's deserializer and
//! every hit is a value this host's loader produced *for that key* (nothing
//! forged, replayed under another key or tampered ever reaches the host).
#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use stratacache::chunk::Manifest;
use stratacache::envelope::{encode_for_key, Codec, EncodeOptions, EnvelopeHeader, Keyring};
use stratacache::stampede::WaitId;
use stratacache::tiered::{
    Fetched, HostValue, Loaded, LocalTierConfig, RawRead, ReadOptions, Step, TierConfig,
    TieredCache, TieredConfig,
};
use stratacache::{LeasePolicy, Lookup, RequestCache, Source};

/// Keys the reads ask for: short, long (chunked), one that hashes into the
/// same replica space, and one invalid key (refused at `read`).
const KEYS: &[&str] = &[
    "a|v1|x",
    "b|v1|#1",
    "big|v1|course",
    "a|v2|x",
    "not a valid key",
];

/// More steps than any honest read needs (leases: at most a few dozen).
const MAX_STEPS: usize = 10_000;
const MAX_PAYLOAD: usize = 64 * 1024;

struct Host {
    /// Per remote tier: what the tier holds.
    tiers: Vec<HashMap<String, Vec<u8>>>,
    /// Every payload this host's loader produced, per key.
    loaded: HashMap<String, HashSet<Vec<u8>>>,
    signed: bool,
    evil: Keyring,
    now: u64,
    counter: u64,
}

struct Run {
    read: RawRead<Vec<u8>>,
    keys: Vec<String>,
    steps: usize,
    /// Waiting for these waiters (a `Step::Wait`).
    waiting: Option<Vec<WaitId>>,
    done: bool,
}

impl Host {
    /// Bytes the fuzzer picks as the tier's answer for `key`.
    fn answer(
        &mut self,
        u: &mut Unstructured<'_>,
        tier: usize,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let honest = self.tiers[tier].get(key).cloned();
        // Choice 0 (also what an exhausted input gives) is the honest answer.
        Ok(match u.int_in_range(0u8..=9)? {
            0 | 1 => honest,
            2 => None,
            // Replayed: any value of any tier, under this key.
            3 => {
                let all: Vec<&Vec<u8>> = self.tiers.iter().flat_map(|t| t.values()).collect();
                if all.is_empty() {
                    None
                } else {
                    Some(all[u.choose_index(all.len())?].clone())
                }
            }
            // Tampered: flip one byte, or truncate.
            4 => honest.map(|mut v| {
                if !v.is_empty() {
                    let at = u.choose_index(v.len()).unwrap_or(0);
                    if u.arbitrary::<bool>().unwrap_or(false) {
                        v.truncate(at);
                    } else {
                        v[at] ^= 1u8 << u.int_in_range(0u8..=7).unwrap_or(0);
                    }
                }
                v
            }),
            5 => Some(u.arbitrary::<&[u8]>()?.to_vec()),
            // A forged value envelope, unsigned or signed with a wrong key.
            6 => {
                let mut header = EnvelopeHeader::new(Codec::Raw, u.arbitrary()?);
                if u.arbitrary()? {
                    header = header.with_soft_expiry(self.now + u.int_in_range(0..=120_000)?);
                }
                if u.arbitrary()? {
                    header = header.with_hard_expiry(self.now + u.int_in_range(0..=600_000)?);
                }
                let payload = u.arbitrary::<&[u8]>()?;
                Some(self.forge(u, key, &header, payload)?)
            }
            // A forged manifest claiming whatever the fuzzer likes.
            _ => {
                let mut header = EnvelopeHeader::new(Codec::Postcard, 0);
                header.manifest = true;
                let chunk_size = match u.int_in_range(0u8..=3)? {
                    0 => 1024,
                    1 => u.int_in_range(1024..=4096)?,
                    2 => u64::MAX,
                    _ => u.arbitrary()?,
                };
                let chunk_count: u32 = match u.int_in_range(0u8..=3)? {
                    0 => u.int_in_range(2..=8)?,
                    1 => u32::MAX,
                    2 => 4096,
                    _ => u.arbitrary()?,
                };
                let total_len = match u.int_in_range(0u8..=2)? {
                    0 => chunk_size
                        .saturating_mul(u64::from(chunk_count).saturating_sub(1))
                        .saturating_add(u.int_in_range(1..=1024)?),
                    1 => u64::MAX,
                    _ => u.arbitrary()?,
                };
                let manifest = Manifest {
                    total_len,
                    chunk_size,
                    chunk_count,
                    digest: u.arbitrary()?,
                };
                let payload = postcard::to_allocvec(&manifest).expect("manifest serializes");
                Some(self.forge(u, key, &header, &payload)?)
            }
        })
    }

    fn forge(
        &self,
        u: &mut Unstructured<'_>,
        key: &str,
        header: &EnvelopeHeader,
        payload: &[u8],
    ) -> Result<Vec<u8>> {
        let options = if u.arbitrary()? {
            EncodeOptions::new().with_signing(&self.evil)
        } else {
            EncodeOptions::new()
        };
        let options = if u.arbitrary()? {
            options.with_compression(16)
        } else {
            options
        };
        Ok(encode_for_key(key, header, payload, &options))
    }

    /// Checks a payload the core hands to the host (to decode, or as a hit).
    fn check_trusted(&self, key: &str, payload: &[u8], what: &str) {
        assert!(
            payload.len() <= MAX_PAYLOAD,
            "{what}: {} bytes",
            payload.len()
        );
        if self.signed {
            assert!(
                self.loaded
                    .get(key)
                    .is_some_and(|set| set.contains(payload)),
                "{what} for {key:?} was never loaded for that key: {payload:?}"
            );
        }
    }

    /// One step of one read. Returns false when the read is done.
    fn step(
        &mut self,
        u: &mut Unstructured<'_>,
        cache: &mut TieredCache<Vec<u8>>,
        run: &mut Run,
        notified: &mut HashSet<WaitId>,
    ) -> Result<()> {
        if let Some(waits) = &run.waiting {
            // The host waits until notified, or gives up waiting (timeout).
            // Only scheduled once every waiter was notified.
            debug_assert!(waits.iter().all(|w| notified.contains(w)));
            run.waiting = None;
            run.read.woke(cache).unwrap();
            return Ok(());
        }
        run.steps += 1;
        assert!(
            run.steps <= MAX_STEPS,
            "read not done after {MAX_STEPS} steps"
        );
        match run.read.next(cache) {
            Step::Fetch { tier, keys } => match u.int_in_range(0u8..=15)? {
                14 => {
                    // Known now or after a timeout.
                    let at = self.now + u.int_in_range(0..=10_000)?;
                    run.read
                        .failed(cache, tier, "connection refused".to_owned(), at)
                }
                15 => {
                    // A host bug: the wrong number of answers (refused; the
                    // read still waits, and its next step counts it failed).
                    let n = u.int_in_range(0..=keys.len() + 1)?;
                    let values = (0..n).map(|_| None).collect();
                    let refused = run.read.fetched(cache, tier, values).is_err();
                    assert_eq!(refused, n != keys.len());
                }
                _ => {
                    // Per key: an answer, or (one server down) a failure.
                    let mut values = Vec::with_capacity(keys.len());
                    for key in &keys {
                        values.push(match u.int_in_range(0u8..=15)? {
                            15 => Fetched::Failed("server down".to_owned()),
                            _ => self.answer(u, tier, key)?.into(),
                        });
                    }
                    run.read.fetched_outcomes(cache, tier, values).unwrap();
                }
            },
            Step::Decode { items } => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    self.check_trusted(&item.key, &item.payload, "decode item");
                    values.push(if u.int_in_range(0u8..=9)? == 9 {
                        Err("cannot unpickle".to_owned())
                    } else {
                        let weight = item.payload.len() as u64;
                        Ok(HostValue::new(item.payload, weight))
                    });
                }
                run.read.decoded(cache, values).unwrap();
            }
            Step::Load { keys } => {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    if u.int_in_range(0u8..=9)? == 9 {
                        values.push(Err("database down".to_owned()));
                        continue;
                    }
                    // Large values are chunked by the 1 KiB tier.
                    let len = match u.int_in_range(0u8..=3)? {
                        0 => u.int_in_range(0..=64)?,
                        1 => u.int_in_range(1000..=5000)?,
                        _ => u.int_in_range(0..=2048)?,
                    };
                    self.counter += 1;
                    let mut x = self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    let payload: Vec<u8> = (0..len)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect();
                    self.loaded.entry(key).or_default().insert(payload.clone());
                    values.push(Ok(Loaded::new(payload.clone(), Codec::Raw, payload)));
                }
                let ms = u.int_in_range(0..=500)?;
                run.read.loaded(cache, values, ms).unwrap();
            }
            Step::Lease { tier, items } => {
                if u.int_in_range(0u8..=7)? == 7 {
                    let at = self.now + u.int_in_range(0..=10_000)?;
                    run.read.failed(cache, tier, "timeout".to_owned(), at);
                } else {
                    let mut taken = Vec::new();
                    // Usually one answer per item; sometimes a wrong count.
                    let n = if u.int_in_range(0u8..=7)? == 7 {
                        u.int_in_range(0..=items.len() + 1)?
                    } else {
                        items.len()
                    };
                    for item in items.iter().take(n) {
                        let fresh = !self.tiers[tier].contains_key(&item.key);
                        let took = fresh && u.arbitrary::<bool>()?;
                        if took {
                            self.tiers[tier].insert(item.key.clone(), item.token.clone());
                        }
                        taken.push(took);
                    }
                    taken.resize(n, false);
                    let _ = run.read.leased(cache, taken); // a wrong count is refused
                }
            }
            Step::Sleep { ms } => {
                self.now += ms.max(1) + u.int_in_range(0..=50)?;
                run.read.slept(self.now).unwrap();
            }
            Step::Notify { waiters } => notified.extend(waiters),
            Step::Wait { waits } => run.waiting = Some(waits),
            Step::Store { tier, entries } => {
                for entry in entries {
                    // Usually stored; sometimes lost (evicted, a failed set).
                    if u.int_in_range(0u8..=9)? != 9 {
                        self.tiers[tier].insert(entry.key, entry.value);
                    }
                }
            }
            Step::Delete { tier, keys } => {
                for key in keys {
                    self.tiers[tier].remove(&key);
                }
            }
            Step::Done => run.done = true,
        }
        Ok(())
    }
}

fn start(
    u: &mut Unstructured<'_>,
    cache: &mut TieredCache<Vec<u8>>,
    request: &RequestCache<Vec<u8>>,
    now: u64,
) -> Result<Option<Run>> {
    let n = u.int_in_range(1..=4)?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push(KEYS[u.choose_index(KEYS.len())?].to_owned());
    }
    let options = match u.int_in_range(0u8..=3)? {
        2 => ReadOptions::get(),
        3 => ReadOptions::refresh(),
        _ => ReadOptions::load(),
    };
    let request = u.arbitrary::<bool>()?.then_some(request);
    Ok(cache
        .read_raw(
            keys.clone(),
            options,
            now,
            u64::from(u.arbitrary::<u16>()?),
            request,
        )
        .ok()
        .map(|read| Run {
            read,
            keys,
            steps: 0,
            waiting: None,
            done: false,
        }))
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let signed: bool = u.arbitrary()?;
    let keyring = Keyring::new("k1", b"the fuzz host's own secret!!").expect("keyring");
    let evil = Keyring::new("k1", b"an attacker's secret, not ours").expect("keyring");
    let mut config = TieredConfig::new(vec![
        TierConfig {
            item_limit: 1024,
            replicas: u.int_in_range(1..=3)?,
            leases: true,
            ..TierConfig::memcached("memcached")
        },
        TierConfig::storage("s3"),
    ]);
    config.keyring = signed.then_some(keyring);
    config.compress_at = u.arbitrary::<bool>()?.then_some(64);
    config.max_payload_len = MAX_PAYLOAD;
    config.stale_ms = u.int_in_range(0..=60_000)?;
    config.default_ttl_ms = Some(1_000 + u.int_in_range(0..=120_000)?);
    config.strict = u.int_in_range(0u8..=7)? == 7;
    if u.arbitrary()? {
        config.lease = Some(LeasePolicy {
            ttl_ms: 1_000,
            max_wait_ms: u.int_in_range(0..=300)?,
            poll_interval_ms: u.int_in_range(10..=100)?,
        });
    }
    // A small local tier (the default preallocates for 10,000 entries,
    // which would dominate the time of a run).
    config.local = (!u.arbitrary::<bool>()?).then_some(LocalTierConfig {
        max_entries: 64,
        max_weight: 1 << 20,
        ttl_ms: 60_000,
    });
    let mut cache = TieredCache::new(config).expect("valid config");
    let mut host = Host {
        tiers: vec![HashMap::new(), HashMap::new()],
        loaded: HashMap::new(),
        signed,
        evil,
        now: 1_700_000_000_000,
        counter: 0,
    };
    let mut request = RequestCache::new();
    let rounds = u.int_in_range(1..=6)?;
    for _ in 0..rounds {
        host.now += u.int_in_range(0..=200_000)?;
        let mut runs: Vec<Run> = Vec::new();
        for _ in 0..u.int_in_range(1..=2)? {
            if let Some(run) = start(&mut u, &mut cache, &request, host.now)? {
                runs.push(run);
            }
        }
        let mut notified = HashSet::new();
        // Interleave the reads as the fuzzer picks; once the input runs
        // out, every choice is 0/false and the reads complete.
        while runs.iter().any(|r| !r.done) {
            let live: Vec<usize> = (0..runs.len()).filter(|&i| !runs[i].done).collect();
            let mut i = live[u.choose_index(live.len()).unwrap_or(0)];
            let blocked = |r: &Run| {
                r.waiting
                    .as_ref()
                    .is_some_and(|w| !w.iter().all(|id| notified.contains(id)))
            };
            if blocked(&runs[i]) {
                match live.iter().copied().find(|&j| !blocked(&runs[j])) {
                    // Let another read make progress, unless the host's
                    // wait times out now.
                    Some(j) if !u.arbitrary::<bool>().unwrap_or(false) => i = j,
                    _ => {
                        runs[i].waiting = None;
                        runs[i].read.woke(&mut cache).unwrap();
                        continue;
                    }
                }
            }
            // Out of input mid-step: the read is left owing an answer, which
            // its next step counts as a failure; the loop goes on.
            let _ = host.step(&mut u, &mut cache, &mut runs[i], &mut notified);
        }
        for run in runs {
            let keys = run.keys.clone();
            let results = match run.read.finish(&mut cache, Some(&mut request)) {
                Ok(results) => results,
                Err(_) => continue, // strict mode: a tier failed
            };
            assert_eq!(results.len(), keys.len());
            for (result, key) in results.iter().zip(&keys) {
                assert_eq!(&result.key, key);
                if let Lookup::Hit(value) = &result.lookup {
                    assert!(result.source.is_some());
                    if result.source != Some(Source::Request) {
                        host.check_trusted(key, value, "hit");
                    }
                }
            }
        }
        if u.arbitrary::<bool>().unwrap_or(false) {
            request.clear_all();
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
