// Fault injection for the edge worker under workerd (issue 7), short
// version (the long one: bash scripts/faults-edge.sh).
//
// The example's worker (examples/edge_worker/src/worker.js), unchanged, in
// real workerd (Miniflare) in front of the real Django example, with its KV
// binding wrapped by a fault-injecting adapter (fault_worker.mjs). Two groups
// of three isolates run at the same time under steady concurrent load, each
// through pass (3 s) -> fault (8 s) -> pass (14 s): in one group every KV
// call is rejected, in the other every KV call hangs forever. The isolates
// start with empty local tiers (KV was filled through another isolate), so
// a good share of their requests go past the local tier to KV throughout.
//
// Asserted: no error reaches a client; with KV hung, the tier timeout fires
// (requests wait for it) and no request runs past timeout + margin; the
// calls that reach KV while it fails stay within the cool-down rule (3
// failures, then one probe per cool-down), far fewer than the requests that
// went past the local tier; once KV is back, every isolate serves from KV
// again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startFaultOrigin, startEdge, courseIds, warm, runTimeline, analyse, table, TIER_TIMEOUT_MS,
} from './harness.mjs';

const COURSES = 200;
/** How far past the tier timeout a request may run (the origin's own answer, on a loaded machine). */
const MARGIN_MS = 5_000;
const PHASES = (mode) => [
  { mode: 'pass', ms: 3_000 },
  { mode, ms: 8_000 },
  { mode: 'pass', ms: 14_000 },
];

let dir;
let origin;
let edge;
let run;
let rows;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'stratacache-edge-faults-'));
  origin = await startFaultOrigin(COURSES);
  const reject = ['r0', 'r1', 'r2'];
  const hang = ['h0', 'h1', 'h2'];
  // Local entries live 2 s, so requests keep reaching KV whatever the
  // machine's speed (a fast one fills the local tiers from the origin
  // during the fault, and then nothing would show KV is back).
  edge = await startEdge({ origin: origin.url, names: ['warm', ...reject, ...hang], dir, localTtlMs: 2_000 });
  const ids = courseIds(COURSES);
  // Django builds every outline once and KV gets them all.
  await warm(edge.workers.warm, ids);
  run = await runTimeline(edge, [
    { name: 'reject', isolates: reject, concurrency: 8, ids, phases: PHASES('reject') },
    { name: 'hang', isolates: hang, concurrency: 8, ids, phases: PHASES('hang') },
  ]);
  rows = analyse(run);
  console.log(table(rows));
});

after(async () => {
  await edge?.dispose();
  await origin?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const row = (group, mode, after) => rows.find((r) => r.group === group && r.mode === mode && (after === undefined || r.phase > after));

test('edge, KV failing or hung: no error reaches a client, and the load kept going', () => {
  const errors = run.requests.filter((r) => r.error);
  assert.equal(errors.length, 0, `${errors.length} errors, first: ${JSON.stringify(errors.slice(0, 3))}\n${origin.log().slice(-3000)}`);
  for (const r of rows) assert.ok(r.requests > 0, `no request in ${r.group}/${r.mode}`);
  // KV really served this load before the fault (the test is about KV).
  for (const group of ['reject', 'hang']) assert.ok((row(group, 'pass').sources.kv ?? 0) > 0, `${group}: no KV hit before the fault`);
});

test('edge, KV hung: the tier timeout fires, and no request runs past timeout + margin', () => {
  const hung = row('hang', 'hang');
  const hanging = run.polls.filter((p) => p.why === 'end' && ['h0', 'h1', 'h2'].includes(p.isolate)).reduce((s, p) => s + p.fault.hanging, 0);
  assert.ok(hanging > 0, 'no KV call was left hanging: the fault was not exercised');
  const waited = run.requests.filter((r) => r.group === 'hang' && r.ms >= 0.9 * TIER_TIMEOUT_MS);
  assert.ok(waited.length > 0, 'no request waited for the tier timeout while KV hung');
  const next = row('hang', 'pass', hung.phase);
  // A hung call fails when the timeout fires, in the phase or just after it.
  assert.ok(hung.kvErrors + next.kvErrors >= 3, `the hung calls did not fail by timeout: ${hung.kvErrors + next.kvErrors} KV errors`);
  const slowest = Math.max(...run.requests.map((r) => r.ms));
  assert.ok(slowest <= TIER_TIMEOUT_MS + MARGIN_MS, `a request took ${slowest.toFixed(0)} ms (tier timeout ${TIER_TIMEOUT_MS} ms)`);
});

test('edge, KV failing or hung: the calls reaching KV stay within the cool-down rule', () => {
  for (const mode of ['reject', 'hang']) {
    const r = row(mode, mode);
    assert.ok(r.kvCalls >= 3, `${mode}: ${r.kvCalls} KV calls, the fault was not exercised`);
    assert.ok(r.kvCalls <= r.kvCallBound, `${mode}: ${r.kvCalls} KV calls while failing, more than the cool-down allows (${r.kvCallBound})`);
    assert.ok(r.kvSkippedCoolingDown > 0, `${mode}: no read or write skipped KV while it cooled down`);
  }
  // With KV failing fast the load goes on: every request that went past the
  // local tier would have called KV without the cool-down.
  const r = row('reject', 'reject');
  assert.ok(r.kvCalls < r.localMisses / 2, `reject: ${r.kvCalls} KV calls for ${r.localMisses} requests past the local tier`);
});

test('edge, after KV comes back: every isolate serves from KV again', () => {
  for (const mode of ['reject', 'hang']) {
    const fault = row(mode, mode);
    const back = row(mode, 'pass', fault.phase);
    assert.ok(back.kvCalls > 0, `${mode}: no KV call after the fault`);
    for (const [isolate, ms] of Object.entries(back.kvBackMs)) {
      assert.notEqual(ms, null, `${mode}: isolate ${isolate} served nothing from KV after the fault`);
    }
    assert.ok((back.sources.kv ?? 0) > 0);
  }
});
