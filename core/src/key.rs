//! Versioned cache keys: [`KeyBuilder`] turns a namespace, a version and a
//! list of [`Part`]s into a string that is a valid memcached key, and
//! [`safe_key`] does the same for arbitrary string keys handed over by hosts.
//!
//! The format (named `tiercache-key-1`) is a contract between every host and
//! every cache that outlives a deploy; it is pinned by the vectors in
//! `tests/vectors/keys.json` and described in `docs/key-format.md`.
//!
//! Layout: `{namespace}|v{version}` followed, for each part, by `|` and the
//! encoded part:
//!
//! * [`Part::Str`]: the UTF-8 bytes, each byte in `0x21..=0x7E` other than
//!   `%`, `|`, `#` and `!` kept as is, every other byte written `%XX`
//!   (uppercase hex);
//! * [`Part::Int`]: `#` and the decimal value;
//! * [`Part::Bytes`]: `!` and the same escaping applied to the raw bytes.
//!
//! A key longer than the builder's maximum length keeps a readable prefix and
//! ends in `%#` and 32 lowercase hex digits of the SHA-256 of the whole
//! untruncated key.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::namespace::Namespace;

/// The name of the key format this module writes, as it appears in the
/// `format` field of `tests/vectors/keys.json`.
pub const KEY_FORMAT: &str = "tiercache-key-1";

/// The default maximum key length in bytes: memcached's 250-byte limit
/// ([`MEMCACHED_MAX_KEY_LEN`]) minus 50 bytes of room for a host prefix such
/// as Django's `KEY_PREFIX:VERSION:`.
pub const DEFAULT_MAX_KEY_LEN: usize = 200;

/// The smallest maximum key length accepted: an over-long key keeps at least
/// 28 readable bytes before its 34-byte digest suffix.
pub const MIN_MAX_KEY_LEN: usize = 64;

/// memcached's limit on key length in bytes, and the largest maximum key
/// length accepted.
pub const MEMCACHED_MAX_KEY_LEN: usize = 250;

/// Length of the suffix of an over-long key: `%#` and 32 hex digits.
const DIGEST_SUFFIX_LEN: usize = 2 + 32;

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// One component of a versioned key.
///
/// The encoding of each variant starts differently (a string never starts
/// with an unescaped `#` or `!`), so `Part::Int(5)`, `Part::Str("5")` and
/// `Part::Bytes(b"5")` give three different keys.
///
/// ```
/// use stratacache::key::Part;
///
/// assert_eq!(Part::from("course-v1:edX+DemoX+Demo_Course"), Part::Str("course-v1:edX+DemoX+Demo_Course"));
/// assert_eq!(Part::from(42u64), Part::Int(42));
/// assert_eq!(Part::from(&b"\x00\xff"[..]), Part::Bytes(b"\x00\xff"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part<'a> {
    /// Text; written as its UTF-8 bytes, percent-escaped where needed.
    Str(&'a str),
    /// An integer; written as `#` and its decimal value.
    Int(i128),
    /// Raw bytes; written as `!` and the bytes, percent-escaped where needed.
    Bytes(&'a [u8]),
}

impl<'a> From<&'a str> for Part<'a> {
    fn from(value: &'a str) -> Self {
        Part::Str(value)
    }
}

impl<'a> From<&'a String> for Part<'a> {
    fn from(value: &'a String) -> Self {
        Part::Str(value)
    }
}

impl<'a> From<&'a [u8]> for Part<'a> {
    fn from(value: &'a [u8]) -> Self {
        Part::Bytes(value)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Part<'a> {
    fn from(value: &'a [u8; N]) -> Self {
        Part::Bytes(value)
    }
}

impl<'a> From<&'a Vec<u8>> for Part<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Part::Bytes(value)
    }
}

macro_rules! part_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Part<'_> {
            fn from(value: $t) -> Self {
                Part::Int(value as i128)
            }
        }
    )*};
}

part_from_int!(i32, u32, i64, u64, usize, i128);

/// An owned [`Part`], for hosts that first convert their own values (a
/// Python `int`, a JS `Uint8Array`) and then build the key.
///
/// ```
/// use stratacache::key::{KeyBuilder, OwnedPart};
/// use stratacache::Namespace;
///
/// let parts = vec![OwnedPart::Str("course-v1:edX+DemoX".into()), OwnedPart::Int(3)];
/// let key = KeyBuilder::new(Namespace::new("outline").unwrap(), 1).build_owned(&parts);
/// assert_eq!(key, "outline|v1|course-v1:edX+DemoX|#3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedPart {
    /// Text.
    Str(String),
    /// An integer.
    Int(i128),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl OwnedPart {
    /// Borrows it as a [`Part`].
    pub fn as_part(&self) -> Part<'_> {
        match self {
            OwnedPart::Str(s) => Part::Str(s),
            OwnedPart::Int(n) => Part::Int(*n),
            OwnedPart::Bytes(b) => Part::Bytes(b),
        }
    }
}

/// Why a key could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A maximum key length outside [`MIN_MAX_KEY_LEN`]`..=`[`MEMCACHED_MAX_KEY_LEN`].
    #[error(
        "maximum key length {given} is out of range: choose a length from {min} to {max} bytes \
         ({max} is memcached's limit; {min} leaves room for a readable prefix and the digest)"
    )]
    MaxLenOutOfRange {
        /// The refused length.
        given: usize,
        /// The smallest length accepted ([`MIN_MAX_KEY_LEN`]).
        min: usize,
        /// The largest length accepted ([`MEMCACHED_MAX_KEY_LEN`]).
        max: usize,
    },
    /// [`safe_key`] was given the empty string, which no memcached accepts
    /// as a key.
    #[error("cache key is empty: memcached refuses empty keys; pass a non-empty key")]
    EmptyKey,
}

fn check_max_len(max_len: usize) -> Result<(), KeyError> {
    if (MIN_MAX_KEY_LEN..=MEMCACHED_MAX_KEY_LEN).contains(&max_len) {
        Ok(())
    } else {
        Err(KeyError::MaxLenOutOfRange {
            given: max_len,
            min: MIN_MAX_KEY_LEN,
            max: MEMCACHED_MAX_KEY_LEN,
        })
    }
}

/// Builds versioned keys `{namespace}|v{version}|{part}|{part}...` for one
/// namespace and version.
///
/// Bumping the version makes every key of the namespace new, which is how
/// entries are invalidated without deleting them (the old ones expire).
/// Different inputs always give different keys, and every key is a valid
/// memcached key of at most [`max_len`](KeyBuilder::max_len) bytes.
///
/// ```
/// use stratacache::key::{KeyBuilder, Part};
/// use stratacache::Namespace;
///
/// let keys = KeyBuilder::new(Namespace::new("course_blocks").unwrap(), 3);
/// let key = keys.build(&[
///     Part::Str("course-v1:edX+DemoX+Demo_Course"),
///     Part::Int(42),
///     Part::Str("a b|c"),
/// ]);
/// assert_eq!(key, "course_blocks|v3|course-v1:edX+DemoX+Demo_Course|#42|a%20b%7Cc");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyBuilder {
    namespace: Namespace,
    version: u64,
    max_len: usize,
}

impl KeyBuilder {
    /// A builder for `namespace` at `version`, with keys of at most
    /// [`DEFAULT_MAX_KEY_LEN`] bytes.
    ///
    /// ```
    /// use stratacache::key::{KeyBuilder, DEFAULT_MAX_KEY_LEN};
    /// use stratacache::Namespace;
    ///
    /// let keys = KeyBuilder::new(Namespace::new("grades").unwrap(), 1);
    /// assert_eq!(keys.max_len(), DEFAULT_MAX_KEY_LEN);
    /// assert_eq!(keys.build(&[]), "grades|v1");
    /// ```
    pub fn new(namespace: Namespace, version: u64) -> Self {
        KeyBuilder {
            namespace,
            version,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// The same builder with keys of at most `max_len` bytes.
    ///
    /// Fails with [`KeyError::MaxLenOutOfRange`] unless `max_len` is from
    /// [`MIN_MAX_KEY_LEN`] to [`MEMCACHED_MAX_KEY_LEN`].
    ///
    /// ```
    /// use stratacache::key::{KeyBuilder, KeyError};
    /// use stratacache::Namespace;
    ///
    /// let keys = KeyBuilder::new(Namespace::new("grades").unwrap(), 1);
    /// assert_eq!(keys.clone().with_max_len(250).unwrap().max_len(), 250);
    /// assert!(matches!(keys.with_max_len(10), Err(KeyError::MaxLenOutOfRange { given: 10, .. })));
    /// ```
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self, KeyError> {
        check_max_len(max_len)?;
        self.max_len = max_len;
        Ok(self)
    }

    /// The namespace every key starts with.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The version written after the namespace.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The maximum key length in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The key for `parts`.
    ///
    /// ```
    /// use stratacache::key::{KeyBuilder, Part};
    /// use stratacache::Namespace;
    ///
    /// let keys = KeyBuilder::new(Namespace::new("ns").unwrap(), 1);
    /// assert_eq!(keys.build(&[Part::Str("a.b"), Part::Str("c")]), "ns|v1|a.b|c");
    /// assert_eq!(keys.build(&[Part::Str("a"), Part::Str("b.c")]), "ns|v1|a|b.c");
    /// assert_eq!(keys.build(&[Part::Int(-5), Part::Bytes(b"x")]), "ns|v1|#-5|!x");
    ///
    /// // Over-long keys keep a prefix and end in a digest of the whole key.
    /// let long = "x".repeat(10_000);
    /// let key = keys.build(&[Part::Str(&long)]);
    /// assert_eq!(key.len(), 200);
    /// assert!(key.starts_with("ns|v1|xxx"));
    /// assert_eq!(&key[166..168], "%#");
    /// ```
    pub fn build(&self, parts: &[Part<'_>]) -> String {
        // Room for the key without escapes, so most keys need one allocation.
        let estimate = parts
            .iter()
            .fold(self.namespace.as_str().len() + 22, |n, part| {
                n + 2
                    + match part {
                        Part::Str(s) => s.len(),
                        Part::Int(_) => 40,
                        Part::Bytes(b) => b.len(),
                    }
            });
        let mut out = String::with_capacity(estimate.min(self.max_len));
        self.build_into(parts, &mut out);
        out
    }

    /// The key for owned `parts` (see [`OwnedPart`]).
    pub fn build_owned(&self, parts: &[OwnedPart]) -> String {
        let parts: Vec<Part<'_>> = parts.iter().map(OwnedPart::as_part).collect();
        self.build(&parts)
    }

    /// Like [`KeyBuilder::build_into`], for owned parts.
    pub fn build_owned_into(&self, parts: &[OwnedPart], out: &mut String) {
        let parts: Vec<Part<'_>> = parts.iter().map(OwnedPart::as_part).collect();
        self.build_into(&parts, out);
    }

    /// Clears `out` and writes the key for `parts` into it, so that a buffer
    /// can be reused from key to key. For keys within
    /// [`max_len`](KeyBuilder::max_len) nothing is allocated besides `out`'s
    /// own growth.
    ///
    /// ```
    /// use stratacache::key::{KeyBuilder, Part};
    /// use stratacache::Namespace;
    ///
    /// let keys = KeyBuilder::new(Namespace::new("users").unwrap(), 2);
    /// let mut buf = String::with_capacity(keys.max_len());
    /// for id in [7u64, 8] {
    ///     keys.build_into(&[Part::from(id)], &mut buf);
    ///     assert!(buf.starts_with("users|v2|#"));
    /// }
    /// assert_eq!(buf, "users|v2|#8");
    /// ```
    pub fn build_into(&self, parts: &[Part<'_>], out: &mut String) {
        out.clear();
        out.push_str(self.namespace.as_str());
        out.push_str("|v");
        push_u128(out, u128::from(self.version));
        for part in parts {
            out.push('|');
            match *part {
                Part::Str(s) => push_escaped(out, s.as_bytes()),
                Part::Int(n) => {
                    out.push('#');
                    if n < 0 {
                        out.push('-');
                    }
                    push_u128(out, n.unsigned_abs());
                }
                Part::Bytes(b) => {
                    out.push('!');
                    push_escaped(out, b);
                }
            }
        }
        shorten(out, self.max_len);
    }
}

/// Makes an arbitrary string key safe for memcached: the string is
/// percent-escaped like a [`Part::Str`] (printable ASCII other than `%`,
/// `|`, `#` and `!` is kept; every other byte becomes `%XX`), and a result
/// longer than `max_len` bytes is shortened like an over-long versioned key.
///
/// This serves hosts that pass their own keys, such as edx-django-utils'
/// `TieredCache.get_cached_response("any key with spaces")`. The result never
/// contains `|`, so it can never equal a key from a [`KeyBuilder`]. Keys that
/// are already printable ASCII without `%`, `|`, `#` and `!` come back
/// unchanged.
///
/// Fails with [`KeyError::MaxLenOutOfRange`] unless `max_len` is from
/// [`MIN_MAX_KEY_LEN`] to [`MEMCACHED_MAX_KEY_LEN`], and with
/// [`KeyError::EmptyKey`] if `raw` is empty.
///
/// ```
/// use stratacache::key::{safe_key, DEFAULT_MAX_KEY_LEN};
///
/// let key = safe_key("any key with spaces", DEFAULT_MAX_KEY_LEN).unwrap();
/// assert_eq!(key, "any%20key%20with%20spaces");
/// assert_eq!(safe_key("course-v1:edX+DemoX+Demo_Course", 200).unwrap(), "course-v1:edX+DemoX+Demo_Course");
/// assert!(safe_key("", 200).is_err());
/// assert_eq!(safe_key(&"k".repeat(1000), 64).unwrap().len(), 64);
/// ```
pub fn safe_key(raw: &str, max_len: usize) -> Result<String, KeyError> {
    check_max_len(max_len)?;
    if raw.is_empty() {
        return Err(KeyError::EmptyKey);
    }
    let mut out = String::with_capacity(raw.len().min(max_len));
    push_escaped(&mut out, raw.as_bytes());
    shorten(&mut out, max_len);
    Ok(out)
}

/// The name of the mapping of plain string keys to remote keys that
/// [`plain_key`] implements, as it appears in the `format` field of
/// `tests/vectors/plain-keys.json`.
pub const PLAIN_KEY_FORMAT: &str = "stratacache-plain-key-1";

/// What every remote key made from a plain string that is not used as it
/// is starts with. No versioned key (its namespace has no `%`) and no key
/// [`plain_key`] keeps as it is starts with it.
pub const PLAIN_KEY_ESCAPE_PREFIX: &str = "%~";

/// The remote key for a plain string key, the same in every host (format
/// [`PLAIN_KEY_FORMAT`]).
///
/// * A string that memcached accepts as it is (1 to `max_len` printable
///   ASCII bytes, no space) and that does not start with `%~` is its own
///   remote key. Every key a [`KeyBuilder`] with a `max_len` of at most this
///   one builds is such a string, so a built key turned into a plain string
///   (`str(key)`, `String(key)`, a JSON round trip) reaches the same entry.
/// * Any other string (empty, with spaces, control or non-ASCII characters,
///   longer than `max_len`, or starting with `%~`) becomes `%~` followed by
///   its [`safe_key`] escaping, shortened like an over-long versioned key.
///
/// The mapping is injective: the first kind is the identity, every key of
/// the second kind starts with `%~` (which no key of the first kind does),
/// and the escaping is injective (shortened keys differ unless 128 bits of
/// SHA-256 collide). It is not idempotent: pass the host's own string, not
/// a remote key read back from a tier.
///
/// Fails only with [`KeyError::MaxLenOutOfRange`]; the empty string is a
/// key like any other (`%~`).
///
/// ```
/// use std::borrow::Cow;
/// use stratacache::key::{plain_key, KeyBuilder, Part, DEFAULT_MAX_KEY_LEN};
/// use stratacache::Namespace;
///
/// let max = DEFAULT_MAX_KEY_LEN;
/// assert_eq!(plain_key("user:42", max).unwrap(), "user:42");
/// assert_eq!(plain_key("a|b", max).unwrap(), "a|b");
/// assert!(matches!(plain_key("a|b", max).unwrap(), Cow::Borrowed(_)));
/// assert_eq!(plain_key("any key", max).unwrap(), "%~any%20key");
/// assert_eq!(plain_key("", max).unwrap(), "%~");
/// assert_eq!(plain_key("%~x", max).unwrap(), "%~%25~x");
///
/// // A built key passed back as a plain string is the same key.
/// let built = KeyBuilder::new(Namespace::new("ns").unwrap(), 1).build(&[Part::Str("a b")]);
/// assert_eq!(plain_key(&built, max).unwrap(), built);
/// ```
pub fn plain_key(raw: &str, max_len: usize) -> Result<Cow<'_, str>, KeyError> {
    check_max_len(max_len)?;
    if is_kept_plain_key(raw, max_len) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity((raw.len() + 2).min(max_len));
    out.push_str(PLAIN_KEY_ESCAPE_PREFIX);
    push_escaped(&mut out, raw.as_bytes());
    shorten(&mut out, max_len);
    Ok(Cow::Owned(out))
}

/// Like [`plain_key`], taking and returning an owned string (no copy when
/// the key is kept as it is).
///
/// ```
/// use stratacache::key::plain_key_owned;
///
/// assert_eq!(plain_key_owned("k1".to_owned(), 200).unwrap(), "k1");
/// assert_eq!(plain_key_owned("k 1".to_owned(), 200).unwrap(), "%~k%201");
/// ```
pub fn plain_key_owned(raw: String, max_len: usize) -> Result<String, KeyError> {
    match plain_key(&raw, max_len)? {
        Cow::Borrowed(_) => Ok(raw),
        Cow::Owned(key) => Ok(key),
    }
}

/// Whether [`plain_key`] keeps `raw` as it is.
#[inline]
fn is_kept_plain_key(raw: &str, max_len: usize) -> bool {
    raw.len() <= max_len
        && is_valid_memcached_key(raw)
        && !raw
            .as_bytes()
            .starts_with(PLAIN_KEY_ESCAPE_PREFIX.as_bytes())
}

/// True if memcached accepts `key`: 1 to [`MEMCACHED_MAX_KEY_LEN`] bytes, each
/// a printable ASCII character other than space (`0x21..=0x7E`).
///
/// ```
/// use stratacache::key::is_valid_memcached_key;
///
/// assert!(is_valid_memcached_key("ns|v1|a%20b"));
/// assert!(!is_valid_memcached_key("a b"));
/// assert!(!is_valid_memcached_key(""));
/// assert!(!is_valid_memcached_key(&"k".repeat(251)));
/// ```
pub fn is_valid_memcached_key(key: &str) -> bool {
    // Eight bytes at a time (where there is no SIMD, as on wasm32, a byte
    // loop is most of a local hit's cost), then the rest byte by byte: this
    // runs on every key of every tiered read.
    const ONES: u64 = u64::MAX / 255;
    let bytes = key.as_bytes();
    if !(1..=MEMCACHED_MAX_KEY_LEN).contains(&bytes.len()) {
        return false;
    }
    let mut words = bytes.chunks_exact(8);
    let mut bad = 0;
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        // A byte below 0x21 (exact for any n <= 128), or above 0x7E (the
        // high bit set after adding 1, or set already).
        bad |= x.wrapping_sub(ONES * 0x21) & !x & (ONES * 0x80);
        bad |= (x.wrapping_add(ONES) | x) & (ONES * 0x80);
    }
    bad == 0
        && words
            .remainder()
            .iter()
            .all(|b| b.wrapping_sub(0x21) < 0x7E - 0x21 + 1)
}

/// Whether `byte` is written as itself inside a part.
#[inline]
fn is_kept(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7E) && !matches!(byte, b'%' | b'|' | b'#' | b'!')
}

/// Appends `bytes` to `out`, kept bytes as themselves and the others as `%XX`.
fn push_escaped(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len());
    for &byte in bytes {
        if is_kept(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(byte >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(byte & 0x0F)]));
        }
    }
}

/// Appends the decimal digits of `n` without going through `fmt`.
fn push_u128(out: &mut String, mut n: u128) {
    let mut digits = [0u8; 39];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Applies the over-long rule: if `key` is longer than `max_len` bytes, keep
/// the longest prefix of at most `max_len - 34` bytes that does not split a
/// `%XX` escape, then append `%#` and the first 16 bytes of SHA-256 of the
/// whole key in lowercase hex.
fn shorten(key: &mut String, max_len: usize) {
    debug_assert!(max_len >= MIN_MAX_KEY_LEN);
    if key.len() <= max_len {
        return;
    }
    let digest = Sha256::digest(key.as_bytes());
    let bytes = key.as_bytes();
    let mut cut = max_len - DIGEST_SUFFIX_LEN;
    // An escape is `%` and two hex digits; never keep half of one.
    if bytes[cut - 1] == b'%' {
        cut -= 1;
    } else if bytes[cut - 2] == b'%' {
        cut -= 2;
    }
    // Every byte of an encoded key is ASCII, so any cut is a char boundary.
    key.truncate(cut);
    key.push_str("%#");
    for &byte in &digest[..16] {
        key.push(char::from(LOWER_HEX[usize::from(byte >> 4)]));
        key.push(char::from(LOWER_HEX[usize::from(byte & 0x0F)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_at_a_time_validity_agrees_with_the_byte_rule() {
        let byte_rule = |k: &str| {
            (1..=MEMCACHED_MAX_KEY_LEN).contains(&k.len())
                && k.bytes().all(|b| (0x21..=0x7E).contains(&b))
        };
        let odd: Vec<char> = (0u8..=0x7F)
            .map(char::from)
            .chain(['é', '\u{80}', '\u{FF}', '€', '😀'])
            .collect();
        for len in 1..=19 {
            for at in 0..len {
                for &c in &odd {
                    let mut key: String = "a".repeat(at);
                    key.push(c);
                    key.push_str(&"~".repeat(len - at - 1));
                    assert_eq!(is_valid_memcached_key(&key), byte_rule(&key), "{key:?}");
                }
            }
        }
        assert!(is_valid_memcached_key(&"!".repeat(250)));
        assert!(!is_valid_memcached_key(&"!".repeat(251)));
    }

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    fn builder(name: &str, version: u64) -> KeyBuilder {
        KeyBuilder::new(ns(name), version)
    }

    fn sha_hex16(s: &str) -> String {
        Sha256::digest(s.as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn no_parts_is_namespace_and_version() {
        assert_eq!(builder("ns", 3).build(&[]), "ns|v3");
        assert_eq!(builder("ns", 0).build(&[]), "ns|v0");
        assert_eq!(
            builder("ns", u64::MAX).build(&[]),
            "ns|v18446744073709551615"
        );
    }

    #[test]
    fn strings_keep_printable_ascii_and_escape_the_rest() {
        let b = builder("ns", 1);
        assert_eq!(
            b.build(&[Part::Str("course-v1:edX+DemoX+Demo_Course")]),
            "ns|v1|course-v1:edX+DemoX+Demo_Course"
        );
        assert_eq!(
            b.build(&[Part::Str("%|#! \t\n\0\x7f~")]),
            "ns|v1|%25%7C%23%21%20%09%0A%00%7F~"
        );
        assert_eq!(
            b.build(&[Part::Str("é日😀")]),
            "ns|v1|%C3%A9%E6%97%A5%F0%9F%98%80"
        );
        assert_eq!(b.build(&[Part::Str("a"), Part::Str("")]), "ns|v1|a|");
        assert_eq!(b.build(&[Part::Str("")]), "ns|v1|");
    }

    #[test]
    fn ints_and_bytes_are_tagged() {
        let b = builder("ns", 1);
        assert_eq!(
            b.build(&[Part::Int(0), Part::Int(-5), Part::Int(i128::MIN)]),
            "ns|v1|#0|#-5|#-170141183460469231731687303715884105728"
        );
        assert_eq!(
            b.build(&[Part::Int(i128::MAX)]),
            "ns|v1|#170141183460469231731687303715884105727"
        );
        assert_eq!(b.build(&[Part::Bytes(b"x\x00\xff|")]), "ns|v1|!x%00%FF%7C");
        assert_eq!(b.build(&[Part::Bytes(b"")]), "ns|v1|!");
    }

    #[test]
    fn near_collisions_differ() {
        let b = builder("ns", 1);
        let keys = [
            b.build(&[Part::Str("a.b"), Part::Str("c")]),
            b.build(&[Part::Str("a"), Part::Str("b.c")]),
            b.build(&[Part::Str("a|b")]),
            b.build(&[Part::Str("a"), Part::Str("b")]),
            b.build(&[Part::Int(5)]),
            b.build(&[Part::Str("5")]),
            b.build(&[Part::Str("#5")]),
            b.build(&[Part::Bytes(b"5")]),
            b.build(&[]),
            b.build(&[Part::Str("")]),
            b.build(&[Part::Bytes(b"")]),
        ];
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn from_impls() {
        let s = String::from("s");
        let v = vec![1u8, 2];
        assert_eq!(Part::from("s"), Part::Str("s"));
        assert_eq!(Part::from(&s), Part::Str("s"));
        assert_eq!(Part::from(-1i64), Part::Int(-1));
        assert_eq!(Part::from(u64::MAX), Part::Int(u64::MAX as i128));
        assert_eq!(Part::from(-1i32), Part::Int(-1));
        assert_eq!(Part::from(7u32), Part::Int(7));
        assert_eq!(Part::from(7usize), Part::Int(7));
        assert_eq!(Part::from(i128::MIN), Part::Int(i128::MIN));
        assert_eq!(Part::from(&v[..]), Part::Bytes(&[1, 2]));
        assert_eq!(Part::from(&v), Part::Bytes(&[1, 2]));
        assert_eq!(Part::from(b"ab"), Part::Bytes(b"ab"));
    }

    #[test]
    fn getters_and_with_max_len() {
        let b = builder("ns", 9);
        assert_eq!(b.namespace().as_str(), "ns");
        assert_eq!(b.version(), 9);
        assert_eq!(b.max_len(), DEFAULT_MAX_KEY_LEN);
        assert_eq!(b.clone().with_max_len(64).unwrap().max_len(), 64);
        assert_eq!(b.clone().with_max_len(250).unwrap().max_len(), 250);
        for bad in [0, 63, 251, usize::MAX] {
            let err = b.clone().with_max_len(bad).unwrap_err();
            assert_eq!(
                err,
                KeyError::MaxLenOutOfRange {
                    given: bad,
                    min: 64,
                    max: 250
                }
            );
            let msg = err.to_string();
            assert!(msg.contains("from 64 to 250"), "{msg}");
        }
    }

    #[test]
    fn build_into_reuses_and_clears_the_buffer() {
        let b = builder("ns", 1);
        let mut buf = String::from("leftover");
        b.build_into(&[Part::Str("a")], &mut buf);
        assert_eq!(buf, "ns|v1|a");
        let cap = buf.capacity();
        b.build_into(&[Part::Int(1)], &mut buf);
        assert_eq!(buf, "ns|v1|#1");
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn keys_at_the_limit_are_kept_and_longer_ones_shortened() {
        let b = builder("ns", 1);
        let at_limit = "a".repeat(194);
        assert_eq!(
            b.build(&[Part::Str(&at_limit)]),
            format!("ns|v1|{at_limit}")
        );
        let over = "a".repeat(195);
        let full = format!("ns|v1|{over}");
        let key = b.build(&[Part::Str(&over)]);
        assert_eq!(
            key,
            format!("ns|v1|{}%#{}", "a".repeat(160), sha_hex16(&full))
        );
        assert_eq!(key.len(), 200);
    }

    #[test]
    fn shortening_never_splits_an_escape() {
        // "ns|v1|" is 6 bytes; escapes start at 6, 9, ..., the cut is at 166.
        // 166 - 6 = 160 = 53 * 3 + 1, so the cut falls just after a '%'.
        let s = "é".repeat(100);
        let full = format!("ns|v1|{}", "%C3%A9".repeat(100));
        let key = builder("ns", 1).build(&[Part::Str(&s)]);
        let prefix = format!("ns|v1|{}%C3", "%C3%A9".repeat(26));
        assert_eq!(key, format!("{prefix}%#{}", sha_hex16(&full)));
        // "n|v1|" is 5 bytes: 161 = 53 * 3 + 2, the cut falls after "%C".
        let full = format!("n|v1|{}", "%C3%A9".repeat(100));
        let key = builder("n", 1).build(&[Part::Str(&s)]);
        let prefix = format!("n|v1|{}%C3", "%C3%A9".repeat(26));
        assert_eq!(key, format!("{prefix}%#{}", sha_hex16(&full)));
        // "nsx|v1|" is 7 bytes: 159 = 53 * 3, the cut falls between escapes.
        let full = format!("nsx|v1|{}", "%C3%A9".repeat(100));
        let key = builder("nsx", 1).build(&[Part::Str(&s)]);
        let prefix = format!("nsx|v1|{}%C3", "%C3%A9".repeat(26));
        assert_eq!(key, format!("{prefix}%#{}", sha_hex16(&full)));
    }

    #[test]
    fn long_namespace_with_smallest_max_len() {
        let name = "n".repeat(64);
        let b = builder(&name, 1).with_max_len(64).unwrap();
        let key = b.build(&[]);
        let full = format!("{name}|v1");
        assert_eq!(key, format!("{}%#{}", "n".repeat(30), sha_hex16(&full)));
        assert!(is_valid_memcached_key(&key));
    }

    #[test]
    fn internal_namespaces_build_keys() {
        let b = KeyBuilder::new(Namespace::internal("chunk"), 1);
        assert_eq!(
            b.build(&[Part::Str("k"), Part::Int(0)]),
            "tiercache.chunk|v1|k|#0"
        );
    }

    #[test]
    fn safe_key_escapes_and_shortens() {
        assert_eq!(
            safe_key("any key with spaces", 200).unwrap(),
            "any%20key%20with%20spaces"
        );
        assert_eq!(safe_key("a|b#c!d%", 200).unwrap(), "a%7Cb%23c%21d%25");
        let raw = "a".repeat(10_240);
        let key = safe_key(&raw, 200).unwrap();
        assert_eq!(key, format!("{}%#{}", "a".repeat(166), sha_hex16(&raw)));
        let key = safe_key(&raw, 64).unwrap();
        assert_eq!(key, format!("{}%#{}", "a".repeat(30), sha_hex16(&raw)));
        assert_eq!(safe_key(&"a".repeat(250), 250).unwrap(), "a".repeat(250));
    }

    #[test]
    fn safe_key_errors() {
        assert_eq!(safe_key("", 200), Err(KeyError::EmptyKey));
        assert!(KeyError::EmptyKey.to_string().contains("non-empty"));
        assert_eq!(
            safe_key("k", 63),
            Err(KeyError::MaxLenOutOfRange {
                given: 63,
                min: 64,
                max: 250
            })
        );
        assert!(safe_key("k", 251).is_err());
        // The length is checked before the key.
        assert!(matches!(
            safe_key("", 0),
            Err(KeyError::MaxLenOutOfRange { .. })
        ));
    }

    #[test]
    fn plain_keys_keep_valid_keys_and_escape_the_rest() {
        let k = |raw: &str| plain_key(raw, 200).unwrap().into_owned();
        for kept in [
            "a", "a|b", "#5", "!x", "50%", "%20", "ns|v1|a", "~%", "%", "%%~",
        ] {
            assert_eq!(k(kept), kept);
        }
        assert_eq!(k(""), "%~");
        assert_eq!(k(" "), "%~%20");
        assert_eq!(k("a b|c"), "%~a%20b%7Cc");
        assert_eq!(k("%~"), "%~%25~");
        assert_eq!(k("é"), "%~%C3%A9");
        let at_limit = "a".repeat(200);
        assert_eq!(k(&at_limit), at_limit);
        let over = "a".repeat(201);
        let full = format!("%~{over}");
        assert_eq!(
            k(&over),
            format!("%~{}%#{}", "a".repeat(164), sha_hex16(&full))
        );
        assert!(plain_key("k", 63).is_err());
        assert_eq!(plain_key_owned("a b".into(), 64).unwrap(), "%~a%20b");
    }

    #[test]
    fn built_keys_are_their_own_plain_keys() {
        let long = "é".repeat(300);
        for max_len in [64, 200, 250] {
            let b = builder("ns", 1).with_max_len(max_len).unwrap();
            for parts in [
                vec![Part::Str("a b|c")],
                vec![Part::Str(&long)],
                vec![Part::Int(-5), Part::Bytes(b"\x00!")],
                vec![],
            ] {
                let key = b.build(&parts);
                assert_eq!(plain_key(&key, max_len).unwrap(), key);
                assert_eq!(plain_key(&key, 250).unwrap(), key);
            }
        }
    }

    #[test]
    fn plain_keys_are_injective_on_odd_strings() {
        let mut inputs: Vec<String> = vec![
            "".into(),
            " ".into(),
            "%~".into(),
            "%~%".into(),
            "%".into(),
            "%25".into(),
            "a|b".into(),
            "a%7Cb".into(),
            "%~a%7Cb".into(),
            "\0".into(),
            "\u{7f}".into(),
        ];
        for c in ["|", "#", "%", "!", " ", "~", "é", "\n"] {
            inputs.push(c.repeat(3));
            inputs.push(format!("{c}x"));
            inputs.push(format!("%~{c}"));
        }
        let keys: std::collections::HashSet<String> = inputs
            .iter()
            .map(|s| plain_key(s, 64).unwrap().into_owned())
            .collect();
        let distinct: std::collections::HashSet<&String> = inputs.iter().collect();
        assert_eq!(keys.len(), distinct.len());
        assert!(keys
            .iter()
            .all(|key| is_valid_memcached_key(key) && key.len() <= 64));
    }

    #[test]
    fn memcached_key_validity() {
        assert!(is_valid_memcached_key("a"));
        assert!(is_valid_memcached_key(&"~".repeat(250)));
        assert!(!is_valid_memcached_key(""));
        assert!(!is_valid_memcached_key(&"a".repeat(251)));
        for bad in ["a b", "a\tb", "a\nb", "a\0", "\x7f", "é"] {
            assert!(!is_valid_memcached_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn decimal_writer() {
        for n in [0u128, 9, 10, 99, 100, u64::MAX as u128, u128::MAX] {
            let mut s = String::new();
            push_u128(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
