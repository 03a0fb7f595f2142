variable "queues" {
  description = "Queues by key: name and visibility timeout (seconds)."
  type = map(object({
    name               = string
    visibility_timeout = number
  }))
}

variable "max_receive_count" {
  description = "Deliveries before a message moves to its dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "message_retention_seconds" {
  description = "How long a source queue keeps a message (its DLQ keeps it 14 days)."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds < 1209600
    error_message = "Source queues must keep messages for less time than their DLQs (14 days)."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the queues."
  type        = string
}

variable "events_queue_key" {
  description = "Key of the queue that receives S3 event notifications."
  type        = string
}

variable "events_source_arn" {
  description = "ARN of the bucket allowed to send to the events queue."
  type        = string
}
