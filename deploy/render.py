#!/usr/bin/env python3
"""Render what Ansible would install on one host of the inventory, into a directory.

The topology test and the checks under deploy/tests use this, so that what they run is
what `ansible-playbook site.yml` deploys: the same inventory (deploy/ansible/inventory),
the same variables (group_vars, host vars, then extra vars as with `-e`), the same roles
per host (site.yml), and every `ansible.builtin.template` task of those roles (its `src`
rendered to its `dest`, both with Jinja2 as Ansible does).

    python3 deploy/render.py --host media --out /tmp/media -e vault_hook_secret=s ...

Only what the roles use is supported: Jinja2 itself plus Ansible's `basename` filter.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jinja2
import yaml

ANSIBLE = Path(__file__).resolve().parent / "ansible"


def _load(path: Path) -> dict:
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def host_groups(inventory: dict) -> dict[str, tuple[list[str], dict]]:
    """host -> (its groups, its inventory variables)."""
    out: dict[str, tuple[list[str], dict]] = {}

    def walk(name: str, node: dict, parents: list[str]) -> None:
        node = node or {}
        groups = parents + [name]
        for host, hvars in (node.get("hosts") or {}).items():
            prev = out.get(host, ([], {}))
            out[host] = (prev[0] + [g for g in groups if g not in prev[0]], {**prev[1], **(hvars or {})})
        for child, cnode in (node.get("children") or {}).items():
            walk(child, cnode, groups)

    for name, node in inventory.items():
        walk(name, node, [])
    return out


def environment() -> jinja2.Environment:
    # As Ansible's template module: trim_blocks on, lstrip_blocks off.
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True
    )
    env.filters["basename"] = os.path.basename
    return env


def host_vars(host: str, extra: dict | None = None, ansible: Path = ANSIBLE) -> dict:
    """Every variable of `host`, templated (values may refer to each other)."""
    hosts = host_groups(_load(ansible / "inventory" / "hosts.yml"))
    if host not in hosts:
        raise SystemExit(f"{host}: not in the inventory ({', '.join(sorted(hosts))})")
    groups, inv = hosts[host]
    merged: dict = {}
    for group in ["all"] + [g for g in groups if g != "all"]:
        merged.update(_load(ansible / "group_vars" / f"{group}.yml"))
    merged.update(inv)
    merged.update(_load(ansible / "host_vars" / f"{host}.yml"))
    merged.update(extra or {})
    merged.setdefault("inventory_hostname", host)
    merged["group_names"] = [g for g in groups if g != "all"]
    env = environment()
    # Values may refer to others, as Ansible templates them lazily: a few passes settle it.
    for _ in range(8):
        changed = False
        for k, v in list(merged.items()):
            if isinstance(v, str) and "{{" in v:
                try:
                    nv = env.from_string(v).render(**merged)
                except jinja2.UndefinedError:
                    continue
                if nv != v:
                    merged[k], changed = nv, True
        if not changed:
            break
    return merged


def roles_of(host_group_names: list[str], ansible: Path = ANSIBLE) -> list[str]:
    roles: list[str] = []
    for play in yaml.safe_load((ansible / "site.yml").read_text()):
        targets = [t.strip() for t in str(play["hosts"]).split(":")]
        if "all" in targets or any(t in host_group_names for t in targets):
            roles += [r for r in play.get("roles", []) if r not in roles]
    return roles


def render(host: str, out: Path, extra: dict | None = None, ansible: Path = ANSIBLE) -> list[Path]:
    """Render `host`'s templates under `out` (each at `out` + its absolute `dest`)."""
    variables = host_vars(host, extra, ansible)
    env = environment()
    written: list[Path] = []
    for role in roles_of(variables["group_names"], ansible):
        for task in _load_list(ansible / "roles" / role / "tasks" / "main.yml"):
            spec = task.get("ansible.builtin.template") or task.get("template")
            if not spec:
                continue
            src = ansible / "roles" / role / "templates" / spec["src"]
            dest = env.from_string(spec["dest"]).render(**variables)
            text = env.from_string(src.read_text()).render(**variables)
            path = out / dest.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


def _load_list(path: Path) -> list:
    if not path.exists():
        return []
    return yaml.safe_load(path.read_text()) or []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("-e", "--extra", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    extra = {}
    for kv in args.extra:
        k, _, v = kv.partition("=")
        extra[k] = yaml.safe_load(v) if v else ""
    for path in render(args.host, args.out, extra):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
