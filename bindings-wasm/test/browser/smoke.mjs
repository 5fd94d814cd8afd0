// Runs in the browser: the built ES module (browser entry, which fetches
// the .wasm next to it) through a few operations. Writes one line per check
// to #log and "PASS n" or "FAIL ..." to #result.
const log = document.getElementById('log');
const result = document.getElementById('result');
let checks = 0;
function check(name, ok, detail = '') {
  checks++;
  log.textContent += `${ok ? 'ok' : 'not ok'} ${name}${detail ? ` (${detail})` : ''}\n`;
  if (!ok) throw new Error(`${name} failed ${detail}`);
}

try {
  const { LocalCache, Key, safeKey, TieredCache, memoryTier } = await import('/pkg/browser.js');

  // LocalCache: hit, miss, LRU eviction, stats from the core.
  const local = new LocalCache({ maxEntries: 2 });
  local.set('a', 1).set('b', 2);
  check('LocalCache hit', local.get('a') === 1);
  check('LocalCache miss', local.get('zzz') === undefined);
  local.set('c', 3); // b is least recently used
  check('LocalCache evicts the LRU entry', !local.has('b') && local.has('a') && local.has('c'));
  const stats = local.stats();
  check('LocalCache stats', stats.hits === 1 && stats.misses === 1 && stats.evictions === 1, JSON.stringify(stats));

  // Key: every shared vector, byte for byte.
  const keys = await (await fetch('/vectors/keys.json')).json();
  const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
  const part = (p) => ('str' in p ? p.str : 'int' in p ? BigInt(p.int) : 'bytes_hex' in p ? hex(p.bytes_hex) : p.str_repeat.unit.repeat(p.str_repeat.count));
  let built = 0;
  for (const v of keys.vectors) {
    let key;
    try {
      key = new Key(v.namespace, v.version, { maxLen: v.max_len }).build(...v.parts.map(part));
    } catch (e) {
      check(`key vector ${v.name} refused`, Boolean(v.error), String(e));
      continue;
    }
    check(`key vector ${v.name}`, !v.error && key === v.key, key);
    built++;
  }
  for (const v of keys.safe_keys) {
    if (v.error) continue;
    const raw = v.raw ?? v.raw_repeat.unit.repeat(v.raw_repeat.count);
    check(`safe_key vector ${v.name}`, safeKey(raw, v.max_len) === v.key);
  }
  check('key vectors checked', built > 0, `${built} built`);

  // TieredCache over memoryTier: a cold load, then a local hit.
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier], local: { maxEntries: 100 } });
  const key = new Key('smoke', 1).build('course', 42);
  let loads = 0;
  const v1 = await cache.getOrLoad(key, async () => (loads++, { title: 'Demo' }));
  const v2 = await cache.getOrLoad(key, async () => (loads++, { title: 'other' }));
  await cache.settled();
  check('TieredCache getOrLoad loads once', loads === 1 && v1.title === 'Demo' && v2.title === 'Demo');
  const other = new TieredCache({ tiers: [tier], local: { maxEntries: 100 } });
  const v3 = await other.getOrLoad(key, async () => (loads++, null));
  check('TieredCache reads the remote tier', loads === 1 && v3.title === 'Demo');

  result.textContent = `PASS ${checks}`;
} catch (e) {
  result.textContent = `FAIL after ${checks} checks: ${e && e.stack ? e.stack : e}`;
}
