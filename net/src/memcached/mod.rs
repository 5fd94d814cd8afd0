//! A memcached client: the text protocol over plain sockets, with health
//! per server.
//!
//! - Keys go to servers by pymemcache's rendezvous hashing (bit for bit as
//!   `HashClient`, Django's `PyMemcacheCache`) or libmemcached's ketama
//!   ([`Hashing`]): a key lives on the same server whichever client wrote it.
//! - A batch sends one request to every server it touches before reading any
//!   reply: N servers cost one round trip, not N.
//! - Each operation has a deadline: `connect_timeout` for a new connection,
//!   then `timeout` for sending and receiving everything. A frozen server
//!   costs one timeout, never one per server or per key.
//! - A batch that partly fails keeps the healthy servers' results and names
//!   the failed keys apart ([`Outcome::failed`]), never as "not found".
//! - A server that fails is marked down: its keys fail at once without I/O
//!   ([`DeadKeys::Stay`]) or move to the live servers ([`DeadKeys::Move`]),
//!   and one request every `retry_after` probes it, so it comes back by
//!   itself. Failures are counted per server ([`Client::health`]).
//! - Connections are pooled per server; a pooled connection found dead
//!   before any reply byte (the server restarted) is replaced and the request
//!   sent once more, except for `add`.
//!
//! ```no_run
//! use stratacache_net::memcached::{Client, Config};
//! let client = Client::new(Config::new(&["127.0.0.1:11211", "127.0.0.1:11212"])?)?;
//! client.set_many(&[("k", &b"v"[..], Some(60_000))])?;
//! let got = client.get_many(&["k", "other"])?;
//! assert_eq!(got.values[0].as_deref(), Some(&b"v"[..]));
//! assert!(got.failed.is_empty());
//! # Ok::<(), stratacache_net::Error>(())
//! ```

mod conn;
mod hash;
mod proto;

use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

pub use conn::Addr;
use conn::{is_stale, Conn};
use hash::Ring;
pub use hash::{code_point_bytes, murmur3_32, Hashing};
use proto::{protocol_error, receive, Expect, Reply, KEYS_PER_GET};

use crate::health::Health;
pub use crate::outcome::{Outcome, ServerError, ServerHealth};
use crate::Error;

/// memcached refuses longer keys.
pub const MAX_KEY_LEN: usize = 250;
/// memcached reads an expiry above 30 days as a Unix time.
const RELATIVE_EXPIRY_MAX: u64 = 30 * 24 * 3600;

/// What happens to a dead server's keys while it is down.
///
/// ```
/// use stratacache_net::memcached::DeadKeys;
/// assert_eq!("move".parse::<DeadKeys>().unwrap(), DeadKeys::Move);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeadKeys {
    /// They stay on it and fail (fall through to the next tier) until it is
    /// back: no other server sees them, nothing stale is read after it
    /// comes back.
    Stay,
    /// They move to the live servers while it is down, as pymemcache's
    /// `HashClient` moves them: more hits during the outage, but values
    /// written meanwhile are left behind on the other servers (they expire
    /// by TTL) and the dead server's old values are read again when it
    /// returns.
    #[default]
    Move,
}

impl std::str::FromStr for DeadKeys {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stay" => Ok(DeadKeys::Stay),
            "move" => Ok(DeadKeys::Move),
            other => Err(format!(
                "unknown dead_keys {other:?}: use \"stay\" or \"move\""
            )),
        }
    }
}

/// One server: the name keys are hashed with and where it listens.
///
/// ```
/// use stratacache_net::memcached::{Addr, ServerSpec};
/// let s = ServerSpec::parse("10.0.0.1:11212").unwrap();
/// assert_eq!(s.name, "10.0.0.1:11212");
/// assert_eq!(s.addr, Addr::Tcp("10.0.0.1".into(), 11212));
/// assert_eq!(ServerSpec::parse("cache1").unwrap().name, "cache1:11211");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// pymemcache's node name (`"host:port"`, or the socket path).
    pub name: String,
    /// Where it listens.
    pub addr: Addr,
}

impl ServerSpec {
    /// `"host:port"`, `"host"` (port 11211), `"[::1]:11211"`, `"unix:/path"`
    /// or `"/path"`, as Django's `LOCATION` entries.
    pub fn parse(text: &str) -> Result<ServerSpec, Error> {
        let text = text.trim();
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.starts_with('/') {
            #[cfg(unix)]
            return Ok(ServerSpec {
                name: path.to_owned(),
                addr: Addr::Unix(path.to_owned()),
            });
            #[cfg(not(unix))]
            return Err(Error::Config("Unix sockets are not available here".into()));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) if !text.ends_with(']') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| Error::Config(format!("bad port in memcached server {text:?}")))?,
            ),
            _ => (text, 11211),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(Error::Config(format!(
                "memcached server {text:?} has no host"
            )));
        }
        Ok(ServerSpec {
            name: format!("{host}:{port}"),
            addr: Addr::Tcp(host.to_owned(), port),
        })
    }
}

/// A client's settings.
///
/// ```
/// use stratacache_net::memcached::{Config, DeadKeys, Hashing};
/// let mut c = Config::new(&["127.0.0.1:11211"]).unwrap();
/// c.hashing = Hashing::Ketama;
/// c.dead_keys = DeadKeys::Stay;
/// assert_eq!(c.servers.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The servers, in order.
    pub servers: Vec<ServerSpec>,
    /// Put before every key (Django's `KEY_PREFIX:VERSION:`).
    pub key_prefix: String,
    /// Bound on a new connection.
    pub connect_timeout: Duration,
    /// Bound on a whole exchange after connecting.
    pub timeout: Duration,
    /// Idle connections kept per server.
    pub max_idle: usize,
    /// Server choice.
    pub hashing: Hashing,
    /// A dead server's keys.
    pub dead_keys: DeadKeys,
    /// How long a failed server is left alone before one request probes it.
    pub retry_after: Duration,
}

impl Config {
    /// Defaults for `servers` (see [`ServerSpec::parse`]).
    pub fn new(servers: &[&str]) -> Result<Config, Error> {
        Ok(Config {
            servers: servers
                .iter()
                .map(|s| ServerSpec::parse(s))
                .collect::<Result<_, _>>()?,
            key_prefix: String::new(),
            connect_timeout: Duration::from_millis(250),
            timeout: Duration::from_millis(500),
            max_idle: 8,
            hashing: Hashing::Rendezvous,
            dead_keys: DeadKeys::default(),
            retry_after: Duration::from_secs(2),
        })
    }
}

struct Server {
    spec: ServerSpec,
    idle: Mutex<Vec<Conn>>,
    health: Health,
}

/// One server's part of an operation.
struct Work {
    server: usize,
    request: Vec<u8>,
    expect: Expect,
    /// Indexes, in the caller's order, of the items sent to this server.
    items: Vec<usize>,
}

/// A memcached client over several servers (see the module docs). Share it
/// between threads.
pub struct Client {
    servers: Vec<Server>,
    ring: Ring,
    prefix: Vec<u8>,
    connect_timeout: Duration,
    timeout: Duration,
    max_idle: usize,
    dead_keys: DeadKeys,
    retry_after: Duration,
    hashing: Hashing,
}

/// 1 to 250 printable ASCII characters other than space.
///
/// ```
/// assert!(stratacache_net::memcached::valid_key(b"a:b"));
/// assert!(!stratacache_net::memcached::valid_key(b"a b"));
/// ```
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.iter().all(|&b| (0x21..=0x7e).contains(&b))
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

/// Stats of one server: `(name, value)` pairs, or its error.
pub type ServerStats = io::Result<Vec<(String, String)>>;

/// Per key, a server or "failed at once" (its server is down, or none is up).
type Route = (Vec<(usize, Vec<usize>)>, Vec<usize>);

impl Client {
    /// A client over `config.servers` (no connection is made yet).
    pub fn new(config: Config) -> Result<Client, Error> {
        if config.servers.is_empty() {
            return Err(Error::Config("memcached needs at least one server".into()));
        }
        for (what, d) in [
            ("connect_timeout", config.connect_timeout),
            ("timeout", config.timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{what} must be positive")));
            }
        }
        let triples: Vec<(String, String, Option<u16>)> = config
            .servers
            .iter()
            .map(|s| match &s.addr {
                Addr::Tcp(h, p) => (s.name.clone(), h.clone(), Some(*p)),
                #[cfg(unix)]
                Addr::Unix(p) => (s.name.clone(), p.clone(), None),
            })
            .collect();
        let client = Client {
            ring: Ring::new(config.hashing, &triples),
            servers: config
                .servers
                .into_iter()
                .map(|spec| Server {
                    spec,
                    idle: Mutex::new(Vec::new()),
                    health: Health::default(),
                })
                .collect(),
            prefix: config.key_prefix.into_bytes(),
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            max_idle: config.max_idle,
            dead_keys: config.dead_keys,
            retry_after: config.retry_after,
            hashing: config.hashing,
        };
        if !client.prefix.is_empty() && !valid_key(&client.prefix) {
            return Err(Error::Key(format!(
                "{:?} is not a valid memcached key prefix (printable ASCII, no spaces)",
                String::from_utf8_lossy(&client.prefix)
            )));
        }
        Ok(client)
    }

    /// The server names, in order.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert_eq!(client.server_names(), vec!["127.0.0.1:11211".to_owned()]);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn server_names(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.spec.name.clone()).collect()
    }

    /// The key prefix.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert!(client.key_prefix().is_empty());
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn key_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The exchange timeout.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert!(client.timeout() > client.connect_timeout());
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connect timeout.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert!(client.connect_timeout().as_millis() > 0);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The server choice.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert_eq!(client.hashing(), stratacache_net::memcached::Hashing::Rendezvous);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn hashing(&self) -> Hashing {
        self.hashing
    }

    /// What happens to a dead server's keys.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert_eq!(client.dead_keys(), stratacache_net::memcached::DeadKeys::Move);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn dead_keys(&self) -> DeadKeys {
        self.dead_keys
    }

    /// `prefix + key`, checked: memcached keys are 1 to 250 printable ASCII
    /// characters other than space.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert!(client.full_key(b"a b").is_err());
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn full_key(&self, key: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key);
        if !valid_key(&out) {
            return Err(Error::Key(format!(
                "{:?} is not a valid memcached key (1 to {MAX_KEY_LEN} printable ASCII characters, no spaces)",
                String::from_utf8_lossy(&out)
            )));
        }
        Ok(out)
    }

    fn full_keys<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Vec<u8>>, Error> {
        keys.iter().map(|k| self.full_key(k.as_ref())).collect()
    }

    /// The server that holds `key` with every server up.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// assert_eq!(client.server_for(b"k")?, "127.0.0.1:11211");
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn server_for(&self, key: &[u8]) -> Result<String, Error> {
        let key = self.full_key(key)?;
        let i = self.ring.pick(&key, &mut Vec::new(), |_| true).unwrap_or(0);
        Ok(self.servers[i].spec.name.clone())
    }

    /// Each server's health and counters.
    pub fn health(&self) -> Vec<ServerHealth> {
        self.servers
            .iter()
            .map(|s| s.health.report(&s.spec.name))
            .collect()
    }

    /// Some server is up: a batch whose keys all failed is then one
    /// server's outage, not the whole tier's.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// let _whole_tier_out = !client.any_up();
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn any_up(&self) -> bool {
        self.servers.iter().any(|s| s.health.is_up())
    }

    /// Closes the idle connections (the next operation connects again).
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// client.close();
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn close(&self) {
        for s in &self.servers {
            s.idle.lock().clear();
        }
    }

    // -- health ---------------------------------------------------------------

    /// Per server: usable now (up, or down with a probe due).
    fn usable(&self, now: Instant) -> Vec<bool> {
        self.servers
            .iter()
            .map(|s| s.health.usable_at(now))
            .collect()
    }

    /// Groups keys by server, with dead servers left out.
    fn route(&self, keys: &[Vec<u8>]) -> Route {
        let n = self.servers.len();
        let now = Instant::now();
        let mut usable = self.usable(now);
        if !usable.contains(&true) {
            // Every server is down: trying them costs no healthy key, and the
            // cache's tier cool-down (not this client) spaces whole-tier
            // failures out.
            usable.iter_mut().for_each(|u| *u = true);
        }
        let mut per: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut failed = Vec::new();
        let mut scratch = Vec::with_capacity(512);
        if n == 1 {
            if usable[0] {
                per[0] = (0..keys.len()).collect();
            } else {
                failed = (0..keys.len()).collect();
            }
        } else {
            for (i, key) in keys.iter().enumerate() {
                let pick = match self.dead_keys {
                    DeadKeys::Stay => self
                        .ring
                        .pick(key, &mut scratch, |_| true)
                        .filter(|&s| usable[s]),
                    DeadKeys::Move => self.ring.pick(key, &mut scratch, |s| usable[s]),
                };
                match pick {
                    Some(s) => per[s].push(i),
                    None => failed.push(i),
                }
            }
        }
        // Keys sent to a down server are its probe: the next one waits
        // `retry_after` again, whatever this one finds.
        for (s, items) in per.iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            self.servers[s].health.probing(now, self.retry_after);
        }
        if !failed.is_empty() && self.dead_keys == DeadKeys::Stay {
            // Counted against the server they belong to.
            for &i in &failed {
                if let Some(s) = self.ring.pick(&keys[i], &mut scratch, |_| true) {
                    self.servers[s].health.keys_failed(1);
                }
            }
        }
        let groups = per
            .into_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .collect();
        (groups, failed)
    }

    fn succeeded(&self, server: usize) {
        self.servers[server].health.ok();
    }

    fn failed(&self, server: usize, keys: usize, e: &io::Error) {
        // A confused reply is the connection's fault, not the server's.
        let down = e.kind() != io::ErrorKind::InvalidData;
        self.servers[server]
            .health
            .failed(keys, e.to_string(), down, self.retry_after);
    }

    // -- connections ------------------------------------------------------------

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
                None => {
                    return Conn::connect(&server.spec.addr, self.connect_timeout, self.timeout)
                }
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
        let name = &self.servers[server].spec.name;
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
        if e.kind() == io::ErrorKind::InvalidData {
            return e; // already names the server
        }
        io::Error::new(e.kind(), format!("memcached {name}: {e}"))
    }

    /// Sends every server its request, then reads every reply; each server
    /// succeeds or fails on its own (a failed connection is closed).
    fn exchange(&self, work: &[Work], keys: &[Vec<u8>], retry: bool) -> Vec<io::Result<Reply>> {
        let deadline = Instant::now() + self.timeout;
        let mut conns: Vec<io::Result<Conn>> = Vec::with_capacity(work.len());
        let mut sent_ok = vec![true; work.len()];
        for (i, w) in work.iter().enumerate() {
            let conn = self.checkout(&self.servers[w.server]).and_then(|mut c| {
                match c.send(&w.request, deadline) {
                    Ok(()) => Ok(c),
                    Err(e) if retry && c.reused && is_stale(&e) => {
                        sent_ok[i] = false; // resent below on a new connection
                        Ok(c)
                    }
                    Err(e) => Err(e),
                }
            });
            conns.push(conn);
        }
        let mut replies = Vec::with_capacity(work.len());
        for (i, (w, conn)) in work.iter().zip(conns).enumerate() {
            let reply = conn.and_then(|mut conn| {
                let keys: Vec<&[u8]> = match w.expect {
                    Expect::Values { .. } => w.items.iter().map(|&i| keys[i].as_slice()).collect(),
                    _ => Vec::new(),
                };
                let name = &self.servers[w.server].spec.name;
                let first = if sent_ok[i] {
                    receive(&mut conn, name, &w.expect, &keys, deadline)
                } else {
                    Err(io::ErrorKind::BrokenPipe.into())
                };
                let reply = match first {
                    Ok(reply) => reply,
                    Err(e) if retry && conn.reused && conn.filled == 0 && is_stale(&e) => {
                        // The server closed this idle connection (it
                        // restarted): once more on a new one.
                        drop(conn);
                        conn = Conn::connect(
                            &self.servers[w.server].spec.addr,
                            self.connect_timeout,
                            self.timeout,
                        )?;
                        conn.send(&w.request, deadline)?;
                        receive(&mut conn, name, &w.expect, &keys, deadline)?
                    }
                    Err(e) => return Err(e),
                };
                self.checkin(&self.servers[w.server], conn);
                Ok(reply)
            });
            replies.push(reply.map_err(|e| self.with_server(w.server, e)));
        }
        replies
    }

    /// Runs `work`, records each server's health, and returns the replies
    /// with the failed items and errors.
    fn run<T: Default + Clone>(
        &self,
        work: Vec<Work>,
        failed_at_once: Vec<usize>,
        keys: &[Vec<u8>],
        n: usize,
        retry: bool,
        mut each: impl FnMut(&mut Vec<T>, &mut Vec<usize>, &Work, Reply),
    ) -> Outcome<T> {
        let replies = self.exchange(&work, keys, retry);
        let mut out = Outcome {
            values: vec![T::default(); n],
            failed: failed_at_once,
            errors: Vec::new(),
        };
        for (w, reply) in work.iter().zip(replies) {
            match reply {
                Ok(reply) => {
                    self.succeeded(w.server);
                    each(&mut out.values, &mut out.failed, w, reply);
                }
                Err(error) => {
                    self.failed(w.server, w.items.len(), &error);
                    out.failed.extend_from_slice(&w.items);
                    out.errors.push(ServerError {
                        server: self.servers[w.server].spec.name.clone(),
                        error,
                    });
                }
            }
        }
        out.failed.sort_unstable();
        out
    }

    // -- operations ---------------------------------------------------------------

    /// Values of `keys` (the prefix is added), in order: one request per
    /// server touched.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// let got = client.get_many(&["a", "b"])?;
    /// let _misses_and_hits = got.values; // `got.failed`: keys whose server failed
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Outcome<Option<Vec<u8>>>, Error> {
        let keys = self.full_keys(keys)?;
        Ok(self.fetch(&keys))
    }

    /// [`Client::get_many`] of keys already prefixed and checked.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// let got = client.fetch(&[client.full_key(b"a")?]);
    /// assert_eq!(got.values.len(), 1);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn fetch(&self, keys: &[Vec<u8>]) -> Outcome<Option<Vec<u8>>> {
        let (groups, failed) = self.route(keys);
        let mut work = Vec::with_capacity(groups.len());
        for (server, items) in groups {
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
        self.run(work, failed, keys, keys.len(), true, |out, _, w, reply| {
            if let Reply::Values(values) = reply {
                for (j, value) in values {
                    out[w.items[j]] = Some(value);
                }
            }
        })
    }

    /// `set` of `(key, value, ttl_ms)` items (`ttl_ms` None: no expiry):
    /// per item, whether the server stored it. An item the server refused
    /// (`SERVER_ERROR ...`, named in `errors`) is `false` but not in
    /// `failed`, which holds the items of failed or down servers.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// let stored = client.set_many(&[("k", &b"v"[..], Some(60_000))])?;
    /// assert!(stored.values[0] || !stored.failed.is_empty());
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn set_many<K: AsRef<[u8]>>(
        &self,
        items: &[(K, &[u8], Option<u64>)],
    ) -> Result<Outcome<bool>, Error> {
        self.store_with("set", items, 0)
    }

    /// `add` of `(key, value, ttl_ms)` items: per item, true if stored,
    /// false if the key existed; another reply fails the item.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// let added = client.add_many(&[("lease", &b"1"[..], Some(5_000))])?;
    /// let _mine = added.values[0];
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn add_many<K: AsRef<[u8]>>(
        &self,
        items: &[(K, &[u8], Option<u64>)],
    ) -> Result<Outcome<bool>, Error> {
        self.store_with("add", items, 0)
    }

    /// `set`/`add` with `flags` (pymemcache marks raw bytes with 0).
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// client.store_with("set", &[("k", &b"v"[..], None)], 0)?;
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn store_with<K: AsRef<[u8]>>(
        &self,
        command: &str,
        items: &[(K, &[u8], Option<u64>)],
        flags: u32,
    ) -> Result<Outcome<bool>, Error> {
        let full: Vec<(Vec<u8>, &[u8], Option<u64>)> = items
            .iter()
            .map(|(k, v, t)| Ok((self.full_key(k.as_ref())?, *v, *t)))
            .collect::<Result<_, Error>>()?;
        Ok(self.store(command, &full, flags))
    }

    /// Storage commands of items already prefixed and checked.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// client.store("set", &[(client.full_key(b"k")?, &b"v"[..], None)], 0);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn store(
        &self,
        command: &str,
        items: &[(Vec<u8>, &[u8], Option<u64>)],
        flags: u32,
    ) -> Outcome<bool> {
        let keys: Vec<Vec<u8>> = items.iter().map(|i| i.0.clone()).collect();
        let (groups, failed) = self.route(&keys);
        let mut work = Vec::with_capacity(groups.len());
        for (server, indexes) in groups {
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
        let add = command == "add";
        let mut bad = Vec::new();
        let mut out = self.run(
            work,
            failed,
            &keys,
            keys.len(),
            !add,
            |out, failed, w, reply| {
                if let Reply::Lines(lines) = reply {
                    for (j, line) in lines.into_iter().enumerate() {
                        let i = w.items[j];
                        match line.as_str() {
                            "STORED" => out[i] = true,
                            "NOT_STORED" | "EXISTS" if add => {}
                            // A `set` the server refused (too large, out of
                            // memory): answered, not failed; an `add` so
                            // answered must not read as "exists".
                            _ if !add => bad.push((w.server, line)),
                            _ => {
                                failed.push(i);
                                bad.push((w.server, line));
                            }
                        }
                    }
                }
            },
        );
        for (server, line) in bad {
            out.errors.push(ServerError {
                server: self.servers[server].spec.name.clone(),
                error: protocol_error(&self.servers[server].spec.name, line),
            });
        }
        out.failed.sort_unstable();
        out
    }

    /// Deletes `keys` (missing ones are fine): per key, true if it existed.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// client.delete_many(&["k"])?;
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn delete_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Outcome<bool>, Error> {
        let keys = self.full_keys(keys)?;
        let (groups, failed) = self.route(&keys);
        let mut work = Vec::with_capacity(groups.len());
        for (server, items) in groups {
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
        let mut out = self.run(
            work,
            failed,
            &keys,
            keys.len(),
            true,
            |out, failed, w, reply| {
                if let Reply::Lines(lines) = reply {
                    for (j, line) in lines.into_iter().enumerate() {
                        match line.as_str() {
                            "DELETED" => out[w.items[j]] = true,
                            "NOT_FOUND" => {}
                            _ => failed.push(w.items[j]),
                        }
                    }
                }
            },
        );
        out.failed.sort_unstable();
        Ok(out)
    }

    /// `flush_all` on every server (down ones included: a flush must not be
    /// skipped silently).
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// client.flush_all()?;
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn flush_all(&self) -> Result<(), Error> {
        let work: Vec<Work> = (0..self.servers.len())
            .map(|server| Work {
                server,
                request: b"flush_all\r\n".to_vec(),
                expect: Expect::Lines(1),
                items: Vec::new(),
            })
            .collect();
        for (w, reply) in work.iter().zip(self.exchange(&work, &[], true)) {
            match reply? {
                Reply::Lines(lines) if lines.first().map(String::as_str) == Some("OK") => {}
                other => {
                    let text = match other {
                        Reply::Lines(l) => format!("{l:?}"),
                        _ => "an unexpected reply".to_owned(),
                    };
                    return Err(protocol_error(&self.servers[w.server].spec.name, text).into());
                }
            }
        }
        Ok(())
    }

    /// `stats` (or `stats <arg>`, e.g. `"settings"`) of each server.
    ///
    /// ```no_run
    /// # use stratacache_net::memcached::{Client, Config};
    /// # let client = Client::new(Config::new(&["127.0.0.1:11211"])?)?;
    /// for (server, stats) in client.stats(Some("settings"))? {
    ///     println!("{server}: {:?}", stats.map(|s| s.len()));
    /// }
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn stats(&self, arg: Option<&str>) -> Result<Vec<(String, ServerStats)>, Error> {
        let request = match arg {
            Some(a) if !a.is_empty() => {
                if !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b' ')
                {
                    return Err(Error::Config(format!("bad stats argument {a:?}")));
                }
                format!("stats {a}\r\n")
            }
            _ => "stats\r\n".to_owned(),
        };
        let mut out = Vec::new();
        for (server, s) in self.servers.iter().enumerate() {
            let work = [Work {
                server,
                request: request.clone().into_bytes(),
                expect: Expect::Stats,
                items: Vec::new(),
            }];
            let reply = self.exchange(&work, &[], true).pop().expect("one reply");
            out.push((
                s.spec.name.clone(),
                reply.map(|r| match r {
                    Reply::Stats(stats) => stats,
                    _ => Vec::new(),
                }),
            ));
        }
        Ok(out)
    }
}
