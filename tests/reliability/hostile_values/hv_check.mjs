// The assertions every JS hostile-value case shares (Node side): write a
// signed value through the tier, corrupt it in the server, read it back with
// fresh caches (no local tier) and check the outcome.
import assert from 'node:assert/strict';
import { ORIGINAL, OTHER, FRESH, SIGNING_KEYS, READER_MAX_PAYLOAD, parse } from './hv_cases.mjs';

/**
 * A tiercache view for the Node tiers: `tc` is the package, `tier` an
 * adapter instance (a fresh TieredCache over it stands for another process).
 */
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
  return { errors, writer: () => make(), reader: (extra) => make({ maxPayloadLen: READER_MAX_PAYLOAD, ...extra }) };
}

const eq = (a, b) => Buffer.from(a).equals(Buffer.from(b));

/** Runs one envelope case end to end. raw: { get(key), put(key, bytes), del(key) } over the server. */
export async function runCase({ tc, tier, raw, key, other, kase, value = ORIGINAL, fresh = FRESH }) {
  const { errors, writer, reader } = caches(tc, tier);
  await writer().setAllTiers(key, value, { ttlMs: 60_000 });
  await writer().setAllTiers(other, OTHER, { ttlMs: 60_000 });
  const valid = await raw.get(key);
  const otherValid = await raw.get(other);
  assert.ok(valid && otherValid, 'the writer stored both values');
  assert.ok(parse(valid).signed);
  const control = reader();
  assert.deepEqual((await control.get(key)).value, value, 'control: the untouched value is a hit');
  assert.equal(control.stats().tiers[0].rejected, 0);

  const bad = kase.make(valid, { key, otherValid });
  assert.ok(!eq(bad, valid));
  await raw.put(key, bad);
  assert.ok(eq(await raw.get(key), bad), 'the server holds the hostile bytes');
  await checkOutcome({ tiers: { errors, reader, writer }, key, counter: kase.counter, fresh });
}

/** The outcome checks, once the hostile bytes are in place. */
export async function checkOutcome({ tiers: { errors, reader }, key, counter, fresh = FRESH }) {
  errors.length = 0;
  // strict mode: a hostile value is not a tier failure: a miss, no error
  const strict = reader({ strict: true });
  const s = await strict.get(key);
  assert.equal(s.hit, false);
  assert.equal(strict.stats().tiers[0][counter], 1, JSON.stringify(strict.stats().tiers[0]));

  const r = reader();
  const got = await r.get(key);
  assert.equal(got.hit, false);
  assert.equal(got.value, undefined, 'nothing of the bad bytes is returned');
  const many = await r.getMany([key]);
  assert.equal(many[0].hit, false);
  const t = r.stats().tiers[0];
  assert.equal(t[counter], 2, JSON.stringify(t));
  assert.equal(t.hits, 0);
  assert.equal(t.errors, 0);

  let loads = 0;
  assert.deepEqual(await r.getOrLoad(key, async () => (loads++, fresh), { ttlMs: 60_000 }), fresh);
  assert.equal(loads, 1);
  await r.settled();
  const reads = r.stats().reads;
  assert.equal(reads.decodeErrors, 0, 'no payload of a hostile value reached the decoder');
  assert.deepEqual(
    errors.map((e) => String(e?.message ?? e)),
    [],
    'no tier or decode error was reported',
  );

  // the bad entry was replaced: another process reads the fresh value
  const check = reader();
  assert.deepEqual((await check.get(key)).value, fresh);
  assert.equal(check.stats().tiers[0].hits, 1);
  assert.equal(check.stats().tiers[0].rejected, 0);
  return check;
}
