// The assertions every JS hostile-value case shares: a signed value is
// written through the tier, corrupted in the server, and read back by fresh
// caches (no local tier). `phases` runs hv_observe.mjs's writePhase and
// readPhase, in Node directly or inside workerd.
import assert from 'node:assert/strict';
import { ORIGINAL, OTHER, FRESH, SIGNING_KEYS, READER_MAX_PAYLOAD, parse } from './hv_cases.mjs';
import { writePhase, readPhase } from './hv_observe.mjs';

/** Caches over one Node tier adapter (a fresh TieredCache stands for another process). */
export function caches(tc, tier) {
  const errors = [];
  const make = (extra = {}) =>
    new tc.TieredCache({
      tiers: [tier],
      local: false,
      signingKeys: SIGNING_KEYS,
      compressAt: null,
      cooldown: { failuresToTrip: 1000, cooldownMs: 10 },
      onError: (e) => errors.push(e),
      ...extra,
    });
  return {
    errors: async () => errors.splice(0).map((e) => String(e?.message ?? e)),
    writer: () => make(),
    reader: (extra) => make({ maxPayloadLen: READER_MAX_PAYLOAD, ...extra }),
  };
}

/** Phases run in this process, over `caches` and `raw`. */
export function localPhases(cachesOf, raw) {
  return {
    write: (args) => writePhase({ caches: cachesOf, raw, ...args }),
    read: (args) => readPhase({ caches: cachesOf, raw, ...args }),
  };
}

const eq = (a, b) => Buffer.from(a).equals(Buffer.from(b));

/** One envelope case end to end. */
export async function runCase({ phases, key, other, kase, value = ORIGINAL, fresh = FRESH }) {
  const w = await phases.write({ key, other, value, otherValue: OTHER });
  assert.ok(w.valid && w.otherValid, 'the writer stored both values');
  assert.ok(parse(w.valid).signed);
  assert.equal(w.control.hit, true, 'control: the untouched value is a hit');
  assert.deepEqual(w.control.value, value);
  assert.equal(w.control.tier.rejected, 0);

  const bad = kase.make(w.valid, { key, otherValid: w.otherValid });
  assert.ok(!eq(bad, w.valid));
  const obs = await phases.read({ key, bad, fresh });
  assert.ok(eq(obs.stored, bad), 'the server holds the hostile bytes');
  return checkOutcome(obs, kase.counter, fresh);
}

/** The outcome checks on readPhase's observations. */
export function checkOutcome(obs, counter, fresh = FRESH) {
  const show = JSON.stringify(obs);
  // strict mode: a hostile value is not a tier failure: a miss, no error
  assert.equal(obs.strict.error, null, show);
  assert.equal(obs.strict.hit, false, show);
  assert.equal(obs.strict.tier[counter], 1, show);

  assert.equal(obs.get.error, null, show);
  assert.equal(obs.get.hit, false, show);
  assert.equal(obs.get.value, null, 'nothing of the bad bytes is returned');
  assert.equal(obs.many.error, null, show);
  assert.equal(obs.many.hits, 0, show);
  assert.equal(obs.afterGets[counter], 2, show);
  assert.equal(obs.afterGets.hits, 0, show);
  assert.equal(obs.afterGets.errors, 0, show);

  assert.equal(obs.load.error, null, show);
  assert.deepEqual(obs.load.value, fresh);
  assert.equal(obs.afterLoad.reads.loads, 1, 'the loader ran once');
  assert.equal(obs.afterLoad.reads.decodeErrors, 0, 'no payload of a hostile value reached the decoder');
  assert.deepEqual(obs.errors, [], 'no tier or decode error was reported');

  // the bad entry was replaced: another process reads the fresh value
  assert.equal(obs.check.error, null, show);
  assert.equal(obs.check.hit, true, show);
  assert.deepEqual(obs.check.value, fresh);
  assert.equal(obs.check.tier.hits, 1);
  assert.equal(obs.check.tier.rejected, 0);
  return obs;
}
