output "cluster_name" {
  value = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  value = aws_eks_cluster.this.endpoint
}

output "meridian_security_group_id" {
  value = aws_security_group.meridian.id
}

output "etcd_security_group_id" {
  value = aws_security_group.etcd.id
}
