//! Signing keys derived from an application secret, and the rule that keeps
//! a codec that can run code (pickle) away from unsigned remote values.
//!
//! Every host derives a signing key from a secret the same way, so a value
//! Django signs with keys derived from its `SECRET_KEY` verifies at the edge
//! worker given the same secret. The derivation is pinned by
//! `tests/vectors/signing-keys.json` and described in
//! `docs/envelope-format.md`.

use sha2::{Digest, Sha256};

use crate::envelope::Codec;

/// The label hashed with a secret to derive a signing key (a wire-format
/// identifier: it keeps the project's first name, see `docs/key-format.md`).
pub const SIGNING_KEY_LABEL: &str = "tiercache.signing.v1";

/// The signing key for `secret`: `SHA-256(label || 0x00 || secret)`, where
/// `label` is [`SIGNING_KEY_LABEL`]. The HMAC key is never the secret itself,
/// so a value's signature reveals nothing usable elsewhere about the secret
/// (Django's `SECRET_KEY` also signs sessions and passwords resets).
///
/// Fails with [`EmptySecret`] for an empty secret, which would sign with a
/// key anyone can compute.
///
/// ```
/// use stratacache::signing::signing_key_from_secret;
/// use stratacache::Keyring;
///
/// let key = signing_key_from_secret(b"django-insecure-0123456789").unwrap();
/// assert_eq!(key.len(), 32);
/// let ring = Keyring::new("django", &key).unwrap();
/// assert!(signing_key_from_secret(b"").is_err());
/// # let _ = ring;
/// ```
pub fn signing_key_from_secret(secret: &[u8]) -> Result<[u8; 32], EmptySecret> {
    if secret.is_empty() {
        return Err(EmptySecret);
    }
    // One-shot `digest` of a slice, the call the key module already makes: the wasm
    // module keeps a single copy of SHA-256's code path (size budget).
    let mut input = Vec::with_capacity(SIGNING_KEY_LABEL.len() + 1 + secret.len());
    input.extend_from_slice(SIGNING_KEY_LABEL.as_bytes());
    input.push(0);
    input.extend_from_slice(secret);
    Ok(Sha256::digest(input.as_slice()).into())
}

/// [`signing_key_from_secret`] was given an empty secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the secret to derive signing keys from is empty: pass the application secret (e.g. SECRET_KEY)")]
pub struct EmptySecret;

/// A cache that would decode unsigned values from a remote tier with a codec
/// that can run code; see [`check_codec_safety`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {codec} codec can run code hidden in a value, and this cache would read unsigned values from {remote_tiers} remote tier(s) that others may write to: \
     give it signing keys derived from a secret (Python: signing_keys=signing_keys_from_secret(settings.SECRET_KEY); \
     JS: signingKeys: signingKeysFromSecret(env.SECRET)), or choose the json codec, \
     or, only if no one else can write to these tiers, opt in with allow_unsigned_pickle=True"
)]
pub struct UnsafeCodec {
    /// The codec's name (`pickle`).
    pub codec: &'static str,
    /// How many remote tiers the cache has.
    pub remote_tiers: usize,
}

/// The rule every host applies when it builds a tiered cache: a codec that
/// can run code ([`Codec::executes_code`]) with at least one remote tier
/// needs signing keys, unless the host opts in with `allow_unsigned_pickle`.
///
/// Reads are guarded as well: an unsigned pickle from a remote tier is never
/// decoded unless allowed ([`crate::envelope::DecodeOptions::allow_unsigned_pickle`]).
///
/// ```
/// use stratacache::{check_codec_safety, Codec};
///
/// assert!(check_codec_safety(Codec::Pickle, 1, false, false).is_err());
/// assert!(check_codec_safety(Codec::Pickle, 1, true, false).is_ok());
/// assert!(check_codec_safety(Codec::Pickle, 1, false, true).is_ok());
/// assert!(check_codec_safety(Codec::Pickle, 0, false, false).is_ok());
/// assert!(check_codec_safety(Codec::Json, 2, false, false).is_ok());
/// let message = check_codec_safety(Codec::Pickle, 2, false, false).unwrap_err().to_string();
/// assert!(message.contains("signing_keys_from_secret"));
/// ```
pub fn check_codec_safety(
    codec: Codec,
    remote_tiers: usize,
    signed: bool,
    allow_unsigned_pickle: bool,
) -> Result<(), UnsafeCodec> {
    if codec.executes_code() && remote_tiers > 0 && !signed && !allow_unsigned_pickle {
        return Err(UnsafeCodec {
            codec: codec.name(),
            remote_tiers,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_sha256_of_label_nul_secret() {
        let mut expected = Sha256::new();
        expected.update(b"tiercache.signing.v1\x00secret");
        let expected: [u8; 32] = expected.finalize().into();
        assert_eq!(signing_key_from_secret(b"secret").unwrap(), expected);
        assert_ne!(
            signing_key_from_secret(b"secret").unwrap(),
            signing_key_from_secret(b"secret2").unwrap()
        );
        assert_eq!(signing_key_from_secret(b""), Err(EmptySecret));
        assert!(EmptySecret.to_string().contains("SECRET_KEY"));
    }

    #[test]
    fn only_code_running_codecs_need_keys() {
        for codec in Codec::ALL {
            let refused = check_codec_safety(codec, 1, false, false).is_err();
            assert_eq!(refused, codec == Codec::Pickle, "{codec}");
        }
        let err = check_codec_safety(Codec::Pickle, 3, false, false).unwrap_err();
        assert_eq!(err.remote_tiers, 3);
        let message = err.to_string();
        assert!(message.contains("pickle codec"), "{message}");
        assert!(message.contains("allow_unsigned_pickle=True"), "{message}");
        assert!(message.contains("signingKeysFromSecret"), "{message}");
    }
}
