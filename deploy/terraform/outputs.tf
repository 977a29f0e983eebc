# What the Ansible inventory needs (deploy/ansible/inventory/hosts.yml): each server's public
# address (ansible_host) and its address on the private network.
output "inventory" {
  description = "role => { group, public (ansible_host), private_ip }"
  value = {
    for role, s in vultr_instance.server : role => {
      group      = local.group_of[role]
      public     = s.main_ip
      private_ip = s.internal_ip
    }
  }
}

output "media_storage_device" {
  description = "The block storage's mount id on the media server (its /dev/disk/by-id name)."
  value       = vultr_block_storage.media.mount_id
}
