output "arn" {
  value = aws_db_instance.this.arn
}

output "address" {
  value = aws_db_instance.this.address
}

output "port" {
  value = aws_db_instance.this.port
}

output "identifier" {
  value = aws_db_instance.this.identifier
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret RDS manages for the master user (primary only)."
  value       = try(aws_db_instance.this.master_user_secret[0].secret_arn, null)
}

output "security_group_id" {
  value = aws_security_group.this.id
}

output "storage_encrypted" {
  value = aws_db_instance.this.storage_encrypted
}

output "replicate_source_db" {
  value = aws_db_instance.this.replicate_source_db
}

output "publicly_accessible" {
  value = aws_db_instance.this.publicly_accessible
}

output "multi_az" {
  value = aws_db_instance.this.multi_az
}

output "backup_retention_period" {
  value = aws_db_instance.this.backup_retention_period
}

output "parameters" {
  description = "The parameter group's settings, by name."
  value       = { for p in aws_db_parameter_group.this.parameter : p.name => p.value }
}

output "allowed_security_group_ids" {
  value = sort([for r in aws_vpc_security_group_ingress_rule.from_meridian : r.referenced_security_group_id])
}
