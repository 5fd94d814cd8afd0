//! Hot-key replicas: a key written under R keys (landing on different
//! memcached nodes) and read from one chosen at random.

use crate::key::{KeyBuilder, Part};
use crate::namespace::Namespace;

/// The version of the replica key format (the `v1` in the key).
pub const REPLICA_KEY_VERSION: u64 = 1;

/// The key of replica `index` of `main_key`: replica 0 is `main_key` itself,
/// the others are `tiercache.replica|v1|<main key>|#<index>`, keys that hash
/// to different memcached nodes.
///
/// ```
/// use stratacache::stampede::replica_key;
///
/// assert_eq!(replica_key("hot", 0), "hot");
/// assert!(replica_key("hot", 2).starts_with("tiercache.replica|v1|hot|"));
/// assert_ne!(replica_key("hot", 2), replica_key("hot", 3));
/// ```
pub fn replica_key(main_key: &str, index: u8) -> String {
    if index == 0 {
        return main_key.to_owned();
    }
    KeyBuilder::new(Namespace::internal("replica"), REPLICA_KEY_VERSION)
        .build(&[Part::Str(main_key), Part::Int(i128::from(index))])
}

/// All `replicas` keys of `main_key`, replica 0 (the main key) first. Writes
/// (and deletes) of a hot key go to all of them. `replicas` counts the main
/// key; 0 is read as 1 (no replicas).
///
/// ```
/// use stratacache::stampede::{replica_key, replica_keys};
///
/// let keys = replica_keys("hot", 3);
/// assert_eq!(keys.len(), 3);
/// assert_eq!(keys[0], "hot");
/// assert_eq!(keys[1], replica_key("hot", 1));
/// assert_eq!(keys[2], replica_key("hot", 2));
/// assert_eq!(replica_keys("hot", 0), ["hot"]);
/// ```
pub fn replica_keys(main_key: &str, replicas: u8) -> Vec<String> {
    (0..replicas.max(1))
        .map(|i| replica_key(main_key, i))
        .collect()
}

/// The replica key a read of the hot key `main_key` should use, chosen by the
/// host's `random` (uniform over all `u64` values; its high bits pick the
/// replica). `replicas` is read as by [`replica_keys`].
///
/// ```
/// use stratacache::stampede::{pick_replica, replica_keys};
///
/// let keys = replica_keys("hot", 4);
/// assert_eq!(pick_replica("hot", 4, 0), keys[0]);
/// assert_eq!(pick_replica("hot", 4, u64::MAX), keys[3]);
/// assert!(keys.contains(&pick_replica("hot", 4, 0x9E37_79B9_7F4A_7C15)));
/// ```
pub fn pick_replica(main_key: &str, replicas: u8, random: u64) -> String {
    let n = u128::from(replicas.max(1));
    // Multiply-shift: maps the u64 range onto 0..n evenly, using the high bits.
    let index = ((u128::from(random) * n) >> 64) as u8;
    replica_key(main_key, index)
}
