output "dns_name" {
  value = aws_globalaccelerator_accelerator.this.dns_name
}

output "static_ips" {
  value = flatten([for s in aws_globalaccelerator_accelerator.this.ip_sets : s.ip_addresses])
}

output "endpoint_group_regions" {
  value = sort(keys(aws_globalaccelerator_endpoint_group.region))
}
