"""The plan's multi-server deployment, run whole on this machine in network namespaces.

Namespaces named after the plan's servers (app, media, db, chat1, chat2) and a client, on a
"public" bridge and a private one (the VPC), with the inventory's addresses. Every file a
server gets is rendered from the Ansible inventory and roles (deploy/render.py), every
service starts with its systemd unit's ExecStart and is ready when its ExecStartPost says
so, nftables applies each server's rendered ruleset, Nginx runs on `app` with its rendered
site. PostgreSQL 15 and Redis 7 run in `db` on its private address, set up by the db role's
files. From `client` (public addresses only): ffmpeg publishes RTMP to the media server,
HTTP-FLV and HLS play through Nginx, two socket.io-clients on different chat nodes chat
through Redis and keep chatting after one node is killed, a tus upload through Nginx becomes
a ready video, the database is unreachable while `app` reaches it, and a nightly backup
brings the database back after it is dropped. Everything is torn down, also on failure.

Needs root (network namespaces, nftables), as CI has.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ROOT, SECRETS, bin_dir, render  # noqa: E402
from test_nginx import self_signed  # noqa: E402

SERVERS = ["db", "app", "media", "chat1", "chat2"]
PREFIX = f"vpt{os.getpid()}"
SITE = "videopick.example"
MEDIA_NAME = f"media.{SITE}"
# The client's public addresses (Nginx keeps a chat client on one node by its address).
CLIENT_ADDRS = [f"203.0.113.{i}" for i in range(100, 116)]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def ns(host: str) -> str:
    return f"{PREFIX}-{host}"


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{shlex.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def in_ns(host: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns(host), *cmd, **kw)


def wait(what: str, cond, secs: float = 30, every: float = 0.2, why=lambda: ""):
    end = time.monotonic() + secs
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}\n{why()}")
        time.sleep(every)


class Topology:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        hosts = render.host_groups(yaml.safe_load((render.ANSIBLE / "inventory/hosts.yml").read_text()))
        self.public = {h: hosts[h][1]["ansible_host"] for h in SERVERS}
        self.private = {h: hosts[h][1]["private_ip"] for h in SERVERS}
        # PostgreSQL runs as `postgres`, which cannot enter pytest's private tmp: its files
        # go to a directory of its own.
        # (Made by database(); removed by down(), or by the next run if this one is killed.)
        self.pgdir = Path(f"/tmp/{PREFIX}-pg")
        self.bins = bin_dir()
        self.cert, self.key = self_signed(tmp, SITE)
        self.extra = {
            **SECRETS,
            "site_name": SITE,
            "bin_dir": str(self.bins),
            "storage_dir": str(tmp / "media-storage"),
            "app_data_dir": str(tmp / "app-data"),
            "web_dir": str(tmp / "web"),
            "tls_certificate": str(self.cert),
            "tls_certificate_key": str(self.key),
            "nginx_cache_dir": str(tmp / "nginx-cache"),
            "redis_dir": str(tmp / "redis"),
            "backup_dir": str(self.pgdir / "backups"),
            "node_exporter_textfile_dir": str(self.pgdir / "textfile"),
            "postgres_shared_buffers": "128MB",
            "postgres_effective_cache_size": "512MB",
            "redis_maxmemory": "256mb",
            "transcode_workers": 1,
            "prometheus_rules_dir": str(tmp / "prometheus-rules"),
        }
        for d in ("media-storage", "app-data", "web", "nginx-cache", "redis", "logs", "prometheus-rules",
                  "prometheus-data"):
            (tmp / d).mkdir(exist_ok=True)
        (tmp / "web" / "index.html").write_text("<!doctype html><title>VideoPick</title>")
        self.roots = {}
        for h in SERVERS:
            self.roots[h] = tmp / f"root-{h}"
            render.render(h, self.roots[h], self.extra)

    # --- the network ---------------------------------------------------------------------
    def network(self):
        sw = ns("sw")
        sh("ip", "netns", "add", sw)
        for bridge in ("pub", "priv"):
            sh("ip", "-n", sw, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", sw, "link", "set", bridge, "up")
        for h in SERVERS + ["client"]:
            sh("ip", "netns", "add", ns(h))
            sh("ip", "-n", ns(h), "link", "set", "lo", "up")
        links = [(h, "eth0", "pub", [self.public[h]]) for h in SERVERS]
        links += [(h, "eth1", "priv", [self.private[h]]) for h in SERVERS]
        links.append(("client", "eth0", "pub", CLIENT_ADDRS))
        for h, dev, bridge, addrs in links:
            peer = f"{h}-{bridge}"
            sh("ip", "link", "add", dev, "netns", ns(h), "type", "veth", "peer", "name", peer, "netns", sw)
            sh("ip", "-n", sw, "link", "set", peer, "master", bridge, "up")
            for a in addrs:
                sh("ip", "-n", ns(h), "addr", "add", f"{a}/24", "dev", dev)
            sh("ip", "-n", ns(h), "link", "set", dev, "up")
        # The client finds the site (Nginx on `app`) and the media server by name, as a
        # viewer's resolver would (ip netns exec binds /etc/netns/<ns>/hosts).
        etc = Path("/etc/netns") / ns("client")
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(
            f"127.0.0.1 localhost\n{self.public['app']} {SITE}\n{self.public['media']} {MEDIA_NAME}\n"
        )

    def firewall(self):
        for h in SERVERS:
            in_ns(h, "nft", "-f", str(self.roots[h] / "etc/nftables.conf"))

    # --- processes -----------------------------------------------------------------------
    def spawn(self, name: str, host: str, cmd: list[str], user: str | None = None, env: dict | None = None):
        log = self.tmp / "logs" / f"{name}.log"
        self.logs[name] = log
        full = ["ip", "netns", "exec", ns(host)] + (["runuser", "-u", user, "--"] if user else []) + cmd
        self.procs[name] = subprocess.Popen(
            full, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})},
        )

    def kill(self, name: str, sig=signal.SIGKILL):
        p = self.procs.get(name)
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def tail(self, *names: str) -> str:
        out = []
        for n in names or self.logs:
            if n in self.logs and self.logs[n].exists():
                lines = self.logs[n].read_text(errors="replace").splitlines()[-25:]
                out.append(f"--- {n} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def unit(self, host: str, name: str, instance: str | None = None) -> tuple[list[str], list[str]]:
        """ExecStart and ExecStartPost of `host`'s rendered unit, its rendered files' paths
        taken from the rendered root."""
        text = (self.roots[host] / "etc/systemd/system" / name).read_text()
        if instance:
            text = text.replace("%i", instance)

        def args(key):
            line = next((l for l in text.splitlines() if l.startswith(key + "=")), f"{key}=")
            return [str(self.roots[host] / a.lstrip("/")) if a.startswith("/") and (self.roots[host] / a.lstrip("/")).exists() else a
                    for a in shlex.split(line.split("=", 1)[1])]
        return args("ExecStart"), args("ExecStartPost")

    def start_unit(self, host: str, unit: str, instance: str | None = None):
        start, ready = self.unit(host, unit, instance)
        name = instance or host
        self.spawn(name, host, start, env={"RUST_LOG": "info"})
        r = in_ns(host, *ready, check=False, timeout=90)
        assert r.returncode == 0, f"{name} not ready ({shlex.join(ready)})\n{self.tail(name)}"

    def database(self):
        """PostgreSQL and Redis in `db`, from the db role's rendered files."""
        root = self.roots["db"]
        pg = self.pgdir
        pg.mkdir(mode=0o755)
        for d in ("data", "sock", "backups", "textfile"):
            (pg / d).mkdir()
        conf = root / "etc/postgresql/15/main"
        for f in (conf / "conf.d/videopick.conf", conf / "pg_hba.conf", conf / "videopick-init.sql",
                  root / str(self.bins).lstrip("/") / "videopick-backup",
                  root / str(self.bins).lstrip("/") / "videopick-restore"):
            shutil.copy(f, pg / f.name)
        sh("chown", "-R", "postgres:postgres", str(pg))
        for f in ("videopick-backup", "videopick-restore"):
            (pg / f).chmod(0o755)
        in_ns("db", "runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(pg / "data"),
              "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth=peer")
        shutil.copy(pg / "pg_hba.conf", pg / "data/pg_hba.conf")
        with (pg / "data/postgresql.conf").open("a") as f:
            f.write(f"\ninclude '{pg / 'videopick.conf'}'\n")
        sh("chown", "-R", "postgres:postgres", str(pg / "data"))
        self.spawn("postgres", "db", [str(PG_BIN / "postgres"), "-D", str(pg / "data"), "-k", str(pg / "sock")],
                   user="postgres")
        wait("PostgreSQL on the private address", lambda: in_ns(
            "db", "pg_isready", "-q", "-h", self.private["db"], check=False).returncode == 0, 30,
            why=lambda: self.tail("postgres"))
        self.psql_file(pg / "videopick-init.sql")
        self.spawn("redis", "db", ["redis-server", str(root / "etc/redis/redis.conf"), "--supervised", "no"])
        wait("Redis on the private address", lambda: in_ns(
            "db", "redis-cli", "-h", self.private["db"], "--no-auth-warning", "-a", SECRETS["vault_redis_password"],
            "ping", check=False).stdout.strip() == "PONG", 15, why=lambda: self.tail("redis"))

    def as_postgres(self, *cmd: str, env: dict | None = None, check: bool = True):
        envs = [f"{k}={v}" for k, v in {"PGHOST": str(self.pgdir / "sock"), **(env or {})}.items()]
        # From a directory postgres may not enter, as after `sudo -u postgres` from root's
        # home: the scripts must not depend on it.
        return in_ns("db", "runuser", "-u", "postgres", "--", "env", *envs, *cmd, check=check, cwd=self.tmp)

    def psql_file(self, path: Path):
        self.as_postgres("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(path))

    def nginx(self):
        d = self.tmp / "nginx"
        d.mkdir()
        site = self.roots["app"] / "etc/nginx/conf.d/videopick.conf"
        temps = "\n".join(f"    {k}_temp_path {d / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        main = d / "nginx.conf"
        # Debian's nginx.conf in short: the site is included in its http block.
        main.write_text(
            f"user root;\npid {d / 'nginx.pid'};\nerror_log {d / 'error.log'} warn;\nworker_processes 1;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{\n    access_log {d / 'access.log'};\n{temps}\n    include {site};\n}}\n"
        )
        self.logs["nginx-error"] = d / "error.log"
        self.logs["nginx-access"] = d / "access.log"
        self.spawn("nginx", "app", ["nginx", "-p", str(d), "-c", str(main), "-g", "daemon off;"])
        wait("Nginx on 443", lambda: in_ns("app", "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                          f"https://127.0.0.1/healthz", check=False).stdout not in ("", "000"),
             15, why=lambda: self.tail("nginx", "nginx-error"))

    def monitoring(self):
        """The exporters (Debian's packages, with the db role's settings) and Prometheus on
        `db` with the monitoring role's configuration and rules."""
        for h in SERVERS:
            # Debian's defaults: ARGS="" (all addresses, :9100); the firewall keeps it private.
            # db's also reads the backup's metric (the role's textfile directory).
            extra = [f"--collector.textfile.directory={self.extra['node_exporter_textfile_dir']}"] if h == "db" else []
            self.spawn(f"node-exporter-{h}", h, ["prometheus-node-exporter", *extra])
        for exporter in ("postgres", "redis"):
            name = f"prometheus-{exporter}-exporter"
            env = {}
            for line in (self.roots["db"] / "etc/default" / name).read_text().splitlines():
                if "=" in line and not line.startswith("#"):
                    k, _, v = line.partition("=")
                    env[k] = shlex.split(v)[0] if v.strip() else ""
            args = shlex.split(env.pop("ARGS", ""))
            self.spawn(name, "db", [f"/usr/bin/{name}", *args], env=env)
        shutil.copy(render.ANSIBLE / "roles/monitoring/files/videopick.rules.yml",
                    self.tmp / "prometheus-rules/videopick.rules.yml")
        self.spawn("prometheus", "db", [
            "prometheus", f"--config.file={self.roots['db'] / 'etc/prometheus/prometheus.yml'}",
            f"--storage.tsdb.path={self.tmp / 'prometheus-data'}",
            f"--web.listen-address={self.private['db']}:9090"])

    def up(self):
        self.network()
        self.firewall()
        self.database()
        self.start_unit("app", "app-server.service")
        self.start_unit("media", "media-server.service")
        self.start_unit("chat1", "chat-server@.service", "chat1")
        self.start_unit("chat2", "chat-server@.service", "chat2")
        self.nginx()
        self.monitoring()

    def down(self):
        for name in reversed(list(self.procs)):
            # PostgreSQL by its fast shutdown, which also removes its shared memory.
            self.kill(name, signal.SIGINT if name == "postgres" else signal.SIGKILL)
        for h in SERVERS + ["client", "sw"]:
            subprocess.run(["ip", "netns", "del", ns(h)], capture_output=True)
        shutil.rmtree(Path("/etc/netns") / ns("client"), ignore_errors=True)
        shutil.rmtree(self.pgdir, ignore_errors=True)

    # --- the client's side ---------------------------------------------------------------
    def client(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return in_ns("client", *cmd, **kw)

    def status(self, url: str) -> str:
        """The HTTP status the client gets for `url` ("000": no answer)."""
        return self.client("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url, check=False).stdout

    def prometheus(self, path: str) -> dict:
        """Prometheus' HTTP API on `db` (`path` as "query?query=up"), read over the private
        network; {} while it does not answer."""
        endpoint, *params = path.split("?")
        r = in_ns("db", "curl", "-s", "--max-time", "5", "-G",
                  f"http://{self.private['db']}:9090/api/v1/{endpoint}",
                  *sum((["--data-urlencode", q] for q in params), []), check=False)
        return json.loads(r.stdout) if r.stdout.startswith("{") else {}

    def api(self, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
        cmd = ["curl", "-sk", "-X", method, f"https://{SITE}{path}", "-w", "\n%{http_code}", "--max-time", "20"]
        if token:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        r = self.client(*cmd, check=False)
        text, _, code = r.stdout.rpartition("\n")
        try:
            doc = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            doc = {"raw": text}
        return int(code or 0), doc


def _stale():
    """What an earlier run left when it was killed before its teardown: its namespaces'
    processes, the namespaces, their /etc/netns files and its PostgreSQL directory."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.match(r"vpt(\d+)-", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
    for d in Path("/tmp").glob("vpt*-pg"):
        m = re.fullmatch(r"vpt(\d+)-pg", d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the topology test needs root (network namespaces, nftables), as CI has")
    for tool in ("ip", "nft", "nginx", "ffmpeg", "redis-server", "runuser", "curl", "node", "prometheus",
                 "prometheus-node-exporter", "prometheus-postgres-exporter", "prometheus-redis-exporter"):
        assert shutil.which(tool), f"{tool} is needed"
    assert (PG_BIN / "postgres").exists(), "PostgreSQL 15 (Debian: postgresql-15) is needed"
    _stale()
    t = Topology(tmp_path_factory.mktemp("topology"))
    try:
        t.up()
        yield t
    finally:
        t.down()
        leftovers = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
                     .stdout.split() if n.startswith(PREFIX)]
        assert not leftovers, f"namespaces left behind: {leftovers}"


@pytest.fixture(scope="module")
def account(topo):
    """A broadcaster (with a channel) and a viewer, signed up through Nginx."""
    st, alice = topo.api("POST", "/api/v1/auth/signup", body={
        "username": "alice", "email": "alice@example.com", "password": "correct horse battery"})
    assert st == 201, (st, alice, topo.tail("app", "nginx-error"))
    st, bob = topo.api("POST", "/api/v1/auth/signup", body={
        "username": "bob", "email": "bob@example.com", "password": "correct horse battery"})
    assert st == 201, (st, bob)
    st, ch = topo.api("POST", "/api/v1/channels", alice["token"], {"slug": "topology", "name": "토폴로지"})
    assert st == 201, (st, ch)
    return {"alice": alice["token"], "bob": bob["token"], "key": ch["key"]["stream_key"], "slug": "topology"}


def test_database_reachable_from_the_private_network_only(topo):
    db_pub, db_priv = topo.public["db"], topo.private["db"]
    pw = SECRETS["vault_redis_password"]
    # `app` reaches PostgreSQL (with the password, as the app does) and Redis privately.
    r = in_ns("app", "env", f"PGPASSWORD={SECRETS['vault_postgres_password']}", "psql", "-X", "-tA",
              "-h", db_priv, "-U", "videopick", "-d", "videopick", "-c", "SELECT 1", check=False)
    assert r.stdout.strip() == "1", r.stderr
    r = in_ns("app", "redis-cli", "-h", db_priv, "--no-auth-warning", "-a", pw, "ping", check=False)
    assert r.stdout.strip() == "PONG", r.stderr
    # Redis wants its password even on the private network.
    assert "NOAUTH" in in_ns("app", "redis-cli", "-h", db_priv, "ping", check=False).stdout
    # The client cannot: the firewall drops it (a timeout, not a refusal), on every port of db.
    for port in (5432, 6379, 9187, 9121, 9090):
        r = topo.client("curl", "-s", "--connect-timeout", "2", f"telnet://{db_pub}:{port}", check=False,
                        input="")
        assert r.returncode == 28, f"client -> db:{port}: curl exit {r.returncode} (28 = dropped)"
    # Nor the app server's private port, which the media server's hooks use, nor any
    # server's node exporter.
    r = topo.client("curl", "-s", "--connect-timeout", "2", f"http://{topo.public['app']}:8080/readyz", check=False)
    assert r.returncode == 28, f"client -> app:8080: curl exit {r.returncode}"
    for h in SERVERS:
        r = topo.client("curl", "-s", "--connect-timeout", "2", f"http://{topo.public[h]}:9100/metrics", check=False)
        assert r.returncode == 28, f"client -> {h}:9100: curl exit {r.returncode}"
    # Nor the private network at all.
    r = topo.client("curl", "-s", "--connect-timeout", "2", f"telnet://{db_priv}:5432", check=False, input="")
    assert r.returncode != 0
    # The public ports of the plan answer.
    assert topo.status(f"https://{SITE}/api/v1/live") == "200"
    assert topo.status(f"http://{SITE}/") == "301", "plain HTTP moves to TLS"


def test_prometheus_on_db_scrapes_every_role_and_exporter(topo):
    get = topo.prometheus

    def all_up():
        active = get("targets").get("data", {}).get("activeTargets", [])
        return active if active and all(t["health"] == "up" for t in active) else None

    def summary():
        active = get("targets").get("data", {}).get("activeTargets", [])
        return "\n".join(f"{t['scrapeUrl']}: {t['health']} {t['lastError']}" for t in active) + topo.tail("prometheus")
    # Prometheus spreads first scrapes over the 15 s interval.
    active = wait("every target up", all_up, 60, 1, why=summary)
    by_job: dict[str, int] = {}
    for t in active:
        by_job[t["labels"]["job"]] = by_job.get(t["labels"]["job"], 0) + 1
    assert by_job == {"videopick-media": 1, "videopick-app": 1, "videopick-chat": 2, "node": 5,
                      "postgres": 1, "redis": 1}, by_job
    # While the public reaches none of the metrics: 404 on the media server's and the chat
    # nodes' public ports (metrics_allow) and through Nginx.
    for url in (f"http://{MEDIA_NAME}:8000/metrics", f"http://{topo.public['chat1']}:3001/metrics",
                f"http://{topo.public['chat2']}:3001/metrics", f"https://{SITE}/metrics"):
        got = topo.status(url)
        assert got == "404", (url, got)
    # The exporters reach their databases (with the role's credentials).
    for q in ("pg_up", "redis_up"):
        res = get(f"query?query={q}")["data"]["result"]
        assert [r["value"][1] for r in res] == ["1"], (q, res)
    # The alert rules are loaded and every one has evaluated without error.
    def rules():
        got = [r for g in get("rules").get("data", {}).get("groups", []) for r in g["rules"]]
        return got if got and all(r["health"] == "ok" for r in got) else None
    got = wait("every alert rule evaluated", rules, 40, 1, why=lambda: json.dumps(get("rules"))[:2000])
    names = {r["name"] for r in got}
    assert {"VideoPickRoleDown", "DatabaseDown", "BackupMissing", "ChatBusDown"} <= names, names


def test_live_rtmp_in_http_flv_and_hls_out_through_nginx(topo, account):
    slug = account["slug"]
    url = f"rtmp://{MEDIA_NAME}:1935/live/{account['key']}"
    publisher = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                 "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                 "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                 "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
                 "-c:a", "aac", "-t", "60", "-f", "flv", url]
    topo.spawn("publisher", "client", publisher)
    try:
        wait("the channel live in the app", lambda: any(
            i.get("slug") == slug for i in topo.api("GET", "/api/v1/live")[1].get("items", [])), 30,
            why=lambda: topo.tail("publisher", "media", "app"))
        # A viewer through Nginx is counted by the media server and told to the app.
        topo.spawn("viewer", "client", ["ffmpeg", "-hide_banner", "-loglevel", "error", "-t", "20",
                                        "-i", f"https://{SITE}/live/{slug}.flv", "-f", "null", "-"])
        wait("the app to count the viewer", lambda: (topo.api("GET", f"/api/v1/channels/{slug}")[1].get("live")
                                                     or {}).get("viewers", 0) >= 1, 30,
             why=lambda: topo.tail("viewer", "media"))
        topo.kill("viewer")
        for path in (f"/live/{slug}.flv", f"/live/{slug}.m3u8"):
            r = topo.client("ffmpeg", "-hide_banner", "-nostats", "-t", "3", "-i", f"https://{SITE}{path}",
                            "-map", "0:v", "-f", "null", "-", "-progress", "pipe:1", check=False, timeout=60)
            frames = [int(m) for m in re.findall(r"^frame=(\d+)$", r.stdout, re.M)]
            assert r.returncode == 0 and frames and frames[-1] >= 50, (path, r.stderr[-2000:], topo.tail("nginx-error"))
            assert "320x240" in r.stderr, path
        # Low-latency HLS through Nginx: a part (fMP4) comes through, and a blocking reload for
        # the next part passes through (its query is its own cache key) and answers once the
        # part exists, with it listed.
        def last_part(text: str) -> tuple[int, int, str]:
            uri = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)[-1]
            m = re.search(r"-(\d+)\.(\d+)\.m4s$", uri)
            return int(m[1]), int(m[2]), uri
        # (The newest playlist from the media server itself: Nginx's copy may be a second old.)
        playlist = topo.client("curl", "-s", f"http://{MEDIA_NAME}:8000/live/{slug}.m3u8").stdout
        msn, part, uri = last_part(playlist)
        r = topo.client("sh", "-c", f"curl -sk https://{SITE}/live/{uri} | head -c 8 | tail -c 4")
        assert r.stdout == "moof", (uri, r.stdout)
        started = time.monotonic()
        r = topo.client("curl", "-sk", "--max-time", "10", "-w", "\n%{http_code}",
                        f"https://{SITE}/live/{slug}.m3u8?_HLS_msn={msn}&_HLS_part={part + 2}")
        waited = time.monotonic() - started
        body, _, status = r.stdout.rpartition("\n")
        assert status == "200" and last_part(body)[:2] > (msn, part + 1), (msn, part, body[-400:])
        # Part + 2 comes at least a part's duration (1/3 s) after the newest: it waited for it.
        assert 0.2 < waited < 5, f"the blocking reload took {waited:.2f} s"
        # Nginx streams HTTP-FLV and micro-caches playlists with the security headers on.
        r = topo.client("curl", "-sk", "-D", "-", "-o", "/dev/null", f"https://{SITE}/live/{slug}.m3u8")
        assert re.search(r"^strict-transport-security:", r.stdout, re.M | re.I), r.stdout
    finally:
        topo.kill("publisher")


def test_chat_across_nodes_through_redis_and_failover(topo, account):
    tokens = {}
    for user in ("alice", "bob"):
        st, t = topo.api("POST", "/api/v1/chat/token", account[user], {"channel": account["slug"]})
        assert st == 200, (st, t)
        tokens[user] = t["token"]
        room = t["room"]
    def gauge(node: str):
        # From `db`, on the private network: the chat nodes' /metrics answer nobody else.
        r = in_ns("db", "curl", "-s", "--max-time", "2", f"http://{topo.private[node]}:3001/metrics", check=False)
        m = re.search(r"^videopick_chat_connections (\S+)$", r.stdout, re.M)
        return int(float(m[1])) if m else None
    p = subprocess.Popen(
        ["ip", "netns", "exec", ns("client"), "node", str(ROOT / "clients/js/chat-failover.mjs"),
         f"https://{SITE}", room, json.dumps(tokens), *CLIENT_ADDRS],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, killed = "", False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            line = line.strip()
            if line == "GAUGES":
                answer = json.dumps([gauge("chat1"), gauge("chat2")])
            elif line == "KILL":
                topo.kill("chat1")
                killed, answer = True, "killed"
            else:
                out = line
                break
            p.stdin.write(answer + "\n")
            p.stdin.flush()
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert killed and out.startswith("{"), (out, err if "err" in locals() else "", topo.tail("chat1", "chat2"))
    res = json.loads(out)
    assert "error" not in res, (res, err, topo.tail("chat2", "nginx-error"))
    assert res["before"] == [True, True] and res["failover"] == [True, True], res
    for who in ("alice", "bob"):
        got = res["received"][who]
        for text in ("from node 1", "from node 2", "after failover (alice)", "after failover (bob)"):
            assert got.count(text) == 1, (who, got)
    # Both clients on chat2 now.
    assert res["afterNode2"] == 2, res


def test_tus_upload_through_nginx_becomes_a_ready_video(topo, account):
    clip = topo.tmp / "clip.mp4"
    sh("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
       "-f", "lavfi", "-i", "sine", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
       "-shortest", str(clip))
    r = topo.client("env", "NODE_TLS_REJECT_UNAUTHORIZED=0", f"TUS_TOKEN={account['alice']}",
                    'TUS_METADATA={"title":"토폴로지 업로드"}',
                    "node", str(ROOT / "clients/js/tus-upload.mjs"), f"https://{SITE}/files/", str(clip), "65536",
                    check=False, timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr, topo.tail("media", "nginx-error"))
    assert r.stdout.strip().startswith(f"https://{SITE}/files/"), r.stdout

    def ready():
        st, doc = topo.api("GET", "/api/v1/me/videos", account["alice"])
        vids = [v for v in doc.get("items", []) if v.get("source") == "upload"]
        assert not any(v["state"] == "failed" for v in vids), vids
        return vids[0] if vids and vids[0]["state"] == "ready" else None
    video = wait("the upload to become a ready video", ready, 120, 0.5, why=lambda: topo.tail("media", "app"))
    assert video["title"] == "토폴로지 업로드"
    # Its playlist plays through Nginx.
    assert topo.status(f"https://{SITE}{video['playlist']}") == "200", video


def test_nightly_backup_restores_a_dropped_database(topo, account):
    def state():
        ch = topo.api("GET", "/api/v1/channels/topology")
        vids = topo.api("GET", "/api/v1/me/videos", account["alice"])
        return ch[0], ch[1].get("name"), vids[0], sorted((v["id"], v["title"], v["state"]) for v in vids[1].get("items", []))
    before = state()
    assert before[0] == 200 and before[2] == 200 and before[3], before
    # The backup service's command, as its unit runs it (user postgres).
    start, _ = topo.unit("db", "videopick-backup.service")
    unit = (topo.roots["db"] / "etc/systemd/system/videopick-backup.service").read_text()
    assert "User=postgres" in unit and "ReadWritePaths=" + topo.extra["backup_dir"] in unit
    r = topo.as_postgres(str(topo.pgdir / Path(start[0]).name))
    dumps = sorted((topo.pgdir / "backups").glob("videopick-*.dump"))
    assert len(dumps) == 1, (r.stdout, r.stderr)
    assert not list((topo.pgdir / "backups").glob(".*partial")), "a partial dump was left"
    # The database is lost.
    topo.as_postgres("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres",
                     "-c", "DROP DATABASE videopick WITH (FORCE)")
    # (The channel's page may come from the Redis cache a while; the user's videos do not.)
    wait("the API to notice", lambda: state()[2] != 200, 20, why=lambda: f"{state()}\n{topo.tail('app')}")
    # Restored from the dump: the API shows the same channels and videos.
    r = topo.as_postgres(str(topo.pgdir / "videopick-restore"), str(dumps[0]))
    assert "restored" in r.stdout, r
    wait("the same channels and videos", lambda: state() == before, 30,
         why=lambda: f"{before}\n{state()}\n{topo.tail('app')}")
    # Restored again, now over the live database the app and media servers are connected
    # to: their sessions are ended, the databases swapped, and they reconnect.
    r = topo.as_postgres(str(topo.pgdir / "videopick-restore"), str(dumps[0]))
    assert "previous database is kept as videopick_before_" in r.stdout, r
    wait("the same channels and videos after the swap", lambda: state() == before, 30,
         why=lambda: f"{before}\n{state()}\n{topo.tail('app')}")
    # The backup's success reached Prometheus (textfile -> node exporter on db -> scrape).
    def recorded():
        res = topo.prometheus("query?query=videopick_backup_last_success_timestamp_seconds")
        res = res.get("data", {}).get("result", [])
        return res and abs(float(res[0]["value"][1]) - time.time()) < 300
    wait("Prometheus to record the backup", recorded, 40, 1, why=lambda: topo.tail("prometheus"))
