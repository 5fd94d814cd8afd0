// The read protocol as JS drives it: a tier's batch answer with some keys
// failed keeps the others (one server of several down).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TieredCache, RequestCache, memoryTier, Key } from 'stratacache';

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

test('concurrent reads that finish interleaved each get their own values', async () => {
  const tier = memoryTier({ name: 'memcached' });
  const writer = new TieredCache({ tiers: [tier] });
  const groups = Array.from({ length: 6 }, (_, g) => keys(5).map((k) => `${k}/${g}`));
  for (const group of groups) for (const k of group) await writer.setAllTiers(k, `value of ${k}`);
  // Each tier call answers after a different delay, so reads finish out of order.
  let call = 0;
  const slow = { ...tier, async getMany(asked) {
    await new Promise((r) => setTimeout(r, 5 * (7 - (call++ % 7))));
    return tier.getMany(asked);
  } };
  const reader = new TieredCache({ tiers: [slow] });
  const all = await Promise.all(groups.map((group) => reader.getMany(group)));
  all.forEach((results, g) => results.forEach((r, i) => {
    assert.equal(r.key, groups[g][i]);
    assert.equal(r.value, `value of ${groups[g][i]}`);
    assert.equal(r.source, 'memcached');
  }));
  const again = await Promise.all(groups.map((group) => reader.getMany(group)));
  again.forEach((results, g) => results.forEach((r, i) => assert.deepEqual([r.value, r.source], [`value of ${groups[g][i]}`, 'local'])));
});

test('the wasm side refuses an answer to another step, and an answer to a read that is over', async () => {
  const { Tiered } = await import('./node_modules/stratacache/stratacache_core.js');
  const none = new Float64Array(0);
  const core = new Tiered(new TextEncoder().encode('mc'), Uint32Array.of(2), Float64Array.of(0, NaN, NaN, NaN, NaN, NaN, NaN, NaN), none, new Uint8Array(0), new Uint32Array(0), new Uint8Array(0), new Uint32Array(0), none);
  // The key 'k', written where the read's keys go in wasm memory.
  const { wasmMemory } = await import('./node_modules/stratacache/runtime.js');
  const [bytesAt, lengthsAt] = core.keyBuffers(1, 1);
  new Uint8Array(wasmMemory().buffer)[bytesAt] = 'k'.charCodeAt(0);
  new Uint32Array(wasmMemory().buffer)[lengthsAt / 4] = 1;
  const at = core.read(1, 1, 1, NaN, Date.now(), 7, undefined);
  const memory = new Uint8Array(wasmMemory().buffer);
  const out = memory.slice(at + 4, at + 4 + new DataView(memory.buffer).getUint32(at, true));
  assert.equal(out[0], 1, 'a fetch step');
  const id = new DataView(out.buffer, out.byteOffset).getUint32(out.length - 4, true);
  // A load answer (kind 3) to the fetch step: refused, the read stays as it was.
  assert.throws(() => core.answer(id, 3, new Uint8Array(1), Uint32Array.of(1, 0), 0), (e) => e.kind === 'answer_error');
  // The right answer (kind 1: not found) moves it on to the load step.
  const next = core.answer(id, 1, new Uint8Array(0), Uint32Array.of(0xffffffff), 0);
  assert.equal(next[0], 5, 'a load step');
  const loadId = new DataView(next.buffer, next.byteOffset).getUint32(next.length - 4, true);
  const cancelled = core.answer(loadId, 7, new Uint8Array(0), new Uint32Array(0), 0);
  assert.deepEqual([...cancelled], [6, 0, 0, 0, 0], 'a notify step of no waiters');
  assert.throws(() => core.answer(loadId, 3, new Uint8Array(1), Uint32Array.of(1, 0), 0), /this read is over/);
  assert.equal(core.answer(loadId, 7, new Uint8Array(0), new Uint32Array(0), 0).length, 0, 'cancelling twice is harmless');
});

test('leases across isolates: one loads, the other waits for its value in the shared tier', async () => {
  const shared = memoryTier({ name: 'memcached' });
  const options = { tiers: [{ ...shared, leases: true }], lease: { ttlMs: 5000, maxWaitMs: 3000, pollIntervalMs: 20 } };
  const a = new TieredCache(options);
  const b = new TieredCache(options);
  let loads = 0;
  const loader = async () => {
    loads++;
    await new Promise((r) => setTimeout(r, 100));
    return 'built once';
  };
  const [va, vb] = await Promise.all([a.getOrLoad('report|v1', loader), new Promise((r) => setTimeout(r, 20)).then(() => b.getOrLoad('report|v1', loader))]);
  assert.deepEqual([va, vb, loads], ['built once', 'built once', 1]);
  assert.ok(shared.calls.add >= 2, 'both isolates asked for the lease');
  await Promise.all([a.flush(), b.flush()]);
  assert.equal([...shared.items.keys()].filter((k) => k.startsWith('tiercache.lease|')).length, 0, 'the lease was released');
  assert.equal(shared.calls.deleteMany, 1);
});

test('values stay on the JS side by slot, and a value no tier holds any more is let go', async () => {
  const { slots } = await import('./node_modules/stratacache/runtime.js');
  const cache = new TieredCache({ tiers: [memoryTier()], local: { maxEntries: 2 } });
  const first = { n: 1 };
  await cache.setAllTiers('a', first);
  assert.ok(slots.includes(first), 'the local tier holds it');
  const [hit] = await cache.getMany(['a']);
  assert.equal(hit.value, first, 'a local hit is the same object');
  // Two more keys evict 'a' from the local tier (maxEntries 2).
  await cache.setAllTiers('b', 2);
  await cache.setAllTiers('c', 3);
  // Freed slots are cleared when the next values are filed.
  const second = { n: 2 };
  await cache.setAllTiers('d', second);
  assert.ok(!slots.includes(first), 'evicted: its slot is cleared');
  cache.clearLocal();
  assert.ok(!slots.includes(second), 'cleared: its slot is cleared');
  const request = new RequestCache();
  const third = { n: 3 };
  request.set('r', third);
  assert.equal(request.get('r'), third);
  request.delete('r');
  request.set('s', 4);
  assert.ok(!slots.includes(third), 'deleted from the request cache: its slot is cleared');
});

test('slots are reused: churn through a small local tier does not grow the slot array', async () => {
  const { slots } = await import('./node_modules/stratacache/runtime.js');
  const cache = new TieredCache({ tiers: [], local: { maxEntries: 10 } });
  await cache.setAllTiers('warm-up', 0);
  const before = slots.length;
  for (let i = 0; i < 1000; i++) await cache.setAllTiers(`k${i}`, { i });
  const results = await cache.getMany(['k999', 'k0']);
  assert.deepEqual(results.map((r) => r.value), [{ i: 999 }, undefined]);
  assert.ok(slots.length <= before + 12, `${slots.length} slots after 1000 sets into 10 entries (${before} before)`);
  // The local tier holds 10 of this test's values; the evicted ones' cells are cleared.
  const held = slots.filter((v) => typeof v === 'object' && v !== null && Object.keys(v).join() === 'i').length;
  assert.ok(held <= 11, `${held} of this test's values still in slots`);
});
