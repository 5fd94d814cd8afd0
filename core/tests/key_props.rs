//! Property tests for the key format (`docs/key-format.md`):
//!
//! 1. different inputs give different keys (random pairs, targeted near
//!    collisions, and a decoder that recovers the input from every
//!    untruncated key);
//! 2. every key equals an independent reference encoder, is a valid
//!    memcached key and fits in `max_len`;
//! 3. `safe_key` likewise, and never contains `|`.

mod key_decoder;

use key_decoder::Input;

use proptest::prelude::*;
use proptest::sample::{select, Index};
use sha2::{Digest, Sha256};
use stratacache::key::{
    is_valid_memcached_key, safe_key, OwnedPart, MEMCACHED_MAX_KEY_LEN, MIN_MAX_KEY_LEN,
};

const CASES: u32 = 2000;

/// Namespaces that are prefixes of one another or contain `#`, `!` and `.`.
const NAMESPACES: &[&str] = &["a", "ab", "a.b", "a#", "n!", "ns", "_default"];

/// Characters that stress the encoding: the separator, the escape, the type
/// tags, controls, non-ASCII (2, 3 and 4 bytes, a Cyrillic confusable) and
/// characters whose escapes look like other characters.
const TRICKY_CHARS: &[char] = &[
    'a', 'b', '5', '.', '|', '%', '#', '!', ' ', '\t', '\n', '\0', '\u{7f}', 'é', '日', '😀', 'а',
    'C', '7', '~',
];

const TRICKY_BYTES: &[u8] = &[
    0, b'a', b'5', b'x', b'|', b'%', b'#', b'!', b' ', 0x7f, 0xc3, 0xa9, 0xff, b'C', b'7',
];

fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(TRICKY_CHARS), 0..max).prop_map(String::from_iter)
}

fn part() -> impl Strategy<Value = OwnedPart> {
    prop_oneof![
        4 => tricky_string(6).prop_map(OwnedPart::Str),
        1 => any::<String>().prop_map(OwnedPart::Str),
        1 => "[a-z%|]{150,400}".prop_map(OwnedPart::Str),
        2 => prop_oneof![
            -3i128..=3,
            any::<i64>().prop_map(i128::from),
            any::<u64>().prop_map(i128::from),
            Just(i128::MIN),
            Just(i128::MAX),
        ]
        .prop_map(OwnedPart::Int),
        2 => proptest::collection::vec(select(TRICKY_BYTES), 0..6).prop_map(OwnedPart::Bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(OwnedPart::Bytes),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        select(NAMESPACES),
        prop_oneof![0u64..3, Just(u64::MAX)],
        proptest::collection::vec(part(), 0..4),
    )
        .prop_map(|(namespace, version, parts)| Input {
            namespace,
            version,
            parts,
        })
}

/// Inputs whose keys are never truncated at 250 bytes: at most 30 bytes of
/// namespace and version, then 3 parts of at most 1 + 6 * 12 bytes.
fn short_input() -> impl Strategy<Value = Input> {
    let short_part = prop_oneof![
        tricky_string(7).prop_map(OwnedPart::Str),
        prop_oneof![-3i128..=3, Just(i128::MIN), Just(i128::MAX)].prop_map(OwnedPart::Int),
        proptest::collection::vec(select(TRICKY_BYTES), 0..8).prop_map(OwnedPart::Bytes),
    ];
    (
        select(NAMESPACES),
        prop_oneof![0u64..3, Just(u64::MAX)],
        proptest::collection::vec(short_part, 0..4),
    )
        .prop_map(|(namespace, version, parts)| Input {
            namespace,
            version,
            parts,
        })
}

/// Inputs made mostly of short string parts, so that the split, join and
/// move mutations have adjacent strings to work on.
fn string_heavy_input() -> impl Strategy<Value = Input> {
    let string_part = prop_oneof![
        6 => tricky_string(5).prop_map(OwnedPart::Str),
        1 => (-3i128..=3).prop_map(OwnedPart::Int),
        1 => proptest::collection::vec(select(TRICKY_BYTES), 0..4).prop_map(OwnedPart::Bytes),
    ];
    (
        select(NAMESPACES),
        0u64..2,
        proptest::collection::vec(string_part, 1..4),
    )
        .prop_map(|(namespace, version, parts)| Input {
            namespace,
            version,
            parts,
        })
}

/// Reference encoder, written independently of the library: escape with
/// `format!`, truncate by searching for the last `%` near the cut.
fn reference_escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            let kept = (0x21..=0x7e).contains(&b) && !b"%|#!".contains(&b);
            if kept {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn reference_full(input: &Input) -> String {
    let mut key = format!("{}|v{}", input.namespace, input.version);
    for part in &input.parts {
        key.push('|');
        key.push_str(&match part {
            OwnedPart::Str(s) => reference_escape(s.as_bytes()),
            OwnedPart::Int(n) => format!("#{n}"),
            OwnedPart::Bytes(b) => format!("!{}", reference_escape(b)),
        });
    }
    key
}

fn reference_shorten(full: &str, max_len: usize) -> String {
    if full.len() <= max_len {
        return full.to_owned();
    }
    let mut prefix = &full[..max_len - 34];
    if let Some(at) = prefix.rfind('%') {
        if at + 3 > prefix.len() {
            prefix = &prefix[..at];
        }
    }
    let digest = Sha256::digest(full.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}%#{hex}")
}

/// Recovers the input from an untruncated key: if this always succeeds, the
/// encoding is injective.
fn decode(key: &str) -> Input {
    Input::decode(key, NAMESPACES)
}

/// A small change that often produces a look-alike input.
fn mutate(mut input: Input, kind: u8, at: Index) -> Input {
    let n = input.parts.len();
    match kind {
        // Split a string part in two at a char boundary: ["a.b"] -> ["a.", "b"].
        0 => {
            if let Some(i) = (n > 0).then(|| at.index(n)) {
                if let OwnedPart::Str(s) = &input.parts[i] {
                    let cuts: Vec<usize> = s.char_indices().map(|(p, _)| p).collect();
                    if let Some(&cut) = cuts.get(at.index(cuts.len().max(1))) {
                        let (left, right) = s.split_at(cut);
                        let (left, right) = (left.to_owned(), right.to_owned());
                        input.parts[i] = OwnedPart::Str(left);
                        input.parts.insert(i + 1, OwnedPart::Str(right));
                    }
                }
            }
        }
        // Join two string parts with '|' or '.': ["a", "b"] -> ["a|b"].
        1 | 2 => {
            if n >= 2 {
                let i = at.index(n - 1);
                if let (OwnedPart::Str(a), OwnedPart::Str(b)) =
                    (&input.parts[i], &input.parts[i + 1])
                {
                    let joined = format!("{a}{}{b}", if kind == 1 { '|' } else { '.' });
                    input.parts[i] = OwnedPart::Str(joined);
                    input.parts.remove(i + 1);
                }
            }
        }
        // Move the last char of one string part to the front of the next:
        // ["a.b", "c"] -> ["a.", "bc"].
        3 => {
            if n >= 2 {
                let i = at.index(n - 1);
                if let (OwnedPart::Str(a), OwnedPart::Str(b)) =
                    (&input.parts[i], &input.parts[i + 1])
                {
                    let mut a = a.clone();
                    if let Some(c) = a.pop() {
                        input.parts[i + 1] = OwnedPart::Str(format!("{c}{b}"));
                        input.parts[i] = OwnedPart::Str(a);
                    }
                }
            }
        }
        // Change a part's type, keeping its text: Int(5) -> Str("5") or
        // Str("#5"); Str("x") -> Bytes(b"x"); Bytes(b"x") -> Str("x") or Str("!x").
        4 | 5 => {
            if n > 0 {
                let i = at.index(n);
                input.parts[i] = match &input.parts[i] {
                    OwnedPart::Int(v) if kind == 4 => OwnedPart::Str(v.to_string()),
                    OwnedPart::Int(v) => OwnedPart::Str(format!("#{v}")),
                    OwnedPart::Str(s) => OwnedPart::Bytes(s.as_bytes().to_vec()),
                    OwnedPart::Bytes(b) => {
                        let s = String::from_utf8_lossy(b);
                        OwnedPart::Str(if kind == 4 {
                            s.into_owned()
                        } else {
                            format!("!{s}")
                        })
                    }
                };
            }
        }
        // Add an empty part somewhere: [] -> [""], ["a"] -> ["a", ""].
        6 => {
            let i = at.index(n + 1);
            input.parts.insert(i, OwnedPart::Str(String::new()));
        }
        // Drop a part.
        7 => {
            if n > 0 {
                input.parts.remove(at.index(n));
            }
        }
        // Replace a string by its own encoding: "a|b" -> "a%7Cb".
        8 => {
            if n > 0 {
                let i = at.index(n);
                if let OwnedPart::Str(s) = &input.parts[i] {
                    input.parts[i] = OwnedPart::Str(reference_escape(s.as_bytes()));
                }
            }
        }
        // Another namespace or version.
        9 => input.namespace = NAMESPACES[at.index(NAMESPACES.len())],
        _ => input.version = input.version.wrapping_add(1),
    }
    input
}

#[test]
fn listed_near_collisions_all_differ() {
    use OwnedPart::{Bytes, Int, Str};
    let s = |x: &str| Str(x.to_owned());
    let lists: Vec<Vec<OwnedPart>> = vec![
        vec![s("a.b"), s("c")],
        vec![s("a"), s("b.c")],
        vec![s("a|b")],
        vec![s("a"), s("b")],
        vec![s("a%7Cb")],
        vec![Int(5)],
        vec![s("5")],
        vec![s("#5")],
        vec![Bytes(b"5".to_vec())],
        vec![Bytes(b"x".to_vec())],
        vec![s("x")],
        vec![s("!x")],
        vec![],
        vec![s("")],
        vec![s(""), s("")],
        vec![Bytes(vec![])],
        vec![s("%#")],
        vec![s("é")],
        vec![Bytes("é".as_bytes().to_vec())],
        vec![s("%C3%A9")],
    ];
    let keys: Vec<String> = lists
        .into_iter()
        .map(|parts| {
            Input {
                namespace: "ns",
                version: 1,
                parts,
            }
            .key(200)
        })
        .collect();
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // The namespace ends at the first '|', so "a" + ["b"] differs from "ab" + [].
    let a = Input {
        namespace: "a",
        version: 1,
        parts: vec![s("b")],
    };
    let ab = Input {
        namespace: "ab",
        version: 1,
        parts: vec![],
    };
    assert_ne!(a.key(200), ab.key(200));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// (1) Random pairs: inputs differ exactly when keys differ.
    #[test]
    fn random_pairs_are_injective(a in input(), b in input()) {
        let (ka, kb) = (a.key(200), b.key(200));
        prop_assert_eq!(a == b, ka == kb, "{:?} / {:?} -> {} / {}", a, b, ka, kb);
    }

    /// (1) Near collisions: an input and a small mutation of it.
    #[test]
    fn near_collisions_are_injective(
        a in prop_oneof![input(), string_heavy_input()],
        kind in 0u8..11, at in any::<Index>()) {
        let b = mutate(a.clone(), kind, at);
        let (ka, kb) = (a.key(200), b.key(200));
        prop_assert_eq!(a == b, ka == kb, "{:?} / {:?} -> {} / {}", a, b, ka, kb);
    }

    /// (1) Every untruncated key decodes back to its input.
    #[test]
    fn untruncated_keys_decode_to_their_input(a in short_input()) {
        let key = a.key(MEMCACHED_MAX_KEY_LEN);
        prop_assert!(!key.contains("%#"), "{} was truncated", key);
        prop_assert_eq!(decode(&key), a);
    }

    /// (2) Every key matches the reference encoder, is a valid memcached key
    /// and fits in max_len.
    #[test]
    fn keys_match_reference_and_fit(a in input(), max_len in MIN_MAX_KEY_LEN..=MEMCACHED_MAX_KEY_LEN) {
        let key = a.key(max_len);
        let full = reference_full(&a);
        prop_assert_eq!(&key, &reference_shorten(&full, max_len));
        prop_assert!(key.len() <= max_len, "{} is longer than {}", key, max_len);
        prop_assert!(is_valid_memcached_key(&key), "{:?} is not a memcached key", key);
        // Truncated keys, and only they, contain "%#".
        prop_assert_eq!(key.contains("%#"), full.len() > max_len);
    }

    /// (3) safe_key matches the reference, fits, and never contains '|'.
    #[test]
    fn safe_keys_match_reference_and_fit(
        raw in prop_oneof![tricky_string(12), any::<String>(), "[a-z %|]{150,400}"],
        max_len in MIN_MAX_KEY_LEN..=MEMCACHED_MAX_KEY_LEN,
    ) {
        prop_assume!(!raw.is_empty());
        let key = safe_key(&raw, max_len).unwrap();
        prop_assert_eq!(&key, &reference_shorten(&reference_escape(raw.as_bytes()), max_len));
        prop_assert!(key.len() <= max_len);
        prop_assert!(is_valid_memcached_key(&key), "{:?} is not a memcached key", key);
        prop_assert!(!key.contains('|'));
    }
}
