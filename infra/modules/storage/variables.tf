variable "uploads_bucket" {
  description = "Name of the bucket clients upload originals to."
  type        = string
}

variable "media_bucket" {
  description = "Name of the bucket holding renditions, artwork and waveforms."
  type        = string
}

variable "uploads_prefix" {
  description = "Key prefix of uploads; only objects under it notify the events queue."
  type        = string
  default     = "uploads/"
}

variable "cors_origins" {
  description = "Browser origins allowed to POST uploads and GET media."
  type        = list(string)
  default     = []
}

variable "originals_retention_days" {
  description = "Days an original is kept."
  type        = number
  default     = 90

  validation {
    condition     = var.originals_retention_days >= 1
    error_message = "Originals must be kept at least a day (the pipeline reads them)."
  }
}

variable "multipart_abort_after_days" {
  description = "Days after which an unfinished multipart upload is aborted (its parts deleted)."
  type        = number
  default     = 1

  validation {
    condition     = var.multipart_abort_after_days >= 1
    error_message = "S3 counts lifecycle days in whole days, from one."
  }
}

variable "playback_public_key_pem" {
  description = "RSA public key (PEM) whose private half the API signs media URLs with; CloudFront serves nothing unsigned."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for default bucket encryption."
  type        = string
}

variable "events_queue_arn" {
  description = "Queue that receives ObjectCreated notifications of the uploads bucket."
  type        = string
}

variable "events_queue_policy_ready" {
  description = "Id of the events queue's policy; the notification is created after it."
  type        = string
}
