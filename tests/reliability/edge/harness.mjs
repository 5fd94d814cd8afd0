// Fault injection for the edge worker under workerd: the harness shared by
// faults_edge.test.mjs (short) and run.mjs (scripts/faults-edge.sh, long).
//
// The example's worker (examples/edge_worker/src/worker.js) runs unchanged
// in workerd (Miniflare, from the example's node_modules), in front of the
// Django example (examples/edge_worker/origin.mjs: gunicorn, the example's
// real origin), with its KV binding wrapped by fault_worker.mjs. Several
// isolates share one KV namespace; each isolate's fault mode is switched at
// run time (POST /_fault?mode=...). A steady load of concurrent requests
// (uniform over the courses) runs through a timeline of phases, and every
// request, every mode switch and a poll of every isolate's counters (every
// `pollMs`) are recorded; analyse() turns that into figures per phase.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../../..');
export const example = path.join(repo, 'examples/edge_worker');
const requireFromExample = createRequire(path.join(example, 'package.json'));

/** A package installed in the example's node_modules (miniflare, esbuild, stratacache). */
async function fromExample(name) {
  return import(pathToFileURL(requireFromExample.resolve(name)).href);
}

const { startOrigin, sleep } = await import(pathToFileURL(path.join(example, 'origin.mjs')).href);
export { startOrigin, sleep };

export const SECRET = 'edge faults: secret shared by Django and the worker';
export const TOKEN = 'edge-faults-token';
/** What the example's worker runs with: its kvTier timeout (examples/edge_worker/src/worker.js), the core's default CooldownPolicy. */
export const TIER_TIMEOUT_MS = 1_000;
export const FAILURES_TO_TRIP = 3;
export const COOLDOWN_MS = 5_000;

const ORGS = ['MITx', 'HarvardX', 'BerkeleyX', 'DelftX', 'UQx', 'EPFLx', 'KyotoUx', 'UBCx', 'IITBx', 'TsinghuaX'];
/** The ordinary course ids Django's seed writes for DEMO_COURSES=n (courses.modulestore.catalog). */
export function courseIds(n) {
  return Array.from({ length: n }, (_, i) => `course-v1:${ORGS[i % 10]}+CS${String(100 + i).padStart(3, '0')}+2025`);
}

/**
 * The Django example as origin (examples/edge_worker/origin.mjs) for
 * `courses` courses. gunicorn's keep-alive is raised from its 2 s default to
 * 300 s (GUNICORN_CMD_ARGS; EDGE_ORIGIN_KEEPALIVE overrides it): with 2 s,
 * workerd reuses pooled connections gunicorn is closing, and a few origin
 * fetches fail with "Network connection lost" under load even with no KV
 * fault at all (repro_keepalive.mjs shows it). The fault runs measure KV
 * faults, so they take that origin problem out.
 */
export function startFaultOrigin(courses, env = {}) {
  const keepAlive = process.env.EDGE_ORIGIN_KEEPALIVE ?? '300';
  return startOrigin({
    DEMO_COURSES: String(courses),
    DEMO_QUERY_DELAY_MS: process.env.DEMO_QUERY_DELAY_MS ?? '0',
    DEMO_SIGNING_SECRET: SECRET,
    DEMO_EDGE_TOKEN: TOKEN,
    GUNICORN_CMD_ARGS: `--keep-alive ${keepAlive}`,
    ...env,
  });
}

/** Bundles fault_worker.mjs (and the example's worker it imports) with the example's build.mjs. */
export async function bundle(outdir) {
  return (await exampleBuild()).bundle(outdir, path.join(here, 'fault_worker.mjs'));
}

/** The edge example's build.mjs (bundle, workerOptions). */
function exampleBuild() {
  return import(pathToFileURL(path.join(example, 'build.mjs')).href);
}

/**
 * Starts Miniflare with one worker (isolate) per name, all sharing the KV
 * namespace CACHE, each the example's worker behind the fault wrapper.
 * Returns { mf, workers: {name: fetcher}, setMode(name, mode, slowMs?), stats(name), dispose() }.
 */
export async function startEdge({ origin, names, dir, versionTtlMs = 600_000, localTtlMs = 60_000 }) {
  const { Miniflare } = await fromExample('miniflare');
  const bundled = await bundle(path.join(dir, 'worker'));
  const { workerOptions } = await exampleBuild();
  const bindings = { ORIGIN: origin, SIGNING_SECRET: SECRET, EDGE_TOKEN: TOKEN, VERSION_TTL_MS: String(versionTtlMs), LOCAL_TTL_MS: String(localTtlMs) };
  const mf = new Miniflare({ workers: names.map((name) => workerOptions(name, bundled, bindings)), host: '127.0.0.1' });
  await mf.ready;
  const workers = {};
  for (const name of names) workers[name] = await mf.getWorker(name);
  return {
    mf,
    workers,
    async setMode(name, mode, slowMs) {
      const query = new URLSearchParams({ mode });
      if (slowMs !== undefined) query.set('slowMs', String(slowMs));
      const response = await workers[name].fetch(`http://edge.test/_fault?${query}`, { method: 'POST' });
      const body = await response.json();
      if (response.status !== 200) throw new Error(`setMode ${name} ${mode}: ${JSON.stringify(body)}`);
      return body;
    },
    async stats(name) {
      const response = await workers[name].fetch('http://edge.test/_fault');
      return response.json();
    },
    async dispose() {
      await mf.dispose();
    },
  };
}

export const outlinePath = (id) => `http://edge.test/courses/${encodeURIComponent(id)}/outline.json`;

/** A request deadline far past any timeout of the worker: a request still running then is stuck. */
export const STUCK_MS = 60_000;

/** GETs one outline: { status, source, ms, error? } (never throws). */
export async function request(fetcher, id) {
  const t0 = performance.now();
  let timer;
  const stuck = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ status: 0, source: null, error: `stuck for ${STUCK_MS} ms` }), STUCK_MS);
  });
  const work = (async () => {
    try {
      const response = await fetcher.fetch(outlinePath(id));
      const body = await response.text();
      const out = { status: response.status, source: response.headers.get('x-stratacache-source') };
      if (response.status !== 200) out.error = body.slice(0, 300);
      else if (!body.includes(id)) out.error = `the body is not the outline of ${id}`;
      return out;
    } catch (error) {
      return { status: 0, source: null, error: String(error?.message ?? error) };
    }
  })();
  const result = await Promise.race([work, stuck]);
  clearTimeout(timer);
  return { ...result, ms: performance.now() - t0 };
}

/** Requests every id once through `fetcher` (`concurrency` at a time); returns the sources seen. */
export async function warm(fetcher, ids, concurrency = 8, progress = undefined) {
  let next = 0;
  let done = 0;
  const sources = {};
  const errors = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ids.length) {
        const id = ids[next++];
        const r = await request(fetcher, id);
        if (r.error) errors.push(`${id}: ${r.status} ${r.error}`);
        sources[r.source] = (sources[r.source] ?? 0) + 1;
        if (progress && ++done % 250 === 0) progress(`  warm-up: ${done}/${ids.length}`);
      }
    }),
  );
  if (errors.length) throw new Error(`warm-up: ${errors.length} errors, first: ${errors[0]}`);
  return sources;
}

/**
 * Runs groups of isolates under steady load through their timelines, at the
 * same time. A group: { name, isolates: [names], concurrency, ids,
 * phases: [{ mode, ms, slowMs? }] }. Each of a group's `concurrency` clients
 * sends one request after the other, each to a random isolate of the group
 * for a random course of `ids`. At each phase's start the group's isolates
 * switch to its mode. Every `pollMs` (and at each switch) every isolate's
 * counters are read. `progress(line)` is called about every second.
 * Returns { t0: 0, requests, polls, marks, groups } (times in ms from the start).
 */
export async function runTimeline(edge, groups, { pollMs = 500, progress } = {}) {
  const start = performance.now();
  const now = () => performance.now() - start;
  const requests = [];
  const polls = [];
  const marks = [];
  const allIsolates = groups.flatMap((g) => g.isolates);
  const poll = async (why) => {
    const t = now();
    const got = await Promise.all(allIsolates.map((name) => edge.stats(name)));
    // Epochs (with their counter snapshots) are kept from the last poll only.
    got.forEach((s, i) => {
      const fault = why === 'end' ? s.fault : { ...s.fault, epochs: undefined };
      polls.push({ t, isolate: allIsolates[i], why, fault, worker: s.worker });
    });
  };
  let running = true;
  await poll('start');
  const poller = (async () => {
    let lastLine = 0;
    while (running) {
      await sleep(pollMs);
      if (!running) break;
      await poll('tick');
      if (progress && now() - lastLine >= 1000) {
        lastLine = now();
        const recent = requests.filter((r) => r.t1 > now() - 1000);
        const hits = recent.filter((r) => r.source === 'local' || r.source === 'kv').length;
        const errs = requests.filter((r) => r.error).length;
        const modes = groups.map((g) => `${g.name}:${g.current ?? '-'}`).join(' ');
        progress(
          `  t=${(now() / 1000).toFixed(1).padStart(5)} s  ${modes}  ${String(recent.length).padStart(4)} req/s  ` +
            `hit ${recent.length ? ((100 * hits) / recent.length).toFixed(0) : '-'}%  ` +
            `max ${recent.length ? Math.max(...recent.map((r) => r.ms)).toFixed(0) : '-'} ms  errors ${errs}`,
        );
      }
    }
  })();
  const runGroup = async (group) => {
    // Switches every isolate of the group; returns {isolate: epoch index}.
    const switchAll = async (mode, slowMs) =>
      Object.fromEntries(await Promise.all(group.isolates.map(async (name) => [name, (await edge.setMode(name, mode, slowMs)).epoch])));
    const total = group.phases.reduce((s, p) => s + p.ms, 0);
    const groupStart = now();
    const clients = Array.from({ length: group.concurrency }, async () => {
      while (now() - groupStart < total) {
        const isolate = group.isolates[Math.floor(Math.random() * group.isolates.length)];
        const id = group.ids[Math.floor(Math.random() * group.ids.length)];
        const t0 = now();
        const phase = group.phase;
        const r = await request(edge.workers[isolate], id);
        requests.push({ group: group.name, isolate, phase, t0, t1: t0 + r.ms, ...r });
      }
    });
    const switcher = (async () => {
      let at = 0;
      for (const [i, p] of group.phases.entries()) {
        const wait = groupStart + at - now();
        if (wait > 0) await sleep(wait);
        marks.push({ group: group.name, phase: i, mode: p.mode, t: now(), epochs: await switchAll(p.mode, p.slowMs) });
        group.phase = i;
        group.current = p.mode;
        at += p.ms;
      }
    })();
    await Promise.all([...clients, switcher]);
    // The end: back to pass, which also snapshots the counters at the end.
    marks.push({ group: group.name, phase: group.phases.length, mode: 'end', t: now(), epochs: await switchAll('pass') });
  };
  for (const g of groups) g.phase = 0;
  await Promise.all(groups.map(runGroup));
  running = false;
  await poller;
  await poll('end');
  return {
    requests,
    polls,
    marks,
    groups: groups.map((g) => ({ name: g.name, isolates: g.isolates, concurrency: g.concurrency, keys: g.ids.length, phases: g.phases })),
  };
}

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
const isHit = (r) => r.source === 'local' || r.source === 'kv';

const lastPoll = (polls, isolate) => polls.filter((p) => p.isolate === isolate).at(-1);
const originCalls = (w) => w.counts.originEntryCalls + w.counts.originLoads + w.counts.versionFetches;

/**
 * Figures per group and phase: requests, errors, sources, hit ratio,
 * latency quantiles, KV calls (by mode) and origin calls in the phase, the
 * cool-down bound on KV calls while failing, and after a fault phase the
 * time until KV served a request again and until the hit ratio recovered.
 */
export function analyse(run, { binMs = 1000, timeoutMs = TIER_TIMEOUT_MS, cooldownMs = COOLDOWN_MS, trip = FAILURES_TO_TRIP } = {}) {
  const out = [];
  for (const g of run.groups) {
    const marks = run.marks.filter((m) => m.group === g.name).sort((a, b) => a.t - b.t);
    const reqs = run.requests.filter((r) => r.group === g.name);
    g.phases.forEach((p, i) => {
      const from = marks[i].t;
      const to = marks[i + 1].t;
      // Requests sent in this phase.
      const inPhase = reqs.filter((r) => r.phase === i);
      const lat = inPhase.map((r) => r.ms).sort((a, b) => a - b);
      const sources = {};
      for (const r of inPhase) sources[r.source ?? 'error'] = (sources[r.source ?? 'error'] ?? 0) + 1;
      // Exact per phase: the wrapper's epoch of each isolate (its KV calls,
      // and the worker's counters at the switch into and out of the phase).
      let calls = 0;
      let origin = 0;
      let skipped = 0;
      let tierErrors = 0;
      for (const name of g.isolates) {
        const epochs = lastPoll(run.polls, name).fault.epochs;
        const e = epochs[marks[i].epochs[name]];
        const next = epochs[marks[i + 1].epochs[name]];
        calls += e.calls;
        origin += originCalls(next.start) - originCalls(e.start);
        skipped += (next.start.stats.tiers[0].skippedCoolingDown ?? 0) - (e.start.stats.tiers[0].skippedCoolingDown ?? 0);
        tierErrors += next.start.stats.tiers[0].errors - e.start.stats.tiers[0].errors;
      }
      const seconds = (to - from) / 1000;
      const row = {
        group: g.name,
        phase: i,
        mode: p.mode,
        from,
        to,
        seconds,
        requests: inPhase.length,
        rps: inPhase.length / seconds,
        errors: inPhase.filter((r) => r.error).length,
        firstError: inPhase.find((r) => r.error)?.error ?? null,
        sources,
        hitRatio: inPhase.length ? inPhase.filter(isHit).length / inPhase.length : null,
        localMisses: inPhase.filter((r) => r.source !== 'local').length,
        p50: quantile(lat, 0.5),
        p99: quantile(lat, 0.99),
        max: lat.length ? lat[lat.length - 1] : null,
        kvCalls: calls,
        kvErrors: tierErrors,
        kvSkippedCoolingDown: skipped,
        originCalls: origin,
      };
      if (p.mode === 'reject' || p.mode === 'hang') {
        // The cool-down rule: per isolate, `trip` failed calls, then one
        // probe per cool-down (two when a hung probe's timeout and the end of
        // the cool-down meet); plus, for the group, the calls already under
        // way when the tier tripped (a read and a back-fill per request in flight).
        const probes = 2 * (Math.ceil((to - from) / cooldownMs) + 1);
        row.kvCallBound = g.isolates.length * (trip + probes) + 2 * g.concurrency;
      }
      const prev = g.phases[i - 1];
      if (p.mode === 'pass' && prev && prev.mode !== 'pass') {
        // Recovery after the fault: first request (sent after the switch)
        // served from KV, per isolate; first bin whose hit ratio is back
        // within 5 points of the last bins before the fault.
        row.kvBackMs = {};
        for (const name of g.isolates) {
          const first = reqs.filter((r) => r.isolate === name && r.t0 >= from && r.source === 'kv').sort((a, b) => a.t1 - b.t1)[0];
          row.kvBackMs[name] = first ? first.t1 - from : null;
        }
        const before = reqs.filter((r) => r.phase === i - 2 && r.t0 >= marks[i - 1].t - 3 * binMs);
        row.baselineHitRatio = before.length ? before.filter(isHit).length / before.length : null;
        row.hitRecoveredMs = null;
        if (row.baselineHitRatio !== null) {
          for (let t = from; t + binMs <= to; t += binMs / 4) {
            const bin = reqs.filter((r) => r.t0 >= t && r.t0 < t + binMs);
            if (bin.length >= 5 && bin.filter(isHit).length / bin.length >= row.baselineHitRatio - 0.05) {
              row.hitRecoveredMs = t + binMs - from;
              break;
            }
          }
        }
      }
      out.push(row);
    });
  }
  return out;
}

/**
 * The timeline per group: requests in bins of `binMs` (count, errors, hit
 * ratio, KV share, median and max latency, by completion time), and the
 * rates of KV calls (by mode) and origin calls between successive polls.
 */
export function series(run, binMs = 1000) {
  const end = Math.max(...run.requests.map((r) => r.t1), ...run.marks.map((m) => m.t));
  const out = {};
  const modes = ['pass', 'reject', 'hang', 'slow'];
  for (const g of run.groups) {
    const bins = [];
    const reqs = run.requests.filter((r) => r.group === g.name);
    for (let t = 0; t < end; t += binMs) {
      const done = reqs.filter((r) => r.t1 >= t && r.t1 < t + binMs);
      const lat = done.map((r) => r.ms).sort((a, b) => a - b);
      bins.push({
        t: t / 1000,
        requests: done.length,
        errors: done.filter((r) => r.error).length,
        hitRatio: done.length ? done.filter(isHit).length / done.length : null,
        kvShare: done.length ? done.filter((r) => r.source === 'kv').length / done.length : null,
        p50: quantile(lat, 0.5),
        max: lat.length ? lat[lat.length - 1] : null,
      });
    }
    // Every poll reads all isolates at one time t.
    const times = [...new Set(run.polls.filter((p) => p.isolate === g.isolates[0]).map((p) => p.t))].sort((a, b) => a - b);
    const at = (t, pick) => g.isolates.reduce((s, name) => s + pick(run.polls.find((p) => p.isolate === name && p.t === t)), 0);
    const rates = [];
    for (let i = 1; i < times.length; i++) {
      const [t0, t1] = [times[i - 1], times[i]];
      const dt = (t1 - t0) / 1000;
      rates.push({
        t0: t0 / 1000,
        t1: t1 / 1000,
        kvCalls: Object.fromEntries(modes.map((m) => [m, (at(t1, (q) => q.fault.calls[m]) - at(t0, (q) => q.fault.calls[m])) / dt])),
        originCalls: (at(t1, (q) => originCalls(q.worker)) - at(t0, (q) => originCalls(q.worker))) / dt,
      });
    }
    out[g.name] = { bins, rates };
  }
  return out;
}

/** A plain-text table of analyse() rows. */
export function table(rows) {
  const head = ['group', 'phase', 's', 'requests', 'req/s', 'errors', 'hit %', 'kv %', 'p50 ms', 'p99 ms', 'max ms',
    'past local', 'KV calls', 'KV errors', 'bound', 'skipped', 'origin calls', 'KV back s', 'hit back s'];
  const fmt = (v, d = 0) => (v === null || v === undefined ? '-' : typeof v === 'number' ? v.toFixed(d) : String(v));
  const lines = rows.map((r) => [
    r.group,
    r.mode,
    fmt(r.seconds, 1),
    fmt(r.requests),
    fmt(r.rps, 0),
    fmt(r.errors),
    fmt(r.hitRatio === null ? null : 100 * r.hitRatio, 1),
    fmt(r.requests ? (100 * (r.sources.kv ?? 0)) / r.requests : null, 1),
    fmt(r.p50),
    fmt(r.p99),
    fmt(r.max),
    fmt(r.localMisses),
    fmt(r.kvCalls),
    fmt(r.kvErrors),
    fmt(r.kvCallBound),
    fmt(r.kvSkippedCoolingDown),
    fmt(r.originCalls),
    r.kvBackMs ? Object.values(r.kvBackMs).map((v) => fmt(v === null ? null : v / 1000, 2)).join('/') : '-',
    r.hitRecoveredMs !== undefined ? fmt(r.hitRecoveredMs === null ? null : r.hitRecoveredMs / 1000, 2) : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [row(head), row(widths.map((w) => '-'.repeat(w))), ...lines.map(row)].join('\n');
}
