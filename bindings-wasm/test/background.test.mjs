// Writes off the request path: a read's back-fill and load-then-store writes
// go to a bounded queue (handed to waitUntil, ctx.waitUntil in a worker,
// when the caller gives one), counted, drained by flush(). Explicit sets
// stay awaited.
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
  assert.deepEqual(cache.stats().background, { queued: 1, written: 0, dropped: 0, failed: 0, pending: 1 });
  tier.open();
  await Promise.all(handed);
  assert.equal(tier.items.size, 1);
  assert.deepEqual(cache.stats().background, { queued: 1, written: 1, dropped: 0, failed: 0, pending: 0 });
  const other = new TieredCache({ tiers: [tier] });
  assert.deepEqual(await other.get('outline|v1'), { hit: true, value: 'loaded', source: 'memcached' });
});

test('without waitUntil the writes are queued too; flush() waits for them', async () => {
  const tier = gatedTier();
  const cache = new TieredCache({ tiers: [tier] });
  assert.equal(await cache.getOrLoad('k', async () => 'v'), 'v');
  assert.equal(tier.items.size, 0, 'the read returned before its write');
  assert.equal(cache.stats().background.pending, 1);
  let flushed = false;
  const flush = cache.flush().then(() => {
    flushed = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(flushed, false, 'flush waits for the write');
  tier.open();
  await flush;
  assert.equal(tier.items.size, 1);
  assert.deepEqual(cache.stats().background, { queued: 1, written: 1, dropped: 0, failed: 0, pending: 0 });
});

test('backgroundWrites: false makes the read await its writes', async () => {
  const tier = gatedTier();
  const cache = new TieredCache({ tiers: [tier], backgroundWrites: false });
  let returned = false;
  const read = cache.getOrLoad('k', async () => 'v').then(() => {
    returned = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(returned, false, 'still waiting for the write');
  tier.open();
  await read;
  assert.equal(tier.items.size, 1);
  assert.equal(cache.stats().background.queued, 0);
});

test('a full queue drops the writes of a read and counts them; the value is still served', async () => {
  const tier = gatedTier();
  const cache = new TieredCache({ tiers: [tier], backgroundWrites: { maxSteps: 1 } });
  assert.equal(await cache.getOrLoad('a', async () => 'A'), 'A');
  assert.equal(await cache.getOrLoad('b', async () => 'B'), 'B');
  assert.equal(await cache.getOrLoad('b', async () => 'not called'), 'B', 'b is in the local tier');
  const byBytes = new TieredCache({ tiers: [gatedTier()], backgroundWrites: { maxBytes: 10 } });
  await byBytes.getOrLoad('big', async () => 'x'.repeat(100));
  tier.open();
  await cache.flush();
  assert.deepEqual(cache.stats().background, { queued: 1, written: 1, dropped: 1, failed: 0, pending: 0 });
  assert.equal(byBytes.stats().background.dropped, 1);
  assert.deepEqual([...tier.items.keys()], ['a']);
});

test('an explicit write of a key lands after the queued write of that key', async () => {
  const tier = gatedTier();
  const cache = new TieredCache({ tiers: [tier] });
  await cache.getOrLoad('k', async () => 'loaded');
  // The queued write waits at the gate; a later setMany would not.
  tier.gated = false;
  const set = cache.setAllTiers('k', 'explicit');
  await new Promise((r) => setTimeout(r, 10));
  tier.open();
  await set;
  await cache.flush();
  const other = new TieredCache({ tiers: [tier] });
  assert.equal((await other.get('k')).value, 'explicit');
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
  assert.deepEqual(cache.stats().background, { queued: 1, written: 0, dropped: 0, failed: 1, pending: 0 });
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
