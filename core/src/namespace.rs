//! [`Namespace`]: a validated name that scopes request-cache entries and
//! versioned keys.

use crate::quote::{Quoted, QuotedChar};
use std::borrow::Cow;
use std::fmt;

/// Names that start with this prefix are kept for stratacache's own entries
/// (leases, chunks, manifests), so user data can never collide with them.
pub const RESERVED_PREFIX: &str = "tiercache";

/// The longest namespace accepted, in bytes. Namespaces are repeated in every
/// key, so they should be short; this bound keeps room for the key's parts.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// A namespace name: 1 to [`MAX_NAMESPACE_LEN`] printable ASCII characters,
/// without spaces, `|` (the key separator) or `%` (the key escape), and not
/// starting with [`RESERVED_PREFIX`].
///
/// ```
/// use stratacache::Namespace;
///
/// let blocks = Namespace::new("course_blocks").unwrap();
/// assert_eq!(blocks.as_str(), "course_blocks");
/// assert!(Namespace::new("").is_err());
/// assert!(Namespace::new("tiercache.locks").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(Cow<'static, str>);

/// Why a namespace name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    /// The name is the empty string.
    #[error("namespace is empty: give a short name such as \"course_blocks\"")]
    Empty,
    /// The name is longer than [`MAX_NAMESPACE_LEN`] bytes.
    #[error("namespace is {len} bytes long; the limit is {MAX_NAMESPACE_LEN}: use a shorter name")]
    TooLong {
        /// Length of the refused name in bytes.
        len: usize,
    },
    /// The name contains a character that cannot appear in a cache key.
    #[error("namespace {} contains {} at byte {at}: use printable ASCII without spaces, '|' or '%'", Quoted(.name), QuotedChar(*.found))]
    InvalidChar {
        /// The refused name.
        name: String,
        /// The first offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// The name starts with [`RESERVED_PREFIX`].
    #[error("namespace {} is reserved: names starting with \"{RESERVED_PREFIX}\" hold stratacache's own entries; pick another name", Quoted(.name))]
    Reserved {
        /// The refused name.
        name: String,
    },
}

impl Namespace {
    /// The namespace used when none is named (edx-django-utils' `_default`).
    pub const DEFAULT: Namespace = Namespace(Cow::Borrowed("_default"));

    /// Validates `name` as a user namespace.
    pub fn new(name: impl Into<String>) -> Result<Self, NamespaceError> {
        let name = name.into();
        check_name(&name)?;
        if name.starts_with(RESERVED_PREFIX) {
            return Err(NamespaceError::Reserved { name });
        }
        Ok(Namespace(Cow::Owned(name)))
    }

    /// A namespace for stratacache's own entries; `suffix` follows
    /// [`RESERVED_PREFIX`] and a dot.
    pub(crate) fn internal(suffix: &str) -> Self {
        let name = format!("{RESERVED_PREFIX}.{suffix}");
        debug_assert!(check_name(&name).is_ok(), "bad internal namespace {name}");
        Namespace(Cow::Owned(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(name: &str) -> Result<(), NamespaceError> {
    if name.is_empty() {
        return Err(NamespaceError::Empty);
    }
    if name.len() > MAX_NAMESPACE_LEN {
        return Err(NamespaceError::TooLong { len: name.len() });
    }
    if let Some((at, found)) = name
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_graphic() || c == '|' || c == '%')
    {
        return Err(NamespaceError::InvalidChar {
            name: name.to_owned(),
            found,
            at,
        });
    }
    Ok(())
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::DEFAULT
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({:?})", self.0)
    }
}

impl TryFrom<&str> for Namespace {
    type Error = NamespaceError;
    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Namespace::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "course_blocks",
            "a",
            "django_comment_client.permissions",
            "x:y/z+1@2",
        ] {
            assert_eq!(Namespace::new(name).unwrap().as_str(), name);
        }
        assert_eq!(Namespace::new("_default").unwrap(), Namespace::DEFAULT);
        assert_eq!(Namespace::default().to_string(), "_default");
    }

    #[test]
    fn refuses_empty_long_and_reserved_names() {
        assert_eq!(Namespace::new(""), Err(NamespaceError::Empty));
        let long = "n".repeat(MAX_NAMESPACE_LEN + 1);
        assert_eq!(
            Namespace::new(long),
            Err(NamespaceError::TooLong { len: 65 })
        );
        assert!(Namespace::new("n".repeat(MAX_NAMESPACE_LEN)).is_ok());
        let err = Namespace::new("tiercache.leases").unwrap_err();
        assert!(matches!(err, NamespaceError::Reserved { .. }));
        assert!(err.to_string().contains("reserved"));
    }

    #[test]
    fn refuses_characters_that_cannot_be_in_a_key() {
        for (name, bad) in [
            ("a b", ' '),
            ("a|b", '|'),
            ("a%b", '%'),
            ("é", 'é'),
            ("a\nb", '\n'),
            ("a\0", '\0'),
        ] {
            match Namespace::new(name) {
                Err(NamespaceError::InvalidChar { found, .. }) => assert_eq!(found, bad),
                other => panic!("{name:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn internal_namespaces_are_reserved_names() {
        let ns = Namespace::internal("lease");
        assert_eq!(ns.as_str(), "tiercache.lease");
        assert!(Namespace::new(ns.as_str()).is_err());
    }
}
