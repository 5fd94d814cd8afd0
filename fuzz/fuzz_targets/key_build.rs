//! Arbitrary namespaces, versions and parts through the key builder: every
//! key is a valid memcached key within the builder's maximum length, and
//! distinct part lists give distinct keys.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use stratacache::key::{
    is_valid_memcached_key, KeyBuilder, Part, MEMCACHED_MAX_KEY_LEN, MIN_MAX_KEY_LEN,
};
use stratacache::Namespace;

#[derive(Arbitrary, Debug)]
enum P<'a> {
    Str(&'a str),
    Int(i128),
    Bytes(&'a [u8]),
}

impl P<'_> {
    fn part(&self) -> Part<'_> {
        match self {
            P::Str(s) => Part::Str(s),
            P::Int(n) => Part::Int(*n),
            P::Bytes(b) => Part::Bytes(b),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    namespace: &'a str,
    version: u64,
    max_len: u8,
    a: Vec<P<'a>>,
    b: Vec<P<'a>>,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(ns) = Namespace::new(input.namespace) else {
        return;
    };
    let max_len = MIN_MAX_KEY_LEN
        + usize::from(input.max_len) % (MEMCACHED_MAX_KEY_LEN - MIN_MAX_KEY_LEN + 1);
    let builder = KeyBuilder::new(ns, input.version)
        .with_max_len(max_len)
        .expect("max_len in range");
    let a: Vec<Part<'_>> = input.a.iter().map(P::part).collect();
    let b: Vec<Part<'_>> = input.b.iter().map(P::part).collect();
    let ka = builder.build(&a);
    let kb = builder.build(&b);
    for k in [&ka, &kb] {
        assert!(k.len() <= max_len, "{k:?} longer than {max_len}");
        assert!(
            is_valid_memcached_key(k),
            "{k:?} is not a valid memcached key"
        );
    }
    if a != b {
        assert_ne!(ka, kb, "{a:?} and {b:?} collide");
    }
});
