//! [`RequestCache`]: namespaced maps that live for one request.

use hashbrown::HashMap;

use crate::lookup::Lookup;
use crate::namespace::Namespace;

/// Values cached for the length of one request, in named namespaces, cleared
/// as a whole when the request ends.
///
/// The type is plain data: the host decides its scope (Python keeps one per
/// request in a `contextvars.ContextVar`, so asyncio tasks never see each
/// other's entries; an edge worker creates one in `fetch`). It has no bound
/// and no expiry, because it dies with the request.
///
/// ```
/// use stratacache::{Lookup, Namespace, RequestCache};
///
/// let mut cache = RequestCache::new();
/// let ns = Namespace::new("enrollments").unwrap();
/// cache.set(&ns, "user:7", None::<u32>);
/// assert_eq!(cache.get(&ns, "user:7"), Lookup::Hit(&None));
/// assert_eq!(cache.get(&Namespace::DEFAULT, "user:7"), Lookup::Miss);
/// cache.clear_all();
/// assert!(cache.is_empty());
/// ```
#[derive(Clone)]
pub struct RequestCache<V> {
    namespaces: HashMap<Namespace, HashMap<String, V>>,
}

impl<V> RequestCache<V> {
    /// An empty request cache.
    pub fn new() -> Self {
        RequestCache {
            namespaces: HashMap::new(),
        }
    }

    /// The value stored under `key` in `namespace`.
    pub fn get(&self, namespace: &Namespace, key: &str) -> Lookup<&V> {
        self.namespaces
            .get(namespace)
            .and_then(|entries| entries.get(key))
            .into()
    }

    /// Stores `value` under `key`, returning the value it replaced.
    pub fn set(&mut self, namespace: &Namespace, key: impl Into<String>, value: V) -> Lookup<V> {
        self.entries_mut(namespace).insert(key.into(), value).into()
    }

    /// Returns the value under `key`, first storing `value` there if the key
    /// is missing (Python's `dict.setdefault`).
    pub fn setdefault(&mut self, namespace: &Namespace, key: impl Into<String>, value: V) -> &V {
        self.entries_mut(namespace)
            .entry(key.into())
            .or_insert(value)
    }

    /// Removes `key`, returning its value; a missing key is a [`Lookup::Miss`],
    /// not an error.
    pub fn delete(&mut self, namespace: &Namespace, key: &str) -> Lookup<V> {
        self.namespaces
            .get_mut(namespace)
            .and_then(|entries| entries.remove(key))
            .into()
    }

    /// Removes every entry of `namespace`; other namespaces are untouched.
    pub fn clear(&mut self, namespace: &Namespace) {
        self.namespaces.remove(namespace);
    }

    /// Removes every entry of every namespace (end of the request).
    pub fn clear_all(&mut self) {
        self.namespaces.clear();
    }

    /// Number of entries in `namespace`.
    pub fn len(&self, namespace: &Namespace) -> usize {
        self.namespaces.get(namespace).map_or(0, HashMap::len)
    }

    /// Number of entries in all namespaces.
    pub fn total_len(&self) -> usize {
        self.namespaces.values().map(HashMap::len).sum()
    }

    /// True when no namespace holds an entry.
    pub fn is_empty(&self) -> bool {
        self.namespaces.values().all(HashMap::is_empty)
    }

    /// The namespaces that hold at least one entry, in no particular order.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces
            .iter()
            .filter(|(_, entries)| !entries.is_empty())
            .map(|(namespace, _)| namespace)
    }

    fn entries_mut(&mut self, namespace: &Namespace) -> &mut HashMap<String, V> {
        if !self.namespaces.contains_key(namespace) {
            self.namespaces.insert(namespace.clone(), HashMap::new());
        }
        self.namespaces
            .get_mut(namespace)
            .expect("namespace was just inserted")
    }
}

impl<V> Default for RequestCache<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> std::fmt::Debug for RequestCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (namespace, entries) in &self.namespaces {
            map.entry(&namespace.as_str(), &entries.len());
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    #[test]
    fn get_set_and_replace() {
        let mut cache = RequestCache::new();
        assert_eq!(cache.get(&ns("a"), "k"), Lookup::Miss);
        assert_eq!(cache.set(&ns("a"), "k", 1), Lookup::Miss);
        assert_eq!(cache.set(&ns("a"), String::from("k"), 2), Lookup::Hit(1));
        assert_eq!(cache.get(&ns("a"), "k"), Lookup::Hit(&2));
        assert_eq!(cache.len(&ns("a")), 1);
    }

    #[test]
    fn namespaces_are_separate() {
        let mut cache = RequestCache::new();
        cache.set(&Namespace::DEFAULT, "k", "default");
        cache.set(&ns("other"), "k", "other");
        assert_eq!(cache.get(&Namespace::DEFAULT, "k"), Lookup::Hit(&"default"));
        assert_eq!(cache.get(&ns("other"), "k"), Lookup::Hit(&"other"));
        assert_eq!(cache.get(&ns("third"), "k"), Lookup::Miss);
        let mut names: Vec<_> = cache.namespaces().map(Namespace::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["_default", "other"]);
    }

    #[test]
    fn stored_none_is_a_hit() {
        let mut cache = RequestCache::new();
        cache.set(&Namespace::DEFAULT, "k", None::<u8>);
        assert!(cache.get(&Namespace::DEFAULT, "k").is_found());
    }

    #[test]
    fn setdefault_keeps_the_first_value() {
        let mut cache = RequestCache::new();
        assert_eq!(*cache.setdefault(&Namespace::DEFAULT, "k", 1), 1);
        assert_eq!(*cache.setdefault(&Namespace::DEFAULT, "k", 2), 1);
        assert_eq!(cache.get(&Namespace::DEFAULT, "k"), Lookup::Hit(&1));
    }

    #[test]
    fn delete_of_a_missing_key_is_a_miss_not_an_error() {
        let mut cache = RequestCache::<u8>::new();
        assert_eq!(cache.delete(&ns("nowhere"), "k"), Lookup::Miss);
        cache.set(&ns("a"), "k", 3);
        assert_eq!(cache.delete(&ns("a"), "missing"), Lookup::Miss);
        assert_eq!(cache.delete(&ns("a"), "k"), Lookup::Hit(3));
        assert_eq!(cache.get(&ns("a"), "k"), Lookup::Miss);
        assert!(cache.is_empty());
        assert_eq!(cache.namespaces().count(), 0);
    }

    #[test]
    fn clear_one_namespace_and_clear_all() {
        let mut cache = RequestCache::new();
        cache.set(&ns("a"), "k", 1);
        cache.set(&ns("b"), "k", 2);
        cache.clear(&ns("a"));
        cache.clear(&ns("never-used"));
        assert_eq!(cache.get(&ns("a"), "k"), Lookup::Miss);
        assert_eq!(cache.get(&ns("b"), "k"), Lookup::Hit(&2));
        assert_eq!(cache.total_len(), 1);
        cache.clear_all();
        assert_eq!(cache.total_len(), 0);
        assert!(cache.is_empty());
        assert_eq!(format!("{cache:?}"), "{}");
    }
}
