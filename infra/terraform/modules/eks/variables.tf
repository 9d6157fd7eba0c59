variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  type = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "kubernetes_version" {
  type    = string
  default = "1.31"
}

variable "node_instance_types" {
  type    = list(string)
  default = ["m6i.large"]
}

variable "node_count" {
  description = "Nodes per region: one per availability zone at least."
  type        = number
  default     = 3
}

variable "tags" {
  type    = map(string)
  default = {}
}

variable "peer_cidr_blocks" {
  description = "CIDRs of the other regions' VPCs (peered): their Meridians and etcd members reach this region's etcd"
  type        = list(string)
  default     = []
}
