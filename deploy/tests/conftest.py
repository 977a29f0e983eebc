"""Shared set-up of the deployment checks: the repository, the built binaries, and every
host of the inventory rendered as Ansible would deploy it (deploy/render.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

import render  # noqa: E402

# Test values of the Vault's secrets.
SECRETS = {
    "vault_postgres_password": "pg-test",
    "vault_chat_jwt_secret": "chat-test",
    "vault_hook_secret": "hook-test",
    "vault_media_api_token": "api-test",
    "vault_redis_password": "redis-test",
}


def bin_dir() -> Path:
    """The binaries under test: VIDEOPICK_BIN_DIR, or the debug build `cargo test` made."""
    d = Path(os.environ.get("VIDEOPICK_BIN_DIR", ROOT / "target" / "debug")).resolve()
    missing = [b for b in ("videopick", "media-server", "app-server", "chat-server") if not (d / b).exists()]
    if missing:
        pytest.fail(f"{d}: {', '.join(missing)} not built (cargo build -p videopick-examples)")
    return d


@pytest.fixture(scope="session")
def ansible_dir(tmp_path_factory) -> Path:
    """deploy/ansible, with one host put in the (empty) single-server group so that the
    all-in-one's files are rendered and checked too."""
    d = tmp_path_factory.mktemp("ansible") / "ansible"
    shutil.copytree(render.ANSIBLE, d)
    hosts = yaml.safe_load((d / "inventory" / "hosts.yml").read_text())
    hosts["all"]["children"]["allinone"]["hosts"] = {"one": {"private_ip": "10.40.0.50"}}
    (d / "inventory" / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return d


@pytest.fixture(scope="session")
def rendered(ansible_dir, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """host -> (the root its files were rendered under, its variables)."""
    out = {}
    hosts = render.host_groups(yaml.safe_load((ansible_dir / "inventory" / "hosts.yml").read_text()))
    extra = {**SECRETS, "bin_dir": str(bin_dir())}
    for host in hosts:
        root = tmp_path_factory.mktemp(f"host-{host}")
        render.render(host, root, extra, ansible_dir)
        out[host] = (root, render.host_vars(host, extra, ansible_dir))
    return out
