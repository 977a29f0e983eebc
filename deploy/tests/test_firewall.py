"""The nftables ruleset each server gets: it loads (`nft -c` in a network namespace of its
own), and what it opens is exactly the plan's table — public: app 80/443, streaming 1935 and
8000–8080, chat 3001, the database nothing; SSH everywhere (keys only, fail2ban); the
private network reaches what the other servers call (the app's hooks port, PostgreSQL,
Redis, the exporters)."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

PUBLIC = {
    "app": {"80", "443"},
    "media": {"1935", "8000-8080"},
    "db": set(),
    "chat1": {"3001"},
    "chat2": {"3001"},
    "one": {"80", "443", "1935", "8000-8080"},
}
PRIVATE = {
    "app": {"8080", "9100"},
    "media": {"9100"},
    "db": {"5432", "6379", "9100", "9187", "9121", "9090", "3000"},
    "chat1": {"9100"},
    "chat2": {"9100"},
    "one": {"9100"},
}


def ruleset(rendered, host) -> str:
    root, _ = rendered[host]
    return (root / "etc/nftables.conf").read_text()


def ports(line: str) -> set[str]:
    m = re.search(r"tcp dport \{ ([^}]*) \} accept", line)
    return {p.strip() for p in m.group(1).split(",")} if m else set()


@pytest.mark.parametrize("host", sorted(PUBLIC))
def test_the_plans_table(rendered, host):
    rules = ruleset(rendered, host)
    assert "policy drop;" in rules.split("chain input")[1].split("}")[0]
    public = [line for line in rules.splitlines() if "tcp dport {" in line and "saddr" not in line]
    private = [line for line in rules.splitlines() if "ip saddr 10.40.0.0/24 tcp dport {" in line]
    assert (set().union(*map(ports, public)) if public else set()) == PUBLIC[host], public
    assert len(private) == 1 and ports(private[0]) == PRIVATE[host], private
    assert "tcp dport 22 accept" in rules


@pytest.mark.parametrize("host", sorted(PUBLIC))
def test_the_ruleset_loads(rendered, host, tmp_path):
    path = tmp_path / "nftables.conf"
    path.write_text(ruleset(rendered, host))
    ns = f"vpfw{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-c", "-f", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
