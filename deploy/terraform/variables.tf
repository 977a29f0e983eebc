variable "vultr_api_key" {
  description = "Vultr API key (or set VULTR_API_KEY and leave this empty)."
  type        = string
  sensitive   = true
  default     = ""
}

variable "region" {
  description = "Vultr region: Seoul."
  type        = string
  default     = "icn"
}

variable "os_id" {
  description = "Vultr OS id: Debian 12 x64."
  type        = number
  default     = 2136
}

variable "ssh_public_key" {
  description = "The operators' SSH public key (SSH is by key only)."
  type        = string
}

variable "private_cidr" {
  description = "The private network between the servers (the Ansible inventory's)."
  type        = string
  default     = "10.40.0.0/24"
}

# The plan's servers: Vultr plan ids and what those plans are. The plan's sizes are Cloud
# Compute's (vc2: 2 vCPU / 4 GB / 80 GB and 4 vCPU / 8 GB / 160 GB); Cloud Compute has no
# 2 vCPU / 8 GB plan, so the database server takes the 4 vCPU / 8 GB one (the nearest with
# at least the plan's memory and disk). deploy/tests/test_terraform.py checks these against
# the plan's table.
variable "servers" {
  description = "The plan's servers: role => Vultr plan and what that plan is."
  type = map(object({
    plan    = string
    vcpu    = number
    ram_gb  = number
    disk_gb = number
  }))
  default = {
    app   = { plan = "vc2-2c-4gb", vcpu = 2, ram_gb = 4, disk_gb = 80 }
    media = { plan = "vc2-4c-8gb", vcpu = 4, ram_gb = 8, disk_gb = 160 }
    db    = { plan = "vc2-4c-8gb", vcpu = 4, ram_gb = 8, disk_gb = 160 }
    chat1 = { plan = "vc2-2c-4gb", vcpu = 2, ram_gb = 4, disk_gb = 80 }
  }
}

variable "storage_gb" {
  description = "Block storage attached to the media server, mounted at /mnt/storage."
  type        = number
  default     = 1024
}
