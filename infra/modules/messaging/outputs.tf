output "queue_arns" {
  description = "Queue ARNs by key."
  value       = { for key, queue in aws_sqs_queue.this : key => queue.arn }
}

output "queue_urls" {
  description = "Queue URLs by key."
  value       = { for key, queue in aws_sqs_queue.this : key => queue.id }
}

output "dlq_arns" {
  description = "Dead-letter queue ARNs by key of their source queue."
  value       = { for key, queue in aws_sqs_queue.dlq : key => queue.arn }
}

output "dlq_names" {
  description = "Dead-letter queue names by key of their source queue."
  value       = { for key, queue in aws_sqs_queue.dlq : key => queue.name }
}

output "events_policy_id" {
  description = "The events queue's policy: S3 notifications must be set up after it."
  value       = aws_sqs_queue_policy.events.id
}
