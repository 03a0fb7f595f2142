output "queues" {
  description = "Queues by key: name, ARN and URL."
  value       = { for key, queue in aws_sqs_queue.this : key => { name = queue.name, arn = queue.arn, url = queue.id } }
}

output "dead_letter_queues" {
  description = "Dead-letter queues by key of their source queue: name and ARN."
  value       = { for key, queue in aws_sqs_queue.dlq : key => { name = queue.name, arn = queue.arn } }
}

output "events_policy_id" {
  description = "The events queue's policy: S3 notifications must be set up after it."
  value       = aws_sqs_queue_policy.events.id
}
