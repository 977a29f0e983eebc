"""Monitoring: the Prometheus configuration Ansible installs passes `promtool check config`,
the alert rules `promtool check rules` and their unit tests `promtool test rules`, and every
query of the Grafana dashboard names metrics that the real `/metrics` of our running
binaries (media-server, app-server, chat-server on the Redis bus) expose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SECRETS, bin_dir, render  # noqa: E402

MONITORING = render.ANSIBLE / "roles" / "monitoring"
RULES = MONITORING / "files" / "videopick.rules.yml"
DASHBOARD = MONITORING / "files" / "videopick-dashboard.json"
HERE = Path(__file__).resolve().parent


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert shutil.which("promtool"), "promtool (Debian package prometheus) is needed"
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=HERE / "prometheus")


def test_prometheus_config(ansible_dir, tmp_path):
    extra = {**SECRETS, "prometheus_rules_dir": str(MONITORING / "files")}
    render.render("db", tmp_path, extra, ansible_dir)
    config = tmp_path / "etc/prometheus/prometheus.yml"
    assert config.exists(), "the monitoring role is not on the database server"
    r = promtool("check", "config", str(config))
    assert r.returncode == 0, r.stdout + r.stderr
    text = config.read_text()
    # Every role and exporter is scraped over the private network.
    for target in ("10.40.0.20:8000", "10.40.0.10:8080", "10.40.0.40:3001", "10.40.0.41:3001",
                   "10.40.0.30:9187", "10.40.0.30:9121", "10.40.0.20:9100"):
        assert target in text, target


def test_alert_rules_and_their_unit_tests():
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    r = promtool("test", "rules", "videopick.rules.test.yml")
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    names = set(re.findall(r"alert: (\w+)", RULES.read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (HERE / "prometheus" / "videopick.rules.test.yml").read_text()))
    assert names == tested, f"alerts without a unit test: {names - tested}"


def start(cmd: list[str], marker: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith(marker):
            return p, line.split("http://", 1)[1].strip()
    p.kill()
    pytest.fail(f"{cmd[0]} did not start")


def metric_names(addr: str) -> set[str]:
    # One request first: a family with no sample yet (the request histogram) is not listed.
    urllib.request.urlopen(f"http://{addr}/healthz", timeout=10).read()
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "info": ["_info"]}
            names.update(name + s for s in suffixes.get(kind, []))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_dashboard_queries_name_metrics_our_binaries_expose(tmp_path):
    b = bin_dir()
    procs = []
    try:
        media, media_addr = start(
            [str(b / "media-server"), "--storage", str(tmp_path / "media"), "--rtmp", "127.0.0.1:0",
             "--http", "127.0.0.1:0", "--transcode-workers", "1"], "media-server: listening on")
        procs.append(media)
        app, app_addr = start(
            [str(b / "app-server"), "--listen", "127.0.0.1:0", "--data", str(tmp_path / "app")],
            "app-server: listening on")
        procs.append(app)
        chat, chat_addr = start(
            [str(b / "chat-server"), "--listen", "127.0.0.1:0", "--jwt-secret", "s",
             "--redis", "redis://127.0.0.1:6379/", "--redis-prefix", f"dash-{uuid.uuid4().hex[:8]}:"],
            "chat-server: listening on")
        procs.append(chat)
        time.sleep(1)  # the chat's bus connects
        exposed = set().union(*(metric_names(a) for a in (media_addr, app_addr, chat_addr)))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(queries) >= 15
    for q in queries:
        ours = set(re.findall(r"\bvideopick_\w+", q))
        if not ours:
            assert re.fullmatch(r'up\{job=~"videopick-\.\*"\}', q), f"a query on no metric of ours: {q}"
            continue
        missing = ours - exposed
        assert not missing, f"{q}: {missing} not in the binaries' /metrics"
