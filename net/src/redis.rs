//! A Redis client over the `redis` crate: one node with read replicas, or a
//! Redis Cluster, with per-key failures apart from misses and health per
//! node.
//!
//! - One node: `MGET` to a replica (round robin over the live ones; the
//!   primary when none is), writes pipelined to the primary (`SET .. PX`,
//!   `SET .. NX PX`), one round trip per batch.
//! - Sentinel: as one node, the primary found through Redis Sentinel
//!   (`SENTINEL get-master-addr-by-name`); when it fails, the sentinels are
//!   asked again (at most every 100 ms) and the batch is retried once on
//!   the new primary, so reads and writes resume once a failover is done.
//!   With `read_from_replicas`, reads go to the replicas the sentinels list
//!   (`SENTINEL replicas`: in sync, not down), asked again every 10 s and
//!   every second while one is down; a failed replica's batch is read from
//!   the primary.
//! - Credentials and TLS: a URL's own (`redis://user:pass@host`,
//!   `rediss://host`), else [`Config::password`] / [`Config::username`];
//!   the sentinels have their own ([`Config::sentinel_password`]). TLS is
//!   rustls (feature `tls`, on by default) with the system's roots or
//!   [`Tls::ca_certs`]. Passwords never appear in node names or errors.
//! - Cluster: one `GET` per key, sent as one pipeline that the `redis`
//!   crate splits per node (one round trip per node), following
//!   `MOVED`/`ASK` redirections itself. When a node fails,
//!   the batch is sent again per node, so only the failed node's keys fail;
//!   that node's slots then fail at once, without I/O, until a probe every
//!   `retry_after` finds it back. When no connection can be made at all (a
//!   refused password or certificate, every seed down), each seed node
//!   shows in [`Client::health`] with its own error, and batches fail
//!   without I/O until `retry_after` has passed.
//!
//! ```no_run
//! use stratacache_net::redis::{Client, Config};
//! let client = Client::new(Config::cluster(&["redis://127.0.0.1:7000"]))?;
//! client.set_many(&[("k", &b"v"[..], Some(60_000))]);
//! let got = client.get_many(&["k", "other"]);
//! assert!(got.failed.is_empty());
//! # Ok::<(), stratacache_net::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Connection, RedisResult, Value};

use crate::health::Health;
use crate::resp::{FastAddr, FastConn, FastError};
use crate::{Error, Outcome, ServerError, ServerHealth};

/// A client's settings.
///
/// ```
/// use stratacache_net::redis::Config;
/// let c = Config::single("redis://127.0.0.1:6379/0", &["redis://127.0.0.1:6380/0"]);
/// assert_eq!(c.replicas.len(), 1);
/// assert!(Config::cluster(&["redis://127.0.0.1:7000"]).cluster);
/// ```
#[derive(Clone)]
pub struct Config {
    /// One node: its URL. Cluster: the seed nodes' URLs.
    pub nodes: Vec<String>,
    /// One node: replicas to read from.
    pub replicas: Vec<String>,
    /// A Redis Cluster.
    pub cluster: bool,
    /// Cluster: read from replicas (`READONLY`). Sentinel: read from the
    /// replicas the sentinels list.
    pub read_from_replicas: bool,
    /// Sentinel: the service (master) name; `nodes` are then the sentinels.
    pub sentinel_service: Option<String>,
    /// Sentinel: the database of the primary.
    pub db: i64,
    /// Put before every key.
    pub key_prefix: String,
    /// Bound on a new connection.
    pub connect_timeout: Duration,
    /// Bound on each reply.
    pub timeout: Duration,
    /// How long a failed node is left alone before one batch probes it.
    pub retry_after: Duration,
    /// Idle connections kept per node.
    pub max_idle: usize,
    /// Password of the data nodes whose URL has none (django-redis
    /// `OPTIONS["PASSWORD"]`); a URL's own password wins.
    pub password: Option<String>,
    /// ACL user of the data nodes whose URL names none.
    pub username: Option<String>,
    /// Sentinel: the sentinels' own password, for sentinel URLs without one
    /// (django-redis `SENTINEL_KWARGS={"password": ...}`).
    pub sentinel_password: Option<String>,
    /// Sentinel: the sentinels' ACL user.
    pub sentinel_username: Option<String>,
    /// Sentinel: the nodes the sentinels name speak TLS (django-redis: a
    /// `rediss://<service>/<db>` LOCATION); `rediss://` sentinel URLs make
    /// the sentinels' connections TLS.
    pub sentinel_tls: bool,
    /// How `rediss://` nodes are checked.
    pub tls: Tls,
}

/// TLS settings of `rediss://` nodes (rustls, feature `tls`).
///
/// ```
/// use stratacache_net::redis::Tls;
/// let t = Tls { ca_certs: Some(b"-----BEGIN CERTIFICATE-----...".to_vec()), ..Tls::default() };
/// assert!(t.is_set());
/// assert!(!Tls::default().is_set());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM certificates to trust instead of the system's roots (redis-py
    /// `ssl_ca_certs`, the file's content).
    pub ca_certs: Option<Vec<u8>>,
    /// Accept any server certificate (redis-py `ssl_cert_reqs="none"`).
    pub insecure: bool,
    /// Check the certificate's chain but not that it names the host
    /// (redis-py `ssl_check_hostname=False`).
    pub skip_hostname: bool,
    /// A client certificate chain and its private key, both PEM, for
    /// servers that ask for one (redis-py `ssl_certfile`, `ssl_keyfile`).
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    /// Some TLS option is given.
    ///
    /// ```
    /// use stratacache_net::redis::Tls;
    /// assert!(Tls { insecure: true, ..Tls::default() }.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.ca_certs.is_some() || self.insecure || self.skip_hostname || self.client_cert.is_some()
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_certs", &self.ca_certs.as_ref().map(Vec::len))
            .field("insecure", &self.insecure)
            .field("skip_hostname", &self.skip_hostname)
            .field("client_cert", &self.client_cert.as_ref().map(|_| "***"))
            .finish()
    }
}

// By hand: passwords are shown as `***`, URLs without theirs.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |p: &Option<String>| p.as_ref().map(|_| "***");
        let urls = |v: &[String]| v.iter().map(|u| redact(u)).collect::<Vec<_>>();
        f.debug_struct("Config")
            .field("nodes", &urls(&self.nodes))
            .field("replicas", &urls(&self.replicas))
            .field("cluster", &self.cluster)
            .field("read_from_replicas", &self.read_from_replicas)
            .field("sentinel_service", &self.sentinel_service)
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("retry_after", &self.retry_after)
            .field("max_idle", &self.max_idle)
            .field("password", &secret(&self.password))
            .field("username", &self.username)
            .field("sentinel_password", &secret(&self.sentinel_password))
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_tls", &self.sentinel_tls)
            .field("tls", &self.tls)
            .finish()
    }
}

/// `url` as shown in health reports, errors and `Debug`: without its
/// password (a URL that does not parse: only what follows its last `@`).
///
/// ```
/// use stratacache_net::redis::redact;
/// assert_eq!(redact("redis://:s3cret@127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
/// assert_eq!(redact("rediss://app:s3cret@cache:6380/1"), "rediss://app@cache:6380/1");
/// assert_eq!(redact("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
/// ```
pub fn redact(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(u) if u.password().is_none() => url.to_owned(),
        Some(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        None => url.rsplit('@').next().unwrap_or_default().to_owned(),
    }
}

/// The connection settings of `url`: its own credentials, else `user` and
/// `password`; `tls.insecure` applies to a `rediss://` URL. TLS options
/// with a plain `redis://` URL are refused (a likely typo).
fn node_info(
    url: &str,
    user: Option<&String>,
    password: Option<&String>,
    tls: &Tls,
) -> Result<redis::ConnectionInfo, Error> {
    use redis::IntoConnectionInfo;
    let mut info = url
        .into_connection_info()
        .map_err(|e| Error::Config(format!("redis URL {:?}: {e}", redact(url))))?;
    if info.redis.password.is_none() {
        info.redis.password = password.cloned();
    }
    if info.redis.username.is_none() {
        info.redis.username = user.cloned();
    }
    match &mut info.addr {
        redis::ConnectionAddr::TcpTls { insecure, .. } => *insecure |= tls.insecure,
        _ if tls.is_set() => {
            return Err(Error::Config(format!(
                "redis TLS options (CA certificates, client certificate, insecure, hostname) need a rediss:// URL, not {:?}",
                redact(url)
            )))
        }
        _ => {}
    }
    Ok(info)
}

/// A client of one node (see [`node_info`]), trusting `tls.ca_certs` when given.
fn open_client(info: redis::ConnectionInfo, tls: &Tls) -> Result<redis::Client, Error> {
    let shown = info.addr.to_string();
    let err = |e: redis::RedisError| Error::Config(format!("redis node {shown}: {e}"));
    let is_tls = matches!(info.addr, redis::ConnectionAddr::TcpTls { .. });
    if is_tls {
        install_crypto();
    }
    #[cfg(feature = "tls")]
    if is_tls && (tls.ca_certs.is_some() || tls.client_cert.is_some() || tls.skip_hostname) {
        let client = redis::Client::build_with_tls(info, certificates(tls)).map_err(err)?;
        if !tls.skip_hostname {
            return Ok(client);
        }
        // Only now: build_with_tls resets it.
        let mut info = client.get_connection_info().clone();
        info.addr.set_danger_accept_invalid_hostnames(true);
        return redis::Client::open(info).map_err(err);
    }
    let _ = tls;
    redis::Client::open(info).map_err(err)
}

/// The `redis` crate's form of `tls`'s certificates.
#[cfg(feature = "tls")]
fn certificates(tls: &Tls) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: tls
            .client_cert
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.ca_certs.clone(),
    }
}

/// rustls's process-wide crypto, ring (the insecure mode looks it up).
/// ring is deprecated for lacking post-quantum key exchange, but it builds
/// everywhere without CMake and keeps the wheel small; a provider another
/// library installed first is kept.
fn install_crypto() {
    #[cfg(feature = "tls")]
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Config {
    fn base(nodes: Vec<String>) -> Config {
        Config {
            nodes,
            replicas: Vec::new(),
            cluster: false,
            read_from_replicas: false,
            sentinel_service: None,
            db: 0,
            key_prefix: String::new(),
            connect_timeout: Duration::from_millis(250),
            timeout: Duration::from_millis(500),
            retry_after: Duration::from_secs(2),
            max_idle: 8,
            password: None,
            username: None,
            sentinel_password: None,
            sentinel_username: None,
            sentinel_tls: false,
            tls: Tls::default(),
        }
    }

    /// One primary, reads from `replicas` when there are any.
    pub fn single(primary: &str, replicas: &[&str]) -> Config {
        let mut c = Config::base(vec![primary.to_owned()]);
        c.replicas = replicas.iter().map(|s| (*s).to_owned()).collect();
        c
    }

    /// The primary of `service` (database `db`) as Redis Sentinel names it;
    /// `sentinels` are the sentinels' URLs (`redis://host:26379`).
    ///
    /// ```
    /// use stratacache_net::redis::Config;
    /// let c = Config::sentinel(&["redis://127.0.0.1:26379"], "mymaster", 0);
    /// assert_eq!(c.sentinel_service.as_deref(), Some("mymaster"));
    /// ```
    pub fn sentinel(sentinels: &[&str], service: &str, db: i64) -> Config {
        let mut c = Config::base(sentinels.iter().map(|s| (*s).to_owned()).collect());
        c.sentinel_service = Some(service.to_owned());
        c.db = db;
        c
    }

    /// A Redis Cluster reached through `seeds`.
    pub fn cluster(seeds: &[&str]) -> Config {
        let mut c = Config::base(seeds.iter().map(|s| (*s).to_owned()).collect());
        c.cluster = true;
        c
    }
}

/// The cluster slot of a key (CRC16/XMODEM of the key or its `{hash tag}`).
///
/// ```
/// assert_eq!(stratacache_net::redis::slot(b"foo"), 12182);
/// assert_eq!(stratacache_net::redis::slot(b"{user1000}.following"), stratacache_net::redis::slot(b"user1000"));
/// ```
pub fn slot(key: &[u8]) -> u16 {
    let mut part = key;
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                part = &key[open + 1..open + 1 + len];
            }
        }
    }
    let mut crc: u16 = 0;
    for &b in part {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

struct Node {
    name: String,
    client: redis::Client,
    idle: Mutex<Vec<Connection>>,
    /// A plain `redis://` node: `MGET` on connections of its own (`resp`).
    fast: Option<FastAddr>,
    fast_idle: Mutex<Vec<FastConn>>,
    health: Health,
}

struct Single {
    /// `None` until the sentinels named one (Sentinel mode only).
    primary: Mutex<Option<std::sync::Arc<Node>>>,
    /// Read replicas: as configured, or as the sentinels list them.
    replicas: Mutex<std::sync::Arc<Vec<std::sync::Arc<Node>>>>,
    next: AtomicUsize,
    sentinel: Option<SentinelState>,
}

/// How often the sentinels are asked again while the primary fails.
const SENTINEL_RECHECK: Duration = Duration::from_millis(100);
/// How often the sentinels are asked for the replicas (more often while
/// one is down or none is listed).
const REPLICAS_RECHECK: Duration = Duration::from_secs(10);
const REPLICAS_RECHECK_DOWN: Duration = Duration::from_secs(1);

struct SentinelState {
    /// One client per sentinel (with the sentinels' credentials).
    sentinels: Vec<redis::Client>,
    service: String,
    asked_at: Mutex<Option<Instant>>,
    /// When the replicas were last asked for (`None`: not wanted).
    replicas_at: Option<Mutex<Option<Instant>>>,
    /// Why the sentinels named no primary the last time.
    last_error: Mutex<String>,
}

impl Single {
    fn current(&self) -> Option<std::sync::Arc<Node>> {
        self.primary.lock().clone()
    }
}

/// Slot ranges and the primary that serves them, as `CLUSTER SLOTS` says.
#[derive(Default)]
struct SlotMap {
    ranges: Vec<(u16, u16, String)>,
    read_at: Option<Instant>,
}

impl SlotMap {
    fn node(&self, slot: u16) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(a, b, _)| *a <= slot && slot <= *b)
            .map(|(_, _, n)| n.as_str())
    }
}

struct Cluster {
    client: ClusterClient,
    /// The seed nodes as `host:port` (the names `CLUSTER SLOTS` gives the
    /// primaries): a connection that cannot be made is their failure.
    seeds: Vec<String>,
    /// A one-node client per seed, to ask a seed why it failed when the
    /// cluster client only says it did not answer its check.
    seed_clients: Vec<redis::Client>,
    idle: Mutex<Vec<ClusterConnection>>,
    slots: Mutex<SlotMap>,
    health: Mutex<HashMap<String, std::sync::Arc<Health>>>,
}

enum Mode {
    Single(Single),
    Cluster(Box<Cluster>),
}

/// A Redis client (see the module docs). Share it between threads.
pub struct Client {
    mode: Mode,
    prefix: Vec<u8>,
    config: Config,
}

fn err_text(e: &redis::RedisError) -> String {
    e.to_string()
}

/// What `seed` said when the cluster connection failed: its part of the
/// `redis` crate's "Failed to connect to each cluster node (a: why; b: why)"
/// detail, else the whole error.
fn seed_error(seed: &str, e: &redis::RedisError) -> String {
    let own = e.detail().and_then(|detail| {
        let list = detail
            .strip_prefix("Failed to connect to each cluster node (")?
            .strip_suffix(')')?;
        let start = list.find(&format!("{seed}: "))? + seed.len() + 2;
        let rest = &list[start..];
        // Up to the next "; host:port: " entry.
        let end = rest
            .match_indices("; ")
            .map(|(i, _)| i)
            .find(|&i| {
                rest[i + 2..].split_once(": ").is_some_and(|(addr, _)| {
                    addr.rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                })
            })
            .unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    });
    match own {
        Some(why) => format!("redis cluster node {seed}: {why}"),
        None => format!("redis cluster: {}", err_text(e)),
    }
}

fn io_error(server: &str, e: &redis::RedisError) -> ServerError {
    ServerError {
        server: server.to_owned(),
        error: std::io::Error::other(format!("redis {server}: {e}")),
    }
}

/// A reply value as bytes (None for nil).
fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

/// An `MGET` reply as one value or None per key, taken apart in one pass
/// over the array (the crate's `query` checks every item for an error, then
/// converts them: two passes over 100 values on the hot path).
fn mget_values(reply: Value) -> RedisResult<Vec<Option<Vec<u8>>>> {
    match reply {
        Value::Array(items) => Ok(items.into_iter().map(bytes).collect()),
        Value::ServerError(e) => Err(e.into()),
        other => Err(redis::RedisError::from((
            redis::ErrorKind::TypeError,
            "MGET did not answer an array",
            format!("{other:?}"),
        ))),
    }
}

fn set_cmd(key: &[u8], value: &[u8], ttl_ms: Option<u64>, nx: bool) -> redis::Cmd {
    let mut c = redis::cmd("SET");
    c.arg(key).arg(value);
    if let Some(ms) = ttl_ms {
        c.arg("PX").arg(ms.max(1));
    }
    if nx {
        c.arg("NX");
    }
    c
}

impl Client {
    /// A client (no connection is made yet).
    pub fn new(config: Config) -> Result<Client, Error> {
        if config.nodes.is_empty() {
            return Err(Error::Config("redis needs at least one node".into()));
        }
        let node = |url: &str| -> Result<Node, Error> { Self::open_node(&config, url) };
        let sentinel = match &config.sentinel_service {
            Some(service) if !config.cluster => Some(SentinelState {
                sentinels: config
                    .nodes
                    .iter()
                    .map(|url| {
                        // The TLS options serve `rediss://` sentinels too.
                        let plain = Tls::default();
                        let tls = if url.starts_with("rediss://") {
                            &config.tls
                        } else {
                            &plain
                        };
                        let info = node_info(
                            url,
                            config.sentinel_username.as_ref(),
                            config.sentinel_password.as_ref(),
                            tls,
                        )?;
                        open_client(info, tls)
                    })
                    .collect::<Result<_, _>>()?,
                service: service.clone(),
                asked_at: Mutex::new(None),
                replicas_at: config.read_from_replicas.then(|| Mutex::new(None)),
                last_error: Mutex::new(String::new()),
            }),
            _ => None,
        };
        if sentinel.is_some()
            && config.tls.is_set()
            && !config.sentinel_tls
            && !config.nodes.iter().any(|u| u.starts_with("rediss://"))
        {
            return Err(Error::Config(
                "redis TLS options need rediss:// (the service URL or the sentinels')".into(),
            ));
        }
        let mode = if config.cluster {
            let seeds = config
                .nodes
                .iter()
                .map(|u| {
                    node_info(
                        u,
                        config.username.as_ref(),
                        config.password.as_ref(),
                        &config.tls,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            if seeds
                .iter()
                .any(|i| matches!(i.addr, redis::ConnectionAddr::TcpTls { .. }))
            {
                install_crypto();
            }
            let seed_names = seeds.iter().map(|i| i.addr.to_string()).collect();
            let seed_clients = seeds
                .iter()
                .map(|i| open_client(i.clone(), &config.tls))
                .collect::<Result<_, _>>()?;
            let mut b = ClusterClient::builder(seeds)
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.timeout)
                .retries(2);
            if config.read_from_replicas {
                b = b.read_from_replicas();
            }
            #[cfg(feature = "tls")]
            if config.tls.ca_certs.is_some() || config.tls.client_cert.is_some() {
                b = b.certs(certificates(&config.tls));
            }
            #[cfg(feature = "tls")]
            if config.tls.skip_hostname {
                b = b.danger_accept_invalid_hostnames(true);
            }
            Mode::Cluster(Box::new(Cluster {
                client: b
                    .build()
                    .map_err(|e| Error::Config(format!("redis cluster: {e}")))?,
                seeds: seed_names,
                seed_clients,
                idle: Mutex::new(Vec::new()),
                slots: Mutex::new(SlotMap::default()),
                health: Mutex::new(HashMap::new()),
            }))
        } else {
            Mode::Single(Single {
                primary: Mutex::new(match sentinel {
                    Some(_) => None,
                    None => Some(std::sync::Arc::new(node(&config.nodes[0])?)),
                }),
                sentinel,
                replicas: Mutex::new(std::sync::Arc::new(
                    config
                        .replicas
                        .iter()
                        .map(|u| node(u).map(std::sync::Arc::new))
                        .collect::<Result<_, _>>()?,
                )),
                next: AtomicUsize::new(0),
            })
        };
        Ok(Client {
            mode,
            prefix: config.key_prefix.clone().into_bytes(),
            config,
        })
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// Each node's health (cluster: each primary seen so far).
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// for h in client.health() {
    ///     println!("{} up={}", h.name, h.up);
    /// }
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn health(&self) -> Vec<ServerHealth> {
        match &self.mode {
            Mode::Single(s) => {
                let primary = s.current();
                let mut out: Vec<ServerHealth> = primary
                    .iter()
                    .map(|n| n.health.report(&n.name))
                    .chain(s.replicas.lock().iter().map(|n| n.health.report(&n.name)))
                    .collect();
                if let (None, Some(state)) = (&primary, &s.sentinel) {
                    // No primary named yet: the service, down.
                    let pending = Health::default();
                    let why = state.last_error.lock().clone();
                    pending.failed(
                        0,
                        format!("no primary named by the sentinels yet{why}"),
                        true,
                        self.config.retry_after,
                    );
                    out.insert(0, pending.report(&format!("sentinel:{}", state.service)));
                }
                out
            }
            Mode::Cluster(c) => {
                let mut out: Vec<ServerHealth> =
                    c.health.lock().iter().map(|(n, h)| h.report(n)).collect();
                out.sort_by(|a, b| a.name.cmp(&b.name));
                out
            }
        }
    }

    /// Some node is up: a batch whose keys all failed is then one node's
    /// outage, not the whole tier's.
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// let _whole_tier_out = !client.any_up();
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn any_up(&self) -> bool {
        self.health().iter().any(|h| h.up)
    }

    /// Closes idle connections.
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// client.close();
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn close(&self) {
        match &self.mode {
            Mode::Single(s) => {
                if let Some(primary) = s.current() {
                    primary.idle.lock().clear();
                    primary.fast_idle.lock().clear();
                }
                for n in s.replicas.lock().iter() {
                    n.idle.lock().clear();
                    n.fast_idle.lock().clear();
                }
            }
            Mode::Cluster(c) => c.idle.lock().clear(),
        }
    }

    // -- one node ---------------------------------------------------------------

    fn with_node<T>(
        &self,
        node: &Node,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let pooled = node.idle.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = node
                    .client
                    .get_connection_with_timeout(self.config.connect_timeout)?;
                c.set_read_timeout(Some(self.config.timeout))?;
                c.set_write_timeout(Some(self.config.timeout))?;
                c
            }
        };
        let result = f(&mut conn);
        match &result {
            Ok(_) => {
                let mut idle = node.idle.lock();
                if idle.len() < self.config.max_idle {
                    idle.push(conn);
                }
            }
            Err(e) if e.kind() == redis::ErrorKind::ResponseError => {
                node.idle.lock().push(conn);
            }
            Err(_) => {} // closed
        }
        result
    }

    /// `MGET` of `full` on `node`: on a connection of its own for a plain
    /// `redis://` node (one pass over the reply, see `resp`), else on the
    /// crate's.
    fn mget_on<K: AsRef<[u8]>>(
        &self,
        node: &Node,
        keys: &[K],
    ) -> RedisResult<Vec<Option<Vec<u8>>>> {
        let Some(addr) = &node.fast else {
            let full: Vec<Vec<u8>> = keys.iter().map(|k| self.full_key(k.as_ref())).collect();
            return self.with_node(node, |conn| {
                mget_values(redis::ConnectionLike::req_command(
                    conn,
                    redis::cmd("MGET").arg(&full),
                )?)
            });
        };
        let pooled = node.fast_idle.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => FastConn::connect(addr, self.config.connect_timeout, self.config.timeout)?,
        };
        let result = conn.mget(&self.prefix, keys);
        // A server error leaves the connection in sync; an I/O or protocol
        // error closes it.
        if matches!(result, Ok(_) | Err(FastError::Server(_))) {
            let mut idle = node.fast_idle.lock();
            if idle.len() < self.config.max_idle {
                idle.push(conn);
            }
        }
        result.map_err(Into::into)
    }

    /// Runs `run` on `node`, recording its health; failed → every key failed.
    fn on_node_with<T>(
        &self,
        node: &Node,
        keys: usize,
        run: impl FnOnce(&Node) -> RedisResult<T>,
    ) -> Result<T, ServerError> {
        if !node.health.usable(self.config.retry_after) {
            node.health.keys_failed(keys);
            return Err(ServerError {
                server: node.name.clone(),
                error: std::io::Error::other(format!(
                    "redis {}: down, probed again later",
                    node.name
                )),
            });
        }
        match run(node) {
            Ok(v) => {
                node.health.ok();
                Ok(v)
            }
            Err(e) => {
                node.health
                    .failed(keys, err_text(&e), true, self.config.retry_after);
                Err(io_error(&node.name, &e))
            }
        }
    }

    /// The primary (Sentinel: as last named; asked for when none is yet).
    fn primary(&self, s: &Single) -> Result<std::sync::Arc<Node>, ServerError> {
        if let Some(node) = s.current() {
            return Ok(node);
        }
        self.ask_sentinels(s, None).ok_or_else(|| {
            let service = s.sentinel.as_ref().map_or("", |st| st.service.as_str());
            let why = s
                .sentinel
                .as_ref()
                .map(|st| st.last_error.lock().clone())
                .unwrap_or_default();
            ServerError {
                server: format!("sentinel:{service}"),
                error: std::io::Error::other(format!(
                    "redis sentinel: no primary for {service:?} yet{why}"
                )),
            }
        })
    }

    /// Runs `f` on the primary. With Sentinel, a failed or down primary
    /// makes the client ask the sentinels (at most every
    /// [`SENTINEL_RECHECK`]); when they name another one, `f` runs there.
    fn on_primary<T>(
        &self,
        s: &Single,
        keys: usize,
        f: impl Fn(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, ServerError> {
        self.on_primary_with(s, keys, |node| self.with_node(node, &f))
    }

    /// As [`Client::on_primary`], `run` given the node.
    fn on_primary_with<T>(
        &self,
        s: &Single,
        keys: usize,
        run: impl Fn(&Node) -> RedisResult<T>,
    ) -> Result<T, ServerError> {
        let mut node = self.primary(s)?;
        if s.sentinel.is_some() && !node.health.usable_at(Instant::now()) {
            if let Some(new) = self.ask_sentinels(s, Some(&node)) {
                node = new;
            }
        }
        match self.on_node_with(&node, keys, &run) {
            Err(e) if s.sentinel.is_some() => match self.ask_sentinels(s, Some(&node)) {
                Some(new) => self.on_node_with(&new, keys, &run),
                None => Err(e),
            },
            other => other,
        }
    }

    /// Asks the sentinels for the primary; `Some` when they name one other
    /// than `current` (it replaces it). Rate limited.
    fn ask_sentinels(
        &self,
        s: &Single,
        current: Option<&std::sync::Arc<Node>>,
    ) -> Option<std::sync::Arc<Node>> {
        let state = s.sentinel.as_ref()?;
        {
            let mut asked = state.asked_at.lock();
            let now = Instant::now();
            if asked.is_some_and(|at| now.duration_since(at) < SENTINEL_RECHECK) {
                return None;
            }
            *asked = Some(now);
        }
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("get-master-addr-by-name").arg(&state.service);
        let addr: Option<(String, String)> = match self.ask_each_sentinel(state, &cmd) {
            Ok(addr) => addr,
            Err(e) => {
                *state.last_error.lock() = format!(": {e}");
                return None;
            }
        };
        let Some((host, port)) = addr else {
            *state.last_error.lock() = format!(": the sentinels do not know {:?}", state.service);
            return None;
        };
        let name = format!("{}://{host}:{port}/{}", self.node_scheme(), self.config.db);
        if current.is_some_and(|n| n.name == name) {
            return None;
        }
        let node = std::sync::Arc::new(Self::open_node(&self.config, &name).ok()?);
        *s.primary.lock() = Some(node.clone());
        Some(node)
    }

    /// The scheme of the nodes the sentinels name.
    fn node_scheme(&self) -> &'static str {
        if self.config.sentinel_tls {
            "rediss"
        } else {
            "redis"
        }
    }

    /// A node of `url` with the config's credentials and TLS settings.
    fn open_node(config: &Config, url: &str) -> Result<Node, Error> {
        let info = node_info(
            url,
            config.username.as_ref(),
            config.password.as_ref(),
            &config.tls,
        )?;
        Ok(Node {
            name: redact(url),
            fast: FastAddr::of(&info),
            fast_idle: Mutex::new(Vec::new()),
            client: open_client(info, &config.tls)?,
            idle: Mutex::new(Vec::new()),
            health: Health::default(),
        })
    }

    /// `cmd`'s reply from the first sentinel that answers.
    fn ask_each_sentinel<T: redis::FromRedisValue>(
        &self,
        state: &SentinelState,
        cmd: &redis::Cmd,
    ) -> RedisResult<T> {
        let mut last = None;
        for sentinel in &state.sentinels {
            let reply = sentinel
                .get_connection_with_timeout(self.config.connect_timeout)
                .and_then(|mut conn| {
                    conn.set_read_timeout(Some(self.config.timeout))?;
                    conn.set_write_timeout(Some(self.config.timeout))?;
                    cmd.query(&mut conn)
                });
            match reply {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::ClientError, "no sentinel"))
        }))
    }

    /// The replicas to read from; with Sentinel and `read_from_replicas`,
    /// as the sentinels list them (asked again when due).
    fn read_replicas(&self, s: &Single) -> std::sync::Arc<Vec<std::sync::Arc<Node>>> {
        let current = s.replicas.lock().clone();
        let Some((state, at)) = s
            .sentinel
            .as_ref()
            .and_then(|st| st.replicas_at.as_ref().map(|at| (st, at)))
        else {
            return current;
        };
        {
            let now = Instant::now();
            let mut at = at.lock();
            let wait = if current.is_empty() || current.iter().any(|n| !n.health.usable_at(now)) {
                REPLICAS_RECHECK_DOWN
            } else {
                REPLICAS_RECHECK
            };
            if at.is_some_and(|t| now.duration_since(t) < wait) {
                return current;
            }
            *at = Some(now);
        }
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("replicas").arg(&state.service);
        let Ok(listed) = self.ask_each_sentinel::<Vec<HashMap<String, String>>>(state, &cmd) else {
            // No sentinel answered: not again for a while (each try may
            // wait a connect timeout per sentinel on this read's path).
            *at.lock() = Some(Instant::now() + REPLICAS_RECHECK);
            return current;
        };
        let mut found = Vec::new();
        for r in &listed {
            let flags = r.get("flags").map_or("", String::as_str);
            let in_sync = r.get("master-link-status").is_some_and(|v| v == "ok");
            if flags.contains("s_down")
                || flags.contains("o_down")
                || flags.contains("disconnected")
                || !in_sync
            {
                continue;
            }
            let (Some(ip), Some(port)) = (r.get("ip"), r.get("port")) else {
                continue;
            };
            let name = format!("{}://{ip}:{port}/{}", self.node_scheme(), self.config.db);
            // The same node keeps its health and idle connections.
            match current.iter().find(|n| n.name == name) {
                Some(n) => found.push(n.clone()),
                None => {
                    if let Ok(n) = Self::open_node(&self.config, &name) {
                        found.push(std::sync::Arc::new(n));
                    }
                }
            }
        }
        let found = std::sync::Arc::new(found);
        *s.replicas.lock() = found.clone();
        found
    }

    fn failed_all<T: Default + Clone>(n: usize, e: ServerError) -> Outcome<T> {
        Outcome {
            values: vec![T::default(); n],
            failed: (0..n).collect(),
            errors: vec![e],
        }
    }

    // -- operations -------------------------------------------------------------

    /// Values of `keys` (the prefix is added), in order.
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// let got = client.get_many(&["a", "b"]);
    /// let _failed = got.failed; // keys whose node failed, apart from misses
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Outcome<Option<Vec<u8>>> {
        let n = keys.len();
        if n == 0 {
            return Outcome::complete(Vec::new());
        }
        match &self.mode {
            Mode::Single(s) => {
                let mget = |node: &Node| self.mget_on(node, keys);
                let mut errors = Vec::new();
                let replicas = self.read_replicas(s);
                if !replicas.is_empty() {
                    let i = s.next.fetch_add(1, Relaxed) % replicas.len();
                    for j in 0..replicas.len() {
                        let r = &replicas[(i + j) % replicas.len()];
                        if !r.health.usable_at(Instant::now()) {
                            continue;
                        }
                        match self.on_node_with(r, n, mget) {
                            Ok(values) => {
                                return Outcome {
                                    values,
                                    failed: Vec::new(),
                                    errors,
                                }
                            }
                            Err(e) => errors.push(e),
                        }
                    }
                }
                match self.on_primary_with(s, n, mget) {
                    Ok(values) => Outcome {
                        values,
                        failed: Vec::new(),
                        errors,
                    },
                    Err(e) => {
                        let mut o = Self::failed_all(n, e);
                        o.errors.extend(errors);
                        o
                    }
                }
            }
            // One GET per key: the cluster pipeline sends each node its
            // commands in one go (MGET is refused in a cluster pipeline).
            Mode::Cluster(c) => {
                let full: Vec<Vec<u8>> = keys.iter().map(|k| self.full_key(k.as_ref())).collect();
                self.cluster_per_key(c, &full, |i| redis::cmd("GET").arg(&full[i]).clone(), bytes)
            }
        }
    }

    /// One command per key (`cmd` of its index in `full`), its reply turned into a
    /// value by `take`.
    fn cluster_per_key<T: Default + Clone>(
        &self,
        c: &Cluster,
        full: &[Vec<u8>],
        cmd: impl Fn(usize) -> redis::Cmd,
        take: impl Fn(Value) -> T,
    ) -> Outcome<T> {
        let groups: Vec<(u16, Vec<usize>)> =
            (0..full.len()).map(|i| (slot(&full[i]), vec![i])).collect();
        let mut out = Outcome::complete(vec![T::default(); full.len()]);
        self.cluster_run(
            c,
            &groups,
            &mut out,
            |idx| cmd(idx[0]),
            |out, idx, v| out.values[idx[0]] = take(v),
        );
        out
    }

    /// Sends one command per slot group as one cluster pipeline; when it
    /// fails, sends each node's commands apart so that only a failed node's
    /// keys fail. Slots of a node known down fail at once.
    fn cluster_run<T: Default + Clone>(
        &self,
        c: &Cluster,
        groups: &[(u16, Vec<usize>)],
        out: &mut Outcome<T>,
        build: impl Fn(&[usize]) -> redis::Cmd,
        mut take: impl FnMut(&mut Outcome<T>, &[usize], Value),
    ) {
        let mut conn = match self.batch_conn(c, groups) {
            Ok(conn) => conn,
            Err(e) => {
                out.failed = (0..out.values.len()).collect();
                out.errors.push(e);
                return;
            }
        };
        if c.slots.lock().read_at.is_none() {
            self.refresh_slots(c, &mut conn);
        }
        // Slots of nodes known down: failed at once (unless a probe is due).
        let mut live: Vec<&(u16, Vec<usize>)> = Vec::new();
        {
            let slots = c.slots.lock();
            let mut verdict: HashMap<String, bool> = HashMap::new();
            for g in groups {
                let node = slots.node(g.0).unwrap_or("?").to_owned();
                let health = self.node_health(c, &node);
                let ok = *verdict
                    .entry(node)
                    .or_insert_with(|| health.usable(self.config.retry_after));
                if ok {
                    live.push(g);
                } else {
                    health.keys_failed(g.1.len());
                    out.failed.extend_from_slice(&g.1);
                }
            }
        }
        let mut pipe = redis::cluster::cluster_pipe();
        for g in &live {
            pipe.add_command(build(&g.1));
        }
        match pipe.query::<Vec<Value>>(&mut conn) {
            Ok(values) => {
                for (g, v) in live.iter().zip(values) {
                    take(out, &g.1, v);
                }
                let slots = c.slots.lock();
                for g in &live {
                    if let Some(node) = slots.node(g.0) {
                        self.node_health(c, node).ok();
                    }
                }
                self.cluster_checkin(c, conn);
            }
            Err(_) => {
                // Some node failed: per node, so the others' keys are kept.
                self.refresh_slots(c, &mut conn);
                let mut per_node: HashMap<String, Vec<&(u16, Vec<usize>)>> = HashMap::new();
                {
                    let slots = c.slots.lock();
                    for g in &live {
                        per_node
                            .entry(slots.node(g.0).unwrap_or("?").to_owned())
                            .or_default()
                            .push(g);
                    }
                }
                for (node, gs) in per_node {
                    let mut pipe = redis::cluster::cluster_pipe();
                    for g in &gs {
                        pipe.add_command(build(&g.1));
                    }
                    let health = self.node_health(c, &node);
                    match pipe.query::<Vec<Value>>(&mut conn) {
                        Ok(values) => {
                            health.ok();
                            for (g, v) in gs.iter().zip(values) {
                                take(out, &g.1, v);
                            }
                        }
                        Err(e) => {
                            let keys: usize = gs.iter().map(|g| g.1.len()).sum();
                            health.failed(keys, err_text(&e), true, self.config.retry_after);
                            for g in &gs {
                                out.failed.extend_from_slice(&g.1);
                            }
                            out.errors.push(io_error(&node, &e));
                        }
                    }
                }
                self.cluster_checkin(c, conn);
            }
        }
        out.failed.sort_unstable();
    }

    fn node_health(&self, c: &Cluster, node: &str) -> std::sync::Arc<Health> {
        c.health.lock().entry(node.to_owned()).or_default().clone()
    }

    /// A connection for a batch of `groups`. When none can be made (every
    /// seed refused or failed), each seed node's health records it with its
    /// own error (a refused password: the server's words), so `health()`
    /// shows what a single node would; while every seed is down, batches
    /// fail at once, without I/O, until a probe is due.
    fn batch_conn(
        &self,
        c: &Cluster,
        groups: &[(u16, Vec<usize>)],
    ) -> Result<ClusterConnection, ServerError> {
        if let Some(conn) = c.idle.lock().pop() {
            return Ok(conn);
        }
        // Seeds never seen failing are up. A seed due a probe lets this batch
        // try without claiming the probe: the slot check below claims it for
        // a primary, so a cluster back from an outage serves at once.
        let known: Vec<Option<std::sync::Arc<Health>>> = {
            let health = c.health.lock();
            c.seeds.iter().map(|s| health.get(s).cloned()).collect()
        };
        let retry = self.config.retry_after;
        let now = Instant::now();
        if !known
            .iter()
            .any(|h| h.as_ref().is_none_or(|h| h.usable_at(now)))
        {
            for (seed, keys) in self.keys_per_seed(c, groups) {
                self.node_health(c, &seed).keys_failed(keys);
            }
            return Err(ServerError {
                server: "cluster".to_owned(),
                error: std::io::Error::other(
                    "redis cluster: every seed node is down, probed again later",
                ),
            });
        }
        match self.cluster_conn(c) {
            Ok(conn) => {
                // A seed that serves no slot has only its connection to go
                // by; the primaries' health follows their batches.
                let slots = c.slots.lock();
                for (seed, h) in c.seeds.iter().zip(&known) {
                    if let Some(h) = h {
                        if !slots.ranges.iter().any(|r| r.2 == *seed) {
                            h.ok();
                        }
                    }
                }
                Ok(conn)
            }
            Err(e) => {
                for (seed, keys) in self.keys_per_seed(c, groups) {
                    let mut why = seed_error(&seed, &e);
                    // The cluster client PINGs without reporting the reply
                    // (NOAUTH, a missing password): ask the seed itself.
                    if why.contains("failed to respond to connection check") {
                        if let Some(own) = self.seed_ping_error(c, &seed) {
                            why = own;
                        }
                    }
                    self.node_health(c, &seed).failed(keys, why, true, retry);
                }
                Err(io_error("cluster", &e))
            }
        }
    }

    /// Why `seed` refuses a `PING` on a connection of its own (None if it
    /// answers).
    fn seed_ping_error(&self, c: &Cluster, seed: &str) -> Option<String> {
        let i = c.seeds.iter().position(|s| s == seed)?;
        let reply = c.seed_clients[i]
            .get_connection_with_timeout(self.config.connect_timeout)
            .and_then(|mut conn| {
                conn.set_read_timeout(Some(self.config.timeout))?;
                conn.set_write_timeout(Some(self.config.timeout))?;
                redis::cmd("PING").query::<String>(&mut conn)
            });
        reply
            .err()
            .map(|e| format!("redis cluster node {seed}: {}", err_text(&e)))
    }

    /// How many of the batch's keys each seed fails when no connection can
    /// be made: those of its slots once the slot map is known (a primary
    /// that is not a seed is counted too), else all of them on every seed.
    fn keys_per_seed(&self, c: &Cluster, groups: &[(u16, Vec<usize>)]) -> Vec<(String, usize)> {
        let slots = c.slots.lock();
        if slots.ranges.is_empty() {
            let n = groups.iter().map(|g| g.1.len()).sum();
            return c.seeds.iter().map(|s| (s.clone(), n)).collect();
        }
        let mut per: Vec<(String, usize)> = c.seeds.iter().map(|s| (s.clone(), 0)).collect();
        for g in groups {
            let owner = slots.node(g.0).unwrap_or("?");
            match per.iter_mut().find(|(s, _)| s == owner) {
                Some(entry) => entry.1 += g.1.len(),
                None => per.push((owner.to_owned(), g.1.len())),
            }
        }
        per
    }

    fn cluster_conn(&self, c: &Cluster) -> RedisResult<ClusterConnection> {
        if let Some(conn) = c.idle.lock().pop() {
            return Ok(conn);
        }
        let conn = c.client.get_connection()?;
        conn.set_read_timeout(Some(self.config.timeout))?;
        conn.set_write_timeout(Some(self.config.timeout))?;
        Ok(conn)
    }

    fn cluster_checkin(&self, c: &Cluster, conn: ClusterConnection) {
        let mut idle = c.idle.lock();
        if idle.len() < self.config.max_idle {
            idle.push(conn);
        }
    }

    /// Reads `CLUSTER SLOTS` (from any node that answers).
    fn refresh_slots(&self, c: &Cluster, conn: &mut ClusterConnection) {
        let reply: RedisResult<Value> = redis::cmd("CLUSTER").arg("SLOTS").query(conn);
        let Ok(Value::Array(ranges)) = reply else {
            return;
        };
        let mut map = Vec::new();
        for r in ranges {
            let Value::Array(parts) = r else { continue };
            let (Some(Value::Int(a)), Some(Value::Int(b)), Some(Value::Array(primary))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            let host = match primary.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                _ => continue,
            };
            let port = match primary.get(1) {
                Some(Value::Int(p)) => *p,
                _ => continue,
            };
            map.push((*a as u16, *b as u16, format!("{host}:{port}")));
        }
        let mut slots = c.slots.lock();
        if !map.is_empty() {
            slots.ranges = map;
        }
        slots.read_at = Some(Instant::now());
    }

    /// Writes `(key, value, ttl_ms)` items (`SET .. PX`, `NX` for `add`):
    /// per item, whether it was stored.
    fn store<K: AsRef<[u8]>>(&self, items: &[(K, &[u8], Option<u64>)], nx: bool) -> Outcome<bool> {
        let n = items.len();
        if n == 0 {
            return Outcome::complete(Vec::new());
        }
        let full: Vec<Vec<u8>> = items
            .iter()
            .map(|(k, _, _)| self.full_key(k.as_ref()))
            .collect();
        match &self.mode {
            Mode::Single(s) => {
                let run = |conn: &mut Connection| -> RedisResult<Vec<Value>> {
                    let mut pipe = redis::pipe();
                    for (i, (_, v, ttl)) in items.iter().enumerate() {
                        pipe.add_command(set_cmd(&full[i], v, *ttl, nx));
                    }
                    pipe.query(conn)
                };
                match self.on_primary(s, n, run) {
                    Ok(values) => Outcome::complete(
                        values
                            .into_iter()
                            .map(|v| matches!(v, Value::Okay))
                            .collect(),
                    ),
                    Err(e) => Self::failed_all(n, e),
                }
            }
            Mode::Cluster(c) => {
                let cmd = |i: usize| set_cmd(&full[i], items[i].1, items[i].2, nx);
                self.cluster_per_key(c, &full, cmd, |v| matches!(v, Value::Okay))
            }
        }
    }

    /// `SET key value PX ttl` per item, pipelined: per item, stored.
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// client.set_many(&[("k", &b"v"[..], Some(60_000))]);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn set_many<K: AsRef<[u8]>>(&self, items: &[(K, &[u8], Option<u64>)]) -> Outcome<bool> {
        self.store(items, false)
    }

    /// `SET key value NX PX ttl` per item: per item, true if stored, false
    /// if the key existed.
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// let _mine = client.add_many(&[("lease", &b"1"[..], Some(5_000))]).values[0];
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn add_many<K: AsRef<[u8]>>(&self, items: &[(K, &[u8], Option<u64>)]) -> Outcome<bool> {
        self.store(items, true)
    }

    /// Deletes `keys`: per key, true if it existed.
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// client.delete_many(&["k"]);
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn delete_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Outcome<bool> {
        let full: Vec<Vec<u8>> = keys.iter().map(|k| self.full_key(k.as_ref())).collect();
        let n = full.len();
        if n == 0 {
            return Outcome::complete(Vec::new());
        }
        match &self.mode {
            Mode::Single(s) => {
                let run = |conn: &mut Connection| -> RedisResult<Vec<i64>> {
                    let mut pipe = redis::pipe();
                    for k in &full {
                        pipe.cmd("DEL").arg(k);
                    }
                    pipe.query(conn)
                };
                match self.on_primary(s, n, run) {
                    Ok(v) => Outcome::complete(v.into_iter().map(|d| d > 0).collect()),
                    Err(e) => Self::failed_all(n, e),
                }
            }
            Mode::Cluster(c) => self.cluster_per_key(
                c,
                &full,
                |i| redis::cmd("DEL").arg(&full[i]).clone(),
                |v| matches!(v, Value::Int(d) if d > 0),
            ),
        }
    }

    /// `INFO` of the primary (cluster: of a random node) as `(name, value)`.
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// let info = client.info()?;
    /// let _version = info.iter().find(|(k, _)| k == "redis_version");
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn info(&self) -> Result<Vec<(String, String)>, Error> {
        let other = |e: redis::RedisError| Error::Io(std::io::Error::other(format!("redis: {e}")));
        let text: String = match &self.mode {
            Mode::Single(s) => {
                let primary = self.primary(s).map_err(|e| Error::Io(e.error))?;
                self.with_node(&primary, |c| redis::cmd("INFO").query(c))
                    .map_err(other)?
            }
            Mode::Cluster(c) => {
                let mut conn = self.cluster_conn(c).map_err(other)?;
                let text = redis::cmd("INFO").query(&mut conn).map_err(other)?;
                self.cluster_checkin(c, conn);
                text
            }
        };
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// `FLUSHDB` on the primary (cluster: on every primary).
    ///
    /// ```no_run
    /// # use stratacache_net::redis::{Client, Config};
    /// # let client = Client::new(Config::single("redis://127.0.0.1:6379/0", &[]))?;
    /// client.flush()?;
    /// # Ok::<(), stratacache_net::Error>(())
    pub fn flush(&self) -> Result<(), Error> {
        let other = |e: redis::RedisError| Error::Io(std::io::Error::other(format!("redis: {e}")));
        match &self.mode {
            Mode::Single(s) => {
                let primary = self.primary(s).map_err(|e| Error::Io(e.error))?;
                self.with_node(&primary, |c| redis::cmd("FLUSHDB").query::<()>(c))
                    .map_err(other)
            }
            Mode::Cluster(c) => {
                let mut conn = self.cluster_conn(c).map_err(other)?;
                use redis::cluster_routing::{
                    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo,
                };
                conn.route_command(
                    &redis::cmd("FLUSHALL"),
                    RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::AllSucceeded),
                    )),
                )
                .map_err(other)?;
                self.cluster_checkin(c, conn);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod auth_tls_tests {
    use super::*;

    #[test]
    fn the_url_password_wins_and_the_config_fills_in() {
        let pw = Some("from-config".to_owned());
        let user = Some("app".to_owned());
        let info = node_info(
            "redis://:from-url@h:1/2",
            user.as_ref(),
            pw.as_ref(),
            &Tls::default(),
        )
        .unwrap();
        assert_eq!(info.redis.password.as_deref(), Some("from-url"));
        assert_eq!(info.redis.username.as_deref(), Some("app"));
        assert_eq!(info.redis.db, 2);
        let info = node_info("redis://h:1/0", None, pw.as_ref(), &Tls::default()).unwrap();
        assert_eq!(info.redis.password.as_deref(), Some("from-config"));
        assert_eq!(info.redis.username, None);
    }

    #[test]
    #[cfg(feature = "tls")]
    fn tls_options_need_a_rediss_url_and_insecure_reaches_it() {
        let insecure = Tls {
            insecure: true,
            ..Tls::default()
        };
        let err = node_info("redis://:pw@h:1/0", None, None, &insecure)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rediss://") && !err.contains("pw@"), "{err}");
        let info = node_info("rediss://h:1/0", None, None, &insecure).unwrap();
        assert!(matches!(
            info.addr,
            redis::ConnectionAddr::TcpTls { insecure: true, .. }
        ));
    }

    #[test]
    fn passwords_stay_out_of_names_errors_and_debug() {
        let err = Client::new(Config::single("redis://:hunter2@h:notaport/0", &[]))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let mut c = Config::single("redis://app:hunter2@h:1/0", &[]);
        c.password = Some("hunter3".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
        let client = Client::new(c).unwrap();
        assert_eq!(client.health()[0].name, "redis://app@h:1/0");
    }

    #[test]
    fn each_seed_gets_its_own_words_of_a_failed_cluster_connection() {
        let e = redis::RedisError::from((
            redis::ErrorKind::IoError,
            "It failed to check startup nodes.",
            "Failed to connect to each cluster node (127.0.0.1:7000: Password authentication \
             failed- AuthenticationFailed; 127.0.0.1:7001: Connection refused (os error 111); \
             [::1]:7002: x; y)"
                .to_owned(),
        ));
        assert_eq!(
            seed_error("127.0.0.1:7000", &e),
            "redis cluster node 127.0.0.1:7000: Password authentication failed- AuthenticationFailed"
        );
        assert_eq!(
            seed_error("127.0.0.1:7001", &e),
            "redis cluster node 127.0.0.1:7001: Connection refused (os error 111)"
        );
        // "; " inside one node's words does not cut them.
        assert_eq!(
            seed_error("[::1]:7002", &e),
            "redis cluster node [::1]:7002: x; y"
        );
        // A node the detail does not name, or another error: the whole text.
        let whole = seed_error("127.0.0.1:7009", &e);
        assert!(
            whole.starts_with("redis cluster: It failed") && whole.contains("7001"),
            "{whole}"
        );
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_a_config_error() {
        let mut c = Config::single("rediss://h:1/0", &[]);
        c.tls.ca_certs =
            Some(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n".to_vec());
        assert!(matches!(Client::new(c), Err(Error::Config(_))));
    }
}
