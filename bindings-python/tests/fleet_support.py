"""Fleets of real servers for the per-server health tests and benches: four
memcached servers and a three-master Redis Cluster, started by
scripts/servers.sh on a port base and state directory of their own (so a
server can be killed or frozen without touching the suite's servers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "scripts" / "servers.sh"


def _free_base(first: int) -> int:
    for base in range(first, first + 2000, 20):
        busy = False
        for port in range(base, base + 21):  # up to redis-t3 (base+20)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    busy = True
                    break
        if not busy:
            return base
    raise RuntimeError("no free port range for the fleet servers")


class Fleet:
    """``Fleet(*services)`` starts them; ``kill``/``freeze``/``thaw``/``restart``
    act on one; ``stop`` stops all."""

    def __init__(self, *services: str, first_port: int = 0) -> None:
        self.services = services
        default = int(os.environ.get("STRATACACHE_PORT_BASE", "21300")) + 500
        self.base = _free_base(first_port or default)
        self.dir = tempfile.mkdtemp(prefix="stratacache-fleet-")
        self.env = {
            **os.environ,
            "STRATACACHE_PORT_BASE": str(self.base),
            "STRATACACHE_SERVERS_DIR": self.dir,
        }
        self._run("start", *services)
        out = self._run("env").stdout
        self.vars = dict(
            line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line
        )

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SERVERS), *args], check=True, env=self.env, capture_output=True, text=True
        )

    @property
    def memcached(self) -> list:
        return self.vars["STRATACACHE_MEMCACHED_FLEET"].split(",")

    @property
    def redis_cluster(self) -> list:
        return self.vars["STRATACACHE_REDIS_CLUSTER"].split(",")

    @property
    def sentinels(self) -> list:
        """The sentinels as ``(host, port)`` pairs (django-redis's SENTINELS)."""
        return [
            (h, int(p))
            for h, p in (a.split(":") for a in self.vars["STRATACACHE_REDIS_SENTINELS"].split(","))
        ]

    def info(self, port: int, section: str, *cli: str, password: str = "") -> dict:
        """``INFO <section>`` of the Redis server at ``port`` (``cli``:
        redis-cli options, such as TLS ones)."""
        env = {**os.environ, "REDISCLI_AUTH": password} if password else None
        out = subprocess.run(
            ["redis-cli", *cli, "-p", str(port), "info", section],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

    def replicated(self, *cli: str, password: str = "") -> None:
        """Waits until the sentinel topology's replica (base + 11) holds
        every write its primary (base + 10) has taken: replication is
        asynchronous, and a fixed sleep was too short on a busy machine."""
        primary = self.info(self.base + 10, "replication", *cli, password=password)
        deadline = time.monotonic() + 10
        while True:
            replica = self.info(self.base + 11, "replication", *cli, password=password)
            if int(replica.get("slave_repl_offset", -1)) >= int(primary["master_repl_offset"]):
                return
            assert time.monotonic() < deadline, "the replica did not catch up within 10 s"
            time.sleep(0.02)

    def pid(self, service: str) -> int:
        return int(Path(self.dir, f"{service}.pid").read_text().strip())

    def kill(self, service: str) -> None:
        os.kill(self.pid(service), signal.SIGKILL)

    def freeze(self, service: str) -> None:
        os.kill(self.pid(service), signal.SIGSTOP)

    def thaw(self, service: str) -> None:
        os.kill(self.pid(service), signal.SIGCONT)

    def restart(self, service: str) -> None:
        self._run("start", service)

    def stop(self) -> None:
        for s in (
            "memcached1",
            "memcached2",
            "memcached3",
            "memcached4",
            "redis-c1",
            "redis-c2",
            "redis-c3",
            "redis",
            "redis-replica",
            "redis-sp",
            "redis-sr",
        ):
            try:
                self.thaw(s)
            except (OSError, ValueError):
                pass
        self._run("stop", *self.services)
