//! Fetched values checked before the read takes them (feature `precheck`):
//! a host verifies the signatures of a batch where it likes (with its
//! interpreter lock released, on several threads) with a [`Prechecker`],
//! and answers the fetch with [`Fetched::Prechecked`] values. The read
//! then skips the check of each value checked for the key it reads under;
//! anything else (a manifest, a compressed or refused value, another key)
//! goes through the read's own check as before.

use std::borrow::Cow;

use crate::envelope::{self, DecodeOptions, EnvelopeHeader, Keyring};

#[cfg(doc)]
use super::Fetched;

/// The envelope checks of one cache, detached from it (`Send`, cheap to
/// share): see [`super::TieredCache::prechecker`].
///
/// ```
/// use stratacache::tiered::{Fetched, TierConfig, TieredCache, TieredConfig};
/// let cache: TieredCache<String> =
///     TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
/// let checker = cache.prechecker();
/// let answer = Fetched::<String>::Prechecked(checker.check("k".into(), b"not an envelope".to_vec()));
/// assert!(!answer.is_failed());
/// ```
#[derive(Clone)]
pub struct Prechecker {
    pub(super) keyring: Option<Keyring>,
    pub(super) max_payload_len: usize,
    pub(super) allow_unsigned_pickle: bool,
}

/// A fetched value and what [`Prechecker::check`] found; only a
/// `Prechecker` makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prechecked {
    /// The key the value was checked for (the key it was fetched under).
    pub(super) key: String,
    pub(super) bytes: Vec<u8>,
    /// A verified, uncompressed value envelope: its header and where its
    /// payload lies in `bytes`. `None`: the read checks it itself.
    pub(super) value: Option<(EnvelopeHeader, usize, usize)>,
}

impl Prechecked {
    /// The bytes fetched.
    ///
    /// ```
    /// # use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// # let cache: TieredCache<String> = TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let p = cache.prechecker().check("k".into(), b"xyz".to_vec());
    /// assert_eq!(p.bytes(), b"xyz");
    /// ```
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Prechecker {
    fn options(&self) -> DecodeOptions<'_> {
        DecodeOptions {
            keyring: self.keyring.as_ref(),
            require_signature: self.keyring.is_some(),
            max_payload_len: self.max_payload_len,
            allow_unsigned_pickle: self.allow_unsigned_pickle,
        }
    }

    /// Checks `bytes` fetched under `key` as a read of that key would
    /// (signature bound to the key, header, sizes).
    ///
    /// ```
    /// # use stratacache::tiered::{TierConfig, TieredCache, TieredConfig};
    /// # let cache: TieredCache<String> = TieredCache::new(TieredConfig::new(vec![TierConfig::memcached("mc")])).unwrap();
    /// let checked = cache.prechecker().check("k".into(), Vec::new());
    /// assert!(checked.bytes().is_empty());
    /// ```
    pub fn check(&self, key: String, bytes: Vec<u8>) -> Prechecked {
        let value = match envelope::decode_for_key(&key, &bytes, &self.options()) {
            Ok(decoded) if !decoded.header.manifest => match decoded.payload {
                Cow::Borrowed(body) => {
                    let start = body.as_ptr() as usize - bytes.as_ptr() as usize;
                    Some((decoded.header, start, start + body.len()))
                }
                Cow::Owned(_) => None,
            },
            _ => None,
        };
        Prechecked { key, bytes, value }
    }
}

#[cfg(test)]
mod tests {
    use crate::envelope::{encode_for_key, Codec, EncodeOptions, EnvelopeHeader, Keyring};
    use crate::tiered::{Fetched, ReadOptions, Step, TierConfig, TieredCache, TieredConfig};

    fn signed_cache() -> (TieredCache<String>, Keyring) {
        let ring = Keyring::new("k1", b"a secret of 20 bytes").unwrap();
        let mut config = TieredConfig::new(vec![TierConfig::memcached("mc")]);
        config.keyring = Some(ring.clone());
        (TieredCache::new(config).unwrap(), ring)
    }

    /// The payloads a read of `key` hands to decode after its fetch is
    /// answered with `answer(bytes fetched)`.
    fn decoded(
        cache: &mut TieredCache<String>,
        key: &str,
        fetched: Vec<u8>,
        answer: impl Fn(Vec<u8>) -> Fetched,
    ) -> Vec<Vec<u8>> {
        let mut read = cache
            .read_raw::<String>(vec![key.into()], ReadOptions::default(), 0, 1, None)
            .unwrap();
        assert!(matches!(read.next(cache), Step::Fetch { .. }));
        read.fetched_outcomes(cache, 0, vec![answer(fetched)])
            .unwrap();
        match read.next(cache) {
            Step::Decode { items } => items.into_iter().map(|i| i.payload).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_value_checked_for_its_key_is_taken_and_others_are_checked_again() {
        let (mut cache, ring) = signed_cache();
        let checker = cache.prechecker();
        let header = EnvelopeHeader::new(Codec::Raw, 0);
        let sign = EncodeOptions::new().with_signing(&ring);
        let for_k = encode_for_key("k", &header, b"value of k", &sign);
        let got = decoded(&mut cache, "k", for_k.clone(), |b| {
            Fetched::Prechecked(checker.check("k".into(), b))
        });
        assert_eq!(got, vec![b"value of k".to_vec()]);
        assert_eq!(cache.tier_stats()[0].hits, 1);
        // Checked (and valid) for another key: the read checks it for its
        // own key, and a value signed for "other" is refused under "k".
        let for_other = encode_for_key("other", &header, b"value of other", &sign);
        let got = decoded(&mut cache, "k", for_other, |b| {
            Fetched::Prechecked(checker.check("other".into(), b))
        });
        assert!(got.is_empty());
        assert_eq!(cache.tier_stats()[0].rejected, 1);
        // Tampered bytes fail the check and then the read's own.
        let mut tampered = for_k;
        let at = tampered.len() - 40;
        tampered[at] ^= 1;
        let got = decoded(&mut cache, "k", tampered, |b| {
            Fetched::Prechecked(checker.check("k".into(), b))
        });
        assert!(got.is_empty());
        assert_eq!(cache.tier_stats()[0].rejected, 2);
    }
}
