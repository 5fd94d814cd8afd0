// Hostile values in the JS package's tiers under Node (issue 7): memoryTier,
// and a Node adapter over real Redis written against the documented adapter
// interface (hv_redis_adapter.mjs). Each tier x corruption: a signed value
// is written, corrupted in the server, and read back by fresh caches: a
// miss or the loader's value, never the bad bytes; no exception (strict mode
// too); counted (`rejected`, `chunkMisses`); replaced after the loader ran.
//
// Run: bash scripts/test-reliability.sh   (or, with servers up:
//   node --test tests/reliability/hostile_values/hostile_values_node.test.mjs)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CASES, CHUNK_CASES, REPO, SECRET, KEY_ID, applyChunkCase } from './hv_cases.mjs';
import { caches, localPhases, runCase, checkOutcome } from './hv_check.mjs';
import { RespClient, redisTier } from './hv_redis_adapter.mjs';

const tc = await import(pathToFileURL(path.join(REPO, 'bindings-wasm/pkg/node.js')).href);
const { EnvelopeCodec } = await import(pathToFileURL(path.join(REPO, 'bindings-wasm/pkg/tools-node.js')).href);
const RUN = randomBytes(4).toString('hex');
const REDIS_URL = process.env.STRATACACHE_REDIS_URL;
if (!REDIS_URL) throw new Error('STRATACACHE_REDIS_URL is not set: run through scripts/test-reliability.sh, or eval "$(bash scripts/servers.sh env)"');

let redis;
before(async () => {
  redis = new RespClient(REDIS_URL.replace(/\/\d*$/, '/4'));
  await redis.ready();
});
after(() => redis?.close());

/** Tier factories: an adapter and raw access to its server. */
const TIERS = {
  memory: (itemLimit) => {
    const tier = tc.memoryTier({ name: 'memory', ...(itemLimit ? { itemLimit } : {}) });
    const raw = {
      get: async (k) => tier.items.get(k)?.value.slice() ?? null,
      put: async (k, v) => void tier.items.set(k, { value: Uint8Array.from(v), expiresAt: Infinity }),
      del: async (k) => void tier.items.delete(k),
    };
    return { tier, raw };
  },
  redis_node_adapter: (itemLimit) => {
    const tier = redisTier(redis, { name: 'redis', itemLimit });
    const raw = {
      get: async (k) => {
        const v = await redis.command('GET', k);
        return v === null ? null : new Uint8Array(v);
      },
      put: async (k, v) => void (await redis.command('SET', k, v, 'EX', '120')),
      del: async (k) => void (await redis.command('DEL', k)),
    };
    return { tier, raw };
  },
};

for (const [tierName, make] of Object.entries(TIERS)) {
  for (const kase of CASES) {
    test(`hostile value [${tierName}-${kase.name}]`, { timeout: 60_000 }, async () => {
      const { tier, raw } = make();
      const key = `hv:${RUN}:${tierName}:${kase.name}`;
      await runCase({ phases: localPhases(caches(tc, tier), raw), key, other: `${key}:other`, kase });
    });
  }
}

const codec = new EnvelopeCodec([{ id: KEY_ID, secret: new TextEncoder().encode(SECRET) }], true, 0, 64 * 1024 * 1024);
const chunkKeys = (key, manifest) => codec.readManifest(key, manifest).chunkKeys;
const bigText = () => randomBytes(4500).toString('base64'); // 6000 chars: 3 chunks of 2 KiB

for (const [tierName, make] of Object.entries(TIERS)) {
  for (const kase of CHUNK_CASES) {
    test(`hostile value [${tierName}_chunked-${kase.name}]`, { timeout: 60_000 }, async () => {
      const { tier, raw } = make(2048);
      const key = `hv:${RUN}:${tierName}_chunked:${kase.name}`;
      const other = `${key}:other`;
      const c = caches(tc, tier);
      await c.writer().setAllTiers(key, bigText(), { ttlMs: 60_000 });
      await c.writer().setAllTiers(other, bigText(), { ttlMs: 60_000 });
      assert.equal(chunkKeys(key, await raw.get(key)).length, 3);
      await applyChunkCase(kase.name, raw, key, other, chunkKeys);
      const fresh = bigText(); // chunked again when stored
      const obs = checkOutcome(await localPhases(c, raw).read({ key, fresh }), kase.counter, fresh);
      assert.equal(obs.check.tier.chunkedReads, 1);
      assert.equal(obs.check.tier.chunkMisses, 0);
    });
  }
}

test('hostile value [custom adapter answering with a non-bytes value]', async () => {
  const tier = { name: 'custom', kind: 'redis', getMany: async (keys) => keys.map(() => 'a string'), setMany: async () => {}, deleteMany: async () => {} };
  const c = caches(tc, tier);
  const r = c.reader();
  assert.equal((await r.get('k')).hit, false);
  assert.equal(r.stats().tiers[0].errors, 1, 'a tier failure, counted');
  // strict mode: a clear error (kind "tier_failure"; a plain Error thrown by
  // the wasm side, not an instance of StratacacheError)
  await assert.rejects(c.reader({ strict: true }).get('k'), (e) => e.kind === 'tier_failure' && /failed in strict mode/.test(e.message));
});
