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

variable "etcd_load_balancer_dns" {
  description = "DNS name of each region's internal etcd NLB (from `kubectl get service etcd`), for etcd.<region>.meridian.internal; empty until the overlays are applied"
  type        = map(string)
  default = {
    "us-east-1"      = ""
    "eu-west-1"      = ""
    "ap-southeast-1" = ""
  }
}
