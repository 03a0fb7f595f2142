output "repository_url" {
  description = "URL to push the image to."
  value       = aws_ecr_repository.this.repository_url
}
