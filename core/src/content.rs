//! Content-addressed entries, after Khan Academy's content cache: each item
//! is stored under a key derived from the digest of its content, and a
//! version's [`ContentManifest`] (item id → digest) is stored as one entry.
//! Publishing a version that changes 1% of the items writes those items and
//! a new manifest; the other 99% of entries stay valid, because their keys
//! did not change. Readers switch to a new version atomically by reading its
//! manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::{KeyBuilder, Part};
use crate::namespace::Namespace;

/// The version of the content-key layout (the `v1` in content keys).
pub const CONTENT_KEY_VERSION: u64 = 1;

/// The most items a manifest may list when read back from a tier.
pub const MAX_MANIFEST_ENTRIES: usize = 1_000_000;

/// A SHA-256 digest of an item's serialized content.
pub type ContentDigest = [u8; 32];

/// The digest of `payload` (the serialized item).
pub fn content_digest(payload: &[u8]) -> ContentDigest {
    Sha256::digest(payload).into()
}

/// The key an item with `digest` is stored under in `namespace`:
/// `{namespace}|v1|sha256|{hex digest}`. The same content always has the
/// same key, in every host and every version.
///
/// ```
/// use stratacache::content::{content_digest, content_key};
/// use stratacache::Namespace;
///
/// let ns = Namespace::new("content").unwrap();
/// let key = content_key(&ns, &content_digest(b"<p>Hello</p>"));
/// assert!(key.starts_with("content|v1|sha256|"));
/// assert_eq!(key.len(), "content|v1|sha256|".len() + 64);
/// ```
pub fn content_key(namespace: &Namespace, digest: &ContentDigest) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    KeyBuilder::new(namespace.clone(), CONTENT_KEY_VERSION)
        .build(&[Part::Str("sha256"), Part::Str(&hex)])
}

/// The key of the manifest of content `version` in `namespace`:
/// `{namespace}|v{version}|manifest`.
pub fn manifest_key(namespace: &Namespace, version: u64) -> String {
    KeyBuilder::new(namespace.clone(), version).build(&[Part::Str("manifest")])
}

/// Why manifest bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// The bytes are not a postcard-encoded manifest.
    #[error("content manifest is corrupt ({0}): treat it as a miss and publish the version again")]
    Corrupt(String),
    /// More entries than [`MAX_MANIFEST_ENTRIES`].
    #[error("content manifest lists {0} items; the limit is {MAX_MANIFEST_ENTRIES}")]
    TooManyEntries(usize),
}

/// The items of one content version: item id → digest of its content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentManifest {
    items: BTreeMap<String, ContentDigest>,
}

impl ContentManifest {
    /// An empty manifest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records item `id` with serialized content `payload`; returns its digest.
    pub fn insert(&mut self, id: impl Into<String>, payload: &[u8]) -> ContentDigest {
        let digest = content_digest(payload);
        self.items.insert(id.into(), digest);
        digest
    }

    /// Removes item `id` from this version.
    pub fn remove(&mut self, id: &str) -> Option<ContentDigest> {
        self.items.remove(id)
    }

    /// The digest of item `id`.
    pub fn digest(&self, id: &str) -> Option<&ContentDigest> {
        self.items.get(id)
    }

    /// The content key of item `id` in this version.
    pub fn key_for(&self, namespace: &Namespace, id: &str) -> Option<String> {
        self.digest(id).map(|digest| content_key(namespace, digest))
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if the manifest lists no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Item ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.items.keys().map(String::as_str)
    }

    /// Ids whose content differs between `self` and `newer` (changed, added
    /// or removed): the only items a publish has to write.
    pub fn changed_in<'a>(&'a self, newer: &'a ContentManifest) -> Vec<&'a str> {
        let mut changed: Vec<&str> = newer
            .items
            .iter()
            .filter(|(id, digest)| self.items.get(*id) != Some(digest))
            .map(|(id, _)| id.as_str())
            .collect();
        changed.extend(self.ids().filter(|id| !newer.items.contains_key(*id)));
        changed
    }

    /// The manifest as postcard bytes (store it with the postcard codec).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a map of strings and arrays always serializes")
    }

    /// Reads a manifest from untrusted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ContentError> {
        // Each entry takes at least 33 bytes, so a count claimed beyond what
        // the input can hold fails while reading, before it allocates.
        let manifest: ContentManifest =
            postcard::from_bytes(bytes).map_err(|e| ContentError::Corrupt(e.to_string()))?;
        if manifest.items.len() > MAX_MANIFEST_ENTRIES {
            return Err(ContentError::TooManyEntries(manifest.items.len()));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::new("content").unwrap()
    }

    #[test]
    fn same_content_same_key_in_every_version() {
        let mut v1 = ContentManifest::new();
        let mut v2 = ContentManifest::new();
        v1.insert("video/intro", b"<video>");
        v2.insert("video/intro", b"<video>");
        assert_eq!(
            v1.key_for(&ns(), "video/intro"),
            v2.key_for(&ns(), "video/intro")
        );
        assert_ne!(manifest_key(&ns(), 1), manifest_key(&ns(), 2));
        assert_eq!(v1.key_for(&ns(), "missing"), None);
    }

    #[test]
    fn a_publish_changing_one_percent_changes_one_percent_of_keys() {
        let mut v1 = ContentManifest::new();
        for i in 0..1_000 {
            v1.insert(format!("item/{i}"), format!("content {i}").as_bytes());
        }
        let mut v2 = v1.clone();
        for i in 0..10 {
            v2.insert(format!("item/{i}"), format!("edited {i}").as_bytes());
        }
        v2.insert("item/new", b"added");
        v2.remove("item/999");
        let changed = v1.changed_in(&v2);
        assert_eq!(changed.len(), 12);
        let same = v2
            .ids()
            .filter(|id| v1.key_for(&ns(), id) == v2.key_for(&ns(), id))
            .count();
        assert_eq!(same, 989);
    }

    #[test]
    fn manifest_bytes_round_trip_and_garbage_is_an_error() {
        let mut m = ContentManifest::new();
        m.insert("a", b"1");
        m.insert("b", b"2");
        let bytes = m.to_bytes();
        assert_eq!(ContentManifest::from_bytes(&bytes).unwrap(), m);
        for cut in 0..bytes.len() {
            assert!(
                ContentManifest::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A claimed count of 2^63 entries: refused without allocating.
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            ContentManifest::from_bytes(&huge),
            Err(ContentError::Corrupt(_))
        ));
        assert!(ContentManifest::from_bytes(b"")
            .unwrap_err()
            .to_string()
            .contains("publish"));
    }
}
