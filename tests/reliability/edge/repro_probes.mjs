// Reproduction (not a test) of a core bug in the cool-down of a hung tier.
//
// A read's failure is recorded at the read's *start* time:
// core/src/tiered/read.rs, ReadOp::failed calls
// `cache.tier_failed(tier, self.now)`, and self.now is when the read began
// (the wasm `failed(tier, message)` takes no time from the host). A fetch
// that failed by timeout therefore starts a cool-down that has already been
// running for the whole timeout: `cooling_until = start + cooldown_ms`. And
// tier_failed assigns cooling_until (no max), so each late failure also
// moves back the cool-down a probe had just pushed forward. With a tier
// timeout at least as long as the cool-down, a hung tier is never cooled
// down: nearly every read calls it and waits the whole timeout.
//
// One read every 100 ms for 8 s against a tier whose calls never settle
// (trip after 3 failures):
//   timeout 1000 ms, cool-down 2000 ms -> every read of the first second (no
//       failure known yet), then a probe every 2 s: 15 calls, as designed
//   timeout 3000 ms, cool-down  500 ms -> every read of the first 3 s, then one
//       probe per 500 ms (about 40 calls); seen: 73 calls for 75 reads, i.e.
//       every read called the hung tier and waited the whole timeout
// The same happens, less visibly, with the defaults (timeout 5 s = cool-down
// 5 s): the cool-down after a hung read ends as the failure is reported; only
// the probe's own push keeps the tier skipped (docs/reports/reliability/edge.md).
// Fix (core): take the failure time from the host (failed(tier, message, now))
// and never move cooling_until back (max).
// Usage: node tests/reliability/edge/repro_probes.mjs
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../../examples/edge_worker/package.json'));
const { TieredCache } = await import(pathToFileURL(require.resolve('stratacache')).href);

async function run(timeoutMs, cooldownMs, seconds = 8) {
  const callTimes = [];
  const started = Date.now();
  const tier = {
    name: 'hung',
    kind: 'workers_kv',
    timeoutMs,
    getMany() {
      callTimes.push(Date.now() - started);
      return new Promise(() => {});
    },
    async setMany() {},
    async deleteMany() {},
  };
  const cache = new TieredCache({ tiers: [tier], local: false, cooldown: { failuresToTrip: 3, cooldownMs } });
  const reads = [];
  let i = 0;
  while (Date.now() - started < seconds * 1000) {
    const t0 = Date.now();
    reads.push(cache.get(`k${i++}`).then(() => Date.now() - t0));
    await new Promise((r) => setTimeout(r, 100));
  }
  const times = await Promise.all(reads);
  // Until the first timeout nothing is known, so every read calls; then one probe per cool-down.
  const expected = Math.ceil(timeoutMs / 100) + Math.ceil((seconds * 1000 - timeoutMs) / cooldownMs);
  console.log(
    `timeout ${timeoutMs} ms, cool-down ${cooldownMs} ms: ${reads.length} reads, ${callTimes.length} calls reached the ` +
      `hung tier (as designed: about ${expected}), ${times.filter((t) => t >= timeoutMs - 100).length} reads ` +
      `waited the whole timeout; calls at s: ${callTimes.map((t) => (t / 1000).toFixed(1)).join(' ')}`,
  );
  return callTimes.length <= expected + 3;
}

const ok1 = await run(1000, 2000);
const ok2 = await run(3000, 500);
process.exitCode = ok1 && ok2 ? 0 : 1;
