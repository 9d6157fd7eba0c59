# AWS Global Accelerator in front of the three regions: one static anycast entry point, TCP
# 5432 to each region's Meridian network load balancer, health-checked, clients sent to the
# nearest healthy region. Global Accelerator's API lives in us-west-2, whatever the regions.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

resource "aws_globalaccelerator_accelerator" "this" {
  name            = var.name
  ip_address_type = "IPV4"
  enabled         = true
  tags            = var.tags
}

resource "aws_globalaccelerator_listener" "postgres" {
  accelerator_arn = aws_globalaccelerator_accelerator.this.id
  protocol        = "TCP"
  client_affinity = "SOURCE_IP"

  port_range {
    from_port = 5432
    to_port   = 5432
  }
}

resource "aws_globalaccelerator_endpoint_group" "region" {
  for_each                      = var.regions
  listener_arn                  = aws_globalaccelerator_listener.postgres.id
  endpoint_group_region         = each.key
  health_check_protocol         = "HTTP"
  health_check_port             = 9187
  health_check_path             = "/metrics"
  health_check_interval_seconds = 10
  threshold_count               = 3
  traffic_dial_percentage       = 100

  dynamic "endpoint_configuration" {
    for_each = each.value.load_balancer_arn == null ? [] : [each.value.load_balancer_arn]
    content {
      endpoint_id                    = endpoint_configuration.value
      weight                         = 100
      client_ip_preservation_enabled = true
    }
  }
}
