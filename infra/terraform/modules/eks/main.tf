# One region's Kubernetes: an EKS cluster on the private subnets of all three zones, a managed
# node group spread across them, and the security group Meridian's pods run in (attached with
# a SecurityGroupPolicy, see infra/k8s), which is the only one RDS admits.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

resource "aws_iam_role" "cluster" {
  name = "${var.name}-cluster"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "eks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  for_each   = toset(["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"])
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:aws:iam::aws:policy/${each.value}"
}

resource "aws_eks_cluster" "this" {
  name     = var.name
  role_arn = aws_iam_role.cluster.arn
  version  = var.kubernetes_version

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = false
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.secrets.arn
    }
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.cluster]
}

resource "aws_kms_key" "secrets" {
  description         = "${var.name} Kubernetes secrets encryption"
  enable_key_rotation = true
  tags                = var.tags
}

resource "aws_iam_role" "node" {
  name = "${var.name}-node"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/${each.value}"
}

resource "aws_eks_node_group" "this" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-nodes"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.private_subnet_ids
  instance_types  = var.node_instance_types

  scaling_config {
    desired_size = var.node_count
    min_size     = var.node_count
    max_size     = var.node_count * 3
  }

  update_config {
    max_unavailable = 1
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.node]
}

# Meridian's pods: PostgreSQL clients reach them through the NLB, and they reach RDS.
resource "aws_security_group" "meridian" {
  name        = "${var.name}-meridian"
  description = "Meridian proxy pods"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "postgres" {
  security_group_id = aws_security_group.meridian.id
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  description       = "PostgreSQL clients via the network load balancer"
}

resource "aws_vpc_security_group_ingress_rule" "admin" {
  security_group_id = aws_security_group.meridian.id
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 9187
  to_port           = 9187
  description       = "Metrics"
}

resource "aws_vpc_security_group_ingress_rule" "admin_api" {
  security_group_id = aws_security_group.meridian.id
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = 6480
  to_port           = 6480
  description       = "Admin API: health checks and meridianctl"
}

# The region's etcd member: its clients (the Meridians) and its peers (the other regions'
# members), from this VPC and the peered ones.
resource "aws_security_group" "etcd" {
  name        = "${var.name}-etcd"
  description = "etcd member of this region"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "etcd" {
  for_each          = toset(concat([var.vpc_cidr_block], var.peer_cidr_blocks))
  security_group_id = aws_security_group.etcd.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 2379
  to_port           = 2380
  description       = "etcd clients and peers"
}

resource "aws_vpc_security_group_egress_rule" "etcd" {
  security_group_id = aws_security_group.etcd.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "etcd peers in the other regions"
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.meridian.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "RDS in every region, etcd peers"
}
