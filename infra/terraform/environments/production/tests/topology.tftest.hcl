# Offline check of what `apply` would build, against mocked AWS providers: three regions, the
# replicas replicating the primary, encryption on, nothing public, Meridian's pods the only
# database clients, Global Accelerator in front of all three regions.

mock_provider "aws" {
  alias  = "us_east_1"
  source = "./tests/mocks"
  mock_resource "aws_db_instance" {
    defaults = {
      arn = "arn:aws:rds:us-east-1:123456789012:db:meridian-us-east-1"
    }
  }
}

mock_provider "aws" {
  alias  = "eu_west_1"
  source = "./tests/mocks"
  mock_resource "aws_db_instance" {
    defaults = {
      arn = "arn:aws:rds:eu-west-1:123456789012:db:meridian-eu-west-1"
    }
  }
}

mock_provider "aws" {
  alias  = "ap_southeast_1"
  source = "./tests/mocks"
  mock_resource "aws_db_instance" {
    defaults = {
      arn = "arn:aws:rds:ap-southeast-1:123456789012:db:meridian-ap-southeast-1"
    }
  }
}

mock_provider "aws" {
  alias  = "global"
  source = "./tests/mocks"
}

override_data {
  target = module.network_us_east_1.data.aws_availability_zones.available
  values = { names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"] }
}

override_data {
  target = module.network_eu_west_1.data.aws_availability_zones.available
  values = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
}

override_data {
  target = module.network_ap_southeast_1.data.aws_availability_zones.available
  values = { names = ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"] }
}

run "three_regions_one_primary" {
  command = apply

  assert {
    condition     = length(output.regions) == 3
    error_message = "expected exactly three regions"
  }
  assert {
    condition     = join(",", [for r in ["us-east-1", "eu-west-1", "ap-southeast-1"] : output.regions[r].role]) == "primary,replica,replica"
    error_message = "us-east-1 must hold the primary, the other regions replicas"
  }
  assert {
    condition     = module.rds_us_east_1.replicate_source_db == null && module.rds_us_east_1.multi_az
    error_message = "the primary must be a Multi-AZ source, not a replica"
  }
  assert {
    condition     = module.rds_eu_west_1.replicate_source_db == module.rds_us_east_1.arn
    error_message = "eu-west-1 must replicate the us-east-1 primary"
  }
  assert {
    condition     = module.rds_ap_southeast_1.replicate_source_db == module.rds_us_east_1.arn
    error_message = "ap-southeast-1 must replicate the us-east-1 primary"
  }
}

run "encrypted_and_private" {
  command = apply

  assert {
    condition     = alltrue([module.rds_us_east_1.storage_encrypted, module.rds_eu_west_1.storage_encrypted, module.rds_ap_southeast_1.storage_encrypted])
    error_message = "every database must be encrypted at rest"
  }
  assert {
    condition     = !anytrue([module.rds_us_east_1.publicly_accessible, module.rds_eu_west_1.publicly_accessible, module.rds_ap_southeast_1.publicly_accessible])
    error_message = "no database may be publicly accessible"
  }
  assert {
    condition     = module.rds_us_east_1.backup_retention_period >= 7
    error_message = "the primary keeps at least a week of backups"
  }
  assert {
    condition     = alltrue([for p in [module.rds_us_east_1.parameters, module.rds_eu_west_1.parameters, module.rds_ap_southeast_1.parameters] : p["rds.logical_replication"] == "0" && p["hot_standby_feedback"] == "1"])
    error_message = "logical replication off and hot_standby_feedback on everywhere"
  }
}

run "only_meridian_reaches_the_databases" {
  command = apply

  assert {
    condition     = module.rds_us_east_1.allowed_security_group_ids == tolist([module.eks_us_east_1.meridian_security_group_id])
    error_message = "the primary admits only us-east-1's Meridian pods"
  }
  assert {
    condition     = module.rds_eu_west_1.allowed_security_group_ids == tolist([module.eks_eu_west_1.meridian_security_group_id])
    error_message = "the eu replica admits only eu-west-1's Meridian pods"
  }
  assert {
    condition     = module.rds_ap_southeast_1.allowed_security_group_ids == tolist([module.eks_ap_southeast_1.meridian_security_group_id])
    error_message = "the ap replica admits only ap-southeast-1's Meridian pods"
  }
}

run "three_zones_and_a_global_entry_point" {
  command = apply

  assert {
    condition     = length(module.network_us_east_1.private_subnet_ids) == 3 && length(module.network_us_east_1.availability_zones) == 3
    error_message = "us-east-1 spans three availability zones"
  }
  assert {
    condition     = length(module.network_eu_west_1.availability_zones) == 3 && length(module.network_ap_southeast_1.availability_zones) == 3
    error_message = "every region spans three availability zones"
  }
  assert {
    condition     = module.accelerator.endpoint_group_regions == tolist(["ap-southeast-1", "eu-west-1", "us-east-1"])
    error_message = "Global Accelerator has an endpoint group in each region"
  }
}

run "the_regions_etcd_members_reach_each_other" {
  command = apply

  variables {
    etcd_load_balancer_dns = {
      "us-east-1"      = "etcd-us.elb.us-east-1.amazonaws.com"
      "eu-west-1"      = "etcd-eu.elb.eu-west-1.amazonaws.com"
      "ap-southeast-1" = ""
    }
  }

  assert {
    condition     = alltrue([for m in [module.peering_us_eu, module.peering_us_ap, module.peering_eu_ap] : m.id != ""])
    error_message = "every pair of regions is peered"
  }
  assert {
    condition     = length(module.network_us_east_1.private_route_table_ids) == 3
    error_message = "every private subnet routes to the peers"
  }
  assert {
    condition     = toset(keys(aws_route53_record.etcd)) == toset(["us-east-1", "eu-west-1"])
    error_message = "etcd.<region>.meridian.internal exists for each region whose etcd NLB is known"
  }
  assert {
    condition     = aws_route53_record.etcd["eu-west-1"].name == "etcd.eu-west-1.meridian.internal"
    error_message = "the records carry the names the overlays use"
  }
  assert {
    condition     = output.regions["ap-southeast-1"].etcd_name == "etcd.ap-southeast-1.meridian.internal"
    error_message = "the outputs name each region's etcd member"
  }
}
