variable "name" {
  description = "Name prefix (trackflow-<env>)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the alarm topic."
  type        = string
}

variable "alarm_email" {
  description = "Address subscribed to the alarms (empty: none)."
  type        = string
  default     = ""
}

variable "dead_letter_queues" {
  description = "Dead-letter queue names by key."
  type        = map(string)
}

variable "worker_queues" {
  description = "Worker queue names by key."
  type        = map(string)
}

variable "oldest_message_alarm_s" {
  description = "Age of the oldest message that raises an alarm."
  type        = number
  default     = 900
}

variable "cluster_name" {
  description = "ECS cluster of the services."
  type        = string
}

variable "services" {
  description = "ECS services by key: name and maximum task count."
  type = map(object({
    name = string
    max  = number
  }))
}
