variable "tables" {
  description = "Tables by logical name: keys, key attribute types, indexes and TTL attribute."
  type = map(object({
    name       = string
    hash_key   = string
    range_key  = optional(string)
    ttl        = optional(string)
    attributes = map(string)
    indexes = map(object({
      hash_key  = string
      range_key = optional(string)
    }))
  }))
}

variable "kms_key_arn" {
  description = "KMS key encrypting the tables."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the tables (set false only to tear an environment down)."
  type        = bool
  default     = true
}
