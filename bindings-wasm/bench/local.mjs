// LocalCache (stratacache, policy in wasm) vs npm lru-cache, interleaved in
// one run: for each case both caches are built, then they take turns
// (alternating which goes first) for SECONDS; each turn times one round.
// Printed: the best round of each (ns/op) and the median of the per-turn
// ratios, which load from the other processes on a shared machine hits
// alike. Usage: node bench/local.mjs [seconds-per-case] (via scripts/bench-wasm.sh)
import { LRUCache } from 'lru-cache';
import { LocalCache } from 'stratacache';

const MAX = 10_000;
const SECONDS = Number(process.argv[2] ?? 1);
const KEYS = Array.from({ length: 4 * MAX }, (_, i) => `course-v1:edX+C${i}+2024|block@${(i * 2654435761) % 100003}`);

// Each case fills a cache and returns one timed round (ns per op). Cases
// are cloned from source for each contender (`fresh`), so each has its own
// call sites: V8 would otherwise share the type feedback of one closure
// site between the two caches and make every `cache.get` polymorphic, which
// penalises whichever cache inlines worse — not what an application that
// uses one cache class sees.
function getHit(cache, KEYS, MAX) {
  for (let i = 0; i < MAX; i++) cache.set(KEYS[i], i);
  const n = 200_000;
  let j = 0;
  return () => {
    let sink = 0;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      sink += cache.get(KEYS[j]);
      j += 7919;
      if (j >= MAX) j -= MAX;
    }
    const ns = ((performance.now() - t0) * 1e6) / n;
    if (sink !== n * ((MAX - 1) / 2) && n % MAX === 0) throw new Error('a get missed');
    return ns;
  };
}

function setEvict(cache, KEYS, MAX) {
  for (let i = 0; i < MAX; i++) cache.set(KEYS[i], i);
  let k = MAX;
  const n = 50_000;
  return () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      cache.set(KEYS[k], i);
      k = k + 1 === KEYS.length ? 0 : k + 1;
    }
    return ((performance.now() - t0) * 1e6) / n;
  };
}

function mixed(cache, KEYS, MAX) {
  // 90% gets over a skewed key set, 10% sets: misses are filled.
  const n = 100_000;
  const range = 2 * MAX;
  let seed = 1;
  return () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const r = seed % 100;
      const key = KEYS[(seed >>> 7) % (r < 80 ? MAX / 2 : range)];
      if (r < 90) {
        if (cache.get(key) === undefined) cache.set(key, i);
      } else {
        cache.set(key, i);
      }
    }
    return ((performance.now() - t0) * 1e6) / n;
  };
}

const fresh = (fn) => new Function(`return (${fn.toString()})`)();
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const cases = [
  ['get (hit), 10,000 string keys', getHit],
  ['set with eviction (full cache)', setEvict],
  ['mixed 90% get / 10% set, misses filled', mixed],
];
const rows = [];
for (const [name, fn] of cases) {
  const peer = fresh(fn)(new LRUCache({ max: MAX }), KEYS, MAX);
  const ours = fresh(fn)(new LocalCache({ maxEntries: MAX }), KEYS, MAX);
  for (let i = 0; i < 3; i++) peer(), ours(); // warm up both
  const best = { peer: Infinity, ours: Infinity };
  const ratios = [];
  const end = performance.now() + SECONDS * 1000;
  for (let turn = 0; performance.now() < end || turn < 10; turn++) {
    let p, o;
    if (turn % 2 === 0) (p = peer()), (o = ours());
    else (o = ours()), (p = peer());
    best.peer = Math.min(best.peer, p);
    best.ours = Math.min(best.ours, o);
    ratios.push(p / o);
  }
  rows.push({
    case: name,
    'lru-cache ns/op': best.peer.toFixed(1),
    'stratacache ns/op': best.ours.toFixed(1),
    'ratio of bests': (best.peer / best.ours).toFixed(2),
    'median ratio': median(ratios).toFixed(2),
    turns: ratios.length,
  });
}
console.table(rows);
console.log('ns/op: best turn of each; ratio = lru-cache time / stratacache time (>= 1.00: stratacache at least as fast);');
console.log('median ratio: median over turns of the two interleaved turns\' ratio');
