// TieredCache#getMany of 100 keys that all hit the local tier: the cost of
// a read's trip through the core's read machine and back (no I/O).
// Prints the best of 50 rounds of 100 reads.
// Usage: node bench/tiered.mjs (via scripts/bench-wasm.sh)
import { TieredCache, memoryTier } from 'stratacache';

const cache = new TieredCache({ tiers: [memoryTier()], local: { maxEntries: 10_000 } });
const keys = Array.from({ length: 100 }, (_, i) => `course-v1:edX+C${i}+2024|block@${i}`);
await cache.getManyOrLoad(keys, async (missing) => missing.map((key) => ({ key, children: [1, 2, 3] })));
let best = Infinity;
for (let round = 0; round < 50; round++) {
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) {
    const results = await cache.getMany(keys);
    if (results[99].source !== 'local') throw new Error('expected local hits');
  }
  best = Math.min(best, (performance.now() - t0) / 100);
}
console.log(`TieredCache#getMany, 100 local hits: ${(best * 1000).toFixed(1)} µs per call (best of 50 rounds of 100)`);
