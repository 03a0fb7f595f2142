variable "domain_name" {
  description = "Name of the OpenSearch domain."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the domain."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the domain (one per zone)."
  type        = list(string)
}

variable "instance_type" {
  description = "Data node instance type."
  type        = string
  default     = "t3.small.search"
}

variable "instance_count" {
  description = "Data nodes."
  type        = number
  default     = 2
}

variable "volume_gb" {
  description = "EBS volume of each node."
  type        = number
  default     = 20
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest and logs."
  type        = string
}

variable "master_role_arn" {
  description = "IAM role with full access to the domain (empty: set later)."
  type        = string
  default     = ""
}
