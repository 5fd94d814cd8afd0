// The read protocol as JS drives it: a tier's batch answer with some keys
// failed keeps the others (one server of several down).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TieredCache, memoryTier, Key } from 'stratacache';

const keys = (n) => Array.from({ length: n }, (_, i) => new Key('partial', 1).build(`k${i}`));

test('a partly failed getMany keeps the healthy keys; the failed ones go to the next tier', async () => {
  const memcached = memoryTier({ name: 'memcached' });
  const storage = memoryTier({ name: 's3', kind: 'storage' });
  const ks = keys(8);
  const writer = new TieredCache({ tiers: [memcached, storage] });
  for (const [i, k] of ks.entries()) await writer.setAllTiers(k, i);
  const down = new Set([ks[1], ks[5]]);
  const partlyDown = {
    ...memcached,
    async getMany(asked) {
      const values = await memcached.getMany(asked);
      return { values, failed: asked.filter((k) => down.has(k)) };
    },
  };
  const reader = new TieredCache({ tiers: [partlyDown, storage], local: false });
  const results = await reader.getMany(ks);
  results.forEach((r, i) => {
    assert.equal(r.value, i);
    assert.equal(r.source, down.has(r.key) ? 's3' : 'memcached');
  });
  const s = reader.stats();
  assert.equal(s.tiers[0].hits, 6);
  assert.equal(s.tiers[1].hits, 2);
  assert.equal(s.tiers[0].errors, 1);
});
