// The edge example's worker (examples/edge_worker/src/worker.js), unchanged,
// with its KV binding (env.CACHE) wrapped by a fault-injecting adapter.
// Bundled by harness.mjs with esbuild as the example's build.mjs bundles the
// worker, and run in workerd (Miniflare).
//
// The wrapper has the KV binding's shape (get/put/delete/list/
// getWithMetadata) and passes every call to the real namespace, or, by the
// mode set at run time:
//   pass     the real call
//   reject   throws at once ("injected KV failure")
//   hang     a promise that never settles (the adapter's timeout must fire)
//   slow     waits `slowMs` first, then the real call
// Every call that reaches the wrapper is counted, by mode and by operation,
// in total and per epoch (an epoch starts at each mode switch, with a copy of
// the worker's counters at that moment, so a phase's figures are exact).
//
// Control routes (handled here, never by the worker):
//   POST /_fault?mode=reject[&slowMs=300]   switch this isolate's mode
//   GET  /_fault                            { fault: counters, worker: the worker's /_stats }
// Every other request goes to the example's worker with env.CACHE wrapped.
import worker from '../../../examples/edge_worker/src/worker.js';

const MODES = ['pass', 'reject', 'hang', 'slow'];

const state = {
  mode: 'pass',
  slowMs: 300,
  modeChanges: 0,
  // calls by mode (the mode at the moment of the call) and by operation
  calls: { pass: 0, reject: 0, hang: 0, slow: 0 },
  ops: {},
  // hang-mode calls never settle; how many there are
  hanging: 0,
  // real calls that failed on their own (not injected)
  realErrors: 0,
  // one per mode switch (the first: from the isolate's start)
  epochs: [{ mode: 'pass', calls: 0, ops: {}, start: null }],
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function call(op, real) {
  const mode = state.mode;
  state.calls[mode]++;
  state.ops[op] = (state.ops[op] ?? 0) + 1;
  const epoch = state.epochs[state.epochs.length - 1];
  epoch.calls++;
  epoch.ops[op] = (epoch.ops[op] ?? 0) + 1;
  if (mode === 'reject') throw new Error(`injected KV failure (${op})`);
  if (mode === 'hang') {
    state.hanging++;
    return new Promise(() => {});
  }
  if (mode === 'slow') await sleep(state.slowMs);
  try {
    return await real();
  } catch (error) {
    state.realErrors++;
    throw error;
  }
}

function faulty(kv) {
  return {
    get: (...args) => call('get', () => kv.get(...args)),
    getWithMetadata: (...args) => call('getWithMetadata', () => kv.getWithMetadata(...args)),
    put: (...args) => call('put', () => kv.put(...args)),
    delete: (...args) => call('delete', () => kv.delete(...args)),
    list: (...args) => call('list', () => kv.list(...args)),
  };
}

let wrapped;

async function workerStats(url, ctx) {
  const response = await worker.fetch(new Request(new URL('/_stats', url)), wrapped, ctx);
  return response.json();
}

function json(body, status = 200) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

export default {
  async fetch(request, env, ctx) {
    // One wrapper per isolate: the worker keeps the env it first saw (its
    // TieredCache is built once per isolate).
    if (!wrapped) wrapped = { ...env, CACHE: faulty(env.CACHE) };
    const url = new URL(request.url);
    if (url.pathname === '/_fault') {
      if (request.method === 'POST') {
        const mode = url.searchParams.get('mode');
        if (!MODES.includes(mode)) return json({ error: `mode must be one of ${MODES.join(', ')}` }, 400);
        state.mode = mode;
        state.modeChanges++;
        if (url.searchParams.has('slowMs')) state.slowMs = Number(url.searchParams.get('slowMs'));
        // The worker's counters at the switch (/_stats does no I/O: at most a
        // few other requests' steps run in between).
        state.epochs.push({ mode, calls: 0, ops: {}, start: null });
        const epoch = state.epochs[state.epochs.length - 1];
        epoch.start = await workerStats(url, ctx);
        return json({ mode: state.mode, slowMs: state.slowMs, epoch: state.epochs.length - 1 });
      }
      return json({ fault: state, worker: await workerStats(url, ctx) });
    }
    return worker.fetch(request, wrapped, ctx);
  },
};
