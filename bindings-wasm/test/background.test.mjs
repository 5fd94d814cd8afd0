// Writes off the request path at the edge: with waitUntil (ctx.waitUntil in
// a worker), a read's back-fill and load-then-store writes are handed to the
// host instead of awaited, and counted. Explicit sets stay awaited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TieredCache, memoryTier } from 'stratacache';

/** A tier whose setMany waits until `open()` is called. */
function gatedTier() {
  const tier = memoryTier({ name: 'memcached' });
  const setMany = tier.setMany.bind(tier);
  let open;
  const gate = new Promise((r) => {
    open = r;
  });
  tier.gated = true;
  tier.setMany = async (entries) => {
    if (tier.gated) await gate;
    return setMany(entries);
  };
  tier.open = () => {
    tier.gated = false;
    open();
  };
  return tier;
}

test('with waitUntil, getOrLoad returns before its writes land; they are counted', async () => {
  const tier = gatedTier();
  const cache = new TieredCache({ tiers: [tier] });
  const handed = [];
  const value = await cache.getOrLoad('outline|v1', async () => 'loaded', { waitUntil: (p) => handed.push(p) });
  assert.equal(value, 'loaded');
  assert.equal(handed.length, 1, 'the writes went to waitUntil');
  assert.equal(tier.items.size, 0, 'not written yet: the gate is closed');
  assert.deepEqual(cache.stats().background, { queued: 1, written: 0, failed: 0 });
  tier.open();
  await Promise.all(handed);
  assert.equal(tier.items.size, 1);
  assert.deepEqual(cache.stats().background, { queued: 1, written: 1, failed: 0 });
  const other = new TieredCache({ tiers: [tier] });
  assert.deepEqual(await other.get('outline|v1'), { hit: true, value: 'loaded', source: 'memcached' });
});

test('without waitUntil the read awaits its writes (the default)', async () => {
  const tier = gatedTier();
  const cache = new TieredCache({ tiers: [tier] });
  let returned = false;
  const read = cache.getOrLoad('k', async () => 'v').then(() => {
    returned = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(returned, false, 'still waiting for the write');
  tier.open();
  await read;
  assert.equal(tier.items.size, 1);
  assert.deepEqual(cache.stats().background, { queued: 0, written: 0, failed: 0 });
});

test('a failed background write is counted and reported, never thrown', async () => {
  const tier = memoryTier({ name: 'memcached' });
  tier.setMany = async () => {
    throw new Error('connection reset');
  };
  const errors = [];
  const cache = new TieredCache({ tiers: [tier], onError: (e) => errors.push(e) });
  const handed = [];
  assert.equal(await cache.getOrLoad('k', async () => 'v', { ctx: { waitUntil: (p) => handed.push(p) } }), 'v');
  await Promise.all(handed);
  assert.deepEqual(cache.stats().background, { queued: 1, written: 0, failed: 1 });
  assert.equal(errors.length, 1);
});

test('setAllTiers stays synchronous even with waitUntil', async () => {
  const tier = gatedTier();
  const cache = new TieredCache({ tiers: [tier] });
  let returned = false;
  const set = cache.setAllTiers('k', 'v', { waitUntil: () => {} }).then(() => {
    returned = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(returned, false);
  tier.open();
  await set;
  assert.equal(tier.items.size, 1);
});
