variable "name" {
  description = "Identifier of the instance and prefix of its resources."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Private subnets of the region (one per availability zone)."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to reach PostgreSQL: Meridian's pods, nothing else."
  type        = list(string)
}

variable "replicate_source_db" {
  description = "ARN of the primary, for a cross-region read replica; null for the primary itself."
  type        = string
  default     = null
}

variable "engine_version" {
  type    = string
  default = "15"
}

variable "instance_class" {
  type    = string
  default = "db.r6g.xlarge"
}

variable "allocated_storage" {
  type    = number
  default = 200
}

variable "max_allocated_storage" {
  type    = number
  default = 1000
}

variable "database_name" {
  type    = string
  default = "app"
}

variable "master_username" {
  type    = string
  default = "meridian_admin"
}

variable "multi_az" {
  type    = bool
  default = true
}

variable "backup_retention_days" {
  description = "Automated backups; a replica needs them too to be promotable with backups on."
  type        = number
  default     = 7
}

variable "tags" {
  type    = map(string)
  default = {}
}
