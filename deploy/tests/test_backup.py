"""The database server's backups: the nightly timer and its service pass `systemd-analyze
verify`; a dump is complete under its final name or absent (a failed run, a full disk, leaves
no partial file and the earlier dumps as they were); the newest `backup_keep` are kept; the
restore script brings a database back as it was at the dump, keeps the one it replaces aside,
and changes nothing when the dump is damaged. Run against this machine's PostgreSQL; the
restore of the whole platform (dump, drop, restore, the API shows the same) is in
test_topology."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SECRETS, render

PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}


def psql(sql: str, db: str = "postgres") -> str:
    r = subprocess.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                       capture_output=True, text=True, env={**os.environ, **PG})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def setup(ansible_dir, tmp_path):
    db = f"vp_backup_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    bins, backups, textfile = tmp_path / "bin", tmp_path / "backups", tmp_path / "textfile"
    for d in (bins, backups, textfile):
        d.mkdir()
    root = tmp_path / "root"
    extra = {**SECRETS, "bin_dir": str(bins), "backup_dir": str(backups), "backup_keep": 2,
             "postgres_db": db, "postgres_user": "postgres", "node_exporter_textfile_dir": str(textfile)}
    render.render("db", root, extra, ansible_dir)
    for name in ("videopick-backup", "videopick-restore"):
        shutil.copy(root / str(bins).lstrip("/") / name, bins / name)
        (bins / name).chmod(0o755)
    psql(f'CREATE DATABASE "{db}"')
    psql("CREATE TABLE videos (id int PRIMARY KEY, title text); "
         "INSERT INTO videos SELECT g, '영상 ' || g FROM generate_series(1, 500) g", db)
    yield {"db": db, "bins": bins, "backups": backups, "root": root, "textfile": textfile / "videopick_backup.prom"}
    for name in psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{db}%'").split():
        psql(f'DROP DATABASE "{name}" WITH (FORCE)')


def run(script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], capture_output=True, text=True,
                          env={**os.environ, **PG, **(env or {})})


def dumps(d: Path) -> list[Path]:
    return sorted(d.glob("*.dump"))


def test_timer_and_service_pass_systemd_analyze_verify(setup, tmp_path):
    units = setup["root"] / "etc/systemd/system"
    d = tmp_path / "units"
    d.mkdir()
    for name in ("videopick-backup.service", "videopick-backup.timer"):
        shutil.copy(units / name, d / name)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(d / "videopick-backup.timer")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    timer = (d / "videopick-backup.timer").read_text()
    assert "OnCalendar=*-*-* 03:30:00" in timer and "Persistent=true" in timer
    service = (d / "videopick-backup.service").read_text()
    for line in ("Type=oneshot", "User=postgres", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 f"ReadWritePaths={setup['backups']}"):
        assert line in service


def test_dumps_are_whole_and_the_newest_are_kept(setup):
    made = []
    for _ in range(3):
        r = run(setup["bins"] / "videopick-backup")
        assert r.returncode == 0, r.stderr
        made.append(r.stdout.split()[1])
        time.sleep(1.1)  # a dump's name carries its second
    kept = dumps(setup["backups"])
    assert [str(p) for p in kept] == sorted(made)[-2:], (made, kept)
    assert "removed" in r.stdout
    for p in kept:
        listing = subprocess.run(["pg_restore", "--list", str(p)], capture_output=True, text=True)
        assert listing.returncode == 0 and "TABLE DATA public videos" in listing.stdout
    assert not list(setup["backups"].glob(".*")), "a temporary file was left"
    # The last success, for the node exporter (and the BackupMissing alert).
    prom = setup["textfile"].read_text()
    stamp = float(re.search(r"^videopick_backup_last_success_timestamp_seconds (\S+)$", prom, re.M)[1])
    assert abs(stamp - time.time()) < 30, prom
    assert f"videopick_backup_last_size_bytes {kept[-1].stat().st_size}\n" in prom, prom
    assert [p.name for p in setup["textfile"].parent.iterdir()] == ["videopick_backup.prom"]


def test_one_run_at_a_time(setup):
    holder = subprocess.Popen(["flock", str(setup["backups"]), "sleep", "10"])
    try:
        time.sleep(0.3)
        r = run(setup["bins"] / "videopick-backup")
        assert r.returncode != 0 and "another run" in r.stderr, r
        assert dumps(setup["backups"]) == []
    finally:
        holder.kill()
        holder.wait()


def test_a_failed_run_leaves_nothing_and_keeps_the_earlier_dumps(setup):
    assert run(setup["bins"] / "videopick-backup").returncode == 0
    before = {p: p.read_bytes() for p in dumps(setup["backups"])}
    metric = setup["textfile"].read_text()
    # The database unreachable.
    r = run(setup["bins"] / "videopick-backup", env={"PGPORT": "1"})
    assert r.returncode != 0
    # A full disk: the backup directory on a 64 KiB tmpfs (in a mount namespace of its own).
    psql("INSERT INTO videos SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series(501, 20000) g",
         setup["db"])
    full = setup["backups"].parent / "full"
    full.mkdir()
    script = setup["bins"] / "videopick-backup"
    small = setup["bins"] / "videopick-backup-full"
    small.write_text(script.read_text().replace(str(setup["backups"]), str(full)))
    small.chmod(0o755)
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"mount -t tmpfs -o size=64k tmpfs {full} && {small}; s=$?; ls -A {full}; exit $s"],
                       capture_output=True, text=True, env={**os.environ, **PG})
    assert r.returncode != 0, r.stdout
    assert r.stdout.strip() == "", f"left on the full disk: {r.stdout}"
    assert "No space left on device" in r.stderr, r.stderr
    # The earlier dump is untouched and nothing else appeared.
    assert {p: p.read_bytes() for p in dumps(setup["backups"])} == before
    assert not list(setup["backups"].glob(".*"))
    assert setup["textfile"].read_text() == metric, "a failed run recorded a success"


def test_restore_brings_the_database_back_and_keeps_the_replaced_one(setup):
    db = setup["db"]
    assert run(setup["bins"] / "videopick-backup").returncode == 0
    (dump,) = dumps(setup["backups"])
    psql("DELETE FROM videos WHERE id > 10; UPDATE videos SET title = 'changed'", db)
    # A client connected to the live database (as the services are) is ended by the swap.
    client = subprocess.Popen(["psql", "-X", "-d", db, "-c", "SELECT pg_sleep(60)"], env={**os.environ, **PG},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    r = run(setup["bins"] / "videopick-restore", str(dump))
    assert r.returncode == 0, r.stderr
    assert client.wait(10) != 0, "the connected client was not ended"
    assert "terminat" in client.stderr.read()
    assert psql("SELECT count(*), min(title) FROM videos", db) == "500|영상 1"
    aside = [n for n in psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{db}_before_%'").split()]
    assert len(aside) == 1, r.stdout
    assert psql("SELECT count(*) FROM videos", aside[0]) == "10"
    # A damaged dump changes nothing.
    bad = setup["backups"] / "damaged.dump"
    bad.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    psql("UPDATE videos SET title = 'after' WHERE id = 1", db)
    r = run(setup["bins"] / "videopick-restore", str(bad))
    assert r.returncode != 0
    assert psql("SELECT title FROM videos WHERE id = 1", db) == "after"
    assert not psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{db}_restore_%'")
