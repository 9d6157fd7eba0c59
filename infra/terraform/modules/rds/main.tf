# PostgreSQL 15 on RDS for one region: the primary (Multi-AZ, backups, credentials in Secrets
# Manager) or a cross-region read replica of it. Encrypted at rest with a key of the region's
# own; reachable only from the security group of Meridian's pods.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

locals {
  replica = var.replicate_source_db != null
}

resource "aws_kms_key" "this" {
  description             = "${var.name} RDS storage encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  tags                    = var.tags
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-postgres"
  description = "PostgreSQL, from Meridian only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

# count, not for_each: the group ids are known only at apply time, their number before.
resource "aws_vpc_security_group_ingress_rule" "from_meridian" {
  count                        = length(var.allowed_security_group_ids)
  security_group_id            = aws_security_group.this.id
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "Meridian pods"
}

# Streaming replication settings; logical replication stays off (Meridian uses physical
# replicas and rds.logical_replication would raise WAL volume for nothing).
resource "aws_db_parameter_group" "this" {
  name   = var.name
  family = "postgres15"
  tags   = var.tags

  parameter {
    name         = "rds.logical_replication"
    value        = "0"
    apply_method = "pending-reboot"
  }
  parameter {
    name  = "hot_standby_feedback"
    value = "1"
  }
  parameter {
    name  = "max_standby_streaming_delay"
    value = "30000"
  }
  parameter {
    name  = "wal_receiver_status_interval"
    value = "1"
  }
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
}

resource "aws_db_instance" "this" {
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class

  # A replica inherits storage size, credentials and database from its source.
  replicate_source_db         = var.replicate_source_db
  allocated_storage           = local.replica ? null : var.allocated_storage
  max_allocated_storage       = var.max_allocated_storage
  db_name                     = local.replica ? null : var.database_name
  username                    = local.replica ? null : var.master_username
  manage_master_user_password = local.replica ? null : true

  multi_az                        = var.multi_az
  storage_type                    = "gp3"
  storage_encrypted               = true
  kms_key_id                      = aws_kms_key.this.arn
  db_subnet_group_name            = aws_db_subnet_group.this.name
  vpc_security_group_ids          = [aws_security_group.this.id]
  parameter_group_name            = aws_db_parameter_group.this.name
  publicly_accessible             = false
  backup_retention_period         = var.backup_retention_days
  deletion_protection             = true
  skip_final_snapshot             = false
  final_snapshot_identifier       = "${var.name}-final"
  copy_tags_to_snapshot           = true
  auto_minor_version_upgrade      = true
  performance_insights_enabled    = true
  performance_insights_kms_key_id = aws_kms_key.this.arn
  monitoring_interval             = 0
  tags                            = merge(var.tags, { Role = local.replica ? "replica" : "primary" })
}
