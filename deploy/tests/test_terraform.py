"""Terraform for Vultr (deploy/terraform), parsed with python-hcl2 (the terraform binary
cannot be installed here) and checked against the plan's table: four servers in Seoul with
the plan's sizes, 1 TB of block storage on the media server, one VPC that is the
inventory's private network, a firewall group per role with exactly the plan's public
ports, SSH by key, and outputs that carry what the Ansible inventory needs."""

from __future__ import annotations

from pathlib import Path

import hcl2
import pytest
import yaml

TF = Path(__file__).resolve().parents[1] / "terraform"
ANSIBLE = Path(__file__).resolve().parents[1] / "ansible"

# The plan (../shared/seeds, "Vultr 서버 구성 계획"): vCPU, RAM GB, disk GB.
PLAN = {"app": (2, 4, 80), "media": (4, 8, 160), "db": (2, 8, 160), "chat1": (2, 4, 80)}
PUBLIC = {"app": {"22", "80", "443"}, "media": {"22", "1935", "8000:8080"}, "db": {"22"}, "chat1": {"22", "3001"}}


def unquote(x):
    if isinstance(x, str) and len(x) >= 2 and x[0] == x[-1] == '"':
        return x[1:-1]
    return x


def plain(x):
    """python-hcl2's tree with the quotes it keeps around names and strings taken off."""
    if isinstance(x, dict):
        return {unquote(k): plain(v) for k, v in x.items() if k != "__is_block__"}
    if isinstance(x, list):
        return [plain(v) for v in x]
    return unquote(x)


@pytest.fixture(scope="module")
def tf() -> dict:
    merged: dict = {}
    for f in sorted(TF.glob("*.tf")):
        with f.open() as fh:
            for k, v in plain(hcl2.load(fh)).items():
                merged.setdefault(k, []).extend(v)
    return merged


def blocks(tf: dict, kind: str) -> dict:
    out = {}
    for item in tf.get(kind, []):
        for name, body in item.items():
            if kind in ("resource", "data"):
                for rname, rbody in body.items():
                    out[(name, rname)] = rbody
            else:
                out[name] = body
    return out


def test_servers_have_the_plans_sizes_in_seoul(tf):
    v = blocks(tf, "variable")
    assert unquote(v["region"]["default"]) == "icn"  # Seoul
    servers = v["servers"]["default"]
    assert set(servers) == set(PLAN)
    for role, (vcpu, ram, disk) in PLAN.items():
        s = servers[role]
        assert s["ram_gb"] == ram and s["disk_gb"] >= disk and s["vcpu"] >= vcpu, (role, s)
        # The plan id says what it is (vc2-<cpu>c-<ram>gb).
        assert unquote(s["plan"]) == f"vc2-{s['vcpu']}c-{s['ram_gb']}gb", (role, s)
    r = blocks(tf, "resource")
    inst = r[("vultr_instance", "server")]
    assert "var.servers" in str(inst["for_each"])
    assert "vultr_ssh_key.operators.id" in str(inst["ssh_key_ids"])
    assert "vultr_vpc.private.id" in str(inst["vpc_ids"])


def test_block_storage_on_the_media_server(tf):
    v = blocks(tf, "variable")
    assert v["storage_gb"]["default"] == 1024
    bs = blocks(tf, "resource")[("vultr_block_storage", "media")]
    assert "vultr_instance.server[\"media\"].id" in str(bs["attached_to_instance"]).replace("'", '"')
    assert bs["size_gb"] == "${var.storage_gb}"
    # Mounted at /mnt/storage by the media role (the storage root of every config).
    all_vars = yaml.safe_load((ANSIBLE / "group_vars" / "all.yml").read_text())
    assert all_vars["storage_dir"] == "/mnt/storage"


def test_the_vpc_is_the_inventorys_private_network(tf):
    v = blocks(tf, "variable")
    all_vars = yaml.safe_load((ANSIBLE / "group_vars" / "all.yml").read_text())
    assert unquote(v["private_cidr"]["default"]) == all_vars["private_cidr"]
    vpc = blocks(tf, "resource")[("vultr_vpc", "private")]
    assert "var.region" in str(vpc["region"])


def test_firewall_groups_mirror_the_plans_table(tf):
    locs = {}
    for item in tf.get("locals", []):
        locs.update(item)
    public = {role: set(map(unquote, ports)) for role, ports in locs["public_tcp"].items()}
    assert public == PUBLIC
    rule = blocks(tf, "resource")[("vultr_firewall_rule", "public")]
    assert unquote(rule["protocol"]) == "tcp" and unquote(rule["subnet"]) == "0.0.0.0"
    assert "vultr_firewall_group.role" in str(blocks(tf, "resource")[("vultr_instance", "server")]["firewall_group_id"])


def test_outputs_feed_the_inventory(tf):
    out = blocks(tf, "output")
    value = str(out["inventory"]["value"])
    for field in ("main_ip", "internal_ip", "group"):
        assert field in value, field
    # Every server Terraform makes is a host of the inventory, in the same group.
    hosts = yaml.safe_load((ANSIBLE / "inventory" / "hosts.yml").read_text())["all"]["children"]
    locs = {}
    for item in tf.get("locals", []):
        locs.update(item)
    for role, group in locs["group_of"].items():
        assert role in (hosts[unquote(group)]["hosts"] or {}), (role, group)
