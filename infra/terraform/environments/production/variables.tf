variable "environment" {
  type    = string
  default = "production"
}

variable "primary_instance_class" {
  type    = string
  default = "db.r6g.xlarge"
}

variable "replica_instance_class" {
  type    = string
  default = "db.r6g.large"
}

variable "load_balancer_arns" {
  description = "Meridian's network load balancer per region, once infra/k8s is applied (second apply)."
  type        = map(string)
  default = {
    "us-east-1"      = null
    "eu-west-1"      = null
    "ap-southeast-1" = null
  }
}
