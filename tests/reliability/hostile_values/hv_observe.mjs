// What a hostile-value case observes, with no Node dependency so the same
// code runs in Node (memoryTier, the Redis adapter) and inside workerd
// (kvTier, cacheApiTier; bundled into hv_worker.mjs). hv_check.mjs asserts
// on the observations.
//
// caches: { writer(), reader(extraOptions), errors() } make TieredCaches
// over one tier (each a fresh "process": no local tier); raw: { get(key),
// put(key, bytes), stored?(key) } reach the server without stratacache.

const TTL = { ttlMs: 60_000 };

/** Writes the value under `key` and another under `other`; reads their bytes and a control read. */
export async function writePhase({ caches, raw, key, other, value, otherValue }) {
  await caches.writer().setAllTiers(key, value, TTL);
  await caches.writer().setAllTiers(other, otherValue, TTL);
  const valid = await raw.get(key);
  const otherValid = await raw.get(other);
  const control = caches.reader();
  const got = await control.get(key);
  const stats = await control.stats();
  return { valid, otherValid, control: { hit: got.hit, value: got.value ?? null, tier: stats.tiers[0] } };
}

async function attempt(fn) {
  try {
    return { result: await fn(), error: null };
  } catch (error) {
    return { result: null, error: `${error?.kind ?? ''}: ${error?.message ?? error}` };
  }
}

/** Stores `bad` (if given) under `key`, then reads it every way: strict, get, getMany, getOrLoad, and another process after. */
export async function readPhase({ caches, raw, key, bad, fresh }) {
  let stored = null;
  if (bad !== undefined && bad !== null) {
    await raw.put(key, bad);
    stored = await (raw.stored ?? raw.get)(key);
  }
  await caches.errors();
  const strict = caches.reader({ strict: true });
  const strictGet = await attempt(() => strict.get(key));
  const strictTier = (await strict.stats()).tiers[0];

  const r = caches.reader();
  const get = await attempt(() => r.get(key));
  const many = await attempt(() => r.getMany([key]));
  const afterGets = (await r.stats()).tiers[0];
  const load = await attempt(() => r.getOrLoad(key, async () => fresh, TTL));
  await r.settled();
  const afterLoad = await r.stats();
  const errors = await caches.errors();

  const check = caches.reader();
  const checkGet = await attempt(() => check.get(key));
  const checkTier = (await check.stats()).tiers[0];
  const strip = (g) => (g.result ? { hit: g.result.hit, value: g.result.value ?? null } : null);
  return {
    stored,
    strict: { ...strip(strictGet), error: strictGet.error, tier: strictTier },
    get: { ...strip(get), error: get.error },
    many: { hits: many.result ? many.result.filter((m) => m.hit).length : null, error: many.error },
    afterGets,
    load: { value: load.result ?? null, error: load.error },
    afterLoad: { tier: afterLoad.tiers[0], reads: afterLoad.reads },
    errors,
    check: { ...strip(checkGet), error: checkGet.error, tier: checkTier },
  };
}
