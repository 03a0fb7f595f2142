output "api_url" {
  description = "The API's public address (behind the load balancer)."
  value       = module.compute.api_url
}

output "media_domain" {
  description = "CloudFront domain serving the media bucket."
  value       = module.storage.media_domain
}

output "repository_url" {
  description = "ECR repository that make deploy pushes the image to."
  value       = module.registry.repository_url
}

output "queue_urls" {
  description = "Every queue's URL, by key."
  value       = { for key, queue in module.messaging.queues : key => queue.url }
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms publish to."
  value       = module.observability.topic_arn
}
