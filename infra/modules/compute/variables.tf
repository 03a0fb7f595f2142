variable "name" {
  description = "Name prefix (trackflow-<env>)."
  type        = string
}

variable "region" {
  description = "AWS region (for the log driver)."
  type        = string
}

variable "image" {
  description = "The trackflow image (repository URL and tag)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the services."
  type        = string
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Subnets of the API's load balancer."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "kms_key_arn" {
  description = "The environment's KMS key (logs, queues, tables, buckets)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the services' logs."
  type        = number
  default     = 365
}

variable "services" {
  description = "Per service: task size, scaling bounds, backlog per task and worker concurrency."
  type = map(object({
    cpu              = number
    memory           = number
    min              = number
    max              = number
    backlog_per_task = number
    concurrency      = number
  }))

  validation {
    condition     = alltrue([for s in values(var.services) : s.min >= 0 && s.max >= s.min && s.max >= 1])
    error_message = "Each service needs 0 <= min <= max and max >= 1."
  }
}

variable "api_requests_per_target" {
  description = "Requests per API task per minute that the API's scaling holds."
  type        = number
  default     = 1000
}

variable "environment" {
  description = "Environment variables of every container (the app's TRACKFLOW_* settings)."
  type        = map(string)
}

variable "public_url" {
  description = "The API's public address (a custom domain); null: the load balancer's HTTPS address."
  type        = string
  default     = null
}

variable "secrets" {
  description = "Secrets Manager secret ARN of each secret setting every container reads (TRACKFLOW_* name => ARN)."
  type        = map(string)
}

variable "queues" {
  description = "Queues by key: name, ARN and URL."
  type = map(object({
    name = string
    arn  = string
    url  = string
  }))
}

variable "buckets" {
  description = "Bucket ARNs: uploads and media."
  type        = object({ uploads = string, media = string })
}

variable "uploads_prefix" {
  description = "Key prefix clients upload under."
  type        = string
}

variable "table_arns" {
  description = "DynamoDB table ARNs by logical name."
  type        = map(string)
}

variable "search_domain_arn" {
  description = "OpenSearch domain ARN."
  type        = string
}

variable "search_security_group_id" {
  description = "Security group of the search domain."
  type        = string
}

variable "ses_identity_arn" {
  description = "SES identity the workers send from."
  type        = string
}
