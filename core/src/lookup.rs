//! [`Lookup`]: the answer of a cache read, which tells a stored empty value
//! from a miss.

/// The result of reading one key: a hit with the stored value, or a miss.
///
/// A stored `None`, empty string or empty list is a [`Lookup::Hit`]; only
/// the absence of an entry is a [`Lookup::Miss`]. This is the same contract as
/// edx-django-utils' `CachedResponse`, which exists because `cache.get(key)`
/// returning `None` cannot tell "cached None" from "not cached".
///
/// ```
/// use stratacache::Lookup;
///
/// let cached_none: Lookup<Option<u32>> = Lookup::Hit(None);
/// assert!(cached_none.is_found());
/// assert_eq!(Lookup::<u32>::Miss.value_or(7), 7);
/// assert_eq!(Lookup::Hit(2).map(|v| v * 10), Lookup::Hit(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lookup<V> {
    /// The key is stored; this is its value (which may itself be empty).
    Hit(V),
    /// The key is not stored (never set, deleted, evicted or expired).
    #[default]
    Miss,
}

impl<V> Lookup<V> {
    /// True on a hit (`CachedResponse.is_found`).
    pub fn is_found(&self) -> bool {
        matches!(self, Lookup::Hit(_))
    }

    /// True on a miss.
    pub fn is_miss(&self) -> bool {
        matches!(self, Lookup::Miss)
    }

    /// The value on a hit, `default` on a miss
    /// (`CachedResponse.get_value_or_default`).
    pub fn value_or(self, default: V) -> V {
        match self {
            Lookup::Hit(value) => value,
            Lookup::Miss => default,
        }
    }

    /// The value on a hit, or the result of `default` on a miss.
    pub fn value_or_else(self, default: impl FnOnce() -> V) -> V {
        match self {
            Lookup::Hit(value) => value,
            Lookup::Miss => default(),
        }
    }

    /// Applies `f` to the value of a hit; a miss stays a miss.
    pub fn map<U>(self, f: impl FnOnce(V) -> U) -> Lookup<U> {
        match self {
            Lookup::Hit(value) => Lookup::Hit(f(value)),
            Lookup::Miss => Lookup::Miss,
        }
    }

    /// Borrows the value of a hit.
    pub fn as_ref(&self) -> Lookup<&V> {
        match self {
            Lookup::Hit(value) => Lookup::Hit(value),
            Lookup::Miss => Lookup::Miss,
        }
    }

    /// The value of a hit as an `Option` (use only where the value type
    /// cannot itself be empty, or the distinction is lost).
    pub fn hit(self) -> Option<V> {
        match self {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss => None,
        }
    }

    /// The value of a hit; panics with `message` on a miss
    /// (`CachedResponse.value` raises on a miss).
    #[track_caller]
    pub fn expect(self, message: &str) -> V {
        match self {
            Lookup::Hit(value) => value,
            Lookup::Miss => panic!("{message}"),
        }
    }
}

impl<V: Clone> Lookup<&V> {
    /// Clones the borrowed value of a hit.
    pub fn cloned(self) -> Lookup<V> {
        self.map(V::clone)
    }
}

impl<V> From<Option<V>> for Lookup<V> {
    /// `Some(v)` is a hit and `None` a miss: use only where `None` cannot be
    /// a stored value.
    fn from(option: Option<V>) -> Self {
        option.map_or(Lookup::Miss, Lookup::Hit)
    }
}

#[cfg(test)]
mod tests {
    use super::Lookup;

    #[test]
    fn stored_empty_values_are_hits() {
        assert!(Lookup::Hit(None::<u8>).is_found());
        assert!(Lookup::Hit(String::new()).is_found());
        assert!(!Lookup::Hit(()).is_miss());
        assert!(Lookup::<()>::Miss.is_miss());
        assert!(!Lookup::<()>::Miss.is_found());
        assert_eq!(Lookup::<u8>::default(), Lookup::Miss);
    }

    #[test]
    fn value_or_returns_value_on_hit_and_default_on_miss() {
        assert_eq!(Lookup::Hit(None::<u8>).value_or(Some(1)), None);
        assert_eq!(Lookup::Miss.value_or(Some(1)), Some(1));
        assert_eq!(Lookup::Hit(3).value_or_else(|| unreachable!()), 3);
        assert_eq!(Lookup::Miss.value_or_else(|| 4), 4);
    }

    #[test]
    fn map_as_ref_cloned_hit_and_from_option() {
        assert_eq!(Lookup::Hit(2).map(|v| v + 1), Lookup::Hit(3));
        assert_eq!(Lookup::<i32>::Miss.map(|v| v + 1), Lookup::Miss);
        let owned = Lookup::Hit(String::from("x"));
        assert_eq!(owned.as_ref().cloned(), Lookup::Hit(String::from("x")));
        assert_eq!(Lookup::<String>::Miss.as_ref().cloned(), Lookup::Miss);
        assert_eq!(Lookup::Hit(5).hit(), Some(5));
        assert_eq!(Lookup::<u8>::Miss.hit(), None);
        assert_eq!(Lookup::from(Some(1)), Lookup::Hit(1));
        assert_eq!(Lookup::<u8>::from(None), Lookup::Miss);
        assert_eq!(Lookup::Hit(9).expect("present"), 9);
    }

    #[test]
    #[should_panic(expected = "course outline missing")]
    fn expect_panics_on_miss_with_the_message() {
        Lookup::<u8>::Miss.expect("course outline missing");
    }
}
