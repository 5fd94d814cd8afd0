//! What the key tests share: their input type, and a decoder that recovers
//! the input of an untruncated key (`ns|v3|part|#int|!bytes`, with `%XX`
//! escapes). The tests decode every key they build, so if this always gives
//! back the input, the encoding is injective.

use stratacache::key::{KeyBuilder, OwnedPart, Part};
use stratacache::Namespace;

/// What a key is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub namespace: &'static str,
    pub version: u64,
    pub parts: Vec<OwnedPart>,
}

impl Input {
    /// The key of at most `max_len` bytes, built from borrowed parts
    /// (`build`) and owned ones (`build_owned`), which must agree.
    pub fn key(&self, max_len: usize) -> String {
        let builder = KeyBuilder::new(Namespace::new(self.namespace).unwrap(), self.version)
            .with_max_len(max_len)
            .unwrap();
        let parts: Vec<Part<'_>> = self.parts.iter().map(OwnedPart::as_part).collect();
        let key = builder.build(&parts);
        assert_eq!(
            key,
            builder.build_owned(&self.parts),
            "build and build_owned differ"
        );
        key
    }

    /// The input of the untruncated `key`, whose namespace is one of
    /// `namespaces`.
    pub fn decode(key: &str, namespaces: &[&'static str]) -> Input {
        let (namespace, version, parts) = decode(key);
        let namespace = namespaces
            .iter()
            .copied()
            .find(|n| *n == namespace)
            .unwrap_or_else(|| panic!("unknown namespace {namespace:?}"));
        Input {
            namespace,
            version,
            parts,
        }
    }
}

/// `(namespace, version, parts)` of an untruncated key.
pub fn decode(key: &str) -> (&str, u64, Vec<OwnedPart>) {
    let mut fields = key.split('|');
    let namespace = fields.next().unwrap();
    let version = fields
        .next()
        .and_then(|v| v.strip_prefix('v'))
        .unwrap_or_else(|| panic!("no version in {key:?}"))
        .parse()
        .unwrap();
    let parts = fields
        .map(|field| {
            if let Some(n) = field.strip_prefix('#') {
                OwnedPart::Int(n.parse().unwrap())
            } else if let Some(b) = field.strip_prefix('!') {
                OwnedPart::Bytes(unescape(b))
            } else {
                OwnedPart::Str(String::from_utf8(unescape(field)).unwrap())
            }
        })
        .collect();
    (namespace, version, parts)
}

/// The bytes of one escaped field: `%XX` is upper-case hex, and the
/// separators and markers never appear unescaped.
pub fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = &field[i + 1..i + 3];
            assert!(
                hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')),
                "bad escape {hex:?} in {field:?}"
            );
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            assert!(!b"|#!".contains(&b[i]), "unescaped special in {field:?}");
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
