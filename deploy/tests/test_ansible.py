"""The playbook itself: `ansible-playbook --syntax-check` and `ansible-lint` (its strictest
profile, `production`) pass, with no warning; and the common hardening every server gets
(SSH keys only, fail2ban on SSH, daily security updates) renders as promised."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess

import pytest

from conftest import render

PLAYBOOK = render.ANSIBLE


def run(*cmd: str) -> subprocess.CompletedProcess:
    assert shutil.which(cmd[0]), f"{cmd[0]} (PyPI, deploy/requirements.txt) is needed"
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1", "ANSIBLE_LOCAL_TEMP": "/tmp"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=PLAYBOOK, env=env)


def test_syntax_check():
    r = run("ansible-playbook", "-i", "inventory/hosts.yml", "site.yml", "--syntax-check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_ansible_lint_production_profile():
    r = run("ansible-lint", "--profile", "production", "site.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Passed" in r.stdout + r.stderr


@pytest.mark.parametrize("host", ["app", "media", "db", "chat1"])
def test_common_hardening(rendered, host):
    root, v = rendered[host]
    sshd = (root / "etc/ssh/sshd_config.d/videopick.conf").read_text()
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no",
                 "PubkeyAuthentication yes", "PermitRootLogin prohibit-password"):
        assert f"\n{line}\n" in sshd, line
    jail = configparser.ConfigParser()
    jail.read_string((root / "etc/fail2ban/jail.d/videopick.local").read_text())
    assert jail.getboolean("sshd", "enabled")
    assert jail.get("DEFAULT", "backend") == "systemd"
    assert v["private_cidr"] in jail.get("DEFAULT", "ignoreip")
    apt = (root / "etc/apt/apt.conf.d/20auto-upgrades").read_text()
    assert 'APT::Periodic::Unattended-Upgrade "1";' in apt
