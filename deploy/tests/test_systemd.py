"""The systemd units every role installs: `systemd-analyze verify` passes on each, each
runs as the service user with the hardening the deployment promises, waits for its health
endpoint, and its configuration file is one the binary accepts (`--check-config`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Which unit each host of the inventory runs, and on which port its health endpoint is.
EXPECTED = {
    "app": ("app-server.service", "app_port"),
    "media": ("media-server.service", "http_port"),
    "chat1": ("chat-server@.service", "chat_port"),
    "chat2": ("chat-server@.service", "chat_port"),
    "one": ("videopick.service", "http_port"),
}


def directives(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def the_unit(rendered, host) -> tuple[Path, dict]:
    root, variables = rendered[host]
    name, _ = EXPECTED[host]
    unit = root / "etc/systemd/system" / name
    assert unit.exists(), f"{host}: {name} not rendered"
    return unit, variables


def test_every_host_gets_its_unit(rendered):
    # `db` runs PostgreSQL and Redis under their Debian packages' own units.
    assert set(rendered) - {"db"} == set(EXPECTED), "the inventory's hosts changed: update EXPECTED"


@pytest.mark.parametrize("host", sorted(EXPECTED))
def test_systemd_analyze_verify(rendered, host, tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze (Debian: systemd) is needed"
    unit, variables = the_unit(rendered, host)
    # A template unit is verified as one of its instances, as systemd would start it.
    name = unit.name
    if name.endswith("@.service"):
        name = name.replace("@.service", f"@{variables['chat_node']}.service")
    shutil.copy(unit, tmp_path / unit.name)
    if name != unit.name:
        shutil.copy(unit, tmp_path / name)
    r = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and not r.stderr.strip(), f"{host}: {r.stdout}{r.stderr}"


@pytest.mark.parametrize("host", sorted(EXPECTED))
def test_hardening_and_readiness(rendered, host):
    unit, v = the_unit(rendered, host)
    d = directives(unit)
    one = lambda k: d.get(k, [None])[-1]  # noqa: E731
    assert one("User") == v["videopick_user"] and one("Group") == v["videopick_user"]
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("ProtectHome") == "yes" and one("PrivateTmp") == "yes"
    assert one("Restart") == "on-failure"
    assert int(one("LimitNOFILE")) >= 65536
    # The one writable path: the storage (the app server's data directory; none for chat).
    writable = {"app": v["app_data_dir"], "chat1": None, "chat2": None}.get(host, v["storage_dir"])
    assert d.get("ReadWritePaths", [None]) == [writable], d.get("ReadWritePaths")
    # Ready only when the health endpoint answers.
    _, port_var = EXPECTED[host]
    post = one("ExecStartPost") or ""
    assert post.startswith("/usr/bin/curl ") and "--fail" in post
    assert post.endswith(f"http://127.0.0.1:{v[port_var]}/readyz"), post
    # It runs our binary with a configuration this role rendered.
    start = one("ExecStart").split()
    assert start[0].startswith(v["bin_dir"] + "/")
    assert start[start.index("--config") + 1].startswith(v["etc_dir"] + "/")


@pytest.mark.parametrize("host", sorted(EXPECTED))
def test_configuration_is_accepted_by_the_binary(rendered, host):
    unit, v = the_unit(rendered, host)
    root, _ = rendered[host]
    start = directives(unit)["ExecStart"][-1].split()
    config = start[start.index("--config") + 1]
    if "%i" in config:
        config = config.replace("%i", v["chat_node"])
    path = root / config.lstrip("/")
    assert path.exists(), f"{host}: {config} not rendered"
    text = path.read_text()
    assert "{{" not in text and "{%" not in text, text
    r = subprocess.run([start[0], "--config", str(path), "--check-config"], capture_output=True, text=True)
    assert r.returncode == 0 and "valid" in r.stdout, f"{host}: {r.stdout}{r.stderr}"
    # Secrets come from the Vault, not from defaults.
    for secret in re.findall(r'(?:secret|token) = "([^"]*)"', text):
        assert secret.endswith("-test"), f"{host}: a secret not from the Vault: {secret}"


def test_check_config_refuses_what_a_start_would(rendered, tmp_path):
    """The check above can fail: an unknown key or a wrong type is reported, not ignored."""
    root, v = rendered["media"]
    good = (root / "etc/videopick/media.toml").read_text()
    binary = f"{v['bin_dir']}/media-server"
    for bad, says in [
        (good + "\nbogus_key = 1\n", "unknown field `bogus_key`"),
        (good.replace("transcode_workers = 2", 'transcode_workers = "two"'), "invalid type"),
    ]:
        path = tmp_path / "media.toml"
        path.write_text(bad)
        r = subprocess.run([binary, "--config", str(path), "--check-config"], capture_output=True, text=True)
        assert r.returncode != 0 and says in r.stderr, f"{r.stdout}{r.stderr}"
