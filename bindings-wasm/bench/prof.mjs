import { TieredCache, memoryTier } from 'stratacache';
import { Tiered } from '../pkg/stratacache_core.js';
import { joined } from '../pkg/config.js';
import { Reader, readResults, readStep } from '../pkg/wire.js';
const keys = Array.from({ length: 100 }, (_, i) => `course-v1:edX+C${i}+2024|block@${i}`);
function bench(name, f, n = 1000) {
  let best = Infinity;
  for (let r = 0; r < 50; r++) { const t0 = performance.now(); for (let i = 0; i < n; i++) f(); best = Math.min(best, (performance.now() - t0) / n); }
  console.log(name.padEnd(40), (best * 1000).toFixed(2), 'µs');
}
const cache = new TieredCache({ tiers: [memoryTier()], local: { maxEntries: 10_000 } });
await cache.getManyOrLoad(keys, async (missing) => missing.map((key) => ({ key, children: [1, 2, 3] })));
const core = new Tiered(new Uint8Array(), new Uint32Array(), new Float64Array(), Float64Array.from([NaN,NaN,NaN]), new Uint8Array(), new Uint32Array(), new Uint8Array(), new Uint32Array(), Float64Array.from([]));
const [a, l] = joined(keys); const all = a.slice(); const lengths = l.slice();
{ let out = core.read(all, lengths, 1, NaN, Date.now(), 1, undefined); const r = new Reader(out); const s = readStep(r); const id = r.u32();
  const pairs = new Uint32Array(200); for (let i = 0; i < 100; i++) { pairs[2*i] = 1; pairs[2*i+1] = 0; }
  out = core.answer(id, 3, keys.map(k => ({k})), new Uint8Array(100), pairs, 1, ''); console.log(out[0][0], out.length);
}
const now = Date.now();
const cases = {
  joined: () => joined(keys),





  read: () => core.read(all, lengths, 0, NaN, now, 1, undefined),
};
const best = Object.fromEntries(Object.keys(cases).map((k) => [k, Infinity]));
for (let round = 0; round < 300; round++) {
  for (const [name, f] of Object.entries(cases)) {
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) f();
    best[name] = Math.min(best[name], (performance.now() - t0) / 100);
  }
}
for (const [name, t] of Object.entries(best)) console.log(name.padEnd(20), (t * 1000).toFixed(2), 'µs');
let b = Infinity;
for (let round = 0; round < 100; round++) { const t0 = performance.now(); for (let i = 0; i < 100; i++) await cache.getMany(keys); b = Math.min(b, (performance.now() - t0) / 100); }
console.log('getMany'.padEnd(20), (b * 1000).toFixed(2), 'µs');
