output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_names" {
  description = "ECS service names by key."
  value       = { for key, service in aws_ecs_service.this : key => service.name }
}

output "api_url" {
  description = "HTTPS address of the API's load balancer."
  value       = "https://${aws_lb.api.dns_name}"
}

output "task_role_arns" {
  description = "Task role per policy (api, consumer, worker)."
  value       = { for key, role in aws_iam_role.task : key => role.arn }
}
