//! A memcached client for `stratacache.tiers.MemcachedTier`: the text protocol
//! over plain sockets, nothing else.
//!
//! - Keys go to servers by rendezvous hashing with murmur3, bit for bit as
//!   pymemcache's `HashClient` does by default, which is what Django's
//!   `PyMemcacheCache` uses: a key lives on the same server whichever of the
//!   two wrote it.
//! - A batch sends one request to every server it touches before reading any
//!   reply: N servers cost one round trip, not N.
//! - Replies are parsed here into bytes (or straight into the core's
//!   `fetched`, see `tiered.rs`), with the GIL released for all socket I/O.
//! - Each operation has a deadline: `connect_timeout` for a new connection,
//!   then `timeout` for sending and receiving everything. A frozen server
//!   costs one timeout, never one per server or per key.
//! - Connections are pooled per server (a few idle ones kept); a failed one
//!   is closed, and the next operation connects again, so a restarted server
//!   is used again at once. A pooled connection that turns out to be dead
//!   before any reply byte (the server restarted while it was idle) is
//!   replaced and the request sent once more, except for `add`.
//!
//! Bindings may do I/O; the core may not. No caching rule lives here.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use stratacache::tiered::StoreItem;

use crate::util::as_str;

/// memcached refuses longer keys.
pub const MAX_KEY_LEN: usize = 250;
/// Keys per `get` command (several commands are pipelined in one request).
const KEYS_PER_GET: usize = 100;
/// memcached reads an expiry above 30 days as a Unix time.
const RELATIVE_EXPIRY_MAX: u64 = 30 * 24 * 3600;
/// Values at least this large are read into buffers of their own.
const LARGE_VALUE: usize = 32 * 1024;
/// Read buffers larger than this are shrunk before a connection is pooled.
const POOLED_BUFFER: usize = 64 * 1024;
/// A socket timeout within this much of the one wanted is kept as it is
/// (saves a system call per read and write).
const TIMEOUT_SLACK: Duration = Duration::from_millis(5);

// -- hashing ----------------------------------------------------------------

/// MurmurHash3 (x86, 32-bit), as `pymemcache.client.murmur3.murmur3_32`
/// computes it over the code points of a `str` (each taken modulo 256).
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
fn code_point_bytes(text: &str) -> Vec<u8> {
    text.chars().map(|c| (c as u32 & 0xff) as u8).collect()
}

/// Picks servers for keys: the highest `murmur3("{node}-{key}")` wins, ties
/// go to the greater node name (pymemcache's `RendezvousHash`).
struct Ring {
    /// `"{node}-"` as murmur3 input, and the node name, per server.
    nodes: Vec<(Vec<u8>, String)>,
}

impl Ring {
    fn new(names: &[String]) -> Self {
        let nodes = names
            .iter()
            .map(|n| {
                let mut prefix = code_point_bytes(n);
                prefix.push(b'-');
                (prefix, n.clone())
            })
            .collect();
        Ring { nodes }
    }

    /// The server of `key` (printable ASCII, so its bytes are its code points).
    fn pick(&self, key: &[u8], scratch: &mut Vec<u8>) -> usize {
        if self.nodes.len() == 1 {
            return 0;
        }
        let mut best: Option<(u32, usize)> = None;
        for (i, (prefix, name)) in self.nodes.iter().enumerate() {
            scratch.clear();
            scratch.extend_from_slice(prefix);
            scratch.extend_from_slice(key);
            let score = murmur3_32(scratch, 0);
            best = match best {
                None => Some((score, i)),
                Some((s, _)) if score > s => Some((score, i)),
                Some((s, w)) if score == s && name.as_str() > self.nodes[w].1.as_str() => {
                    Some((score, i))
                }
                keep => keep,
            };
        }
        best.map_or(0, |(_, i)| i)
    }
}

// -- connections --------------------------------------------------------------

#[derive(Debug, Clone)]
enum Addr {
    Tcp(String, u16),
    #[cfg(unix)]
    Unix(String),
}

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            #[cfg(unix)]
            Stream::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }
}

struct Conn {
    stream: Stream,
    /// Read buffer: `buf[..filled]` holds bytes received and not consumed.
    buf: Vec<u8>,
    filled: usize,
    /// The socket timeout currently set.
    timeout: Duration,
    /// Used before (from the pool), as opposed to just connected.
    reused: bool,
    pid: u32,
}

impl Conn {
    /// Sets the socket timeout to what is left before `deadline`, unless the
    /// one set already ends close enough to it.
    fn arm(&mut self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if self.timeout > left + TIMEOUT_SLACK || self.timeout + TIMEOUT_SLACK < left {
            self.stream.set_timeouts(Some(left))?;
            self.timeout = left;
        }
        Ok(())
    }

    fn send(&mut self, mut data: &[u8], deadline: Instant) -> io::Result<()> {
        while !data.is_empty() {
            self.arm(deadline)?;
            match self.stream.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_kind(e)),
            }
        }
        Ok(())
    }

    /// Reads more bytes, growing the buffer to hold at least `want` bytes.
    fn fill(&mut self, want: usize, deadline: Instant) -> io::Result<()> {
        if self.buf.len() < want.max(self.filled + 4096) {
            let size = want.max(self.filled + 4096).max(self.buf.len() * 2);
            self.buf.resize(size, 0);
        }
        loop {
            self.arm(deadline)?;
            match self.stream.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.filled += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_kind(e)),
            }
        }
    }

    /// A value of `len` bytes whose first bytes are at `buf[start..filled]`:
    /// reads the rest (and the CRLF after it) into a buffer of its own, and
    /// leaves `filled` at `start`. None if the CRLF is missing.
    fn read_large(
        &mut self,
        start: usize,
        len: usize,
        deadline: Instant,
    ) -> io::Result<Option<Vec<u8>>> {
        let mut value = vec![0u8; len + 2];
        let have = self.filled - start;
        value[..have].copy_from_slice(&self.buf[start..self.filled]);
        self.filled = start;
        let mut at = have;
        while at < value.len() {
            self.arm(deadline)?;
            match self.stream.read(&mut value[at..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_kind(e)),
            }
        }
        if &value[len..] != b"\r\n" {
            return Ok(None);
        }
        value.truncate(len);
        Ok(Some(value))
    }

    fn reset_buffer(&mut self) {
        self.filled = 0;
        if self.buf.len() > POOLED_BUFFER {
            self.buf.truncate(POOLED_BUFFER);
            self.buf.shrink_to_fit();
        }
    }
}

/// A socket timeout shows as `WouldBlock` on Unix: call it what it is.
fn timeout_kind(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::ErrorKind::TimedOut.into()
    } else {
        e
    }
}

struct Server {
    addr: Addr,
    name: String,
    idle: Mutex<Vec<Conn>>,
}

// -- replies ------------------------------------------------------------------

/// What a request to one server expects back.
enum Expect {
    /// `gets` pipelined `get` commands for `keys` (in order).
    Values { gets: usize },
    /// One line per command (storage commands, `delete`, `flush_all`).
    Lines(usize),
    /// `STAT name value` lines up to `END`.
    Stats,
}

enum Reply {
    /// (index among the keys sent to this server, value).
    Values(Vec<(usize, Vec<u8>)>),
    Lines(Vec<String>),
    Stats(Vec<(String, String)>),
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        match buf[i + 1..].iter().position(|&b| b == b'\n') {
            Some(p) => {
                let nl = i + 1 + p;
                if buf[nl - 1] == b'\r' {
                    return Some(nl - 1);
                }
                i = nl;
            }
            None => return None,
        }
    }
    None
}

fn protocol_error(server: &str, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("memcached {server}: {what}"),
    )
}

fn server_error(server: &str, line: &[u8]) -> io::Error {
    protocol_error(server, String::from_utf8_lossy(line))
}

/// Parses a whole reply from `conn`, reading as needed. `keys`: the keys of
/// a `Values` request, in the order sent.
fn receive(
    conn: &mut Conn,
    server: &str,
    expect: &Expect,
    keys: &[&[u8]],
    deadline: Instant,
) -> io::Result<Reply> {
    let mut pos = 0usize;
    match *expect {
        Expect::Values { gets } => {
            let mut values = Vec::new();
            let mut cursor = 0usize;
            let mut ends = 0usize;
            while ends < gets {
                let Some(eol) = find_crlf(&conn.buf[..conn.filled], pos) else {
                    conn.fill(conn.filled + 1, deadline)?;
                    continue;
                };
                let line = &conn.buf[pos..eol];
                if line == b"END" {
                    ends += 1;
                    pos = eol + 2;
                    continue;
                }
                let Some(header) = line.strip_prefix(b"VALUE ") else {
                    return Err(server_error(server, line));
                };
                let mut fields = header.split(|&b| b == b' ');
                let key_len = fields.next().map_or(0, <[u8]>::len);
                let _flags = fields.next();
                let len: usize = fields
                    .next()
                    .and_then(|f| std::str::from_utf8(f).ok())
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(|| server_error(server, line))?;
                let start = eol + 2;
                let end = start + len;
                let key = &conn.buf[pos + 6..pos + 6 + key_len];
                while cursor < keys.len() && keys[cursor] != key {
                    cursor += 1;
                }
                if cursor == keys.len() {
                    return Err(protocol_error(
                        server,
                        format!(
                            "a value for a key not asked for ({})",
                            String::from_utf8_lossy(key)
                        ),
                    ));
                }
                if conn.filled < end + 2 && len >= LARGE_VALUE {
                    // Straight from the socket into the value's own buffer:
                    // no growing of the connection's buffer, no extra copy.
                    let value = conn.read_large(start, len, deadline)?;
                    if value.is_none() {
                        return Err(protocol_error(server, "a value did not end with CRLF"));
                    }
                    values.push((cursor, value.unwrap_or_default()));
                    cursor += 1;
                    pos = start;
                    continue;
                }
                if conn.filled < end + 2 {
                    conn.fill(end + 2, deadline)?;
                    continue; // parse the header again with the data in
                }
                if &conn.buf[end..end + 2] != b"\r\n" {
                    return Err(protocol_error(server, "a value did not end with CRLF"));
                }
                values.push((cursor, conn.buf[start..end].to_vec()));
                cursor += 1;
                pos = end + 2;
            }
            finish_reply(conn, pos, server)?;
            Ok(Reply::Values(values))
        }
        Expect::Lines(n) => {
            let mut lines = Vec::with_capacity(n);
            while lines.len() < n {
                let Some(eol) = find_crlf(&conn.buf[..conn.filled], pos) else {
                    conn.fill(conn.filled + 1, deadline)?;
                    continue;
                };
                lines.push(String::from_utf8_lossy(&conn.buf[pos..eol]).into_owned());
                pos = eol + 2;
            }
            finish_reply(conn, pos, server)?;
            Ok(Reply::Lines(lines))
        }
        Expect::Stats => {
            let mut stats = Vec::new();
            loop {
                let Some(eol) = find_crlf(&conn.buf[..conn.filled], pos) else {
                    conn.fill(conn.filled + 1, deadline)?;
                    continue;
                };
                let line = &conn.buf[pos..eol];
                pos = eol + 2;
                if line == b"END" {
                    break;
                }
                let Some(stat) = line.strip_prefix(b"STAT ") else {
                    return Err(server_error(server, line));
                };
                let text = String::from_utf8_lossy(stat);
                let (name, value) = text.split_once(' ').unwrap_or((&text, ""));
                stats.push((name.to_owned(), value.to_owned()));
            }
            finish_reply(conn, pos, server)?;
            Ok(Reply::Stats(stats))
        }
    }
}

fn finish_reply(conn: &mut Conn, pos: usize, server: &str) -> io::Result<()> {
    if pos != conn.filled {
        return Err(protocol_error(server, "more reply than asked for"));
    }
    conn.reset_buffer();
    Ok(())
}

// -- the client ---------------------------------------------------------------

/// One server's part of an operation.
struct Work {
    server: usize,
    request: Vec<u8>,
    expect: Expect,
    /// Indexes, in the caller's order, of the items sent to this server.
    items: Vec<usize>,
}

/// A memcached client over several servers (see the module docs).
#[pyclass(frozen, module = "stratacache._core", name = "MemcachedClient")]
pub struct MemcachedClient {
    servers: Vec<Server>,
    ring: Ring,
    prefix: Vec<u8>,
    connect_timeout: Duration,
    timeout: Duration,
    max_idle: usize,
}

fn duration(seconds: f64, what: &str) -> PyResult<Duration> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, not {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// memcached's expiry for a TTL in milliseconds (None: never expires).
fn exptime(ttl_ms: Option<u64>) -> u64 {
    let Some(ms) = ttl_ms else { return 0 };
    let seconds = ms.div_ceil(1000).max(1);
    if seconds <= RELATIVE_EXPIRY_MAX {
        return seconds;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now + seconds
}

impl MemcachedClient {
    /// `prefix + key`, checked: memcached keys are 1 to 250 printable ASCII
    /// characters other than space.
    fn full_key(&self, key: &str) -> PyResult<Vec<u8>> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key.as_bytes());
        self.check_key(&out)?;
        Ok(out)
    }

    fn check_key(&self, key: &[u8]) -> PyResult<()> {
        if !valid_key(key) {
            return Err(PyValueError::new_err(format!(
                "{:?} is not a valid memcached key (1 to {MAX_KEY_LEN} printable ASCII characters, no spaces): \
                 build keys with stratacache.Key or pass them through stratacache.safe_key",
                String::from_utf8_lossy(key)
            )));
        }
        Ok(())
    }

    /// Groups `keys` by server; returns per server (server, key indexes).
    fn group(&self, keys: &[Vec<u8>]) -> Vec<(usize, Vec<usize>)> {
        let n = self.servers.len();
        if n == 1 {
            return vec![(0, (0..keys.len()).collect())];
        }
        let mut per: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut scratch = Vec::with_capacity(512);
        for (i, key) in keys.iter().enumerate() {
            per[self.ring.pick(key, &mut scratch)].push(i);
        }
        per.into_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .collect()
    }

    fn connect(&self, server: &Server) -> io::Result<Conn> {
        let connect_timeout = self.connect_timeout;
        let stream = match &server.addr {
            Addr::Tcp(host, port) => {
                let mut last = None;
                let mut stream = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, connect_timeout) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let stream = match (stream, last) {
                    (Some(s), _) => s,
                    (None, Some(e)) => return Err(timeout_kind(e)),
                    (None, None) => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            "the host name has no address",
                        ))
                    }
                };
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            #[cfg(unix)]
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        stream.set_timeouts(Some(self.timeout))?;
        Ok(Conn {
            stream,
            buf: vec![0; POOLED_BUFFER],
            filled: 0,
            timeout: self.timeout,
            reused: false,
            pid: std::process::id(),
        })
    }

    fn checkout(&self, server: &Server) -> io::Result<Conn> {
        let pid = std::process::id();
        loop {
            let conn = server.idle.lock().pop();
            match conn {
                // A connection made before a fork belongs to the parent:
                // closing this process's copy leaves the parent's open.
                Some(conn) if conn.pid != pid => drop(conn),
                Some(mut conn) => {
                    conn.reused = true;
                    return Ok(conn);
                }
                None => return self.connect(server),
            }
        }
    }

    fn checkin(&self, server: &Server, conn: Conn) {
        let mut idle = server.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    fn with_server(&self, server: usize, e: io::Error) -> io::Error {
        let name = &self.servers[server].name;
        if e.kind() == io::ErrorKind::TimedOut {
            let (c, t) = (
                self.connect_timeout.as_secs_f64(),
                self.timeout.as_secs_f64(),
            );
            return io::Error::new(
                e.kind(),
                format!("memcached {name}: timed out (connect_timeout {c} s, timeout {t} s)"),
            );
        }
        io::Error::new(e.kind(), format!("memcached {name}: {e}"))
    }

    /// Sends every server its request, then reads every reply. Any failure
    /// fails the whole operation (connections with unread replies are
    /// closed). Runs without the GIL.
    fn exchange(&self, work: &[Work], keys: &[Vec<u8>], retry: bool) -> io::Result<Vec<Reply>> {
        let mut conns: Vec<Option<Conn>> = Vec::with_capacity(work.len());
        for w in work {
            match self.checkout(&self.servers[w.server]) {
                Ok(conn) => conns.push(Some(conn)),
                Err(e) => {
                    // Nothing was sent yet: the others go back to the pool.
                    for (w, conn) in work.iter().zip(conns) {
                        if let Some(conn) = conn {
                            self.checkin(&self.servers[w.server], conn);
                        }
                    }
                    return Err(self.with_server(w.server, e));
                }
            }
        }
        let deadline = Instant::now() + self.timeout;
        let mut sent_ok = vec![true; work.len()];
        for (w, (conn, ok)) in work.iter().zip(conns.iter_mut().zip(sent_ok.iter_mut())) {
            let c = conn.as_mut().expect("checked out");
            if let Err(e) = c.send(&w.request, deadline) {
                if retry && c.reused && is_stale(&e) {
                    *ok = false; // resent below on a new connection
                } else {
                    return Err(self.with_server(w.server, e));
                }
            }
        }
        let mut replies = Vec::with_capacity(work.len());
        for (i, w) in work.iter().enumerate() {
            let keys: Vec<&[u8]> = match w.expect {
                Expect::Values { .. } => w.items.iter().map(|&i| keys[i].as_slice()).collect(),
                _ => Vec::new(),
            };
            let name = &self.servers[w.server].name;
            let mut conn = conns[i].take().expect("checked out");
            let first = if sent_ok[i] {
                receive(&mut conn, name, &w.expect, &keys, deadline)
            } else {
                Err(io::ErrorKind::BrokenPipe.into())
            };
            let reply = match first {
                Ok(reply) => reply,
                Err(e) if retry && conn.reused && conn.filled == 0 && is_stale(&e) => {
                    // The server closed this idle connection (it restarted):
                    // once more on a new one.
                    drop(conn);
                    conn = self
                        .connect(&self.servers[w.server])
                        .map_err(|e| self.with_server(w.server, e))?;
                    conn.send(&w.request, deadline)
                        .and_then(|()| receive(&mut conn, name, &w.expect, &keys, deadline))
                        .map_err(|e| self.with_server(w.server, e))?
                }
                Err(e) => return Err(self.with_server(w.server, e)),
            };
            self.checkin(&self.servers[w.server], conn);
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Values of `keys` (already prefixed and checked), in order.
    fn fetch(&self, keys: &[Vec<u8>]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let mut work = Vec::new();
        for (server, items) in self.group(keys) {
            let mut request =
                Vec::with_capacity(items.iter().map(|&i| keys[i].len() + 1).sum::<usize>() + 16);
            let mut gets = 0;
            for chunk in items.chunks(KEYS_PER_GET) {
                request.extend_from_slice(b"get");
                for &i in chunk {
                    request.push(b' ');
                    request.extend_from_slice(&keys[i]);
                }
                request.extend_from_slice(b"\r\n");
                gets += 1;
            }
            work.push(Work {
                server,
                request,
                expect: Expect::Values { gets },
                items,
            });
        }
        let replies = self.exchange(&work, keys, true)?;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        for (w, reply) in work.iter().zip(replies) {
            if let Reply::Values(values) = reply {
                for (j, value) in values {
                    out[w.items[j]] = Some(value);
                }
            }
        }
        Ok(out)
    }

    /// Runs one storage command per item; returns each server reply line.
    fn store(
        &self,
        command: &str,
        items: &[(Vec<u8>, &[u8], Option<u64>)],
        flags: u32,
    ) -> io::Result<Vec<String>> {
        let keys: Vec<Vec<u8>> = items.iter().map(|i| i.0.clone()).collect();
        let mut work = Vec::new();
        for (server, indexes) in self.group(&keys) {
            let size = indexes
                .iter()
                .map(|&i| items[i].0.len() + items[i].1.len() + 48)
                .sum();
            let mut request = Vec::with_capacity(size);
            for &i in &indexes {
                let (key, value, ttl_ms) = &items[i];
                request.extend_from_slice(command.as_bytes());
                request.push(b' ');
                request.extend_from_slice(key);
                request.extend_from_slice(
                    format!(" {flags} {} {}\r\n", exptime(*ttl_ms), value.len()).as_bytes(),
                );
                request.extend_from_slice(value);
                request.extend_from_slice(b"\r\n");
            }
            work.push(Work {
                server,
                request,
                expect: Expect::Lines(indexes.len()),
                items: indexes,
            });
        }
        let replies = self.exchange(&work, &[], command != "add")?;
        let mut out = vec![String::new(); items.len()];
        for (w, reply) in work.iter().zip(replies) {
            if let Reply::Lines(lines) = reply {
                for (j, line) in lines.into_iter().enumerate() {
                    out[w.items[j]] = line;
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, keys: &[Vec<u8>]) -> io::Result<Vec<String>> {
        let mut work = Vec::new();
        for (server, items) in self.group(keys) {
            let mut request = Vec::new();
            for &i in &items {
                request.extend_from_slice(b"delete ");
                request.extend_from_slice(&keys[i]);
                request.extend_from_slice(b"\r\n");
            }
            work.push(Work {
                server,
                request,
                expect: Expect::Lines(items.len()),
                items,
            });
        }
        let replies = self.exchange(&work, &[], true)?;
        let mut out = vec![String::new(); keys.len()];
        for (w, reply) in work.iter().zip(replies) {
            if let Reply::Lines(lines) = reply {
                for (j, line) in lines.into_iter().enumerate() {
                    out[w.items[j]] = line;
                }
            }
        }
        Ok(out)
    }

    /// The native path of a fetch step (see `PyRead.advance`): the core's
    /// keys in, values out, no Python objects on the way.
    pub fn fetch_core_keys(&self, keys: &[String]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let mut full = Vec::with_capacity(keys.len());
        for key in keys {
            full.push(self.io_key(key)?);
        }
        self.fetch(&full)
    }

    /// `prefix + key`, or an I/O error (on the native paths a bad key is a
    /// tier failure, as an exception from a tier's method is).
    fn io_key(&self, key: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key.as_bytes());
        if valid_key(&out) {
            Ok(out)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{:?} is not a valid memcached key",
                    String::from_utf8_lossy(&out)
                ),
            ))
        }
    }

    /// The native path of a store step: `(key, value, ttl_ms)` entries.
    pub fn store_core_entries(&self, entries: &[StoreItem]) -> io::Result<()> {
        let mut items = Vec::with_capacity(entries.len());
        for e in entries {
            items.push((self.io_key(&e.key)?, e.value.as_slice(), e.ttl_ms));
        }
        let lines = self.store("set", &items, 0)?;
        not_stored(&items, &lines)
    }
}

/// 1 to 250 printable ASCII characters other than space.
fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.iter().all(|&b| (0x21..=0x7e).contains(&b))
}

/// A dead pooled connection, as opposed to a slow or confused server.
fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// An error naming the items a `set` did not store.
fn not_stored(items: &[(Vec<u8>, &[u8], Option<u64>)], lines: &[String]) -> io::Result<()> {
    let failed: Vec<(String, &String)> = items
        .iter()
        .zip(lines)
        .filter(|(_, line)| line.as_str() != "STORED")
        .map(|(item, line)| (String::from_utf8_lossy(&item.0).into_owned(), line))
        .collect();
    match failed.first() {
        None => Ok(()),
        Some((key, line)) => Err(io::Error::other(format!(
            "memcached did not store {} item(s), e.g. {key:?}: {line}",
            failed.len()
        ))),
    }
}

fn key_list(client: &MemcachedClient, keys: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for key in keys.try_iter()? {
        let key = key?;
        out.push(client.full_key(as_str(&key, "memcached key")?)?);
    }
    Ok(out)
}

/// A `(key, value, ttl_ms)` item, the key prefixed.
type Entry = (Vec<u8>, Vec<u8>, Option<u64>);

/// `(key, value, ttl_ms)` items from Python.
fn entry_list(client: &MemcachedClient, entries: &Bound<'_, PyAny>) -> PyResult<Vec<Entry>> {
    let mut out = Vec::new();
    for item in entries.try_iter()? {
        let item = item?;
        let tuple = item
            .cast::<PyTuple>()
            .map_err(|_| PyTypeError::new_err("entries are (key, value, ttl_ms) tuples"))?;
        if tuple.len() != 3 {
            return Err(PyTypeError::new_err(
                "entries are (key, value, ttl_ms) tuples",
            ));
        }
        let key = client.full_key(as_str(&tuple.get_item(0)?, "memcached key")?)?;
        let value = tuple.get_item(1)?;
        let value: Vec<u8> = match value.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().to_vec(),
            Err(_) => value
                .extract()
                .map_err(|_| PyTypeError::new_err("memcached values are bytes"))?,
        };
        let ttl: Option<u64> = tuple.get_item(2)?.extract()?;
        out.push((key, value, ttl));
    }
    Ok(out)
}

#[pymethods]
impl MemcachedClient {
    /// `servers`: `(node, host, port)` for TCP or `(node, path, None)` for a
    /// Unix socket; `node` is the name keys are hashed with (pymemcache's:
    /// `"host:port"`, or the path).
    #[new]
    #[pyo3(signature = (servers, *, key_prefix = "", connect_timeout = 0.25, timeout = 0.5, max_idle = 8))]
    fn py_new(
        servers: Vec<(String, String, Option<u16>)>,
        key_prefix: &str,
        connect_timeout: f64,
        timeout: f64,
        max_idle: usize,
    ) -> PyResult<Self> {
        if servers.is_empty() {
            return Err(PyValueError::new_err("memcached needs at least one server"));
        }
        let mut list = Vec::new();
        for (name, host, port) in servers {
            let addr = match port {
                Some(port) => Addr::Tcp(host, port),
                #[cfg(unix)]
                None => Addr::Unix(host),
                #[cfg(not(unix))]
                None => {
                    return Err(PyValueError::new_err(
                        "Unix sockets are not available on this platform",
                    ))
                }
            };
            list.push(Server {
                addr,
                name,
                idle: Mutex::new(Vec::new()),
            });
        }
        let names: Vec<String> = list.iter().map(|s| s.name.clone()).collect();
        let client = MemcachedClient {
            servers: list,
            ring: Ring::new(&names),
            prefix: key_prefix.as_bytes().to_vec(),
            connect_timeout: duration(connect_timeout, "connect_timeout")?,
            timeout: duration(timeout, "timeout")?,
            max_idle,
        };
        if !client.prefix.is_empty() {
            client.check_key(&client.prefix)?;
        }
        Ok(client)
    }

    /// The node names, in the order given.
    #[getter]
    fn servers(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.name.clone()).collect()
    }

    #[getter]
    fn key_prefix(&self) -> String {
        String::from_utf8_lossy(&self.prefix).into_owned()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.timeout.as_secs_f64()
    }

    #[getter]
    fn connect_timeout(&self) -> f64 {
        self.connect_timeout.as_secs_f64()
    }

    /// The node that holds `key` (the key prefix is added first).
    fn server_for(&self, key: &str) -> PyResult<String> {
        let key = self.full_key(key)?;
        let i = self.group(std::slice::from_ref(&key))[0].0;
        Ok(self.servers[i].name.clone())
    }

    /// One `bytes` or `None` per key, in order: one request per server.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let keys = key_list(self, keys)?;
        let values = py.detach(|| self.fetch(&keys))?;
        let out = PyList::empty(py);
        for value in values {
            match value {
                Some(v) => out.append(PyBytes::new(py, &v))?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// `set` of `(key, value, ttl_ms)` entries (`ttl_ms` None: no expiry);
    /// returns the keys the servers did not store.
    #[pyo3(signature = (entries, *, flags = 0))]
    fn set_many(
        &self,
        py: Python<'_>,
        entries: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<Vec<String>> {
        self.storage(py, "set", entries, flags)
            .map(|(keys, lines)| {
                keys.into_iter()
                    .zip(lines)
                    .filter(|(_, line)| line != "STORED")
                    .map(|(k, _)| k)
                    .collect()
            })
    }

    /// `add` of `(key, value, ttl_ms)` items: one bool (stored) per item.
    #[pyo3(signature = (items, *, flags = 0))]
    fn add_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<Vec<bool>> {
        let (keys, lines) = self.storage(py, "add", items, flags)?;
        keys.iter()
            .zip(lines)
            .map(|(key, line)| match line.as_str() {
                "STORED" => Ok(true),
                "NOT_STORED" | "EXISTS" => Ok(false),
                other => Err(io::Error::other(format!("memcached add {key:?}: {other}")).into()),
            })
            .collect()
    }

    /// Deletes `keys` (missing ones are fine).
    fn delete_many(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<()> {
        let keys = key_list(self, keys)?;
        if keys.is_empty() {
            return Ok(());
        }
        let lines = py.detach(|| self.delete(&keys))?;
        for (key, line) in keys.iter().zip(lines) {
            if line != "DELETED" && line != "NOT_FOUND" {
                return Err(io::Error::other(format!(
                    "memcached delete {:?}: {line}",
                    String::from_utf8_lossy(key)
                ))
                .into());
            }
        }
        Ok(())
    }

    /// `flush_all` on every server.
    fn flush_all(&self, py: Python<'_>) -> PyResult<()> {
        let work: Vec<Work> = (0..self.servers.len())
            .map(|server| Work {
                server,
                request: b"flush_all\r\n".to_vec(),
                expect: Expect::Lines(1),
                items: Vec::new(),
            })
            .collect();
        let replies = py.detach(|| self.exchange(&work, &[], true))?;
        for (w, reply) in work.iter().zip(replies) {
            if let Reply::Lines(lines) = reply {
                if lines.first().map(String::as_str) != Some("OK") {
                    return Err(
                        protocol_error(&self.servers[w.server].name, format!("{lines:?}")).into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// `stats` (or `stats <arg>`, e.g. `"settings"`) of each server:
    /// `{node: {name: value}}`, or `{node: "error message"}` for a server
    /// that did not answer.
    #[pyo3(signature = (arg = None))]
    fn stats<'py>(&self, py: Python<'py>, arg: Option<&str>) -> PyResult<Bound<'py, PyDict>> {
        let request = match arg {
            Some(a) if !a.is_empty() => {
                if !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b' ')
                {
                    return Err(PyValueError::new_err(format!("bad stats argument {a:?}")));
                }
                format!("stats {a}\r\n")
            }
            _ => "stats\r\n".to_owned(),
        };
        let out = PyDict::new(py);
        for (server, s) in self.servers.iter().enumerate() {
            let work = [Work {
                server,
                request: request.clone().into_bytes(),
                expect: Expect::Stats,
                items: Vec::new(),
            }];
            match py.detach(|| self.exchange(&work, &[], true)) {
                Ok(mut replies) => {
                    let d = PyDict::new(py);
                    if let Some(Reply::Stats(stats)) = replies.pop() {
                        for (k, v) in stats {
                            d.set_item(k, v)?;
                        }
                    }
                    out.set_item(&s.name, d)?;
                }
                Err(e) => out.set_item(&s.name, PyString::new(py, &e.to_string()))?,
            }
        }
        Ok(out)
    }

    /// Closes the idle connections (the next operation connects again).
    fn close(&self) {
        for s in &self.servers {
            s.idle.lock().clear();
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<MemcachedClient {} timeout={}s>",
            self.servers().join(","),
            self.timeout.as_secs_f64()
        )
    }
}

impl MemcachedClient {
    fn storage(
        &self,
        py: Python<'_>,
        command: &str,
        entries: &Bound<'_, PyAny>,
        flags: u32,
    ) -> PyResult<(Vec<String>, Vec<String>)> {
        let owned = entry_list(self, entries)?;
        if owned.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let items: Vec<(Vec<u8>, &[u8], Option<u64>)> = owned
            .iter()
            .map(|(k, v, t)| (k.clone(), v.as_slice(), *t))
            .collect();
        let lines = py.detach(|| self.store(command, &items, flags))?;
        let keys = owned
            .iter()
            .map(|(k, _, _)| String::from_utf8_lossy(&k[self.prefix.len()..]).into_owned())
            .collect();
        Ok((keys, lines))
    }
}

/// `murmur3_32(text)` as pymemcache computes it (for tests).
#[pyfunction]
#[pyo3(name = "murmur3_32", signature = (text, seed = 0))]
fn py_murmur3_32(text: &str, seed: u32) -> u32 {
    murmur3_32(&code_point_bytes(text), seed)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MemcachedClient>()?;
    m.add_function(wrap_pyfunction!(py_murmur3_32, m)?)?;
    Ok(())
}
