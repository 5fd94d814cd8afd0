// LocalCache over the built package: the core's LRU and expiry, seen from JS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCache } from 'stratacache';

function clock(start = 1_700_000_000_000) {
  const c = () => c.now;
  c.now = start;
  return c;
}

test('evicts the least recently used entry, with reads applied in order', () => {
  const cache = new LocalCache({ maxEntries: 3 });
  cache.set('a', 1).set('b', 2).set('c', 3);
  assert.equal(cache.get('a'), 1); // a is now the most recent
  cache.set('d', 4); // evicts b
  assert.equal(cache.has('b'), false);
  assert.deepEqual(cache.keys(), ['d', 'a', 'c']);
  assert.equal(cache.size, 3);
  assert.equal(cache.stats().evictions, 1);
});

test('recency is exact across more reads than the read buffer holds', () => {
  const cache = new LocalCache({ maxEntries: 1000 });
  for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i);
  // 1,000 reads (several buffer flushes), in reverse order: k0 read last.
  for (let i = 999; i >= 0; i--) assert.equal(cache.get(`k${i}`), i);
  cache.set('new', -1); // evicts the least recently read: k999
  assert.equal(cache.has('k999'), false);
  assert.equal(cache.has('k0'), true);
  assert.equal(cache.keys()[1], 'k0');
});

for (const timed of [false, true]) {
test(`matches a reference LRU model over a random workload${timed ? ' (entries with a TTL, none expiring)' : ''}`, () => {
  const max = 50;
  const cache = new LocalCache(timed ? { maxEntries: max, ttlMs: 60_000, clock: clock() } : { maxEntries: max });
  const model = new Map(); // insertion order = recency order
  let seed = 42;
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let step = 0; step < 20_000; step++) {
    const key = `k${rand(120)}`;
    const op = rand(10);
    if (op < 6) {
      const expected = model.get(key);
      if (expected !== undefined) {
        model.delete(key);
        model.set(key, expected);
      }
      assert.equal(cache.get(key), expected, `get ${key} at step ${step}`);
    } else if (op < 9) {
      model.delete(key);
      model.set(key, step);
      if (model.size > max) model.delete(model.keys().next().value);
      cache.set(key, step);
    } else {
      assert.equal(cache.delete(key), model.delete(key));
    }
  }
  assert.deepEqual(cache.keys(), [...model.keys()].reverse());
});
}

test('a set right after reads that found entries expired reports the reads first', () => {
  const c = clock();
  const cache = new LocalCache({ maxEntries: 10, ttlMs: 1000, clock: c });
  cache.set('a', 1).set('b', 2).set('c', 3, { ttlMs: Infinity });
  c.now += 2000;
  // Three reads buffered at one millisecond; the set of 'a' applies them
  // in its own call: they find 'a' and 'b' expired, so 'a' is stored anew.
  assert.equal(cache.get('a'), undefined);
  assert.equal(cache.get('b'), undefined);
  assert.equal(cache.get('c'), 3);
  cache.set('a', 4);
  assert.equal(cache.get('a'), 4);
  assert.equal(cache.has('b'), false);
  assert.equal(cache.size, 2);
  assert.deepEqual(cache.keys(), ['a', 'c']);
  const { hits, misses, inserts, updates, expirations } = cache.stats();
  assert.deepEqual({ hits, misses, inserts, updates, expirations }, { hits: 2, misses: 2, inserts: 4, updates: 0, expirations: 2 });
  // A live entry read then set is an update, read first.
  cache.get('c');
  cache.set('a', 5);
  assert.deepEqual(cache.keys(), ['a', 'c']);
  cache.get('a');
  cache.get('c');
  cache.set('c', 6);
  assert.deepEqual(cache.keys(), ['c', 'a']);
  assert.equal(cache.stats().updates, 2);
});

test('runs of new keys (set without crossing into wasm) match the model, counters included', () => {
  for (const max of [1, 3, 50, 700]) {
    const cache = new LocalCache({ maxEntries: max });
    const model = new Map();
    let inserts = 0;
    let evictions = 0;
    let fresh = 0;
    let seed = max;
    const rand = (n) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const put = (key, value) => {
      if (!model.has(key)) inserts++;
      model.delete(key);
      model.set(key, value);
      if (model.size > max) {
        model.delete(model.keys().next().value);
        evictions++;
      }
      cache.set(key, value);
    };
    for (let round = 0; round < 300; round++) {
      // A burst of new keys: longer than a plan (256) now and then.
      const burst = rand(4) === 0 ? 300 + rand(300) : rand(20);
      for (let i = 0; i < burst; i++) put(`n${fresh++}`, fresh);
      assert.equal(cache.size, model.size, `size after a burst (max ${max}, round ${round})`);
      const op = rand(6);
      const known = [...model.keys()];
      const some = known.length ? known[rand(known.length)] : 'none';
      if (op === 0) {
        assert.equal(cache.get(some), model.get(some));
        if (model.has(some)) {
          const v = model.get(some);
          model.delete(some);
          model.set(some, v);
        }
      } else if (op === 1) {
        assert.equal(cache.delete(some), model.delete(some));
      } else if (op === 2) {
        put(some, -round); // an update of a held key
      } else if (op === 3) {
        assert.equal(cache.get(`n${fresh + 1}`), undefined); // a miss, then a burst
      } else if (op === 4) {
        const s = cache.stats();
        assert.equal(s.inserts, inserts, 'inserts counted');
        assert.equal(s.evictions, evictions, 'evictions counted');
        assert.equal(s.entries, model.size);
      } else {
        assert.deepEqual(cache.keys(), [...model.keys()].reverse(), `recency (max ${max}, round ${round})`);
      }
      for (const key of known.slice(0, 5)) assert.equal(cache.peek(key), model.get(key), `peek ${key}`);
    }
    assert.deepEqual(cache.keys(), [...model.keys()].reverse());
    assert.equal(cache.stats().evictions, evictions);
    cache.clear();
    assert.equal(cache.size, 0);
    assert.equal(cache.stats().inserts, inserts, 'planned sets made before clear() are counted');
  }
});

test('a stored undefined or null is a hit, not a miss', () => {
  const cache = new LocalCache({ maxEntries: 10 });
  cache.set('u', undefined).set('n', null);
  assert.deepEqual(cache.lookup('u'), { hit: true, value: undefined });
  assert.deepEqual(cache.lookup('n'), { hit: true, value: null });
  assert.deepEqual(cache.lookup('missing'), { hit: false, value: undefined });
  assert.equal(cache.has('u'), true);
  assert.equal(cache.has('missing'), false);
});

test('entries expire at their TTL and are reclaimed without being read', () => {
  const c = clock();
  const cache = new LocalCache({ maxEntries: 100, ttlMs: 1000, clock: c });
  cache.set('default', 1);
  cache.set('short', 2, { ttlMs: 100 });
  cache.set('forever', 3, { ttlMs: Infinity });
  c.now += 100;
  assert.equal(cache.get('short'), undefined);
  assert.equal(cache.get('default'), 1);
  c.now += 5000;
  assert.equal(cache.peek('default'), undefined);
  assert.equal(cache.get('forever'), 3);
  // Nobody reads 'default' again: purgeExpired reclaims it.
  assert.equal(cache.purgeExpired(), 1);
  assert.equal(cache.size, 1);
  assert.equal(cache.stats().expirations, 2);
  // A set moves time on too: expired entries go without purgeExpired.
  cache.set('a', 1, { ttlMs: 10 });
  c.now += 10_000;
  cache.set('b', 2);
  assert.equal(cache.size, 2, 'a was reclaimed by the set');
});

test('a zero or negative TTL deletes; touch gives a new TTL', () => {
  const c = clock();
  const cache = new LocalCache({ maxEntries: 10, clock: c });
  cache.set('k', 1);
  cache.set('k', 2, { ttlMs: 0 });
  assert.equal(cache.has('k'), false);
  assert.equal(cache.size, 0);
  cache.set('t', 1, { ttlMs: 100 });
  assert.equal(cache.touch('t', 1000), true);
  c.now += 500;
  assert.equal(cache.get('t'), 1);
  assert.equal(cache.touch('t', 0), true);
  assert.equal(cache.has('t'), false);
  assert.equal(cache.touch('nope', 10), false);
});

test('maxBytes bounds the total size; too heavy values are refused', () => {
  const cache = new LocalCache({ maxEntries: 100, maxBytes: 100, sizeOf: (v) => v.length });
  cache.set('a', 'x'.repeat(40)).set('b', 'y'.repeat(40));
  cache.set('c', 'z'.repeat(40)); // 120 > 100: evicts a
  assert.equal(cache.has('a'), false);
  assert.equal(cache.stats().bytes, 80);
  cache.set('b', 'w'.repeat(101)); // heavier than the whole cache: refused, old b removed
  assert.equal(cache.has('b'), false);
  assert.equal(cache.stats().rejected, 1);
  cache.set('s', 'tiny', { size: 1 });
  assert.equal(cache.stats().bytes, 41);
});

test('one set that evicts hundreds of entries frees them all', () => {
  const cache = new LocalCache({ maxEntries: 1000, maxBytes: 1000, sizeOf: () => 1 });
  for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i);
  cache.set('big', 'x', { size: 900 });
  assert.equal(cache.size, 101);
  assert.equal(cache.has('k899'), false);
  assert.equal(cache.has('k900'), true);
  // Freed slots are reused, and the map and the policy agree.
  for (let i = 0; i < 500; i++) cache.set(`n${i}`, i, { size: 1 });
  assert.equal(cache.size, cache.stats().entries);
});

test('clear, delete and stats', () => {
  const cache = new LocalCache({ maxEntries: 10 });
  cache.set('a', 1).set('b', 2);
  cache.get('a');
  cache.get('zzz');
  assert.equal(cache.delete('a'), true);
  assert.equal(cache.delete('a'), false);
  const s = cache.stats();
  assert.equal(s.hits, 1);
  assert.equal(s.misses, 1);
  assert.equal(s.entries, 1);
  cache.clear();
  assert.equal(cache.size, 0);
  assert.equal(cache.get('b'), undefined);
  cache.set('c', 3);
  assert.equal(cache.get('c'), 3);
});

test('bad input gives clear errors', () => {
  assert.throws(() => new LocalCache({}), /needs maxEntries/);
  assert.throws(() => new LocalCache({ maxEntries: 0 }), RangeError);
  assert.throws(() => new LocalCache({ maxEntries: 10, maxBytes: 100 }), /sizeOf/);
  assert.throws(() => new LocalCache({ maxEntries: 10, ttlMs: -5 }), /positive TTL/);
  const cache = new LocalCache({ maxEntries: 10 });
  assert.throws(() => cache.set(42, 'v'), { name: 'TypeError', message: /keys must be strings, got number 42/ });
  assert.throws(() => cache.set({}, 'v'), /keys must be strings, got an object/);
  assert.throws(() => cache.set('k', 'v', { ttlMs: 'soon' }), /ttlMs must be a number/);
  assert.throws(() => cache.set('k', 'v', { size: -1 }), /must be a number >= 0/);
  // A 10 KB key is fine locally: it never leaves the process.
  const long = 'k'.repeat(10_240);
  cache.set(long, 1);
  assert.equal(cache.get(long), 1);
});
