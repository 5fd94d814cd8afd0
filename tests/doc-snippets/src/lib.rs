//! The Rust snippets of the documentation, compiled and run as doctests.
//!
//! `build.rs` copies every ```` ```rust ```` block of `README.md`,
//! `core/README.md` and `docs/*.md` into one Markdown file; a block preceded
//! by `<!-- rust-context: NAME -->` is first put inside `context/NAME.rs`
//! (the declarations a fragment such as a read loop needs, kept out of the
//! prose). `cargo test -p stratacache-doc-snippets --doc` (part of
//! `cargo test --workspace`) then builds and runs each one against the
//! `stratacache` and `stratacache-net` crates.
//!
//! ```
//! // Each snippet is a doctest like this one.
//! assert_eq!(stratacache::key::KeyBuilder::new(stratacache::Namespace::new("ns").unwrap(), 1).build(&[]), "ns|v1");
//! ```

#![forbid(unsafe_code)]

/// The documentation's Rust snippets (doctests only; nothing to call).
#[cfg(doctest)]
#[doc = include_str!(concat!(env!("OUT_DIR"), "/snippets.md"))]
pub struct Snippets;
