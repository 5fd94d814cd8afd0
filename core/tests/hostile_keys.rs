//! Keys built from hostile parts never collide and are always valid
//! memcached keys.
//!
//! The parts are what an attacker who controls a URL slug, a username or a
//! course id can send: the key's own separators and escapes (`|`, `#`, `!`,
//! `%`, and escapes such as `%7C` written literally), Unicode confusables
//! (Cyrillic `а` for Latin `a`, fullwidth forms, combining marks, the NFC and
//! NFD forms of the same text, zero-width and bidi characters), NUL and
//! control bytes, empty parts, byte strings that are not UTF-8 (the WTF-8
//! form of a lone surrogate), and 1 MB strings. For each, every key is
//! printable ASCII `0x21..=0x7E` of at most the builder's `max_len` (and so
//! at most memcached's 250), and different part lists give different keys:
//! checked on random pairs, on look-alike mutations of one input, and by
//! decoding every untruncated key back to its input.
//!
//! `core/tests/key_props.rs` holds the generic key properties; this file
//! adds the hostile generators.

mod key_decoder;

use key_decoder::Input;

use proptest::prelude::*;
use proptest::sample::select;
use stratacache::key::{
    is_valid_memcached_key, safe_key, KeyBuilder, OwnedPart, DEFAULT_MAX_KEY_LEN,
    MEMCACHED_MAX_KEY_LEN, MIN_MAX_KEY_LEN,
};
use stratacache::Namespace;

/// Pieces hostile strings are made of.
const PIECES: &[&str] = &[
    // The format's separator, tags and escape, and escapes written literally.
    "|", "#", "!", "%", "%7C", "%25", "%23", "%21", "%#", "|#1", "|!", "||", "#5", "!x",
    // Latin letters and their confusables: Cyrillic а (U+0430), Greek ο,
    // fullwidth ａ and Ａ, the "ﬁ" ligature, mathematical bold a.
    "a", "A", "o", "fi", "а", "ο", "ａ", "Ａ", "ﬁ", "𝐚",
    // é precomposed (NFC) and decomposed (NFD), a lone combining mark,
    // Å as U+00C5, as A + ring, and as the Angstrom sign U+212B.
    "é", "e\u{301}", "\u{301}", "\u{c5}", "A\u{30a}", "\u{212b}",
    // NUL, controls, whitespace, DEL, C1, line/paragraph separators.
    "\0", "\x01", "\x1b", "\t", "\n", "\r", " ", "\x7f", "\u{85}", "\u{a0}", "\u{2028}",
    // Zero-width, BOM, bidi override, replacement character, an emoji.
    "\u{200b}", "\u{200d}", "\u{feff}", "\u{202e}", "\u{fffd}", "😀",
    // Digits and text that look like other encodings.
    "0", "5", "-", "v1", "C3", "A9",
];

/// Bytes for byte parts: the specials, controls, high bytes, and the WTF-8
/// encoding of a lone surrogate (ED A0 80), which is not UTF-8.
const BYTE_PIECES: &[&[u8]] = &[
    b"|",
    b"#",
    b"!",
    b"%",
    b"\0",
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xc3\xa9",
    b"e\xcc\x81",
    b"a",
    b"5",
    b" ",
    b"%7C",
];

/// Namespaces a deployment may use (all valid; `#` and `!` are allowed).
const NAMESPACES: &[&str] = &["a", "a#", "a!", "a.b", "ns", "_default", "x-y:z"];

const MAX_LENS: &[usize] = &[MIN_MAX_KEY_LEN, DEFAULT_MAX_KEY_LEN, MEMCACHED_MAX_KEY_LEN];

fn hostile_string(max_pieces: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(PIECES), 0..max_pieces).prop_map(|p| p.concat())
}

fn hostile_bytes(max_pieces: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(select(BYTE_PIECES), 0..max_pieces).prop_map(|p| p.concat())
}

fn hostile_part() -> impl Strategy<Value = OwnedPart> {
    prop_oneof![
        6 => hostile_string(6).prop_map(OwnedPart::Str),
        1 => Just(OwnedPart::Str(String::new())),
        1 => hostile_string(80).prop_map(OwnedPart::Str),
        2 => prop_oneof![
            -10i128..=10,
            Just(i128::MIN),
            Just(i128::MAX),
            any::<i64>().prop_map(i128::from),
        ]
        .prop_map(OwnedPart::Int),
        2 => hostile_bytes(6).prop_map(OwnedPart::Bytes),
        1 => Just(OwnedPart::Bytes(Vec::new())),
    ]
}

fn hostile_input() -> impl Strategy<Value = Input> {
    (
        select(NAMESPACES),
        prop_oneof![0u64..3, Just(u64::MAX)],
        proptest::collection::vec(hostile_part(), 0..5),
    )
        .prop_map(|(namespace, version, parts)| Input {
            namespace,
            version,
            parts,
        })
}

/// Look-alike replacements: each turns a string into a different string
/// that renders the same or nearly so.
const CONFUSABLE_SWAPS: &[(&str, &str)] = &[
    ("a", "а"),
    ("a", "ａ"),
    ("A", "Ａ"),
    ("o", "ο"),
    ("fi", "ﬁ"),
    ("é", "e\u{301}"),
    ("e\u{301}", "é"),
    ("\u{c5}", "A\u{30a}"),
    ("\u{c5}", "\u{212b}"),
    ("|", "%7C"),
    ("%7C", "|"),
    ("%", "%25"),
    ("#", "%23"),
    (" ", "\u{a0}"),
    ("\0", ""),
    ("", "\u{200b}"),
];

/// A small change to `input` that often makes a look-alike; `None` if the
/// mutation does not apply or changes nothing.
fn mutate(input: &Input, kind: usize, at: usize) -> Option<Input> {
    let mut out = input.clone();
    let n = out.parts.len();
    match kind {
        // A confusable swap inside a string part.
        0 => {
            let (from, to) = CONFUSABLE_SWAPS[at % CONFUSABLE_SWAPS.len()];
            let i = (n > 0).then(|| at % n)?;
            let OwnedPart::Str(s) = &out.parts[i] else {
                return None;
            };
            let changed = if from.is_empty() {
                format!("{to}{s}")
            } else {
                s.replacen(from, to, 1)
            };
            out.parts[i] = OwnedPart::Str(changed);
        }
        // Split a string at a `|` into two parts: ["a|b"] -> ["a", "b"].
        1 => {
            let i = (n > 0).then(|| at % n)?;
            let OwnedPart::Str(s) = out.parts[i].clone() else {
                return None;
            };
            let (l, r) = s.split_once('|')?;
            out.parts[i] = OwnedPart::Str(l.to_owned());
            out.parts.insert(i + 1, OwnedPart::Str(r.to_owned()));
        }
        // Join two adjacent string parts with a literal `|`.
        2 => {
            let i = (n > 1).then(|| at % (n - 1))?;
            let (OwnedPart::Str(a), OwnedPart::Str(b)) = (&out.parts[i], &out.parts[i + 1]) else {
                return None;
            };
            let joined = format!("{a}|{b}");
            out.parts[i] = OwnedPart::Str(joined);
            out.parts.remove(i + 1);
        }
        // Insert an empty part anywhere.
        3 => out
            .parts
            .insert(at % (n + 1), OwnedPart::Str(String::new())),
        // Change a part's type but not its text: "5" <-> #5 <-> !5.
        4 => {
            let i = (n > 0).then(|| at % n)?;
            out.parts[i] = match &out.parts[i] {
                OwnedPart::Str(s) => OwnedPart::Bytes(s.clone().into_bytes()),
                OwnedPart::Bytes(b) => match String::from_utf8(b.clone()) {
                    Ok(s) => OwnedPart::Str(s),
                    Err(_) => return None,
                },
                OwnedPart::Int(v) => OwnedPart::Str(v.to_string()),
            };
        }
        // Drop a trailing NUL or add one.
        5 => {
            let i = (n > 0).then(|| at % n)?;
            if let OwnedPart::Str(s) = &mut out.parts[i] {
                if s.ends_with('\0') {
                    s.pop();
                } else {
                    s.push('\0');
                }
            } else {
                return None;
            }
        }
        // Move a part's tag into the previous string: ["a", #5] -> ["a#5"].
        _ => {
            let i = (n > 1).then(|| 1 + at % (n - 1))?;
            let OwnedPart::Str(prev) = &out.parts[i - 1] else {
                return None;
            };
            let OwnedPart::Int(v) = out.parts[i] else {
                return None;
            };
            out.parts[i - 1] = OwnedPart::Str(format!("{prev}#{v}"));
            out.parts.remove(i);
        }
    }
    (out != *input).then_some(out)
}

/// Recovers the input from an untruncated key.
fn decode(key: &str) -> Input {
    Input::decode(key, NAMESPACES)
}

fn assert_valid(key: &str, max_len: usize, what: &dyn std::fmt::Debug) {
    assert!(
        key.len() <= max_len && key.len() <= MEMCACHED_MAX_KEY_LEN,
        "{what:?}: key of {} bytes > {max_len}",
        key.len()
    );
    assert!(
        key.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{what:?}: key {key:?} has a byte outside 0x21..=0x7e"
    );
    assert!(is_valid_memcached_key(key), "{what:?}: {key:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn hostile_keys_are_valid_and_decode_back(input in hostile_input()) {
        for &max_len in MAX_LENS {
            let key = input.key(max_len);
            assert_valid(&key, max_len, &input);
            if key.contains("%#") {
                // Shortened: the prefix is kept and a digest ends the key.
                prop_assert_eq!(key.len() >= max_len - 2, true);
            } else {
                prop_assert_eq!(&decode(&key), &input, "{:?}", key);
            }
        }
    }

    #[test]
    fn hostile_pairs_never_collide(a in hostile_input(), b in hostile_input()) {
        prop_assume!(a != b);
        for &max_len in MAX_LENS {
            prop_assert_ne!(a.key(max_len), b.key(max_len), "{:?} vs {:?}", a, b);
        }
    }

    #[test]
    fn look_alikes_never_collide(
        input in hostile_input(),
        mutations in proptest::collection::vec((0usize..7, any::<usize>()), 1..4),
    ) {
        let mut other = input.clone();
        for (kind, at) in mutations {
            if let Some(m) = mutate(&other, kind, at) {
                other = m;
            }
        }
        if other == input {
            // No mutation applied: an empty part always does.
            other = mutate(&input, 3, 0).expect("inserting a part changes the input");
        }
        for &max_len in MAX_LENS {
            let (ka, kb) = (input.key(max_len), other.key(max_len));
            assert_valid(&kb, max_len, &other);
            prop_assert_ne!(ka, kb, "{:?} vs {:?}", input, other);
        }
    }

    #[test]
    fn hostile_safe_keys_are_valid_and_never_look_like_built_keys(
        raw in hostile_string(40),
        max_len in MIN_MAX_KEY_LEN..=MEMCACHED_MAX_KEY_LEN,
    ) {
        prop_assume!(!raw.is_empty());
        let key = safe_key(&raw, max_len).unwrap();
        assert_valid(&key, max_len, &raw);
        prop_assert!(!key.contains('|'));
        if !key.contains("%#") {
            prop_assert_eq!(String::from_utf8(key_decoder::unescape(&key)).unwrap(), raw);
        }
    }
}

/// Every pair of a fixed table of classic confusions gives distinct keys.
#[test]
fn confusion_table_is_collision_free() {
    use OwnedPart::{Bytes as B, Int as I, Str as S};
    let s = |x: &str| S(x.to_owned());
    let b = |x: &[u8]| B(x.to_vec());
    let table: Vec<Vec<OwnedPart>> = vec![
        vec![],
        vec![s("")],
        vec![s(""), s("")],
        vec![b(b"")],
        vec![s("a|b")],
        vec![s("a"), s("b")],
        vec![s("a%7Cb")],
        vec![s("a%7Cb"), s("")],
        vec![s("a#1")],
        vec![s("a"), I(1)],
        vec![s("a!1")],
        vec![s("a"), b(b"1")],
        vec![s("#1")],
        vec![I(1)],
        vec![s("1")],
        vec![b(b"1")],
        vec![s("!1")],
        vec![s("%")],
        vec![s("%25")],
        vec![s("%2525")],
        vec![s("admin")],
        vec![s("аdmin")],  // Cyrillic а
        vec![s("ａdmin")], // fullwidth ａ
        vec![s("admin\0")],
        vec![s("admin"), s("\0")],
        vec![s("\0admin")],
        vec![s("café")],        // NFC
        vec![s("cafe\u{301}")], // NFD
        vec![b("café".as_bytes())],
        vec![s("Å")],
        vec![s("A\u{30a}")],
        vec![s("\u{212b}")],
        vec![s("a b")],
        vec![s("a\u{a0}b")],
        vec![s("a\tb")],
        vec![s("a\nb")],
        vec![s("ab")],
        vec![s("a\u{200b}b")],
        vec![s("a\u{feff}b")],
        vec![s("\u{202e}ba")],
        vec![b(b"\xed\xa0\x80")], // a lone surrogate, WTF-8
        vec![b(b"\xed\xbf\xbf")],
        vec![s("\u{fffd}")],
        vec![I(-1)],
        vec![s("-1")],
        vec![I(0)],
        vec![s("0")],
        vec![b(b"\x00")],
        vec![s("\0")],
        vec![I(i128::MIN)],
        vec![I(i128::MAX)],
    ];
    for &max_len in MAX_LENS {
        let keys: Vec<String> = table
            .iter()
            .map(|parts| {
                let key = KeyBuilder::new(Namespace::new("ns").unwrap(), 1)
                    .with_max_len(max_len)
                    .unwrap()
                    .build_owned(parts);
                assert_valid(&key, max_len, parts);
                key
            })
            .collect();
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(
                    keys[i], keys[j],
                    "{:?} and {:?} collide at max_len {max_len}",
                    table[i], table[j]
                );
            }
        }
    }
}

/// 1 MB parts: valid keys of at most 250 bytes, and a one-character
/// difference at the very end (after the kept prefix), a confusable, NFC vs
/// NFD, one NUL more, or the same bytes split in two parts or typed as bytes
/// gives a different key. (Few variants: escaping 1 MB takes ~0.5 s in a
/// debug build.)
#[test]
fn megabyte_parts() {
    const MB: usize = 1 << 20;
    let base = "a".repeat(MB);
    let with_last = |what: &str| format!("{}{what}", &base[..MB - 1]);
    let variants: Vec<Vec<OwnedPart>> = vec![
        vec![OwnedPart::Str(base.clone())],
        vec![OwnedPart::Str(with_last("b"))],
        vec![OwnedPart::Str(with_last("а"))], // Cyrillic
        vec![OwnedPart::Str(format!("{base}é"))],
        vec![OwnedPart::Str(format!("{base}e\u{301}"))],
        vec![OwnedPart::Str(format!("{base}\0"))],
        vec![
            OwnedPart::Str(base[..MB / 2].to_owned()),
            OwnedPart::Str(base[MB / 2..].to_owned()),
        ],
        vec![OwnedPart::Bytes(base.clone().into_bytes())],
        vec![OwnedPart::Str("\0".repeat(MB))],
    ];
    let builder = KeyBuilder::new(Namespace::new("ns").unwrap(), 1)
        .with_max_len(MEMCACHED_MAX_KEY_LEN)
        .unwrap();
    let keys: Vec<String> = variants.iter().map(|p| builder.build_owned(p)).collect();
    for key in &keys {
        assert_valid(key, MEMCACHED_MAX_KEY_LEN, &key.len());
        assert!(key.contains("%#"), "a 1 MB part is shortened");
    }
    for i in 0..keys.len() {
        for j in i + 1..keys.len() {
            assert_ne!(keys[i], keys[j], "variants {i} and {j} collide");
        }
    }
    // safe_key too: same length, last byte differs.
    let raw = safe_key(&with_last("b"), DEFAULT_MAX_KEY_LEN).unwrap();
    assert_valid(&raw, DEFAULT_MAX_KEY_LEN, &"safe_key");
    assert_ne!(raw, safe_key(&base, DEFAULT_MAX_KEY_LEN).unwrap());
}
