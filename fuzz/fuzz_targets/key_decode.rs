//! Key decoding, both ways.
//!
//! * Build: arbitrary namespace, version and parts (strings, integers and
//!   bytes of any content) are built into a key at memcached's 250-byte
//!   limit; every key is a valid memcached key, and every key that was not
//!   shortened decodes back to exactly its input. A decoder that always
//!   recovers the input proves the encoding injective: no two part lists
//!   share an untruncated key. (Shortened keys end in `%#` and a SHA-256
//!   digest of the whole key, which cannot occur in an untruncated key.)
//! * Parse: arbitrary bytes are decoded as a key (the parser a host or an
//!   operator would write from `docs/key-format.md`); whatever parses is
//!   rebuilt, and the rebuilt key parses to the same input.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stratacache::key::{is_valid_memcached_key, KeyBuilder, OwnedPart, MEMCACHED_MAX_KEY_LEN};
use stratacache::Namespace;

#[derive(Arbitrary, Debug)]
enum P<'a> {
    Str(&'a str),
    Int(i128),
    Bytes(&'a [u8]),
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Build {
        namespace: &'a str,
        version: u64,
        parts: Vec<P<'a>>,
    },
    Parse(&'a [u8]),
}

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    namespace: String,
    version: u64,
    parts: Vec<OwnedPart>,
}

fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            // A kept byte: printable ASCII other than the four specials.
            if !matches!(b[i], 0x21..=0x7e) || b"%|#!".contains(&b[i]) {
                return None;
            }
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Decodes an untruncated key; `None` for anything that is not one.
fn decode(key: &str) -> Option<Decoded> {
    if key.contains("%#") {
        return None; // shortened: only a digest of the input is left
    }
    let mut fields = key.split('|');
    let namespace = fields.next()?;
    Namespace::new(namespace).ok()?;
    let version = fields.next()?.strip_prefix('v')?;
    if !version.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let version: u64 = version.parse().ok()?;
    let mut parts = Vec::new();
    for field in fields {
        parts.push(if let Some(n) = field.strip_prefix('#') {
            // i128::from_str also takes "+5": only digits and a leading '-'.
            let digits = n.strip_prefix('-').unwrap_or(n);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            OwnedPart::Int(n.parse().ok()?)
        } else if let Some(b) = field.strip_prefix('!') {
            OwnedPart::Bytes(unescape(b)?)
        } else {
            OwnedPart::Str(String::from_utf8(unescape(field)?).ok()?)
        });
    }
    Some(Decoded {
        namespace: namespace.to_owned(),
        version,
        parts,
    })
}

fn build(d: &Decoded) -> String {
    let builder = KeyBuilder::new(Namespace::new(d.namespace.clone()).unwrap(), d.version)
        .with_max_len(MEMCACHED_MAX_KEY_LEN)
        .unwrap();
    builder.build_owned(&d.parts)
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Build {
        namespace,
        version,
        parts,
    } => {
        if Namespace::new(namespace).is_err() {
            return;
        }
        let want = Decoded {
            namespace: namespace.to_owned(),
            version,
            parts: parts
                .into_iter()
                .map(|p| match p {
                    P::Str(s) => OwnedPart::Str(s.to_owned()),
                    P::Int(n) => OwnedPart::Int(n),
                    P::Bytes(b) => OwnedPart::Bytes(b.to_vec()),
                })
                .collect(),
        };
        let key = build(&want);
        assert!(is_valid_memcached_key(&key), "{key:?}");
        if !key.contains("%#") {
            let got = decode(&key).unwrap_or_else(|| panic!("{key:?} does not decode"));
            assert_eq!(got, want, "{key:?} decodes to another input");
        }
    }
    Input::Parse(bytes) => {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        let Some(parsed) = decode(text) else {
            return;
        };
        let key = build(&parsed);
        assert!(is_valid_memcached_key(&key), "{key:?}");
        if !key.contains("%#") {
            // Non-canonical spellings ("%41" for "A", "#05", "v01") parse
            // but rebuild to the canonical key, which parses the same.
            assert_eq!(decode(&key), Some(parsed), "{key:?}");
        }
    }
});
