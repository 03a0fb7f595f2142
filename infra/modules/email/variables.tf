variable "sender" {
  description = "Address (or domain) that sends the emails; SES verifies it."
  type        = string
}
