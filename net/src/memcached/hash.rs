//! Server choice: pymemcache's rendezvous hashing (the default of Django's
//! `PyMemcacheCache`) and libmemcached's ketama, weighted (pylibmc with
//! `behaviors={"ketama_weighted": True}`) or plain (`{"ketama": True}`), so
//! a fleet can be shared with either kind of client.

use md5::{Digest, Md5};

/// MurmurHash3 (x86, 32-bit), as `pymemcache.client.murmur3.murmur3_32`
/// computes it over the code points of a `str` (each taken modulo 256).
///
/// ```
/// assert_eq!(stratacache_net::memcached::murmur3_32(b"", 0), 0);
/// ```
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h1 = seed;
    let mut blocks = data.chunks_exact(4);
    for block in blocks.by_ref() {
        let mut k1 = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k1 = k1.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k1 = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k1 |= u32::from(b) << (8 * i);
        }
        h1 ^= k1.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h1 ^= data.len() as u32;
    h1 ^= h1 >> 16;
    h1 = h1.wrapping_mul(0x85eb_ca6b);
    h1 ^= h1 >> 13;
    h1 = h1.wrapping_mul(0xc2b2_ae35);
    h1 ^= h1 >> 16;
    h1
}

/// The bytes pymemcache's murmur3 sees for a `str`: one per code point.
///
/// ```
/// assert_eq!(stratacache_net::memcached::code_point_bytes("aé"), vec![b'a', 0xe9]);
/// ```
pub fn code_point_bytes(text: &str) -> Vec<u8> {
    text.chars().map(|c| (c as u32 & 0xff) as u8).collect()
}

/// How keys are spread over servers.
///
/// ```
/// use stratacache_net::memcached::Hashing;
/// assert_eq!(Hashing::default(), Hashing::Rendezvous);
/// assert_eq!("ketama".parse::<Hashing>().unwrap(), Hashing::Ketama);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hashing {
    /// pymemcache `HashClient`'s rendezvous hashing with murmur3 (Django's
    /// `PyMemcacheCache`): node names `"host:port"`.
    #[default]
    Rendezvous,
    /// libmemcached's weighted ketama with equal weights (MD5, 160 points
    /// per server, `"host-i"` for port 11211 else `"host:port-i"`; pylibmc
    /// with `behaviors={"ketama_weighted": True}`).
    Ketama,
    /// libmemcached's plain ketama (pylibmc with `behaviors={"ketama":
    /// True}`, the usual Django `PyLibMCCache` setting): its default
    /// one-at-a-time hash for keys and points, 100 points per server
    /// (`"host:port-i"`, `"host-i"` for port 11211).
    KetamaPlain,
}

impl std::str::FromStr for Hashing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rendezvous" | "pymemcache" => Ok(Hashing::Rendezvous),
            "ketama" | "ketama_weighted" | "libmemcached" => Ok(Hashing::Ketama),
            "ketama_plain" | "pylibmc" => Ok(Hashing::KetamaPlain),
            other => Err(format!(
                "unknown hashing {other:?}: use \"rendezvous\" (pymemcache), \"ketama\" (libmemcached's ketama_weighted) or \"ketama_plain\" (pylibmc's ketama)"
            )),
        }
    }
}

/// Picks a server for a key among the servers `alive` accepts.
pub(crate) enum Ring {
    /// `"{node}-"` as murmur3 input, and the node name, per server.
    Rendezvous(Vec<(Vec<u8>, String)>),
    /// Sorted `(point, server)`; keys hashed with MD5, or with
    /// one-at-a-time for plain ketama.
    Ketama(Vec<(u32, usize)>, bool),
}

/// libhashkit's one-at-a-time hash (its default), bytes taken as C's
/// signed `char`.
fn one_at_a_time(key: &[u8]) -> u32 {
    let mut v: u32 = 0;
    for &b in key {
        v = v.wrapping_add(b as i8 as i32 as u32);
        v = v.wrapping_add(v << 10);
        v ^= v >> 6;
    }
    v = v.wrapping_add(v << 3);
    v ^= v >> 11;
    v.wrapping_add(v << 15)
}

/// The 100 points of a server in libmemcached's plain ketama.
fn plain_points(host: &str, port: Option<u16>, server: usize, out: &mut Vec<(u32, usize)>) {
    for i in 0..100u32 {
        let label = match port {
            Some(11211) | None => format!("{host}-{i}"),
            Some(p) => format!("{host}:{p}-{i}"),
        };
        out.push((one_at_a_time(label.as_bytes()), server));
    }
}

/// The 160 ketama points of a server, as libmemcached computes them: MD5 of
/// `"host-i"` (port 11211) or `"host:port-i"`, four points per digest.
fn ketama_points(host: &str, port: Option<u16>, server: usize, out: &mut Vec<(u32, usize)>) {
    for i in 0..40u32 {
        let label = match port {
            Some(11211) | None => format!("{host}-{i}"),
            Some(p) => format!("{host}:{p}-{i}"),
        };
        let d = Md5::digest(label.as_bytes());
        for x in 0..4 {
            let point = u32::from_le_bytes([d[x * 4], d[x * 4 + 1], d[x * 4 + 2], d[x * 4 + 3]]);
            out.push((point, server));
        }
    }
}

/// libmemcached's ketama hash of a key: the first four MD5 bytes, little-endian.
fn ketama_hash(key: &[u8]) -> u32 {
    let d = Md5::digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

impl Ring {
    /// `servers`: (node name, host or path, port).
    pub(crate) fn new(hashing: Hashing, servers: &[(String, String, Option<u16>)]) -> Self {
        match hashing {
            Hashing::Rendezvous => Ring::Rendezvous(
                servers
                    .iter()
                    .map(|(n, _, _)| {
                        let mut prefix = code_point_bytes(n);
                        prefix.push(b'-');
                        (prefix, n.clone())
                    })
                    .collect(),
            ),
            Hashing::Ketama | Hashing::KetamaPlain => {
                let plain = hashing == Hashing::KetamaPlain;
                let mut points = Vec::with_capacity(servers.len() * 160);
                for (i, (_, host, port)) in servers.iter().enumerate() {
                    if plain {
                        plain_points(host, *port, i, &mut points);
                    } else {
                        ketama_points(host, *port, i, &mut points);
                    }
                }
                points.sort_unstable();
                Ring::Ketama(points, plain)
            }
        }
    }

    /// The server of `key` among those `alive` accepts (the dead ones are
    /// left out as `HashClient` leaves them out of its ring), or None when
    /// none is.
    pub(crate) fn pick(
        &self,
        key: &[u8],
        scratch: &mut Vec<u8>,
        alive: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        match self {
            Ring::Rendezvous(nodes) => {
                let mut best: Option<(u32, usize)> = None;
                for (i, (prefix, name)) in nodes.iter().enumerate() {
                    if !alive(i) {
                        continue;
                    }
                    if nodes.len() == 1 {
                        return Some(0);
                    }
                    scratch.clear();
                    scratch.extend_from_slice(prefix);
                    scratch.extend_from_slice(key);
                    let score = murmur3_32(scratch, 0);
                    best = match best {
                        None => Some((score, i)),
                        Some((s, _)) if score > s => Some((score, i)),
                        Some((s, w)) if score == s && name.as_str() > nodes[w].1.as_str() => {
                            Some((score, i))
                        }
                        keep => keep,
                    };
                }
                best.map(|(_, i)| i)
            }
            Ring::Ketama(points, plain) => {
                if points.is_empty() {
                    return None;
                }
                let h = if *plain {
                    one_at_a_time(key)
                } else {
                    ketama_hash(key)
                };
                let start = points.partition_point(|&(p, _)| p < h);
                (0..points.len())
                    .map(|j| points[(start + j) % points.len()].1)
                    .find(|&s| alive(s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_known_values() {
        // Bob Jenkins' one-at-a-time: "a" and the pangram.
        assert_eq!(one_at_a_time(b"a"), 0xca2e_9442);
        assert_eq!(
            one_at_a_time(b"The quick brown fox jumps over the lazy dog"),
            0x519e_91f5
        );
    }

    #[test]
    fn murmur3_known_values() {
        // Reference values of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    fn servers(n: usize) -> Vec<(String, String, Option<u16>)> {
        (0..n)
            .map(|i| {
                (
                    format!("127.0.0.1:{}", 11211 + i),
                    "127.0.0.1".to_owned(),
                    Some(11211 + i as u16),
                )
            })
            .collect()
    }

    #[test]
    fn dead_servers_are_skipped_and_live_keys_stay() {
        for hashing in [Hashing::Rendezvous, Hashing::Ketama, Hashing::KetamaPlain] {
            let ring = Ring::new(hashing, &servers(4));
            let mut s = Vec::new();
            let mut moved = 0;
            for k in 0..1000 {
                let key = format!("key{k}");
                let all = ring.pick(key.as_bytes(), &mut s, |_| true).unwrap();
                let some = ring.pick(key.as_bytes(), &mut s, |i| i != 2).unwrap();
                assert_ne!(some, 2);
                if all != 2 {
                    assert_eq!(all, some, "a live server's key moved");
                } else {
                    moved += 1;
                }
            }
            assert!(moved > 150 && moved < 350, "{hashing:?}: {moved}");
            assert_eq!(ring.pick(b"k", &mut s, |_| false), None);
        }
    }
}
