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
