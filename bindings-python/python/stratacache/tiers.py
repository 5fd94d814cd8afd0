"""Remote tier adapters: each turns the core's batched steps into one
server round trip (``get_many``, ``set_many``, ``add_many``,
``delete_many``). They move envelope bytes only: values are serialized,
signed and chunked by the core, and bytes read are verified by the core
before any codec sees them. Adapters raise on failure; the cache counts the
failure and goes on to the next tier.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import math
import pickle
import re
import weakref
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from . import _core

__all__ = [
    "DjangoCacheTier",
    "MemcachedTier",
    "RedisTier",
    "StorageTier",
    "Tier",
    "storage_key",
    "storage_name",
]

Entry = tuple  # (key, bytes, ttl_ms or None)


def _ttl_seconds(ttl_ms: Optional[int]) -> int:
    """memcached/Django seconds for a TTL in ms (0: no expiry)."""
    if ttl_ms is None:
        return 0
    return max(1, math.ceil(ttl_ms / 1000))


def _item_limit(kind: str, item_limit: Optional[int]) -> int:
    """The given item limit, else the core's preset for the tier's kind."""
    return _core.tier_preset(kind)["item_limit"] if item_limit is None else int(item_limit)


class Tier:
    """Base of the adapters. Subclasses implement ``get_many``,
    ``set_many``, ``add_many`` and ``delete_many``; async variants default to
    running the sync ones in a worker thread."""

    kind = "generic"
    name = "tier"
    #: Values larger than this are chunked (None: the core's preset of ``kind``).
    item_limit: Optional[int] = None
    replicas = 1
    backfill = True
    leases = False
    supports_add = True

    def tier_config(self) -> dict:
        """The tier as the core sees it."""
        return {
            "name": self.name,
            "kind": self.kind,
            "item_limit": self.item_limit,
            "replicas": self.replicas,
            "backfill": self.backfill,
            "leases": self.leases,
            "supports_add": self.supports_add,
        }

    def get_many(self, keys: Sequence[str]) -> Any:
        """One ``bytes`` or ``None`` (not found) per key, in order. When
        some keys could not be answered (the server holding them is down),
        return ``(values, failed_keys)`` instead: the failed keys go on to
        the next tier or the loader, the others are kept. Raise when the
        whole batch failed."""
        raise NotImplementedError

    def set_many(self, entries: Sequence[Entry]) -> None:
        raise NotImplementedError

    def add_many(self, items: Sequence[Entry]) -> list:
        raise NotImplementedError

    def delete_many(self, keys: Sequence[str]) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        """Removes everything this tier holds (tests, ``stratacache_warm --clear``)."""
        raise NotImplementedError

    def server_stats(self) -> dict:
        """What the server says about itself (for ``stratacache_stats``)."""
        return {}

    async def aget_many(self, keys: Sequence[str]) -> list:
        return await asyncio.to_thread(self.get_many, keys)

    async def aset_many(self, entries: Sequence[Entry]) -> None:
        await asyncio.to_thread(self.set_many, entries)

    async def aadd_many(self, items: Sequence[Entry]) -> list:
        return await asyncio.to_thread(self.add_many, items)

    async def adelete_many(self, keys: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_many, keys)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} item_limit={self.item_limit}>"


def _servers(location: Union[str, Sequence[Any]]) -> list:
    """``(node, host_or_path, port_or_None)`` per server, parsed as Django's
    ``PyMemcacheCache`` and pymemcache's ``HashClient`` parse ``LOCATION``
    (``node`` is the name pymemcache hashes keys with: ``"host:port"``)."""
    if isinstance(location, str):
        location = [s for s in location.replace(",", ";").split(";") if s.strip()]
    out = []
    for server in location:
        if isinstance(server, (tuple, list)) and len(server) == 2:
            host, port = server[0], int(server[1])
            out.append((f"{host}:{port}", host, port))
            continue
        server = str(server).strip()
        if server.startswith("unix:"):
            server = server[5:]
        if server.startswith("/"):
            out.append((server, server, None))
            continue
        if ":" not in server or server.endswith("]"):
            host, port = server, 11211
        else:
            host, _, port_text = server.rpartition(":")
            port = int(port_text)
        if host.startswith("["):
            host = host.strip("[]")
        out.append((f"{host}:{port}", host, port))
    return out


def _native_client(tier: Any, base: type) -> Any:
    """``tier.client``, unless ``tier`` (or its class, a subclass of ``base``)
    replaced ``get_many`` or ``set_many``: then the driver must call those."""
    for method in ("get_many", "set_many"):
        if method in vars(tier) or getattr(type(tier), method) is not getattr(base, method):
            return None
    return tier.client


class MemcachedTier(Tier):
    """memcached through stratacache's own client (``stratacache._core.MemcachedClient``,
    the text protocol over plain sockets), with raw bytes: a value some other
    process wrote (with a pickle flag, say) is handed to the core as bytes and
    refused unless it is a valid envelope.

    ``servers``: ``["10.0.0.1:11211", "10.0.0.2:11211"]`` (or a ``;``/``,``
    separated string, ``unix:/path``). With several servers, a key goes to
    the server pymemcache's ``HashClient`` would pick (rendezvous hashing
    with murmur3, the default of Django's ``PyMemcacheCache``), so a plain
    Django cache over the same ``LOCATION`` reads, writes and deletes the
    same keys on the same servers. ``hashing="ketama"`` picks servers as
    libmemcached's weighted ketama does instead (pylibmc with
    ``behaviors={"ketama_weighted": True}``), ``hashing="ketama_plain"`` as
    its plain ketama (``behaviors={"ketama": True}``, Django's usual
    ``PyLibMCCache`` setting); both checked against pylibmc on four real
    servers (tests/test_ketama_compat.py).

    Health per server: a batch that partly fails keeps the healthy servers'
    values; the failed keys are told apart from misses by
    ``get_many_outcome`` and counted per server in ``health()``. A failed
    server is marked down and probed by one request every ``retry_after``
    seconds, so it comes back by itself. While it is down, its keys move to
    the live servers (``dead_keys="move"``, as ``HashClient`` does) or stay
    and miss (``dead_keys="stay"``). Only a batch whose keys all failed
    while no server is up raises (the cache then counts a tier failure and
    may cool the tier down); one dead server of several never cools the
    tier down.

    One batch sends one request to every server it touches before reading
    any reply (one round trip, however many servers), with the GIL released.
    ``connect_timeout`` bounds a new connection, ``timeout`` the whole
    exchange after it: a frozen server costs one timeout, after which the
    read goes on to the next tier or the loader. Connections are pooled
    (``max_idle`` per server); a broken one is replaced at the next use, so
    a restarted server is used again at once.

    ``item_limit``: values larger than this are chunked (default: memcached's
    1 MiB item size minus overhead).
    """

    kind = "memcached"

    def __init__(
        self,
        servers: Union[str, Sequence[Any]],
        *,
        name: str = "memcached",
        item_limit: Optional[int] = None,
        key_prefix: str = "",
        connect_timeout: float = 0.25,
        timeout: float = 0.5,
        replicas: int = 1,
        leases: bool = False,
        backfill: bool = True,
        max_idle: int = 8,
        hashing: str = "rendezvous",
        dead_keys: str = "move",
        retry_after: float = 2.0,
    ) -> None:
        self.name = name
        self.item_limit = _item_limit(self.kind, item_limit)
        self.key_prefix = key_prefix
        self.replicas = replicas
        self.leases = leases
        self.backfill = backfill
        self.servers = _servers(servers)
        self.client = _core.MemcachedClient(
            self.servers,
            key_prefix=key_prefix,
            connect_timeout=connect_timeout,
            timeout=timeout,
            max_idle=max_idle,
            hashing=hashing,
            dead_keys=dead_keys,
            retry_after=retry_after,
        )

    @property
    def native_client(self) -> Optional[_core.MemcachedClient]:
        """The client the sync read driver calls directly (no Python per key),
        unless a subclass or the instance replaced the methods it stands for.
        A ``TieredCache`` looks at it once, when it is created."""
        return _native_client(self, MemcachedTier)

    @classmethod
    def from_django(cls, alias: str, **kwargs: Any) -> MemcachedTier:
        """A tier over the servers of Django cache ``alias`` (a
        ``PyMemcacheCache``), in that alias's key space (``KEY_PREFIX``,
        ``VERSION``)."""
        from django.conf import settings

        conf = settings.CACHES[alias]
        prefix = conf.get("KEY_PREFIX", "")
        version = conf.get("VERSION", 1)
        kwargs.setdefault("name", alias)
        kwargs.setdefault("key_prefix", f"{prefix}:{version}:")
        return cls(conf["LOCATION"], **kwargs)

    def get_many_outcome(self, keys: Sequence[str]) -> tuple:
        """``(values, failed)``: one ``bytes`` or ``None`` per key, and the
        keys whose server failed or is down (not found missing: the cache
        should fall through for those keys only and count them). Never
        raises for a server's failure.

        >>> values, failed = tier.get_many_outcome(["a", "b"])  # doctest: +SKIP
        """
        return self.client.get_many_outcome(keys)

    def get_many(self, keys: Sequence[str]) -> list:
        """One ``bytes`` or ``None`` per key. Keys of a failed server read
        as ``None`` (they fall through to the next tier or the loader);
        raises ``OSError`` only when every key failed and no server is up."""
        return self.client.get_many(keys)

    def set_many(self, entries: Sequence[Entry]) -> None:
        """Raises when a server refused an item (too large, ...) or when
        every item failed and no server is up; items of one failed server
        are counted in ``health()`` (a later read misses them)."""
        refused, failed = self.client.set_many_outcome(entries)
        if refused or (
            failed and len(failed) == len(entries) and not any(h["up"] for h in self.health().values())
        ):
            bad = refused or failed
            raise OSError(f"memcached did not store {len(bad)} item(s), e.g. {bad[0]!r}")

    def health(self) -> dict:
        """Per server: ``{"up", "failures", "failed_keys", "probes",
        "recoveries", "last_error"}``.

        >>> down = [s for s, h in tier.health().items() if not h["up"]]  # doctest: +SKIP
        """
        return self.client.health()

    def add_many(self, items: Sequence[Entry]) -> list:
        return self.client.add_many(items)

    def delete_many(self, keys: Sequence[str]) -> None:
        self.client.delete_many(keys)

    def clear(self) -> None:
        self.client.flush_all()

    def server_stats(self) -> dict:
        """``stats`` of each server (``curr_items``, ``bytes``, ``evictions``, ...)."""
        return {
            node: {k: int(v) if v.isdigit() else v for k, v in stats.items()}
            if isinstance(stats, dict)
            else {"error": stats}
            for node, stats in self.client.stats().items()
        }

    def server_item_size_max(self) -> Optional[int]:
        """The smallest ``item_size_max`` among the servers, or None if no
        server answered."""
        sizes = [
            int(stats["item_size_max"])
            for stats in self.client.stats("settings").values()
            if isinstance(stats, dict) and "item_size_max" in stats
        ]
        return min(sizes) if sizes else None


class RedisTier(Tier):
    """Redis through stratacache's Rust client (``stratacache._core.RedisClient``
    over the ``redis`` crate), raw bytes: ``MGET``, pipelined ``SET PX``,
    ``SET NX PX`` for leases, one round trip per batch (per node in a
    cluster), the GIL released.

    ``url``: ``redis://host:port/db``. ``replicas``: URLs of read replicas
    (reads go to them, round robin, and to the primary while none answers;
    writes go to the primary). ``cluster=True``: ``url`` is a Redis Cluster
    seed node (or a list of them); keys are grouped per slot, sent as one
    pipeline split per node, redirections followed by the library; a dead
    master's keys fail (they fall through to the next tier) while the other
    masters' keys are served, and the dead one is probed every
    ``retry_after`` seconds. ``read_from_replicas``: cluster reads from
    replicas. As with ``MemcachedTier``, ``get_many_outcome`` returns the
    failed keys apart, and a batch raises only when all its keys failed and
    no node is up.

    ``sentinels``: Redis Sentinel, in django-redis's convention: ``url`` is
    ``redis://<service_name>/<db>`` and ``sentinels`` the sentinels as
    ``(host, port)`` pairs (or ``"host:port"``); reads and writes go to the
    primary they name, and when it fails they are asked again, so after a
    failover the new primary is used (the keys of the batches in between
    fail over to the next tier or the loader, counted, never raised outside
    strict mode)::

        RedisTier("redis://mymaster/0", sentinels=[("10.0.0.5", 26379), ("10.0.0.6", 26379)])

    With ``sentinels``, ``read_from_replicas=True`` sends reads to the
    replicas the sentinels list (in sync, not down; asked again every 10 s,
    every second while one is down), writes to the primary; a replica that
    fails is left alone for ``retry_after`` while its reads go to the
    primary (redis-py's ``Sentinel.slave_for``, django-redis's
    ``SentinelClient``).

    Credentials: a URL's own (``redis://:pass@host:6379/0``, an ACL user as
    ``redis://user:pass@host:6379/0``), else ``password`` / ``username``
    (django-redis's ``OPTIONS["PASSWORD"]``). ``sentinel_kwargs``: the
    sentinels' own, django-redis's ``SENTINEL_KWARGS`` (``{"password": ...,
    "username": ...}``). A password the server refuses is a failure of the
    tier (its keys go to the next tier or the loader, counted, the server's
    words in ``health()``), not an exception outside strict mode; a URL that
    does not parse is a ``ValueError`` here. Passwords never appear in
    ``health()`` names or errors.

    TLS: ``rediss://`` URLs (rustls; the system's CA roots by default; the
    certificate must name the URL's host). redis-py's names:
    ``ssl_ca_certs``, a PEM file of the CAs to trust instead;
    ``ssl_cert_reqs="none"`` (or ``ssl.CERT_NONE``) accepts any certificate;
    ``ssl_check_hostname=False`` checks the chain, not the name;
    ``ssl_certfile`` / ``ssl_keyfile``, a client certificate (PEM) for
    servers that ask for one. Any of them with a ``redis://`` URL is a
    ``ValueError``. With ``sentinels``, ``rediss://<service>/<db>`` makes
    the nodes they name TLS and ``sentinel_kwargs={"ssl": True}`` the
    sentinels (the same ``ssl_*`` options serve both)::

        RedisTier("rediss://cache.internal:6380/0", password=secret, ssl_ca_certs="/etc/ssl/redis-ca.pem")
    """

    kind = "redis"

    def __init__(
        self,
        url: Union[str, Sequence[str]] = "redis://127.0.0.1:6379/0",
        *,
        replicas: Sequence[str] = (),
        cluster: bool = False,
        read_from_replicas: bool = False,
        name: str = "redis",
        item_limit: Optional[int] = None,
        key_prefix: str = "",
        timeout: float = 0.5,
        connect_timeout: float = 0.25,
        retry_after: float = 2.0,
        leases: bool = False,
        backfill: bool = True,
        sentinels: Sequence[Any] = (),
        password: Optional[str] = None,
        username: Optional[str] = None,
        ssl_ca_certs: Optional[str] = None,
        ssl_cert_reqs: Union[str, int, None] = None,
        ssl_check_hostname: Optional[bool] = None,
        ssl_certfile: Optional[str] = None,
        ssl_keyfile: Optional[str] = None,
        sentinel_kwargs: Optional[dict] = None,
    ) -> None:
        self.name = name
        self.item_limit = _item_limit(self.kind, item_limit)
        self.key_prefix = key_prefix
        self.leases = leases
        self.backfill = backfill
        ssl = {
            "ssl_ca_certs": ssl_ca_certs,
            "ssl_cert_reqs": ssl_cert_reqs,
            "ssl_check_hostname": ssl_check_hostname,
            "ssl_certfile": ssl_certfile,
            "ssl_keyfile": ssl_keyfile,
        }
        ssl = {k: v for k, v in ssl.items() if v is not None}
        auth = {"password": password, "username": username, **_tls_args(**ssl)}
        # What redis-py needs to reach the same servers (AsyncRedisTier).
        self._redis_py_kwargs = {
            **{k: v for k, v in {"password": password, "username": username}.items() if v is not None},
            **ssl,
        }
        if sentinels:
            service, db = _sentinel_service(url)
            nodes_tls = url.startswith("rediss://")  # the nodes the sentinels name
            auth.update(_url_credentials(url))  # the URL's own win, as in redis-py
            sentinel_auth = _sentinel_kwargs(sentinel_kwargs)
            self.client = _core.RedisClient(
                [_sentinel_url(s, sentinel_auth.get("ssl", False)) for s in sentinels],
                sentinel_tls=nodes_tls,
                sentinel_service=service,
                db=db,
                read_from_replicas=read_from_replicas,
                key_prefix=key_prefix,
                connect_timeout=connect_timeout,
                timeout=timeout,
                retry_after=retry_after,
                sentinel_password=sentinel_auth.get("password"),
                sentinel_username=sentinel_auth.get("username"),
                **auth,
            )
            return
        if sentinel_kwargs:
            raise ValueError("sentinel_kwargs is for Redis Sentinel: pass sentinels=[(host, port), ...] too")
        if not isinstance(url, str) and not (
            isinstance(url, (list, tuple)) and all(isinstance(u, str) for u in url)
        ):
            raise TypeError(
                f"RedisTier takes a redis:// URL (or a list of cluster seed URLs), not {type(url).__name__}"
            )
        nodes = [url] if isinstance(url, str) else list(url)
        if cluster:
            nodes = [n for u in nodes for n in u.split(",") if n]
        self.client = _core.RedisClient(
            nodes,
            replicas=list(replicas),
            cluster=cluster,
            read_from_replicas=read_from_replicas,
            key_prefix=key_prefix,
            connect_timeout=connect_timeout,
            timeout=timeout,
            retry_after=retry_after,
            **auth,
        )

    @classmethod
    def from_django(cls, alias: str, **kwargs: Any) -> RedisTier:
        """A tier over the servers of Django cache ``alias`` (a ``RedisCache``),
        in that alias's key space: as Django's ``RedisCache`` does, the first
        ``LOCATION`` takes the writes and reads go to the others (replicas)
        when there are any.

        django-redis's options are read too: ``PASSWORD``,
        ``CONNECTION_POOL_KWARGS`` (``password``, ``username`` and the
        ``ssl_*`` arguments above; the others are pool tuning and ignored), and for its ``SentinelClient`` (``LOCATION``
        ``redis://<service>/<db>``, ``SENTINELS``) ``SENTINEL_KWARGS``, with
        reads from the replicas as django-redis does (unless the
        ``LOCATION`` says ``?is_master=1``)."""
        from django.conf import settings

        conf = settings.CACHES[alias]
        location = conf["LOCATION"]
        if isinstance(location, str):
            location = location.split(",")
        location = [u.strip() for u in location if u.strip()]
        prefix = conf.get("KEY_PREFIX", "")
        version = conf.get("VERSION", 1)
        kwargs.setdefault("name", alias)
        kwargs.setdefault("key_prefix", f"{prefix}:{version}:")
        options = conf.get("OPTIONS", {})
        for arg, value in _django_redis_auth(options).items():
            kwargs.setdefault(arg, value)
        # django-redis's SentinelClient: LOCATION redis://<service>/<db>,
        # OPTIONS SENTINELS=[(host, port), ...].
        sentinels = options.get("SENTINELS")
        if sentinels:
            kwargs.setdefault("sentinels", list(sentinels))
            if options.get("SENTINEL_KWARGS"):
                kwargs.setdefault("sentinel_kwargs", dict(options["SENTINEL_KWARGS"]))
            url, is_master = _split_is_master(location[0])
            # SentinelClient reads from the replicas (is_master=0) unless told otherwise.
            kwargs.setdefault("read_from_replicas", is_master is not True)
            return cls(url, **kwargs)
        kwargs.setdefault("replicas", location[1:])
        return cls(location[0], **kwargs)

    @property
    def native_client(self) -> Optional[_core.RedisClient]:
        """The client the sync read driver calls directly (no Python per key),
        unless a subclass or the instance replaced the methods it stands for.
        A ``TieredCache`` looks at it once, when it is created."""
        return _native_client(self, RedisTier)

    def get_many_outcome(self, keys: Sequence[str]) -> tuple:
        """``(values, failed)``: one ``bytes`` or ``None`` per key, and the
        keys whose node failed or is down.

        >>> values, failed = RedisTier(nodes, cluster=True).get_many_outcome(["a", "b"])  # doctest: +SKIP
        """
        return self.client.get_many_outcome(keys)

    def get_many(self, keys: Sequence[str]) -> list:
        return self.client.get_many(keys)

    def set_many(self, entries: Sequence[Entry]) -> None:
        failed = self.client.set_many(entries)
        if failed and len(failed) == len(entries) and not self.client.any_up():
            raise OSError(f"redis did not store {len(failed)} item(s), e.g. {failed[0]!r}")

    def add_many(self, items: Sequence[Entry]) -> list:
        return self.client.add_many(items)

    def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            self.client.delete_many(keys)

    def clear(self) -> None:
        self.client.flush()

    def health(self) -> dict:
        """Per node: ``{"up", "failures", "failed_keys", "probes", "recoveries", "last_error"}``.

        >>> RedisTier("redis://127.0.0.1:6379/0").health()  # doctest: +SKIP
        {'redis://127.0.0.1:6379/0': {'up': True, 'failures': 0, ...}}
        """
        return self.client.health()

    def server_stats(self) -> dict:
        """What the server says about itself, and each node's health.

        >>> tier.server_stats()["redis_version"]  # doctest: +SKIP
        '7.0.15'
        """
        info = self.client.info()
        out = {
            k: info.get(k) for k in ("redis_version", "used_memory_human", "keyspace_hits", "keyspace_misses")
        }
        out["nodes"] = self.health()
        return out


def _sentinel_service(url: Any) -> tuple:
    """``(service, db)`` of ``redis://<service>/<db>`` (django-redis's
    Sentinel ``LOCATION``)."""
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        raise TypeError(f"with sentinels, RedisTier takes one redis://<service_name>/<db> URL, not {url!r}")
    parts = urlsplit(url)
    db = parts.path.strip("/") or "0"
    service = parts.netloc.rsplit("@", 1)[-1]  # as written: service names are case-sensitive
    if parts.scheme not in ("redis", "rediss") or not service or not db.isdigit():
        shown = parts._replace(netloc=service).geturl()  # without a password
        raise ValueError(f"with sentinels, the URL is redis://<service_name>/<db>, not {shown!r}")
    return service, int(db)


def _url_credentials(url: str) -> dict:
    """``{"username", "password"}`` as a URL gives them (percent-decoded)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    out = {}
    if parts.password is not None:
        out["password"] = unquote(parts.password)
    if parts.username:
        out["username"] = unquote(parts.username)
    return out


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"{what} {path!r} cannot be read: {exc}") from None


def _tls_args(
    ssl_ca_certs: Optional[str] = None,
    ssl_cert_reqs: Union[str, int, None] = None,
    ssl_check_hostname: Optional[bool] = None,
    ssl_certfile: Optional[str] = None,
    ssl_keyfile: Optional[str] = None,
) -> dict:
    """``RedisClient``'s TLS arguments from redis-py's ``ssl_*`` names (the
    files are read here: PEM)."""
    out: dict = {}
    if ssl_ca_certs is not None:
        out["tls_ca_certs"] = _read_pem(ssl_ca_certs, "ssl_ca_certs")
    if ssl_check_hostname is not None:
        out["tls_skip_hostname"] = not ssl_check_hostname
    if ssl_certfile is not None or ssl_keyfile is not None:
        if ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate)")
        out["tls_client_cert"] = _read_pem(ssl_certfile, "ssl_certfile")
        # redis-py's convention: the key may be in the certificate's file.
        out["tls_client_key"] = _read_pem(ssl_keyfile or ssl_certfile, "ssl_keyfile")
    cert_reqs = ssl_cert_reqs
    if cert_reqs is not None:
        import ssl

        names = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
        reqs = names.get(cert_reqs.lower()) if isinstance(cert_reqs, str) else cert_reqs
        if reqs not in names.values():
            raise ValueError(
                f"ssl_cert_reqs is 'none', 'optional' or 'required' (or ssl.CERT_*), not {cert_reqs!r}"
            )
        # A client checks an offered certificate either way: only "none" differs.
        out["tls_insecure"] = reqs == ssl.CERT_NONE
    return out


def _sentinel_kwargs(kwargs: Optional[dict]) -> dict:
    """The sentinels' credentials from django-redis's ``SENTINEL_KWARGS``
    (redis-py's ``sentinel_kwargs``); socket options are the tier's own."""
    kwargs = dict(kwargs or {})
    known = {"password", "username", "ssl"}
    unknown = sorted(k for k in kwargs if k not in known and not k.startswith("socket_"))
    if unknown:
        raise ValueError(
            f"sentinel_kwargs {', '.join(unknown)} not supported "
            "(only password, username, ssl; socket_* are ignored; the ssl_* options are the tier's)"
        )
    return {k: v for k, v in kwargs.items() if k in known}


def _django_redis_auth(options: dict) -> dict:
    """``RedisTier`` arguments from django-redis's ``OPTIONS``: ``PASSWORD``
    and the credentials and TLS entries of ``CONNECTION_POOL_KWARGS``."""
    pool = dict(options.get("CONNECTION_POOL_KWARGS") or {})
    names = (
        "password",
        "username",
        "ssl_ca_certs",
        "ssl_cert_reqs",
        "ssl_check_hostname",
        "ssl_certfile",
        "ssl_keyfile",
    )
    out = {k: pool[k] for k in names if pool.get(k) is not None}
    if options.get("PASSWORD"):
        out["password"] = options["PASSWORD"]
    return out


def _split_is_master(url: str) -> tuple:
    """django-redis's Sentinel ``?is_master=0|1``: ``(url without it, True/False/None)``."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [v for k, v in query if k == "is_master"]
    rest = urlencode([(k, v) for k, v in query if k != "is_master"])
    is_master = None if not flags else flags[-1].lower() in ("1", "true", "yes")
    return urlunsplit(parts._replace(query=rest)), is_master


def _sentinel_url(sentinel: Any, tls: bool = False) -> str:
    """A sentinel given as ``(host, port)``, ``"host:port"`` or a URL
    (``tls``: ``rediss://`` unless the URL says)."""
    scheme = "rediss" if tls else "redis"
    if isinstance(sentinel, str):
        return sentinel if "://" in sentinel else f"{scheme}://{sentinel}"
    host, port = sentinel
    return f"{scheme}://{host}:{int(port)}"


#: Bytes kept as they are in storage object names: lower-case letters,
#: digits, ``-``, ``_`` and ``.`` (never first) are valid and case-distinct on
#: every filesystem (NTFS, APFS, ext4) and object store (S3, GCS, Azure).
_NAME_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_.")
#: A full (not shortened) object name of this scheme.
_NAME_RE = re.compile(r"(?:[a-z0-9._-]|%[0-9A-F]{2})*")
#: Longest file name component written; longer names keep a readable prefix
#: and end in ``%-`` and a SHA-256 (``%-`` never appears in an escaped name).
_NAME_MAX = 200


def _escape_name(key: str) -> str:
    out = []
    for i, b in enumerate(key.encode("utf-8")):
        if b in _NAME_SAFE and not (i == 0 and b == 0x2E):
            out.append(chr(b))
        else:
            out.append(f"%{b:02X}")
    name = "".join(out)
    if len(name) > _NAME_MAX:
        import hashlib

        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        head = name[: _NAME_MAX - 42]
        cut = head.rfind("%", len(head) - 2)  # never split an escape
        if cut != -1:
            head = head[:cut]
        name = f"{head}%-{digest}"
    return name


def storage_name(prefix: str, key: str) -> str:
    """The object name of ``key`` in a storage tier, valid on every
    filesystem and object store (Windows included): every byte but
    lower-case letters, digits, ``-``, ``_`` and ``.`` is written ``%XX``
    (so ``|``, ``:``, ``%`` and upper-case letters never reach the storage,
    and two keys that differ only in case never share a file), and names
    past 200 characters end in ``%-`` and a digest. The mapping is injective
    and, below 200 characters, reversed by :func:`storage_key`.

    >>> storage_name("blocks", "outline|v3|course-v1%3AedX")
    'blocks/outline%7Cv3%7Ccourse-v1%253%41ed%58'
    """
    name = _escape_name(key)
    return f"{prefix.rstrip('/')}/{name}" if prefix else name


def storage_key(name: str) -> Optional[str]:
    """The key a storage object name (without the prefix) was written for,
    or None for a shortened name (its key is not recoverable) or a name that
    is not a stratacache object.

    >>> storage_key("outline%7Cv3%7Ccourse-v1%253%41ed%58")
    'outline|v3|course-v1%3AedX'
    """
    if not _NAME_RE.fullmatch(name):
        return None  # shortened, or not written by this scheme (an older name with `|`, say)
    out = bytearray()
    i = 0
    raw = name.encode("ascii", "replace")
    while i < len(raw):
        b = raw[i]
        if b == 0x25:
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
            except ValueError:
                return None
            i += 3
        else:
            out.append(b)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


class StorageTier(Tier):
    """A Django ``Storage`` (``FileSystemStorage``, django-storages' S3, ...)
    as the slowest, largest tier. Each object is an envelope that carries
    its own expiry (and its key carries its version); storages do not expire
    objects themselves, so ``manage.py stratacache_prune`` removes what has
    expired and what older versions left behind. Entries are not
    back-filled. Object names are safe on every filesystem and object store
    (:func:`storage_name`). Reads of a batch run in parallel threads
    (storages have no multi-get).

    ::

        tier = StorageTier(S3Storage(bucket_name="cache"), prefix="blocks")
        cache = TieredCache([MemcachedTier("127.0.0.1:11211"), tier])
    """

    kind = "storage"
    backfill = False
    supports_add = False

    def __init__(
        self,
        storage: Any,
        *,
        prefix: str = "stratacache",
        name: str = "storage",
        item_limit: Optional[int] = None,
        max_workers: int = 8,
    ) -> None:
        self.storage = storage
        self.prefix = prefix
        self.name = name
        self.item_limit = _item_limit(self.kind, item_limit)
        self.max_workers = max_workers
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None

    @classmethod
    def from_django(cls, storage: Any = None, **kwargs: Any) -> StorageTier:
        """A tier over a storage given as an alias of ``settings.STORAGES``
        (Django ≥ 4.2), a dotted class path, or a ``Storage`` instance."""
        if isinstance(storage, str):
            from django.core.files.storage import storages
            from django.utils.module_loading import import_string

            try:
                storage = storages[storage]
            except Exception:
                storage = import_string(storage)(**kwargs.pop("options", {}))
        return cls(storage, **kwargs)

    def _map(self, fn: Any, items: Sequence[Any]) -> list:
        if len(items) <= 1:
            return [fn(i) for i in items]
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.max_workers, thread_name_prefix="stratacache-storage"
            )
        return list(self._pool.map(fn, items))

    def _read(self, key: str) -> Optional[bytes]:
        name = storage_name(self.prefix, key)
        try:
            with self.storage.open(name, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "404" in str(exc) or "NoSuchKey" in str(exc) or "Not Found" in str(exc):
                return None
            raise
        except Exception as exc:
            # botocore's ClientError for a missing object
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _write(self, entry: Entry) -> None:
        from django.core.files.base import ContentFile

        key, value = entry[0], entry[1]
        name = storage_name(self.prefix, key)
        if not getattr(self.storage, "file_overwrite", False) and self.storage.exists(name):
            self.storage.delete(name)
        saved = self.storage.save(name, ContentFile(value))
        if saved != name:
            self.storage.delete(saved)
            raise OSError(f"the storage saved {name!r} as {saved!r}: let it overwrite files")

    def _delete(self, key: str) -> None:
        self.storage.delete(storage_name(self.prefix, key))

    def get_many(self, keys: Sequence[str]) -> list:
        return self._map(self._read, list(keys))

    def set_many(self, entries: Sequence[Entry]) -> None:
        self._map(self._write, list(entries))

    def add_many(self, items: Sequence[Entry]) -> list:
        raise NotImplementedError("a storage tier cannot hold leases; use memcached or Redis")

    def delete_many(self, keys: Sequence[str]) -> None:
        self._map(self._delete, list(keys))

    def names(self) -> list:
        """The object names (without the prefix) this tier holds: what
        ``stratacache_prune`` walks. ``storage_key(name)`` gives the key.

        >>> tier.names()  # doctest: +SKIP
        ['outline%7Cv3%7Ccourse-v1%253Aed%58']
        """
        try:
            _dirs, files = self.storage.listdir(self.prefix)
        except FileNotFoundError:
            return []
        return sorted(files)

    def read_head(self, name: str) -> Optional[bytes]:
        """The stored bytes of object ``name`` (without the prefix), or None
        if it is gone: ``stratacache_prune`` reads the envelope header (its
        expiry) from them."""
        full = f"{self.prefix.rstrip('/')}/{name}" if self.prefix else name
        try:
            with self.storage.open(full, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def delete_names(self, names: Sequence[str]) -> None:
        """Deletes objects by name (without the prefix)."""
        base = f"{self.prefix.rstrip('/')}/" if self.prefix else ""
        self._map(lambda n: self.storage.delete(base + n), list(names))

    def clear(self) -> None:
        self.delete_names(self.names())


#: What a Django cache tier hands to the core for a value some other code
#: stored under the key (a str, an int, a dict...): bytes that are not an
#: envelope, so the core refuses and counts it (``rejected``) and the loader
#: replaces it, instead of the read failing on a value that is not bytes.
FOREIGN_VALUE = b"\x00not a stratacache envelope"


def _bytes_or_foreign(value: Any) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return FOREIGN_VALUE


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Reads the pickle framing Django's ``RedisCache`` puts around our bytes,
    refusing any global: nothing can be called, so nothing runs."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} refused")


def _unframe_pickled_bytes(data: bytes) -> bytes:
    try:
        value = _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except Exception:
        return FOREIGN_VALUE
    return _bytes_or_foreign(value)


class _RawSerde:
    """pymemcache serde for reading what Django's ``PyMemcacheCache`` stored:
    bytes (flag 0) as they are, anything else (a pickle, a str, an int) as a
    value that is not an envelope, never unpickled."""

    def serialize(self, key: Any, value: Any) -> tuple:
        return value, 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> bytes:
        return value if flags == 0 else FOREIGN_VALUE


_raw_readers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _raw_reader(backend: Any) -> Optional[Callable[[list], list]]:
    """For Django's memcached (pymemcache) and Redis backends, a reader of
    the stored bytes that bypasses the backend's unpickling: those servers
    are shared, and the backend would unpickle whatever another writer put
    there before stratacache could refuse it. None for other backends."""
    if backend in _raw_readers:
        return _raw_readers[backend]
    reader = None
    name = type(backend).__name__
    make_key = getattr(backend, "make_and_validate_key", None)
    if make_key is not None and name == "PyMemcacheCache":
        client = backend._class(backend.client_servers, **{**backend._options, "serde": _RawSerde()})

        def reader(keys: list) -> list:
            full = [make_key(k) for k in keys]
            found = client.get_many(full)
            return [found.get(k) for k in full]

    elif make_key is not None and name == "RedisCache":

        def reader(keys: list) -> list:
            full = [make_key(k) for k in keys]
            values = backend._cache.get_client(full[0] if full else None).mget(full)
            return [None if v is None else _unframe_pickled_bytes(v) for v in values]

    _raw_readers[backend] = reader
    return reader


class DjangoCacheTier(Tier):
    """Any Django cache alias (``LocMemCache``, ``DatabaseCache``, a custom
    backend) through Django's cache API. Values are stored as bytes, but the
    backend may pickle them, so use it only for tiers no one else writes:
    prefer ``MemcachedTier`` / ``RedisTier`` for shared servers. Over
    Django's ``PyMemcacheCache`` and ``RedisCache`` reads bypass the
    backend's unpickling (a pickle another writer stored in the shared
    server is refused, never unpickled); other backends unpickle what they
    hold themselves."""

    kind = "generic"

    def __init__(
        self,
        alias: str = "default",
        *,
        name: Optional[str] = None,
        item_limit: Optional[int] = None,
    ):
        self.alias = alias
        self.name = name or alias
        self.item_limit = _item_limit(self.kind, item_limit)

    @property
    def cache(self) -> Any:
        from django.core.cache import caches

        return caches[self.alias]

    def get_many(self, keys: Sequence[str]) -> list:
        keys = list(keys)
        if not keys:
            return []
        cache = self.cache
        raw = _raw_reader(cache)
        if raw is not None:
            return raw(keys)
        found = cache.get_many(keys)
        return [_bytes_or_foreign(found.get(k)) for k in keys]

    def set_many(self, entries: Sequence[Entry]) -> None:
        by_ttl: dict = {}
        for key, value, ttl_ms in entries:
            by_ttl.setdefault(None if ttl_ms is None else ttl_ms / 1000, {})[key] = value
        for timeout, values in by_ttl.items():
            failed = self.cache.set_many(values, timeout)
            if failed:
                raise OSError(f"cache {self.alias!r} did not store {len(failed)} item(s)")

    def add_many(self, items: Sequence[Entry]) -> list:
        return [bool(self.cache.add(k, v, None if t is None else t / 1000)) for k, v, t in items]

    def delete_many(self, keys: Sequence[str]) -> None:
        self.cache.delete_many(list(keys))

    def clear(self) -> None:
        self.cache.clear()
