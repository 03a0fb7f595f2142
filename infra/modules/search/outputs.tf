output "endpoint" {
  description = "The domain's HTTPS endpoint (host name)."
  value       = aws_opensearch_domain.this.endpoint
}

output "domain_arn" {
  description = "ARN of the domain."
  value       = aws_opensearch_domain.this.arn
}

output "security_group_id" {
  description = "Security group of the domain; the services' group is allowed in."
  value       = aws_security_group.this.id
}
