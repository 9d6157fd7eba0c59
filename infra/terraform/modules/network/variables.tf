variable "name" {
  description = "Prefix for every resource name, e.g. meridian-eu-west-1."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range; subnets are /20s carved from a /16."
  type        = string
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
