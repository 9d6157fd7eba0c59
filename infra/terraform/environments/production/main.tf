# The production deployment: three regions, each with its network, EKS cluster and PostgreSQL
# (the primary in us-east-1, cross-region read replicas in eu-west-1 and ap-southeast-1), and
# Global Accelerator in front. Meridian runs on each cluster (infra/k8s) in front of its RDS.

terraform {
  required_version = ">= 1.7"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
}

provider "aws" {
  alias  = "ap_southeast_1"
  region = "ap-southeast-1"
}

# Global Accelerator is managed through us-west-2 only.
provider "aws" {
  alias  = "global"
  region = "us-west-2"
}

locals {
  tags = { Project = "meridian", Environment = var.environment }
}

# --- us-east-1: primary -------------------------------------------------------------------------

module "network_us_east_1" {
  source     = "../../modules/network"
  providers  = { aws = aws.us_east_1 }
  name       = "meridian-us-east-1"
  cidr_block = "10.10.0.0/16"
  tags       = local.tags
}

module "eks_us_east_1" {
  source             = "../../modules/eks"
  providers          = { aws = aws.us_east_1 }
  name               = "meridian-us-east-1"
  vpc_id             = module.network_us_east_1.vpc_id
  vpc_cidr_block     = module.network_us_east_1.vpc_cidr_block
  private_subnet_ids = module.network_us_east_1.private_subnet_ids
  peer_cidr_blocks   = ["10.20.0.0/16", "10.30.0.0/16"]
  tags               = local.tags
}

module "rds_us_east_1" {
  source                     = "../../modules/rds"
  providers                  = { aws = aws.us_east_1 }
  name                       = "meridian-us-east-1"
  vpc_id                     = module.network_us_east_1.vpc_id
  subnet_ids                 = module.network_us_east_1.private_subnet_ids
  allowed_security_group_ids = [module.eks_us_east_1.meridian_security_group_id]
  instance_class             = var.primary_instance_class
  multi_az                   = true
  tags                       = local.tags
}

# --- eu-west-1: replica -------------------------------------------------------------------------

module "network_eu_west_1" {
  source     = "../../modules/network"
  providers  = { aws = aws.eu_west_1 }
  name       = "meridian-eu-west-1"
  cidr_block = "10.20.0.0/16"
  tags       = local.tags
}

module "eks_eu_west_1" {
  source             = "../../modules/eks"
  providers          = { aws = aws.eu_west_1 }
  name               = "meridian-eu-west-1"
  vpc_id             = module.network_eu_west_1.vpc_id
  vpc_cidr_block     = module.network_eu_west_1.vpc_cidr_block
  private_subnet_ids = module.network_eu_west_1.private_subnet_ids
  peer_cidr_blocks   = ["10.10.0.0/16", "10.30.0.0/16"]
  tags               = local.tags
}

module "rds_eu_west_1" {
  source                     = "../../modules/rds"
  providers                  = { aws = aws.eu_west_1 }
  name                       = "meridian-eu-west-1"
  vpc_id                     = module.network_eu_west_1.vpc_id
  subnet_ids                 = module.network_eu_west_1.private_subnet_ids
  allowed_security_group_ids = [module.eks_eu_west_1.meridian_security_group_id]
  replicate_source_db        = module.rds_us_east_1.arn
  instance_class             = var.replica_instance_class
  multi_az                   = false
  tags                       = local.tags
}

# --- ap-southeast-1: replica --------------------------------------------------------------------

module "network_ap_southeast_1" {
  source     = "../../modules/network"
  providers  = { aws = aws.ap_southeast_1 }
  name       = "meridian-ap-southeast-1"
  cidr_block = "10.30.0.0/16"
  tags       = local.tags
}

module "eks_ap_southeast_1" {
  source             = "../../modules/eks"
  providers          = { aws = aws.ap_southeast_1 }
  name               = "meridian-ap-southeast-1"
  vpc_id             = module.network_ap_southeast_1.vpc_id
  vpc_cidr_block     = module.network_ap_southeast_1.vpc_cidr_block
  private_subnet_ids = module.network_ap_southeast_1.private_subnet_ids
  peer_cidr_blocks   = ["10.10.0.0/16", "10.20.0.0/16"]
  tags               = local.tags
}

module "rds_ap_southeast_1" {
  source                     = "../../modules/rds"
  providers                  = { aws = aws.ap_southeast_1 }
  name                       = "meridian-ap-southeast-1"
  vpc_id                     = module.network_ap_southeast_1.vpc_id
  subnet_ids                 = module.network_ap_southeast_1.private_subnet_ids
  allowed_security_group_ids = [module.eks_ap_southeast_1.meridian_security_group_id]
  replicate_source_db        = module.rds_us_east_1.arn
  instance_class             = var.replica_instance_class
  multi_az                   = false
  tags                       = local.tags
}

# --- global entry point -------------------------------------------------------------------------

module "accelerator" {
  source    = "../../modules/accelerator"
  providers = { aws = aws.global }
  name      = "meridian"
  regions = {
    "us-east-1"      = { load_balancer_arn = var.load_balancer_arns["us-east-1"] }
    "eu-west-1"      = { load_balancer_arn = var.load_balancer_arns["eu-west-1"] }
    "ap-southeast-1" = { load_balancer_arn = var.load_balancer_arns["ap-southeast-1"] }
  }
  tags = local.tags
}

# --- the regions' private network for coordination ------------------------------------------------
# etcd has one member per region (infra/k8s/base/etcd.yaml) behind an internal NLB; the members
# and the Meridians reach each other over peered VPCs, under etcd.<region>.meridian.internal.

locals {
  networks = {
    "us-east-1"      = module.network_us_east_1
    "eu-west-1"      = module.network_eu_west_1
    "ap-southeast-1" = module.network_ap_southeast_1
  }
  peer = {
    for region, n in local.networks : region => {
      region          = region
      vpc_id          = n.vpc_id
      cidr_block      = n.vpc_cidr_block
      route_table_ids = n.private_route_table_ids
    }
  }
}

module "peering_us_eu" {
  source    = "../../modules/peering"
  providers = { aws.requester = aws.us_east_1, aws.accepter = aws.eu_west_1 }
  name      = "meridian-us-east-1-eu-west-1"
  requester = { for k, v in local.peer["us-east-1"] : k => v if k != "region" }
  accepter  = local.peer["eu-west-1"]
  tags      = local.tags
}

module "peering_us_ap" {
  source    = "../../modules/peering"
  providers = { aws.requester = aws.us_east_1, aws.accepter = aws.ap_southeast_1 }
  name      = "meridian-us-east-1-ap-southeast-1"
  requester = { for k, v in local.peer["us-east-1"] : k => v if k != "region" }
  accepter  = local.peer["ap-southeast-1"]
  tags      = local.tags
}

module "peering_eu_ap" {
  source    = "../../modules/peering"
  providers = { aws.requester = aws.eu_west_1, aws.accepter = aws.ap_southeast_1 }
  name      = "meridian-eu-west-1-ap-southeast-1"
  requester = { for k, v in local.peer["eu-west-1"] : k => v if k != "region" }
  accepter  = local.peer["ap-southeast-1"]
  tags      = local.tags
}

resource "aws_route53_zone" "internal" {
  provider = aws.us_east_1
  name     = "meridian.internal"
  comment  = "etcd members of the regions' Meridians"
  vpc {
    vpc_id     = module.network_us_east_1.vpc_id
    vpc_region = "us-east-1"
  }
  # The other regions' VPCs are associated below; Terraform must not remove them again.
  lifecycle {
    ignore_changes = [vpc]
  }
  tags = local.tags
}

resource "aws_route53_zone_association" "eu_west_1" {
  provider   = aws.us_east_1
  zone_id    = aws_route53_zone.internal.zone_id
  vpc_id     = module.network_eu_west_1.vpc_id
  vpc_region = "eu-west-1"
}

resource "aws_route53_zone_association" "ap_southeast_1" {
  provider   = aws.us_east_1
  zone_id    = aws_route53_zone.internal.zone_id
  vpc_id     = module.network_ap_southeast_1.vpc_id
  vpc_region = "ap-southeast-1"
}

# etcd.<region>.meridian.internal, once each region's etcd Service has its NLB (second apply).
resource "aws_route53_record" "etcd" {
  provider = aws.us_east_1
  for_each = { for region, name in var.etcd_load_balancer_dns : region => name if name != "" }
  zone_id  = aws_route53_zone.internal.zone_id
  name     = "etcd.${each.key}.meridian.internal"
  type     = "CNAME"
  ttl      = 30
  records  = [each.value]
}
