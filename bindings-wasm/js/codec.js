// Payload serialization: the JSON codec shared with the Python package.
//
// Rules (docs/wasm.md, "JSON codec"): UTF-8, compact separators (`,` `:`),
// non-ASCII characters written as themselves (no \u escapes), object keys
// in insertion order, no NaN or Infinity. Python writes the same bytes with
// json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
// for strings, integers, booleans, null, lists and dicts. Uint8Array values
// use the raw codec (bytes in Python).

export const CODEC_RAW = 0;
export const CODEC_JSON = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function kindOf(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return Object.prototype.toString.call(v).slice(8, -1);
}

function strict(key, v) {
  switch (typeof v) {
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`${v} is not a JSON number`);
      return v;
    case 'function':
    case 'symbol':
      throw new TypeError(`a ${typeof v} is not JSON data`);
    case 'bigint':
      throw new TypeError('a bigint is not JSON data (convert it to a string)');
    case 'object':
      if (v !== null && (v instanceof Map || v instanceof Set || ArrayBuffer.isView(v) || v instanceof ArrayBuffer)) {
        throw new TypeError(`a ${kindOf(v)} would not survive JSON (convert it to a plain object or array)`);
      }
      return v;
    default:
      return v;
  }
}

/** [codec tag, payload bytes] for a value; throws a TypeError naming the key if it cannot be encoded. */
export function serialize(value, key) {
  if (value instanceof Uint8Array) return [CODEC_RAW, value];
  if (value instanceof ArrayBuffer) return [CODEC_RAW, new Uint8Array(value)];
  let text;
  try {
    text = JSON.stringify(value, strict);
  } catch (error) {
    throw new TypeError(
      `stratacache: the value for key ${JSON.stringify(key)} cannot be JSON-encoded: ${error.message}. ` +
        'Store plain data (objects, arrays, strings, finite numbers, booleans, null) or a Uint8Array.',
      { cause: error },
    );
  }
  if (text === undefined) {
    throw new TypeError(
      `stratacache: the value for key ${JSON.stringify(key)} is ${kindOf(value)}, which JSON cannot encode; use null for "no value".`,
    );
  }
  return [CODEC_JSON, encoder.encode(text)];
}

/** The value of a payload; throws if it cannot be read here. */
export function deserialize(codec, payload) {
  switch (codec) {
    case 'json':
      return JSON.parse(decoder.decode(payload));
    case 'raw':
      return payload;
    default:
      throw new TypeError(`stratacache: payloads with codec ${codec} cannot be read in JavaScript`);
  }
}
