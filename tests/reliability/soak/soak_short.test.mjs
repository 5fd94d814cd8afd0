// Soak and memory (issue 7), fast version, JS host: the shared LocalCache
// op stream (see soak_local.py) on the npm package's LocalCache, and the
// RequestCache across concurrent async tasks; each in its own node process
// (--expose-gc; the drivers run a full GC before each RSS sample, so RSS
// shows what is retained, not garbage awaiting collection; and
// --max-semi-space-size=1, since V8 otherwise grows its young generation by
// ~25 MiB over the first ~12,000 requests, a one-off that the long run in
// scripts/soak.sh shows levelling off, and a short run would take for growth).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MIB = 2 ** 20;

function runJson(script, args) {
  const out = execFileSync(process.execPath, ['--expose-gc', '--max-semi-space-size=1', join(HERE, script), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * MIB,
    timeout: 240_000,
  });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

const mib = (n) => (n / MIB).toFixed(1);

test('JS LocalCache: RSS stays within the weight bound plus a margin and stops growing after warm-up', () => {
  const d = runJson('soak_local.mjs', ['stratacache', '--ops', '300000', '--sample', '5000', '--gc']);
  const over = d.peak_rss - d.baseline_rss;
  // V8 keeps freed heap pages and the wasm memory never shrinks: a generous
  // fixed margin over the 32 MiB of values (a leak of values grows past it).
  const margin = 64 * MIB;
  assert.ok(over < d.max_bytes + margin, `RSS rose ${mib(over)} MiB above its baseline, more than ${mib(d.max_bytes)} + ${mib(margin)} MiB`);
  assert.ok(
    d.peak_growth_after_warm < 16 * MIB,
    `RSS grew ${mib(d.peak_growth_after_warm)} MiB after warm-up: ${JSON.stringify(d.samples.filter((_, i) => i % 6 === 0).map((s) => [s[0], mib(s[1])]))}`,
  );
  assert.ok(d.final_entries > 0 && d.final_entries <= d.max_entries);
  // The same op stream and policy as the Rust core: the figures the Rust
  // example and the Python binding give for 300,000 ops.
  assert.equal(d.digest, 1976854623);
  assert.deepEqual([d.hits, d.misses, d.final_entries], [119307, 30783, 13338]);
});

test('JS RequestCache: concurrent requests never see each other and leave nothing behind', () => {
  const d = runJson('soak_request.mjs', ['--requests', '20000', '--tasks', '100', '--sample', '2000']);
  assert.equal(d.requests, 20000);
  assert.equal(d.sightings, 0, JSON.stringify(d.sighting_examples));
  assert.equal(d.survivors, 0, JSON.stringify(d.survivor_examples));
  assert.ok(d.final_wasm_bytes - d.warm_wasm_bytes <= 1 * MIB, `wasm memory grew from ${d.warm_wasm_bytes} to ${d.final_wasm_bytes}`);
  // Retained memory is judged on the JS heap after full GCs (flat within
  // 0.1 MiB here; leaking 16,000 requests' 1 KiB strings adds 4.6 MiB). RSS
  // also moves with V8's page reuse (1-22 MiB on this test), so its bound
  // only catches a gross leak outside the JS heap and wasm memory.
  assert.ok(d.heap_growth_after_warm < 2 * MIB, `the JS heap grew ${mib(d.heap_growth_after_warm)} MiB after warm-up`);
  assert.ok(d.peak_growth_after_warm < 48 * MIB, `RSS grew ${mib(d.peak_growth_after_warm)} MiB after warm-up`);
});
