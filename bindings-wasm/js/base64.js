// Standard padded base64 (RFC 4648) for the Workers KV tier, whose bulk
// get returns text only: envelopes are stored there as base64 text. The
// platform does the work: Uint8Array#toBase64 / Uint8Array.fromBase64 where
// they exist (workerd, current browsers), atob/btoa elsewhere (Node 20).
// Decoding is strict first, so only text this adapter could write is read.

// With a length that is a multiple of 4, this is exactly padded base64 (a
// plain character class: no backtracking, whatever the length).
const STRICT = /^[A-Za-z0-9+/]*={0,2}$/;
const NATIVE = typeof Uint8Array.fromBase64 === 'function' && typeof Uint8Array.prototype.toBase64 === 'function';
// Bytes per btoa call: a multiple of 3, so the texts of the slices join
// into the text of the whole; small enough for String.fromCharCode's
// arguments (they live on the stack).
const SLICE = 3 * 0x2000;

/** base64 text of `bytes`. */
export function base64Encode(bytes) {
  if (NATIVE) return bytes.toBase64();
  const parts = [];
  for (let i = 0; i < bytes.length; i += SLICE) {
    parts.push(btoa(String.fromCharCode.apply(null, bytes.subarray(i, i + SLICE))));
  }
  return parts.join('');
}

/** The bytes of standard padded base64 `text`; undefined for anything else. */
export function base64Decode(text) {
  if (text.length % 4 !== 0 || !STRICT.test(text)) return undefined;
  if (NATIVE) return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
