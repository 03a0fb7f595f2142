################################################################################
# Environment
################################################################################

variable "env" {
  description = "Environment name; every resource is named trackflow-<env>-... like the app's settings (TRACKFLOW_ENV)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}$", var.env))
    error_message = "env: lower case letters, digits and '-', starting with a letter, at most 21 characters."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "image_tag" {
  description = "Tag of the trackflow image in ECR that the services run (make deploy pushes it)."
  type        = string
}

################################################################################
# Limits shared with the application (trackflow/settings.py)
################################################################################

variable "cpu_task_time_limit_s" {
  description = "Hard time limit of CPU steps (TRACKFLOW_CPU_TASK_TIME_LIMIT_S)."
  type        = number
  default     = 1800
}

variable "io_task_time_limit_s" {
  description = "Hard time limit of I/O steps (TRACKFLOW_IO_TASK_TIME_LIMIT_S)."
  type        = number
  default     = 300
}

variable "events_visibility_timeout_s" {
  description = "Visibility timeout of the S3 events queue (TRACKFLOW_EVENTS_VISIBILITY_TIMEOUT_S)."
  type        = number
  default     = 60
}

variable "max_receive_count" {
  description = "Deliveries before a message moves to its dead-letter queue (TRACKFLOW_MAX_RECEIVE_COUNT)."
  type        = number
  default     = 5
}

variable "max_upload_bytes" {
  description = "Largest upload accepted (TRACKFLOW_MAX_UPLOAD_BYTES)."
  type        = number
  default     = 5368709120
}

variable "multipart_abort_after_days" {
  description = "Days after which an unfinished multipart upload is aborted (TRACKFLOW_MULTIPART_ABORT_AFTER_DAYS)."
  type        = number
  default     = 1
}

variable "originals_retention_days" {
  description = "Days an uploaded original is kept before it expires."
  type        = number
  default     = 90
}

################################################################################
# Edges
################################################################################

variable "cors_origins" {
  description = "Origins allowed to upload straight to S3 from a browser and to play media."
  type        = list(string)
  default     = []
}

variable "email_sender" {
  description = "SES identity the uploader emails come from (TRACKFLOW_EMAIL_SENDER)."
  type        = string
}

variable "email_rate_per_s" {
  description = "The SES account's send rate (TRACKFLOW_EMAIL_RATE_PER_S)."
  type        = number
  default     = 14
}

variable "alarm_email" {
  description = "Where alarms are sent (an SNS email subscription); empty for none."
  type        = string
  default     = ""
}

variable "vpc_id" {
  description = "VPC of the services."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of the services and the search domain."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets of the API's load balancer."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the API's HTTPS listener."
  type        = string
}

variable "public_url" {
  description = "The API's public address, e.g. https://api.example.com (TRACKFLOW_PUBLIC_URL); null: the load balancer's."
  type        = string
  default     = null
}

variable "playback_public_key_pem" {
  description = "RSA public key (PEM) CloudFront checks media URL signatures with."
  type        = string
}

variable "playback_key_secret_arn" {
  description = "Secrets Manager secret holding the matching RSA private key, PEM (TRACKFLOW_MEDIA_CDN_PRIVATE_KEY)."
  type        = string
}

variable "token_secret_arn" {
  description = "Secrets Manager secret holding the bearer-token HMAC secret (TRACKFLOW_TOKEN_SECRET)."
  type        = string
}

################################################################################
# Capacity (trackflow capacity writes these for a given load)
################################################################################

variable "services" {
  description = "Per service: task size, scaling bounds and the backlog per task to hold."
  type = map(object({
    cpu              = number
    memory           = number
    min              = number
    max              = number
    backlog_per_task = number
    concurrency      = number
  }))
  default = {
    api          = { cpu = 512, memory = 1024, min = 2, max = 10, backlog_per_task = 0, concurrency = 0 }
    consumer     = { cpu = 256, memory = 512, min = 1, max = 4, backlog_per_task = 200, concurrency = 0 }
    cpu-standard = { cpu = 2048, memory = 4096, min = 1, max = 40, backlog_per_task = 4, concurrency = 2 }
    io-standard  = { cpu = 512, memory = 1024, min = 1, max = 10, backlog_per_task = 50, concurrency = 4 }
    cpu-priority = { cpu = 2048, memory = 4096, min = 1, max = 10, backlog_per_task = 1, concurrency = 2 }
    io-priority  = { cpu = 512, memory = 1024, min = 1, max = 4, backlog_per_task = 10, concurrency = 4 }
    cpu-bulk     = { cpu = 2048, memory = 4096, min = 1, max = 4, backlog_per_task = 20, concurrency = 2 }
    io-bulk      = { cpu = 512, memory = 1024, min = 1, max = 4, backlog_per_task = 200, concurrency = 4 }
  }
}

variable "log_retention_days" {
  description = "Retention of the services' CloudWatch logs."
  type        = number
  default     = 365
}

variable "oldest_message_alarm_s" {
  description = "Alarm when a worker queue's oldest message is older than this."
  type        = number
  default     = 900
}

variable "search_instance_type" {
  description = "Instance type of the OpenSearch domain."
  type        = string
  default     = "t3.small.search"
}

variable "search_instance_count" {
  description = "Data nodes of the OpenSearch domain."
  type        = number
  default     = 2
}
