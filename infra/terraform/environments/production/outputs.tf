# What each region's Meridian configuration needs (infra/k8s overlays).
output "regions" {
  value = {
    "us-east-1" = {
      role              = "primary"
      postgres_host     = module.rds_us_east_1.address
      postgres_port     = module.rds_us_east_1.port
      rds_identifier    = module.rds_us_east_1.identifier
      eks_cluster       = module.eks_us_east_1.cluster_name
      meridian_sg       = module.eks_us_east_1.meridian_security_group_id
      etcd_sg           = module.eks_us_east_1.etcd_security_group_id
      etcd_name         = "etcd.us-east-1.meridian.internal"
      credential_secret = module.rds_us_east_1.master_user_secret_arn
    }
    "eu-west-1" = {
      role              = "replica"
      postgres_host     = module.rds_eu_west_1.address
      postgres_port     = module.rds_eu_west_1.port
      rds_identifier    = module.rds_eu_west_1.identifier
      eks_cluster       = module.eks_eu_west_1.cluster_name
      meridian_sg       = module.eks_eu_west_1.meridian_security_group_id
      etcd_sg           = module.eks_eu_west_1.etcd_security_group_id
      etcd_name         = "etcd.eu-west-1.meridian.internal"
      credential_secret = module.rds_us_east_1.master_user_secret_arn
    }
    "ap-southeast-1" = {
      role              = "replica"
      postgres_host     = module.rds_ap_southeast_1.address
      postgres_port     = module.rds_ap_southeast_1.port
      rds_identifier    = module.rds_ap_southeast_1.identifier
      eks_cluster       = module.eks_ap_southeast_1.cluster_name
      meridian_sg       = module.eks_ap_southeast_1.meridian_security_group_id
      etcd_sg           = module.eks_ap_southeast_1.etcd_security_group_id
      etcd_name         = "etcd.ap-southeast-1.meridian.internal"
      credential_secret = module.rds_us_east_1.master_user_secret_arn
    }
  }
}

output "global_accelerator_dns" {
  value = module.accelerator.dns_name
}
