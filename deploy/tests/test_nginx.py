"""Nginx in front of VideoPick (the app server, and the single server): the site Ansible
installs passes `nginx -t` with Debian's nginx, and routes each kind of traffic the way it
needs (streamed HTTP-FLV, HLS caching, unbounded unbuffered uploads, WebSocket upgrades
with sticky chat nodes, security headers)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SECRETS, render  # noqa: E402


def self_signed(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def site(ansible_dir, host: str, tmp: Path) -> tuple[Path, str]:
    """`host`'s rendered site and an nginx.conf around it, under `tmp`."""
    cert, key = self_signed(tmp, "videopick.example")
    extra = {**SECRETS, "tls_certificate": str(cert), "tls_certificate_key": str(key),
             "nginx_cache_dir": str(tmp / "cache")}
    root = tmp / "root"
    render.render(host, root, extra, ansible_dir)
    conf = root / "etc/nginx/conf.d/videopick.conf"
    assert conf.exists(), f"{host}: no Nginx site rendered"
    main = tmp / "nginx.conf"
    temps = "\n".join(f"    {k}_temp_path {tmp / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main.write_text(
        f"pid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'};\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temps}\n    include {conf};\n}}\n"
    )
    return main, conf.read_text()


def block(text: str, location: str) -> str:
    """The body of the first `location` block whose head contains `location`."""
    at = text.index(location)
    start = text.index("{", at)
    depth, i = 0, start
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i]
        i += 1


@pytest.mark.parametrize("host", ["app", "one"])
def test_nginx_t_passes(ansible_dir, host, tmp_path):
    assert shutil.which("nginx"), "nginx (Debian package nginx-light or nginx) is needed"
    main, _ = site(ansible_dir, host, tmp_path)
    r = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr
    assert "[warn]" not in r.stderr and "[emerg]" not in r.stderr, r.stderr


def test_each_kind_of_traffic_is_routed_as_it_needs(ansible_dir, tmp_path):
    _, text = site(ansible_dir, "app", tmp_path)
    flv = block(text, ".flv$")
    assert "proxy_pass http://videopick_media;" in flv and "proxy_buffering off;" in flv
    playlists = block(text, ".m3u8$")
    assert "proxy_cache_key $scheme$host$request_uri;" in playlists  # the query is in the key
    assert re.search(r"proxy_cache_valid 200 1s;", playlists)
    parts = block(text, r"\.(m4s|ts|mp4)$")
    assert "proxy_cache videopick_hls;" in parts
    tus = block(text, "location /files/")
    for d in ("client_max_body_size 0;", "proxy_request_buffering off;", "proxy_buffering off;"):
        assert d in tus, d
    chat = block(text, "location /socket.io/")
    assert "proxy_set_header Upgrade $http_upgrade;" in chat
    assert "proxy_set_header Connection $connection_upgrade;" in chat
    upstream = block(text, "upstream videopick_chat")
    assert "hash $remote_addr consistent;" in upstream  # long-polling stays on its node
    assert upstream.count("server 10.40.0.4") == 2, upstream
    for h in ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert f"add_header {h}" in text, h
    assert "return 301 https://$host$request_uri;" in text
    # The media server's control API is not public.
    assert re.search(r"location ~ \^/api/\(streams\|jobs\|media\)\(/\|\$\) \{\s*return 404;", text)
