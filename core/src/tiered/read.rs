//! [`Read`]: one read of one or many keys, as a state machine.

#[cfg(feature = "precheck")]
use std::borrow::Cow;

use crate::chunk::Manifest;
use crate::envelope::{self, EnvelopeHeader};
use crate::lookup::Lookup;
use crate::namespace::Namespace;
use crate::request::RequestCache;
use crate::stampede::{
    lease_key, pick_replica, AbandonPolicy, Claim, Freshness, LeadToken, LeaseDecision,
    LeaseOutcome, LeaseWait, WaitId,
};

use super::protocol::{Abandon, AnswerError, Fetched, Reaper};
#[cfg(feature = "write-behind")]
use super::SealJob;
use super::{
    check_key, mix, unit_random, DecodeItem, HostValue, InvalidKey, LeaseItem, Loaded, ReadOptions,
    Step, StoreItem, TierFailure, TieredCache,
};

/// After this many rounds of waiting for other readers, a reader loads its
/// keys itself (their leaders keep failing or never report).
const MAX_WAIT_ROUNDS: u32 = 3;

/// Which tier answered a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The request tier.
    Request,
    /// The local (in-process) tier.
    Local,
    /// Remote tier `n` (index in the configuration).
    Tier(usize),
    /// This read's loader.
    Loader,
    /// Another read's loader in this process (single-flight).
    Flight,
}

/// The answer for one key of a read.
#[derive(Debug, Clone, PartialEq)]
// The key first: `finish` then writes it straight into place (x86 stalls on
// the stack copy it makes otherwise; wasm has no such stall, and there the
// layout costs 100 bytes of the module).
#[cfg_attr(not(target_family = "wasm"), repr(C))]
pub struct ReadResult<V, E = String> {
    /// The key.
    pub key: String,
    /// The value, or a miss (a plain get that no tier had, or a failed load).
    pub lookup: Lookup<V>,
    /// Which tier answered, for a hit.
    pub source: Option<Source>,
    /// The value is stale or due for an early refresh, and this reader was
    /// chosen to refresh it: reload it with [`ReadOptions::refresh`] (in the
    /// background, e.g. `ctx.waitUntil` in a worker). Others keep serving it.
    pub refresh: bool,
    /// The loader's error, for a key whose load failed (the host's own
    /// error type).
    pub error: Option<E>,
}

enum State<V, E> {
    Pending,
    Found(V, Source),
    Failed(E),
    /// Given up without an error value: the host did not answer for the
    /// key, or a strict-mode tier failure ended the read.
    GaveUp,
}

/// A value found in a remote tier, awaiting the host's deserializer.
struct RemoteHit {
    tier: usize,
    header: EnvelopeHeader,
    payload: Vec<u8>,
    /// The envelope, kept for back-filling faster tiers.
    envelope: Option<Vec<u8>>,
}

struct Slot<V, E> {
    state: State<V, E>,
    refresh: bool,
    /// What a key not answered locally needs on its way through the remote
    /// tiers and the loader (boxed: most keys of a hot page never need it).
    remote: Option<Box<RemoteState>>,
}

#[derive(Default)]
struct RemoteState {
    /// Ask the remote tiers for this key in the current pass.
    fetch: bool,
    /// The key as asked of the tier in the current fetch (a replica key).
    fetched_as: Option<String>,
    manifest: Option<Manifest>,
    hit: Option<RemoteHit>,
    lead: Option<LeadToken>,
    wait: Option<WaitId>,
    lease: Option<LeaseWait>,
    holds_lease: bool,
    load_now: bool,
}

impl<V, E> Slot<V, E> {
    fn pending() -> Self {
        Slot {
            state: State::Pending,
            refresh: false,
            remote: Some(Box::new(RemoteState {
                fetch: true,
                ..RemoteState::default()
            })),
        }
    }

    /// A slot of a key not looked up yet.
    fn gave_up() -> Self {
        Slot {
            state: State::GaveUp,
            refresh: false,
            remote: None,
        }
    }

    fn is_pending(&self) -> bool {
        matches!(self.state, State::Pending)
    }

    /// The remote state of a key that was not answered locally.
    fn r(&mut self) -> &mut RemoteState {
        self.remote.get_or_insert_with(Box::default)
    }

    fn lead(&self) -> Option<LeadToken> {
        self.remote.as_ref().and_then(|r| r.lead)
    }

    fn wait(&self) -> Option<WaitId> {
        self.remote.as_ref().and_then(|r| r.wait)
    }

    /// Waiting for another process's lease to be released.
    fn in_lease_retry(&self) -> bool {
        self.is_pending()
            && self
                .remote
                .as_ref()
                .is_some_and(|r| r.lead.is_some() && !r.load_now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Remote(usize),
    Chunks(usize),
    Decode,
    Claim,
    Lease,
    Load,
    Notify,
    Store(usize),
    Wait,
    AfterWait,
    Sleep(u64),
    Release,
    Done,
}

/// What the host owes the read.
enum Awaiting {
    Nothing,
    Fetch {
        tier: usize,
        slots: Vec<usize>,
    },
    Chunks {
        tier: usize,
        slots: Vec<(usize, usize)>,
    },
    Decode(Vec<usize>),
    Lease {
        tier: usize,
        slots: Vec<usize>,
    },
    Load(Vec<usize>),
    Wait(Vec<usize>),
    Sleep,
}

/// One read in progress, driven through the untyped reply methods: the
/// form FFI bindings use (a reply to the wrong step, or with the wrong
/// number of values, is an [`AnswerError`]). Rust hosts use the typed
/// [`Read`](super::Read), whose step handles make such replies impossible.
///
/// Every call that needs shared state takes the [`TieredCache`], so the
/// host holds its lock only for the call, never across its own I/O. End
/// every read with [`finish`](RawRead::finish) (or
/// [`cancel`](RawRead::cancel)); a read dropped before that still releases
/// its single-flight claims (the cache reaps them on its next call).
#[must_use = "drive the read to `Step::Done` and `finish` it"]
pub struct RawRead<V, E = String> {
    keys: Vec<String>,
    slots: Vec<Slot<V, E>>,
    options: ReadOptions,
    now: u64,
    random: u64,
    phase: Phase,
    awaiting: Awaiting,
    stores: Vec<Vec<StoreItem>>,
    /// With [`RawRead::defer_sealing`]: writes handed out unsealed.
    jobs: Option<super::writes::Jobs>,
    notify: Vec<WaitId>,
    lease_tier: Option<usize>,
    releases: Vec<String>,
    wait_rounds: u32,
    failure: Option<TierFailure<E>>,
    reaper: Reaper,
}

impl<V: Clone, E> RawRead<V, E> {
    pub(super) fn start(
        cache: &mut TieredCache<V>,
        keys: Vec<String>,
        options: ReadOptions,
        now: u64,
        random: u64,
        request: Option<&RequestCache<V>>,
    ) -> Result<Self, InvalidKey> {
        cache.read_stats.reads += 1;
        cache.read_stats.keys += keys.len() as u64;
        cache.reap_abandoned();
        // The whole of a warm page's read is this loop. Its slots are
        // made first and then filled field by field: a slot built whole
        // goes through the stack, and copying it into the vector stalls on
        // store forwarding (about 10 ns a key).
        let mut slots: Vec<Slot<V, E>> = std::iter::repeat_with(Slot::gave_up)
            .take(keys.len())
            .collect();
        let mut pending = false;
        let request = request.filter(|_| !options.skip_request_tier);
        for (index, (key, slot)) in keys.iter().zip(&mut slots).enumerate() {
            if let Some(request) = request {
                if let Lookup::Hit(value) = request.get(&cache.config.request_namespace, key) {
                    cache.read_stats.request_hits += 1;
                    slot.state = State::Found(value.clone(), Source::Request);
                    continue;
                }
            }
            match local_hit(cache, key, index, &options, now, random) {
                Some((value, refresh)) => {
                    slot.state = State::Found(value, Source::Local);
                    slot.refresh = refresh;
                }
                None => {
                    // Keys answered locally were checked when they were
                    // stored; a key that goes to the remote tiers is checked
                    // here (before later keys are looked up or claimed).
                    check_key(key)?;
                    pending = true;
                    *slot = Slot::pending();
                }
            }
        }
        Ok(RawRead {
            reaper: cache.reaper.clone(),
            slots,
            keys,
            options,
            now,
            random,
            // Every key answered by the request or local tier (the hot path
            // of a warm page): nothing for the remote phases to look at.
            phase: if pending {
                Phase::Remote(0)
            } else {
                Phase::Done
            },
            awaiting: Awaiting::Nothing,
            stores: Vec::new(),
            jobs: None,
            notify: Vec::new(),
            lease_tier: None,
            releases: Vec::new(),
            wait_rounds: 0,
            failure: None,
        })
    }

    /// The next thing the host must do. Asking again without answering the
    /// last step counts that step as failed (the typed [`Read`](super::Read)
    /// makes this impossible).
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// read.fetched(&mut cache, 0, vec![None]).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Load { .. }));
    /// ```
    pub fn next(&mut self, cache: &mut TieredCache<V>) -> Step {
        if !cache.wakeups.is_empty() {
            // Readers left waiting by a dropped read (reaped when a read
            // starts, or by `poll_wakeups`): this read wakes them.
            self.notify.append(&mut cache.wakeups);
        }
        if !matches!(self.awaiting, Awaiting::Nothing) {
            // The host asked again without reporting: count it as a failure
            // of what was asked, so the read can still complete.
            self.give_up_awaiting(cache);
        }
        let tiers = cache.config.tiers.len();
        loop {
            match self.phase {
                Phase::Remote(tier) => {
                    if self.options.force_miss || tier >= tiers {
                        self.phase = Phase::Decode;
                        continue;
                    }
                    let slots: Vec<usize> = (0..self.slots.len())
                        .filter(|&i| {
                            let slot = &self.slots[i];
                            slot.is_pending()
                                && slot
                                    .remote
                                    .as_ref()
                                    .is_some_and(|r| r.fetch && r.hit.is_none())
                        })
                        .collect();
                    if slots.is_empty() {
                        self.phase = Phase::Decode;
                        continue;
                    }
                    if !cache.tier_available(tier, self.now) {
                        self.phase = Phase::Remote(tier + 1);
                        continue;
                    }
                    let replicas = cache.config.tiers[tier].replicas;
                    let keys: Vec<String> = slots
                        .iter()
                        .map(|&i| {
                            let key = &self.keys[i];
                            let asked = if replicas > 1 {
                                pick_replica(
                                    key,
                                    replicas,
                                    mix(self.random, (i as u64) | (1 << 40)),
                                )
                            } else {
                                key.clone()
                            };
                            self.slots[i].r().fetched_as = Some(asked.clone());
                            asked
                        })
                        .collect();
                    cache.tier_stats[tier].fetches += 1;
                    self.awaiting = Awaiting::Fetch { tier, slots };
                    return Step::Fetch { tier, keys };
                }
                Phase::Chunks(tier) => {
                    let mut slots = Vec::new();
                    let mut keys = Vec::new();
                    for (i, slot) in self.slots.iter().enumerate() {
                        let Some(remote) = &slot.remote else { continue };
                        if let (Some(manifest), Some(asked)) =
                            (&remote.manifest, &remote.fetched_as)
                        {
                            let chunk_keys = manifest.chunk_keys(asked);
                            slots.push((i, chunk_keys.len()));
                            keys.extend(chunk_keys);
                        }
                    }
                    if slots.is_empty() {
                        self.phase = Phase::Remote(tier + 1);
                        continue;
                    }
                    cache.tier_stats[tier].fetches += 1;
                    self.awaiting = Awaiting::Chunks { tier, slots };
                    return Step::Fetch { tier, keys };
                }
                Phase::Decode => {
                    for remote in self.slots.iter_mut().filter_map(|s| s.remote.as_mut()) {
                        remote.fetch = false;
                    }
                    let mut slots = Vec::new();
                    let mut items = Vec::new();
                    for (index, slot) in self.slots.iter_mut().enumerate() {
                        if let Some(hit) = slot.remote.as_mut().and_then(|r| r.hit.as_mut()) {
                            slots.push(index);
                            items.push(DecodeItem {
                                index,
                                key: self.keys[index].clone(),
                                codec: hit.header.codec,
                                payload: std::mem::take(&mut hit.payload),
                            });
                        }
                    }
                    self.phase = Phase::Claim;
                    if !items.is_empty() {
                        self.awaiting = Awaiting::Decode(slots);
                        return Step::Decode { items };
                    }
                }
                Phase::Claim => {
                    self.claim(cache);
                    continue;
                }
                Phase::Lease => {
                    let policy = cache
                        .config
                        .lease
                        .expect("lease phase only with a lease policy");
                    let tier = (0..tiers).find(|&t| {
                        cache.config.tiers[t].leases && cache.tier_available(t, self.now)
                    });
                    let slots: Vec<usize> = (0..self.slots.len())
                        .filter(|&i| self.slots[i].in_lease_retry())
                        .collect();
                    let Some(tier) = tier.filter(|_| !slots.is_empty()) else {
                        slots
                            .iter()
                            .for_each(|&i| self.slots[i].r().load_now = true);
                        self.phase = Phase::Load;
                        continue;
                    };
                    self.lease_tier = Some(tier);
                    let items = slots
                        .iter()
                        .map(|&i| LeaseItem {
                            key: lease_key(&self.keys[i]),
                            token: cache.new_token().to_be_bytes().to_vec(),
                            ttl_ms: policy.ttl_ms,
                        })
                        .collect();
                    self.awaiting = Awaiting::Lease { tier, slots };
                    return Step::Lease { tier, items };
                }
                Phase::Load => {
                    let slots: Vec<usize> = (0..self.slots.len())
                        .filter(|&i| {
                            self.slots[i].is_pending()
                                && self.slots[i].remote.as_ref().is_some_and(|r| r.load_now)
                        })
                        .collect();
                    self.phase = Phase::Notify;
                    if !slots.is_empty() {
                        let keys = slots.iter().map(|&i| self.keys[i].clone()).collect();
                        self.awaiting = Awaiting::Load(slots);
                        return Step::Load { keys };
                    }
                }
                Phase::Notify => {
                    self.phase = Phase::Store(0);
                    if !self.notify.is_empty() {
                        return Step::Notify {
                            waiters: std::mem::take(&mut self.notify),
                        };
                    }
                }
                Phase::Store(tier) => {
                    if tier >= tiers {
                        self.phase = Phase::Wait;
                        continue;
                    }
                    self.phase = Phase::Store(tier + 1);
                    let entries = self
                        .stores
                        .get_mut(tier)
                        .map(std::mem::take)
                        .unwrap_or_default();
                    if entries.is_empty() || !cache.tier_available(tier, self.now) {
                        continue;
                    }
                    let stats = &mut cache.tier_stats[tier];
                    stats.writes += 1;
                    stats.bytes_written +=
                        entries.iter().map(|e| e.value.len() as u64).sum::<u64>();
                    return Step::Store { tier, entries };
                }
                Phase::Wait => {
                    let slots: Vec<usize> = (0..self.slots.len())
                        .filter(|&i| self.slots[i].wait().is_some())
                        .collect();
                    self.phase = Phase::AfterWait;
                    if !slots.is_empty() {
                        let waits = slots.iter().filter_map(|&i| self.slots[i].wait()).collect();
                        self.awaiting = Awaiting::Wait(slots);
                        return Step::Wait { waits };
                    }
                }
                Phase::AfterWait => {
                    self.phase = if self.slots.iter().any(Slot::in_lease_retry) {
                        let after = cache.config.lease.map_or(0, |p| p.poll_interval_ms);
                        Phase::Sleep(after)
                    } else if self.options.load
                        && self
                            .slots
                            .iter()
                            .any(|s| s.is_pending() && s.lead().is_none())
                    {
                        Phase::Claim
                    } else {
                        Phase::Release
                    };
                }
                Phase::Sleep(ms) => {
                    self.awaiting = Awaiting::Sleep;
                    return Step::Sleep { ms };
                }
                Phase::Release => {
                    self.phase = Phase::Done;
                    if let (Some(tier), false) = (self.lease_tier, self.releases.is_empty()) {
                        cache.tier_stats[tier].writes += 1;
                        return Step::Delete {
                            tier,
                            keys: std::mem::take(&mut self.releases),
                        };
                    }
                }
                Phase::Done => return Step::Done,
            }
        }
    }

    /// Single-flight claims for keys no tier had; then leases or loading.
    fn claim(&mut self, cache: &mut TieredCache<V>) {
        if !self.options.load {
            self.phase = Phase::Notify;
            return;
        }
        let give_up_waiting = self.wait_rounds >= MAX_WAIT_ROUNDS;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !slot.is_pending() || slot.lead().is_some() || slot.wait().is_some() {
                continue;
            }
            // Another reader may have loaded the key since this read missed
            // in the remote tiers: its flight is over, but its value is in
            // the local tier. Take it rather than load a second time.
            if !self.options.force_miss {
                if let Lookup::Hit(value) = cache.peek_local(&self.keys[i], self.now).cloned() {
                    cache.read_stats.local_hits += 1;
                    slot.state = State::Found(value, Source::Local);
                    continue;
                }
            }
            if give_up_waiting {
                slot.r().load_now = true;
                continue;
            }
            match cache.flights.claim(self.keys[i].clone()) {
                Claim::Lead(token) => slot.r().lead = Some(token),
                Claim::Wait(id) => slot.r().wait = Some(id),
            }
        }
        let use_leases = cache.config.lease.is_some() && !self.options.force_miss;
        for slot in &mut self.slots {
            if slot.is_pending() && slot.lead().is_some() && !use_leases {
                slot.r().load_now = true;
            }
        }
        self.phase = if use_leases {
            Phase::Lease
        } else {
            Phase::Load
        };
    }

    /// The host's answer to [`Step::Fetch`]: one entry per key asked, in
    /// order (`None`: the tier does not have it). Shorthand for
    /// [`fetched_outcomes`](RawRead::fetched_outcomes) with no per-key
    /// failure.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// read.fetched(&mut cache, 0, vec![None]).unwrap(); // not found
    /// ```
    pub fn fetched(
        &mut self,
        cache: &mut TieredCache<V>,
        tier: usize,
        values: Vec<Option<Vec<u8>>>,
    ) -> Result<(), AnswerError> {
        let outcomes = values.into_iter().map(Fetched::from).collect();
        self.fetched_outcomes(cache, tier, outcomes)
    }

    /// The host's answer to [`Step::Fetch`], per key: found, not found, or
    /// failed (the server holding that key is down). Keys that failed go on
    /// to the next tier or the loader; the others are kept. A batch where
    /// every key failed counts as a failure of the tier.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// read.fetched_outcomes(&mut cache, 0, vec![Fetched::Failed("node down".into())]).unwrap();
    /// assert_eq!(cache.tier_stats()[0].errors, 1);
    /// ```
    pub fn fetched_outcomes(
        &mut self,
        cache: &mut TieredCache<V>,
        tier: usize,
        values: Vec<Fetched<E>>,
    ) -> Result<(), AnswerError> {
        let expected = match &self.awaiting {
            Awaiting::Fetch { tier: asked, slots } if *asked == tier => slots.len(),
            Awaiting::Chunks { tier: asked, slots } if *asked == tier => {
                slots.iter().map(|s| s.1).sum()
            }
            Awaiting::Fetch { tier: asked, .. } | Awaiting::Chunks { tier: asked, .. } => {
                return Err(AnswerError::WrongTier {
                    asked: *asked,
                    answered: tier,
                })
            }
            other => return Err(AnswerError::wrong_step(other.name(), "fetch")),
        };
        if values.len() != expected {
            return Err(AnswerError::WrongCount {
                step: "fetch",
                expected,
                got: values.len(),
            });
        }
        let failed = values.iter().filter(|v| v.is_failed()).count();
        if failed > 0 && failed == values.len() {
            // Nothing came back: the tier is down, not one of its servers.
            let error = values.into_iter().find_map(Fetched::into_error);
            self.tier_down(cache, tier, error, self.now);
            return Ok(());
        }
        if failed > 0 {
            cache.tier_stats[tier].errors += 1;
            if cache.config.strict {
                if let Some(error) = values.into_iter().find_map(Fetched::into_error) {
                    self.awaiting = Awaiting::Nothing;
                    self.fail_strict(cache, tier, error);
                }
                return Ok(());
            }
        }
        cache.tier_succeeded(tier);
        match std::mem::replace(&mut self.awaiting, Awaiting::Nothing) {
            Awaiting::Fetch { slots, .. } => {
                for (i, value) in slots.into_iter().zip(values) {
                    match value {
                        Fetched::Found(bytes) => {
                            cache.tier_stats[tier].bytes_read += bytes.len() as u64;
                            self.accept(cache, tier, i, bytes, false);
                        }
                        #[cfg(feature = "precheck")]
                        Fetched::Prechecked(p) => {
                            cache.tier_stats[tier].bytes_read += p.bytes.len() as u64;
                            self.accept_prechecked(cache, tier, i, p);
                        }
                        Fetched::NotFound => cache.tier_stats[tier].misses += 1,
                        // Left for the next tier (its `fetch` flag stays on).
                        Fetched::Failed(_) => {}
                    }
                }
                self.phase = Phase::Chunks(tier);
            }
            Awaiting::Chunks { slots, .. } => {
                let mut values = values.into_iter();
                for (i, count) in slots {
                    let chunks: Vec<Option<Vec<u8>>> =
                        values.by_ref().take(count).map(Fetched::found).collect();
                    cache.tier_stats[tier].bytes_read +=
                        chunks.iter().flatten().map(|c| c.len() as u64).sum::<u64>();
                    let manifest = self.slots[i]
                        .r()
                        .manifest
                        .take()
                        .expect("slot asked for chunks has a manifest");
                    match manifest.reassemble(&chunks) {
                        Ok(envelope) => {
                            cache.tier_stats[tier].chunked_reads += 1;
                            self.accept(cache, tier, i, envelope, true);
                        }
                        Err(_) => {
                            cache.tier_stats[tier].chunk_misses += 1;
                            cache.tier_stats[tier].misses += 1;
                        }
                    }
                }
                self.phase = Phase::Remote(tier + 1);
            }
            _ => unreachable!("checked above"),
        }
        Ok(())
    }

    /// Checks one value from a remote tier; a usable one becomes a hit
    /// awaiting decode, a manifest awaits its chunks, anything else is a miss.
    fn accept(
        &mut self,
        cache: &mut TieredCache<V>,
        tier: usize,
        i: usize,
        bytes: Vec<u8>,
        from_chunks: bool,
    ) {
        let options = cache.decode_options();
        // Signatures are bound to keys: the manifest to the key it is stored
        // under, the value to the key it is read under. A signed value
        // copied to another key is refused.
        // Only a key fetched under another name (a replica) needs the header
        // peeked first (most values are not: no second header parse for them).
        let fetched_as = self.slots[i]
            .remote
            .as_ref()
            .and_then(|r| r.fetched_as.as_deref())
            .filter(|asked| *asked != self.keys[i]);
        let bound_to = match fetched_as {
            Some(asked)
                if !from_chunks && envelope::peek_header(&bytes).is_ok_and(|h| h.manifest) =>
            {
                asked
            }
            _ => &self.keys[i],
        };
        let decoded = match envelope::decode_for_key(bound_to, &bytes, &options) {
            Ok(decoded) => decoded,
            Err(_) => {
                cache.tier_stats[tier].rejected += 1;
                return;
            }
        };
        if decoded.header.manifest {
            match Manifest::from_decoded(&decoded, &cache.manifest_limits()) {
                Ok(manifest) if !from_chunks => self.slots[i].r().manifest = Some(manifest),
                _ => cache.tier_stats[tier].rejected += 1,
            }
            return;
        }
        let header = decoded.header;
        match Freshness::at(self.now, header.soft_expiry_ms, header.hard_expiry_ms) {
            Freshness::Expired => {
                cache.tier_stats[tier].expired += 1;
                return;
            }
            Freshness::Stale => cache.tier_stats[tier].stale_served += 1,
            Freshness::Fresh => {}
        }
        cache.tier_stats[tier].hits += 1;
        let backfill = (0..tier).any(|t| cache.config.tiers[t].backfill);
        // The WebAssembly build (no `precheck`) keeps the plain copy: smaller.
        #[cfg(not(feature = "precheck"))]
        let (payload, envelope) = (decoded.payload.into_owned(), backfill.then_some(bytes));
        #[cfg(feature = "precheck")]
        let (payload, envelope) = match decoded.payload {
            // Not kept for a back-fill: the envelope's own buffer becomes the
            // payload (moved down in place, no allocation per value).
            Cow::Borrowed(body) if !backfill => {
                let start = body.as_ptr() as usize - bytes.as_ptr() as usize;
                let end = start + body.len();
                let mut bytes = bytes;
                bytes.truncate(end);
                bytes.drain(..start);
                (bytes, None)
            }
            payload => (payload.into_owned(), backfill.then_some(bytes)),
        };
        self.slots[i].r().hit = Some(RemoteHit {
            tier,
            header,
            payload,
            envelope,
        });
    }

    /// Counts a value found in `tier` as a hit (served stale or fresh) or
    /// expired; false when expired (as `accept` does).
    #[cfg(feature = "precheck")]
    fn counted_fresh(
        cache: &mut TieredCache<V>,
        tier: usize,
        header: &EnvelopeHeader,
        now: u64,
    ) -> bool {
        match Freshness::at(now, header.soft_expiry_ms, header.hard_expiry_ms) {
            Freshness::Expired => {
                cache.tier_stats[tier].expired += 1;
                return false;
            }
            Freshness::Stale => cache.tier_stats[tier].stale_served += 1,
            Freshness::Fresh => {}
        }
        cache.tier_stats[tier].hits += 1;
        true
    }

    /// A value the host checked (`Prechecker`): taken as is when it was
    /// checked for the key this slot reads under and passed as a plain
    /// value envelope; anything else goes through [`Self::accept`].
    #[cfg(feature = "precheck")]
    fn accept_prechecked(
        &mut self,
        cache: &mut TieredCache<V>,
        tier: usize,
        i: usize,
        checked: super::Prechecked,
    ) {
        let fetched_as = self.slots[i]
            .remote
            .as_ref()
            .and_then(|r| r.fetched_as.as_deref());
        let same_key =
            fetched_as.unwrap_or(&self.keys[i]) == self.keys[i] && checked.key == self.keys[i];
        let (header, start, end) = match checked.value {
            Some(value) if same_key => value,
            _ => return self.accept(cache, tier, i, checked.into_bytes(), false),
        };
        if !Self::counted_fresh(cache, tier, &header, self.now) {
            return;
        }
        let backfill = (0..tier).any(|t| cache.config.tiers[t].backfill);
        let mut bytes = checked.bytes;
        let (payload, envelope) = if backfill {
            (bytes[start..end].to_vec(), Some(bytes))
        } else {
            bytes.truncate(end);
            bytes.drain(..start);
            (bytes, None)
        };
        self.slots[i].r().hit = Some(RemoteHit {
            tier,
            header,
            payload,
            envelope,
        });
    }

    /// The host's answer to [`Step::Decode`]: one result per item, in order.
    /// An `Err` (the host could not deserialize) is counted and the key is
    /// treated as a miss.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// // Not a decode step: refused, the read still waits for its fetch.
    /// assert!(read.decoded(&mut cache, vec![]).is_err());
    /// ```
    pub fn decoded(
        &mut self,
        cache: &mut TieredCache<V>,
        values: Vec<Result<HostValue<V>, E>>,
    ) -> Result<(), AnswerError> {
        let Awaiting::Decode(slots) = &self.awaiting else {
            return Err(AnswerError::wrong_step(self.awaiting.name(), "decode"));
        };
        check_count("decode", slots.len(), values.len())?;
        self.decode_answer(cache, values.into_iter().map(Result::ok));
        Ok(())
    }

    fn decode_answer(
        &mut self,
        cache: &mut TieredCache<V>,
        values: impl Iterator<Item = Option<HostValue<V>>>,
    ) {
        let Awaiting::Decode(slots) = std::mem::replace(&mut self.awaiting, Awaiting::Nothing)
        else {
            return;
        };
        let mut values = values.into_iter();
        for i in slots {
            let hit = self.slots[i]
                .r()
                .hit
                .take()
                .expect("decoded slot has a hit");
            let Some(Some(host)) = values.next() else {
                cache.read_stats.decode_errors += 1;
                continue;
            };
            let key = self.keys[i].clone();
            let header = hit.header;
            cache.fill_local(
                &key,
                &host.value,
                host.weight,
                header.soft_expiry_ms,
                header.hard_expiry_ms,
                header.recompute_cost_ms,
                self.now,
            );
            // With deferred sealing, a back-fill goes out as a job (the
            // envelope moved into it, not copied).
            #[cfg(feature = "write-behind")]
            let backfill = match (&mut self.jobs, hit.envelope) {
                (Some(jobs), Some(envelope)) => {
                    let faster = (0..hit.tier).filter(|&t| cache.config.tiers[t].backfill);
                    let faster: Vec<usize> = faster.collect();
                    let hard = header.hard_expiry_ms;
                    let job =
                        cache.seal_job(&key, None, envelope, faster.into_iter(), hard, self.now);
                    jobs.extend(job);
                    None
                }
                (_, envelope) => envelope,
            };
            #[cfg(not(feature = "write-behind"))]
            let backfill = &hit.envelope;
            #[cfg(feature = "write-behind")]
            let backfill = &backfill;
            if let Some(envelope) = backfill {
                let faster: Vec<usize> = (0..hit.tier)
                    .filter(|&t| cache.config.tiers[t].backfill)
                    .collect();
                cache.plan_stores(
                    &mut self.stores,
                    faster.into_iter(),
                    &key,
                    envelope,
                    header.hard_expiry_ms,
                    self.now,
                );
            }
            let due = cache.refresh_due(
                header.soft_expiry_ms,
                header.recompute_cost_ms,
                self.now,
                || unit_random(mix(self.random, i as u64)),
            );
            if due && cache.claim_refresh(&key, self.now) {
                cache.tier_stats[hit.tier].early_refreshes += 1;
                self.slots[i].refresh = true;
            }
            cache.read_stats.remote_hits += 1;
            // A key found after waiting on another process's lease: our own
            // in-process waiters get it too.
            if let Some(token) = self.slots[i].r().lead.take() {
                self.hand_off(cache, token, &host.value);
            }
            self.slots[i].state = State::Found(host.value, Source::Tier(hit.tier));
        }
    }

    /// The host's answer to [`Step::Lease`]: for each item, whether `add`
    /// took the lease.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// assert!(read.leased(&mut cache, vec![true]).is_err()); // no lease asked
    /// ```
    pub fn leased(
        &mut self,
        cache: &mut TieredCache<V>,
        taken: Vec<bool>,
    ) -> Result<(), AnswerError> {
        let Awaiting::Lease { slots, .. } = &self.awaiting else {
            return Err(AnswerError::wrong_step(self.awaiting.name(), "lease"));
        };
        check_count("lease", slots.len(), taken.len())?;
        let Awaiting::Lease { tier, slots } =
            std::mem::replace(&mut self.awaiting, Awaiting::Nothing)
        else {
            unreachable!("checked above")
        };
        cache.tier_succeeded(tier);
        let policy = cache.config.lease.expect("leases only with a lease policy");
        for (i, taken) in slots.into_iter().zip(taken) {
            let outcome = if taken {
                LeaseOutcome::Acquired
            } else {
                LeaseOutcome::Held
            };
            let now = self.now;
            let slot = self.slots[i].r();
            let wait = slot
                .lease
                .get_or_insert_with(|| LeaseWait::new(policy, now));
            match wait.decide(outcome, false, now) {
                LeaseDecision::Load => {
                    slot.holds_lease = true;
                    slot.load_now = true;
                }
                LeaseDecision::LoadWithoutLease | LeaseDecision::ServeStale => slot.load_now = true,
                LeaseDecision::WaitAndRetry { .. } => {
                    cache.tier_stats[tier].lock_waits += 1;
                }
            }
        }
        // Keys still waiting on a lease sleep and retry after the loads.
        self.phase = Phase::Load;
        Ok(())
    }

    /// The read's time (ms): when it started, moved on by
    /// [`slept`](RawRead::slept) and [`failed`](RawRead::failed).
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// assert_eq!(read.now(), 0);
    /// ```
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The host's answer to [`Step::Sleep`], with the time after sleeping:
    /// the keys waiting on leases are fetched again.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// assert!(read.slept(10).is_err()); // no sleep asked
    /// ```
    pub fn slept(&mut self, now: u64) -> Result<(), AnswerError> {
        if !matches!(self.awaiting, Awaiting::Sleep) {
            return Err(AnswerError::wrong_step(self.awaiting.name(), "sleep"));
        }
        self.awaiting = Awaiting::Nothing;
        self.now = self.now.max(now);
        for slot in &mut self.slots {
            let retry = slot.in_lease_retry();
            if let Some(remote) = &mut slot.remote {
                remote.fetch = retry;
            }
        }
        self.phase = Phase::Remote(0);
        Ok(())
    }

    /// The host's answer to [`Step::Load`]: one result per key, in order,
    /// and how long the loader took (the recompute cost XFetch uses). An
    /// `Err` is the loader's error for that key: the key is a miss with that
    /// error, and readers waiting for it are released to try themselves.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// use stratacache::{envelope::Codec, tiered::Loaded};
    /// read.fetched(&mut cache, 0, vec![None]).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Load { .. }));
    /// let value = Loaded::new("v".to_string(), Codec::Raw, b"v".to_vec());
    /// read.loaded(&mut cache, vec![Ok(value)], 5).unwrap();
    /// ```
    pub fn loaded(
        &mut self,
        cache: &mut TieredCache<V>,
        values: Vec<Result<Loaded<V>, E>>,
        load_ms: u64,
    ) -> Result<(), AnswerError> {
        let Awaiting::Load(slots) = &self.awaiting else {
            return Err(AnswerError::wrong_step(self.awaiting.name(), "load"));
        };
        check_count("load", slots.len(), values.len())?;
        self.load_answer(cache, values.into_iter().map(Some), load_ms);
        Ok(())
    }

    fn load_answer(
        &mut self,
        cache: &mut TieredCache<V>,
        values: impl Iterator<Item = Option<Result<Loaded<V>, E>>>,
        load_ms: u64,
    ) {
        let Awaiting::Load(slots) = std::mem::replace(&mut self.awaiting, Awaiting::Nothing) else {
            return;
        };
        let soft_ttl = cache.soft_ttl(self.options.ttl);
        let mut values = values.into_iter();
        for i in slots {
            let result = values.next().flatten();
            let key = self.keys[i].clone();
            let slot_lead = self.slots[i].r().lead.take();
            if std::mem::take(&mut self.slots[i].r().holds_lease) {
                self.releases.push(lease_key(&key));
            }
            self.slots[i].r().load_now = false;
            match result {
                Some(Ok(loaded)) => {
                    cache.read_stats.loads += 1;
                    let value = match soft_ttl {
                        Some(ttl) => {
                            let random = unit_random(mix(self.random, (i as u64) | (2 << 40)));
                            cache.write_value(
                                &key,
                                loaded,
                                ttl,
                                load_ms,
                                self.now,
                                random,
                                &mut self.stores,
                                self.jobs.as_mut(),
                                None,
                            )
                        }
                        None => loaded.value, // a zero TTL: serve it, store nothing
                    };
                    if let Some(token) = slot_lead {
                        self.hand_off(cache, token, &value);
                    }
                    self.slots[i].state = State::Found(value, Source::Loader);
                }
                failed => {
                    cache.read_stats.load_errors += 1;
                    if let Some(token) = slot_lead {
                        if let Ok(abandoned) =
                            cache.flights.abandon(token, AbandonPolicy::ReleaseAll)
                        {
                            self.notify.extend(abandoned.release);
                        }
                    }
                    self.slots[i].state = match failed {
                        Some(Err(error)) => State::Failed(error),
                        _ => State::GaveUp,
                    };
                }
            }
        }
        self.phase = Phase::Notify;
    }

    /// Finishes a flight this read led, handing the value to its waiters.
    fn hand_off(&mut self, cache: &mut TieredCache<V>, token: LeadToken, value: &V) {
        if let Ok(waiters) = cache.flights.finish(token) {
            for id in &waiters {
                cache.handoff.insert(*id, value.clone());
            }
            self.notify.extend(waiters);
        }
    }

    /// The host's answer to [`Step::Wait`]: every waiter was notified (or
    /// the host stopped waiting). Keys whose leader succeeded are hits;
    /// the others are claimed again.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// assert!(read.woke(&mut cache).is_err()); // no wait asked
    /// ```
    pub fn woke(&mut self, cache: &mut TieredCache<V>) -> Result<(), AnswerError> {
        if !matches!(self.awaiting, Awaiting::Wait(_)) {
            return Err(AnswerError::wrong_step(self.awaiting.name(), "wait"));
        }
        let Awaiting::Wait(slots) = std::mem::replace(&mut self.awaiting, Awaiting::Nothing) else {
            unreachable!("checked above")
        };
        self.wait_rounds += 1;
        for i in slots {
            let Some(id) = self.slots[i].r().wait.take() else {
                continue;
            };
            match cache.handoff.remove(&id) {
                Some(value) => {
                    cache.read_stats.flight_waits += 1;
                    self.slots[i].state = State::Found(value, Source::Flight);
                }
                None => {
                    cache.flights.withdraw(id);
                }
            }
        }
        self.phase = Phase::AfterWait;
        Ok(())
    }

    /// The host reports that the operation it was asked to do on `tier`
    /// failed (timeout, connection refused), with its own error. The read
    /// goes on without that tier (keys go to the next tier or the loader),
    /// unless the cache is in strict mode. A failure reported outside a
    /// fetch or lease of that tier (a store) is only counted. `now` is when
    /// the failure was known (after a timeout, the read's start plus the
    /// timeout): the tier's cool-down runs from then, not from the start of
    /// the read.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// read.failed(&mut cache, 0, "timed out".to_string(), 3_000);
    /// assert_eq!(read.now(), 3_000);
    /// assert!(matches!(read.next(&mut cache), Step::Load { .. })); // on to the loader
    /// ```
    pub fn failed(&mut self, cache: &mut TieredCache<V>, tier: usize, error: E, now: u64) {
        self.tier_down(cache, tier, Some(error), now);
    }

    fn tier_down(&mut self, cache: &mut TieredCache<V>, tier: usize, error: Option<E>, now: u64) {
        self.now = self.now.max(now);
        cache.tier_failed(tier, self.now);
        match std::mem::replace(&mut self.awaiting, Awaiting::Nothing) {
            Awaiting::Fetch { tier: asked, .. } | Awaiting::Chunks { tier: asked, .. }
                if asked == tier =>
            {
                for remote in self.slots.iter_mut().filter_map(|s| s.remote.as_mut()) {
                    remote.manifest = None;
                }
                match error {
                    Some(error) if cache.config.strict => self.fail_strict(cache, tier, error),
                    _ => self.phase = Phase::Remote(tier + 1),
                }
            }
            Awaiting::Lease { tier: asked, slots } if asked == tier => {
                for i in slots {
                    self.slots[i].r().load_now = true;
                }
                self.phase = Phase::Load;
            }
            other => self.awaiting = other,
        }
    }

    fn fail_strict(&mut self, cache: &mut TieredCache<V>, tier: usize, error: E) {
        self.failure = Some(TierFailure {
            tier,
            tier_name: cache.config.tiers[tier].name.clone(),
            message: error,
        });
        self.release_claims(cache);
        for slot in &mut self.slots {
            if slot.is_pending() {
                slot.state = State::GaveUp;
            }
        }
        self.phase = Phase::Notify;
    }

    /// Treats whatever the host still owes as failed (see
    /// [`RawRead::next`]).
    fn give_up_awaiting(&mut self, cache: &mut TieredCache<V>) {
        match &self.awaiting {
            Awaiting::Nothing => {}
            Awaiting::Fetch { tier, .. }
            | Awaiting::Chunks { tier, .. }
            | Awaiting::Lease { tier, .. } => {
                let tier = *tier;
                self.tier_down(cache, tier, None, self.now);
            }
            Awaiting::Decode(_) => self.decode_answer(cache, std::iter::empty()),
            Awaiting::Load(_) => self.load_answer(cache, std::iter::empty(), 0),
            Awaiting::Wait(_) => {
                let _ = self.woke(cache);
            }
            Awaiting::Sleep => {
                let _ = self.slept(self.now);
            }
        }
    }

    /// True while the read waits for the host's answer to its last step.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// assert!(read.is_awaiting());
    /// ```
    pub fn is_awaiting(&self) -> bool {
        !matches!(self.awaiting, Awaiting::Nothing)
    }

    /// Abandons this read's single-flight claims and waits.
    fn release_claims(&mut self, cache: &mut TieredCache<V>) {
        for remote in self.slots.iter_mut().filter_map(|s| s.remote.as_mut()) {
            if let Some(token) = remote.lead.take() {
                if let Ok(abandoned) = cache.flights.abandon(token, AbandonPolicy::ReleaseAll) {
                    self.notify.extend(abandoned.release);
                }
            }
            if let Some(id) = remote.wait.take() {
                cache.flights.withdraw(id);
                cache.handoff.remove(&id);
            }
        }
    }

    /// Releases the read's claims and ends it; returns the waiters to wake.
    pub(super) fn abandon(&mut self, cache: &mut TieredCache<V>) -> Vec<WaitId> {
        self.release_claims(cache);
        self.awaiting = Awaiting::Nothing;
        self.phase = Phase::Done;
        for slot in &mut self.slots {
            if slot.is_pending() {
                slot.state = State::GaveUp;
            }
        }
        std::mem::take(&mut self.notify)
    }

    /// Gives up the read (the host stops driving it): releases its claims so
    /// other readers do not wait for it. Returns the waiters to wake.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// assert!(read.cancel(&mut cache).is_empty()); // nobody waited for it
    /// ```
    pub fn cancel(mut self, cache: &mut TieredCache<V>) -> Vec<WaitId> {
        self.release_claims(cache);
        std::mem::take(&mut self.notify)
    }

    /// The results, in the order of the keys, after [`Step::Done`]. Values
    /// found in other tiers are put in the request tier. In strict mode, a
    /// tier failure is an error. Any claim still held (the host stopped
    /// early) is released.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// read.fetched(&mut cache, 0, vec![None]).unwrap();
    /// let _load = read.next(&mut cache); // the host gives up here
    /// let results = read.finish(&mut cache, None).unwrap();
    /// assert!(results[0].lookup.is_miss());
    /// ```
    pub fn finish(
        mut self,
        cache: &mut TieredCache<V>,
        mut request: Option<&mut RequestCache<V>>,
    ) -> Result<Vec<ReadResult<V, E>>, TierFailure<E>> {
        self.release_claims(cache);
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        let namespace = &cache.config.request_namespace;
        let keys = std::mem::take(&mut self.keys);
        let slots = std::mem::take(&mut self.slots);
        let mut misses = 0;
        let to_request = !self.options.skip_request_tier;
        // Made as misses, then filled field by field: see `start`.
        let mut results: Vec<ReadResult<V, E>> = keys
            .into_iter()
            .map(|key| ReadResult {
                key,
                lookup: Lookup::Miss,
                source: None,
                refresh: false,
                error: None,
            })
            .collect();
        for (result, slot) in results.iter_mut().zip(slots) {
            let request = request.as_deref_mut().filter(|_| to_request);
            misses += settle(result, slot, request, namespace) as u64;
        }
        cache.read_stats.misses += misses;
        Ok(results)
    }

    /// [`finish`](RawRead::finish) without the vector: each result is
    /// handed to `each`, in the order of the keys. A binding that turns the
    /// results into its own form saves a pass and an allocation.
    /// ```
    /// use stratacache::tiered::{ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["a".into(), "b".into()], ReadOptions::get(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// read.fetched(&mut cache, 0, vec![Some(b"x".to_vec()), None]).unwrap();
    /// # while !matches!(read.next(&mut cache), Step::Done) {}
    /// let mut keys = Vec::new();
    /// read.finish_each(&mut cache, None, |r| keys.push((r.key, r.lookup.is_miss()))).unwrap();
    /// assert_eq!(keys[1], ("b".to_owned(), true));
    /// ```
    pub fn finish_each(
        mut self,
        cache: &mut TieredCache<V>,
        mut request: Option<&mut RequestCache<V>>,
        mut each: impl FnMut(ReadResult<V, E>),
    ) -> Result<(), TierFailure<E>> {
        self.release_claims(cache);
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        let namespace = &cache.config.request_namespace;
        let to_request = !self.options.skip_request_tier;
        let mut misses = 0;
        let slots = std::mem::take(&mut self.slots);
        for (key, slot) in std::mem::take(&mut self.keys).into_iter().zip(slots) {
            let mut result = ReadResult {
                key,
                lookup: Lookup::Miss,
                source: None,
                refresh: false,
                error: None,
            };
            let request = request.as_deref_mut().filter(|_| to_request);
            misses += settle(&mut result, slot, request, namespace) as u64;
            each(result);
        }
        cache.read_stats.misses += misses;
        Ok(())
    }

    #[cfg(feature = "write-behind")]
    /// From now on, the values this read loads or back-fills are not sealed
    /// and planned as [`Step::Store`]s: they are handed out as
    /// [`SealJob`]s by [`RawRead::take_seal_jobs`], for a host with a
    /// background writer to seal off the request path. Take them before
    /// issuing the read's later writes (its lease releases follow them).
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// read.defer_sealing();
    /// assert!(read.take_seal_jobs().is_empty());
    /// ```
    pub fn defer_sealing(&mut self) {
        self.jobs.get_or_insert_with(Vec::new);
    }

    #[cfg(feature = "write-behind")]
    /// The [`SealJob`]s planned since the last call (see
    /// [`RawRead::defer_sealing`]); empty when sealing is not deferred.
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(read.take_seal_jobs().is_empty());
    /// ```
    pub fn take_seal_jobs(&mut self) -> Vec<SealJob> {
        self.jobs.as_mut().map(std::mem::take).unwrap_or_default()
    }

    #[cfg(feature = "write-behind")]
    /// Whether [`RawRead::take_seal_jobs`] has jobs to hand out.
    ///
    /// ```
    /// use stratacache::tiered::{ReadOptions, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(!read.has_seal_jobs());
    /// ```
    pub fn has_seal_jobs(&self) -> bool {
        self.jobs.as_ref().is_some_and(|jobs| !jobs.is_empty())
    }

    /// The keys of this read, in order.
    /// ```
    /// use stratacache::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};
    /// let mut cache: TieredCache<String> =
    ///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let mut read = cache.read_raw::<String>(vec!["k".into()], ReadOptions::load(), 0, 1, None).unwrap();
    /// assert!(matches!(read.next(&mut cache), Step::Fetch { tier: 0, .. }));
    /// assert_eq!(read.keys(), ["k".to_string()]);
    /// ```
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// Fills `result` (a miss) from `slot`, putting a value found in another
/// tier than the request tier into `request`; true for a miss.
#[inline(always)]
fn settle<V: Clone, E>(
    result: &mut ReadResult<V, E>,
    slot: Slot<V, E>,
    request: Option<&mut RequestCache<V>>,
    namespace: &Namespace,
) -> bool {
    match slot.state {
        State::Found(value, source) => {
            if let Some(request) = request.filter(|_| source != Source::Request) {
                request.set(namespace, result.key.clone(), value.clone());
            }
            result.lookup = Lookup::Hit(value);
            result.source = Some(source);
            result.refresh = slot.refresh;
            false
        }
        State::Failed(error) => {
            result.error = Some(error);
            false
        }
        State::Pending | State::GaveUp => true,
    }
}

impl<V, E> Drop for RawRead<V, E> {
    /// A read dropped while it still holds claims (a host that returned
    /// early with `?`, a garbage-collected FFI object) hands them to the
    /// cache, which releases them on its next call: other readers never
    /// wait for a read that is gone.
    fn drop(&mut self) {
        let mut claims = Vec::new();
        for remote in self.slots.iter_mut().filter_map(|s| s.remote.as_mut()) {
            if let Some(token) = remote.lead.take() {
                claims.push(Abandon::Lead(token));
            }
            if let Some(id) = remote.wait.take() {
                claims.push(Abandon::Wait(id));
            }
        }
        if !claims.is_empty() {
            self.reaper.push(claims);
        }
    }
}

/// The local tier's value of `key` (unless force-miss), and whether this
/// reader refreshes it.
#[inline(always)]
fn local_hit<V: Clone>(
    cache: &mut TieredCache<V>,
    key: &str,
    index: usize,
    options: &ReadOptions,
    now: u64,
    random: u64,
) -> Option<(V, bool)> {
    if options.force_miss {
        return None;
    }
    let Lookup::Hit(entry) = cache.local.as_mut()?.get(key, now) else {
        return None;
    };
    let value = entry.value.clone();
    let (soft, cost) = (entry.soft_expiry_ms, entry.recompute_cost_ms);
    let due = cache.refresh_due(soft, cost, now, || unit_random(mix(random, index as u64)));
    cache.read_stats.local_hits += 1;
    let refresh = due && cache.claim_refresh(key, now);
    Some((value, refresh))
}

fn check_count(step: &'static str, expected: usize, got: usize) -> Result<(), AnswerError> {
    if expected == got {
        Ok(())
    } else {
        Err(AnswerError::WrongCount {
            step,
            expected,
            got,
        })
    }
}

impl Awaiting {
    fn name(&self) -> &'static str {
        match self {
            Awaiting::Nothing => "none",
            Awaiting::Fetch { .. } | Awaiting::Chunks { .. } => "fetch",
            Awaiting::Decode(_) => "decode",
            Awaiting::Lease { .. } => "lease",
            Awaiting::Load(_) => "load",
            Awaiting::Wait(_) => "wait",
            Awaiting::Sleep => "sleep",
        }
    }
}

impl<V, E> std::fmt::Debug for RawRead<V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRead")
            .field("keys", &self.keys.len())
            .field("phase", &self.phase)
            .finish()
    }
}
