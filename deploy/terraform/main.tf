# The plan's deployment on Vultr, Seoul: four servers on one VPC, 1 TB of block storage on
# the media server, a firewall group per role mirroring deploy/ansible's nftables rules
# (Vultr's firewall guards the public interface; the VPC is open between the servers and
# nftables on each server narrows it), SSH by key only. Outputs feed the Ansible inventory.

resource "vultr_ssh_key" "operators" {
  name    = "videopick-operators"
  ssh_key = var.ssh_public_key
}

resource "vultr_vpc" "private" {
  description    = "videopick private network"
  region         = var.region
  v4_subnet      = cidrhost(var.private_cidr, 0)
  v4_subnet_mask = tonumber(split("/", var.private_cidr)[1])
}

locals {
  # Public TCP ports per role: the plan's table (and SSH everywhere).
  public_tcp = {
    app   = ["22", "80", "443"]
    media = ["22", "1935", "8000:8080"]
    db    = ["22"]
    chat1 = ["22", "3001"]
  }
  group_of = { app = "appservers", media = "mediaservers", db = "dbservers", chat1 = "chatservers" }
  rules = flatten([
    for role, ports in local.public_tcp : [
      for port in ports : { role = role, port = port }
    ]
  ])
}

resource "vultr_firewall_group" "role" {
  for_each    = var.servers
  description = "videopick ${each.key}"
}

resource "vultr_firewall_rule" "public" {
  for_each          = { for r in local.rules : "${r.role}-${r.port}" => r }
  firewall_group_id = vultr_firewall_group.role[each.value.role].id
  protocol          = "tcp"
  ip_type           = "v4"
  subnet            = "0.0.0.0"
  subnet_size       = 0
  port              = each.value.port
  notes             = "videopick ${each.value.role}"
}

resource "vultr_instance" "server" {
  for_each          = var.servers
  region            = var.region
  plan              = each.value.plan
  os_id             = var.os_id
  label             = "videopick-${each.key}"
  hostname          = "videopick-${each.key}"
  tags              = ["videopick", local.group_of[each.key]]
  ssh_key_ids       = [vultr_ssh_key.operators.id]
  vpc_ids           = [vultr_vpc.private.id]
  firewall_group_id = vultr_firewall_group.role[each.key].id
  enable_ipv6       = true
  backups           = each.key == "db" ? "enabled" : "disabled"
  dynamic "backups_schedule" {
    for_each = each.key == "db" ? [1] : []
    content {
      type = "daily"
    }
  }
  activation_email = false
}

resource "vultr_block_storage" "media" {
  label                = "videopick-media-storage"
  region               = var.region
  size_gb              = var.storage_gb
  block_type           = "storage_opt"
  attached_to_instance = vultr_instance.server["media"].id
  live                 = true
}
