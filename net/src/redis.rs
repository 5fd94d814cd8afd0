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
//! - Cluster: one `GET` per key, sent as one pipeline that the `redis`
//!   crate splits per node (one round trip per node), following
//!   `MOVED`/`ASK` redirections itself. When a node fails,
//!   the batch is sent again per node, so only the failed node's keys fail;
//!   that node's slots then fail at once, without I/O, until a probe every
//!   `retry_after` finds it back.
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
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Connection, RedisResult, Value};

use crate::health::Health;
use crate::{Error, Outcome, ServerError, ServerHealth};

/// A client's settings.
///
/// ```
/// use stratacache_net::redis::Config;
/// let c = Config::single("redis://127.0.0.1:6379/0", &["redis://127.0.0.1:6380/0"]);
/// assert_eq!(c.replicas.len(), 1);
/// assert!(Config::cluster(&["redis://127.0.0.1:7000"]).cluster);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// One node: its URL. Cluster: the seed nodes' URLs.
    pub nodes: Vec<String>,
    /// One node: replicas to read from.
    pub replicas: Vec<String>,
    /// A Redis Cluster.
    pub cluster: bool,
    /// Cluster: read from replicas (`READONLY`).
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
    health: Health,
}

struct Single {
    /// `None` until the sentinels named one (Sentinel mode only).
    primary: Mutex<Option<std::sync::Arc<Node>>>,
    replicas: Vec<Node>,
    next: AtomicUsize,
    sentinel: Option<SentinelState>,
}

/// How often the sentinels are asked again while the primary fails.
const SENTINEL_RECHECK: Duration = Duration::from_millis(100);

struct SentinelState {
    sentinel: Mutex<Sentinel>,
    service: String,
    info: SentinelNodeConnectionInfo,
    asked_at: Mutex<Option<Instant>>,
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
    idle: Mutex<Vec<ClusterConnection>>,
    slots: Mutex<SlotMap>,
    health: Mutex<HashMap<String, std::sync::Arc<Health>>>,
}

enum Mode {
    Single(Single),
    Cluster(Cluster),
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
        let node = |url: &str| -> Result<Node, Error> {
            Ok(Node {
                name: url.to_owned(),
                client: redis::Client::open(url)
                    .map_err(|e| Error::Config(format!("redis URL {url:?}: {e}")))?,
                idle: Mutex::new(Vec::new()),
                health: Health::default(),
            })
        };
        let sentinel = match &config.sentinel_service {
            Some(service) if !config.cluster => Some(SentinelState {
                sentinel: Mutex::new(
                    Sentinel::build(config.nodes.clone())
                        .map_err(|e| Error::Config(format!("redis sentinels: {e}")))?,
                ),
                service: service.clone(),
                info: SentinelNodeConnectionInfo {
                    tls_mode: None,
                    redis_connection_info: Some(redis::RedisConnectionInfo {
                        db: config.db,
                        ..Default::default()
                    }),
                },
                asked_at: Mutex::new(None),
            }),
            _ => None,
        };
        let mode = if config.cluster {
            let mut b = ClusterClient::builder(config.nodes.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.timeout)
                .retries(2);
            if config.read_from_replicas {
                b = b.read_from_replicas();
            }
            Mode::Cluster(Cluster {
                client: b
                    .build()
                    .map_err(|e| Error::Config(format!("redis cluster: {e}")))?,
                idle: Mutex::new(Vec::new()),
                slots: Mutex::new(SlotMap::default()),
                health: Mutex::new(HashMap::new()),
            })
        } else {
            Mode::Single(Single {
                primary: Mutex::new(match sentinel {
                    Some(_) => None,
                    None => Some(std::sync::Arc::new(node(&config.nodes[0])?)),
                }),
                sentinel,
                replicas: config
                    .replicas
                    .iter()
                    .map(|u| node(u))
                    .collect::<Result<_, _>>()?,
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
                    .chain(s.replicas.iter().map(|n| n.health.report(&n.name)))
                    .collect();
                if let (None, Some(state)) = (&primary, &s.sentinel) {
                    // No primary named yet: the service, down.
                    let pending = Health::default();
                    pending.failed(
                        0,
                        "no primary named by the sentinels yet".into(),
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
                }
                for n in &s.replicas {
                    n.idle.lock().clear();
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

    /// Runs `f` on `node`, recording its health; failed → every key failed.
    fn on_node<T>(
        &self,
        node: &Node,
        keys: usize,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
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
        match self.with_node(node, f) {
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
            ServerError {
                server: format!("sentinel:{service}"),
                error: std::io::Error::other(format!(
                    "redis sentinel: no primary for {service:?} yet"
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
        let mut node = self.primary(s)?;
        if s.sentinel.is_some() && !node.health.usable_at(Instant::now()) {
            if let Some(new) = self.ask_sentinels(s, Some(&node)) {
                node = new;
            }
        }
        match self.on_node(&node, keys, &f) {
            Err(e) if s.sentinel.is_some() => match self.ask_sentinels(s, Some(&node)) {
                Some(new) => self.on_node(&new, keys, &f),
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
        let client = state
            .sentinel
            .lock()
            .master_for(&state.service, Some(&state.info))
            .ok()?;
        let addr = client.get_connection_info().addr.to_string();
        let name = format!("redis://{addr}/{}", self.config.db);
        if current.is_some_and(|n| n.name == name) {
            return None;
        }
        let node = std::sync::Arc::new(Node {
            name,
            client,
            idle: Mutex::new(Vec::new()),
            health: Health::default(),
        });
        *s.primary.lock() = Some(node.clone());
        Some(node)
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
        let full: Vec<Vec<u8>> = keys.iter().map(|k| self.full_key(k.as_ref())).collect();
        let n = full.len();
        if n == 0 {
            return Outcome::complete(Vec::new());
        }
        match &self.mode {
            Mode::Single(s) => {
                let mget = |conn: &mut Connection| -> RedisResult<Vec<Option<Vec<u8>>>> {
                    mget_values(redis::ConnectionLike::req_command(
                        conn,
                        redis::cmd("MGET").arg(&full),
                    )?)
                };
                let mut errors = Vec::new();
                if !s.replicas.is_empty() {
                    let i = s.next.fetch_add(1, Relaxed) % s.replicas.len();
                    for j in 0..s.replicas.len() {
                        let r = &s.replicas[(i + j) % s.replicas.len()];
                        if !r.health.usable_at(Instant::now()) {
                            continue;
                        }
                        match self.on_node(r, n, mget) {
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
                match self.on_primary(s, n, mget) {
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
        let mut conn = match self.cluster_conn(c) {
            Ok(conn) => conn,
            Err(e) => {
                out.failed = (0..out.values.len()).collect();
                out.errors.push(io_error("cluster", &e));
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
