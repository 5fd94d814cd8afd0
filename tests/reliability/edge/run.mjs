// The long fault-injection run for the edge worker (scripts/faults-edge.sh
// runs it): the example's worker in workerd, two isolates sharing a KV
// namespace whose binding fails on command, in front of the Django example.
// One steady load (uniform over EDGE_COURSES courses, more than the
// worker's local tier holds, so KV serves a steady share) goes through:
//   pass (baseline) -> reject -> pass -> hang -> pass -> slow -> pass
// Writes run.json (every request, poll and switch), summary.json (figures
// per phase) and series.json (per 0.5 s bin) into OUT, prints a table.
// Usage: node tests/reliability/edge/run.mjs
//   EDGE_OUT (target/reliability/edge), EDGE_COURSES (1500),
//   EDGE_CONCURRENCY (16), EDGE_PRE_S (10), EDGE_FAULT_S (20), EDGE_POST_S (20),
//   EDGE_SLOW_MS (300), EDGE_SCENARIOS (reject,hang,slow)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import {
  repo, startFaultOrigin, startEdge, courseIds, warm, runTimeline, analyse, series, table,
  TIER_TIMEOUT_MS, COOLDOWN_MS, FAILURES_TO_TRIP,
} from './harness.mjs';

const env = process.env;
const out = path.resolve(repo, env.EDGE_OUT ?? 'target/reliability/edge');
const courses = Number(env.EDGE_COURSES ?? 1500);
const concurrency = Number(env.EDGE_CONCURRENCY ?? 16);
const pre = 1000 * Number(env.EDGE_PRE_S ?? 10);
const fault = 1000 * Number(env.EDGE_FAULT_S ?? 20);
const post = 1000 * Number(env.EDGE_POST_S ?? 20);
const slowMs = Number(env.EDGE_SLOW_MS ?? 300);
const scenarios = (env.EDGE_SCENARIOS ?? 'reject,hang,slow').split(',').filter(Boolean);

const log = (line) => console.log(line);
mkdirSync(out, { recursive: true });
const dir = mkdtempSync(path.join(tmpdir(), 'stratacache-edge-faults-'));
const load0 = loadavg();
let origin;
let edge;
try {
  log(`==> Django origin (${courses} courses; STRATACACHE_MEMCACHED=${env.STRATACACHE_MEMCACHED ?? 'embedded'})`);
  let t = performance.now();
  origin = await startFaultOrigin(courses);
  log(`  up at ${origin.url} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  log('==> workerd (Miniflare): isolates a and b, KV wrapped by the fault adapter');
  edge = await startEdge({ origin: origin.url, names: ['a', 'b'], dir });
  const ids = courseIds(courses);
  t = performance.now();
  const warmA = await warm(edge.workers.a, ids, 8, log);
  const warmB = await warm(edge.workers.b, ids, 8, log);
  log(`  warmed ${ids.length} courses through a (${JSON.stringify(warmA)}) and b (${JSON.stringify(warmB)}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const phases = [{ mode: 'pass', ms: pre }];
  for (const s of scenarios) phases.push({ mode: s, ms: fault, ...(s === 'slow' ? { slowMs } : {}) }, { mode: 'pass', ms: post });
  log(`==> load: ${concurrency} concurrent clients, ${phases.map((p) => `${p.mode} ${p.ms / 1000} s`).join(' -> ')}`);
  const run = await runTimeline(edge, [{ name: 'edge', isolates: ['a', 'b'], concurrency, ids, phases }], { progress: log });
  const rows = analyse(run);
  const bins = series(run);
  const load1 = loadavg();
  const meta = {
    courses,
    concurrency,
    isolates: 2,
    tierTimeoutMs: TIER_TIMEOUT_MS,
    cooldownMs: COOLDOWN_MS,
    failuresToTrip: FAILURES_TO_TRIP,
    slowMs,
    loadavgBefore: load0,
    loadavgAfter: load1,
    memcached: env.STRATACACHE_MEMCACHED ?? null,
    s3: env.STRATACACHE_S3_ENDPOINT ?? null,
    at: new Date().toISOString(),
  };
  const finals = await Promise.all(['a', 'b'].map((n) => edge.stats(n)));
  writeFileSync(path.join(out, 'run.json'), JSON.stringify({ meta, ...run }));
  writeFileSync(path.join(out, 'summary.json'), JSON.stringify({ meta, phases: rows, final: finals }, null, 2));
  writeFileSync(path.join(out, 'series.json'), JSON.stringify({ meta, marks: run.marks, series: bins }, null, 2));
  const text = [
    `edge worker under KV faults: ${courses} courses, ${concurrency} clients, 2 isolates; ` +
      `tier timeout ${TIER_TIMEOUT_MS} ms, cool-down ${COOLDOWN_MS} ms after ${FAILURES_TO_TRIP} failures; ` +
      `load average ${load0.map((x) => x.toFixed(2)).join(' ')} -> ${load1.map((x) => x.toFixed(2)).join(' ')}`,
    table(rows),
    '',
    'Requests belong to the phase they were sent in (a request sent just before a fault may wait in it); counters to',
    'the phase they happened in. hit % = served from the local tier or KV (no origin call); kv % = served from KV;',
    'past local = requests not served by the local tier (without a cool-down each would call KV); KV calls = calls',
    'that reached the KV binding in the phase; bound = the cool-down rule\'s ceiling for them while KV fails; skipped =',
    'reads and writes that skipped KV while it cooled down; origin calls = /edge/entries + loads + version fetches;',
    'KV back s = time from the end of the fault to the first request each isolate served from KV; hit back s = time until',
    'a 1 s window\'s hit ratio was within 5 points of the 3 s before the fault.',
    `total: ${run.requests.length} requests, ${run.requests.filter((r) => r.error).length} errors returned to clients, ` +
      `max latency ${Math.max(...run.requests.map((r) => r.ms)).toFixed(0)} ms; hung KV calls never settled: ` +
      `${finals.map((f) => f.fault.hanging).reduce((a, b) => a + b, 0)}`,
  ].join('\n');
  writeFileSync(path.join(out, 'summary.txt'), `${text}\n`);
  log('');
  log(text);
  const errors = run.requests.filter((r) => r.error);
  if (errors.length) {
    log(`first errors: ${errors.slice(0, 3).map((e) => `${e.status} ${e.error}`).join(' | ')}`);
    process.exitCode = 1;
  }
} finally {
  await edge?.dispose();
  await origin?.stop();
  rmSync(dir, { recursive: true, force: true });
}
