variable "name" {
  type = string
}

variable "requester" {
  description = "The VPC that asks for the peering: its id, CIDR and private route tables"
  type = object({
    vpc_id          = string
    cidr_block      = string
    route_table_ids = list(string)
  })
}

variable "accepter" {
  description = "The VPC that accepts it, and its region"
  type = object({
    region          = string
    vpc_id          = string
    cidr_block      = string
    route_table_ids = list(string)
  })
}

variable "tags" {
  type    = map(string)
  default = {}
}
