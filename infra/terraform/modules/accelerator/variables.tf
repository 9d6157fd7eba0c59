variable "name" {
  type = string
}

variable "regions" {
  description = "Per region: the ARN of Meridian's network load balancer (null until the Kubernetes Service exists)."
  type = map(object({
    load_balancer_arn = optional(string)
  }))
}

variable "tags" {
  type    = map(string)
  default = {}
}
