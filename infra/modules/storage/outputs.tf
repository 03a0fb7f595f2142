output "uploads_bucket_arn" {
  description = "ARN of the uploads bucket."
  value       = aws_s3_bucket.uploads.arn
}

output "media_bucket_arn" {
  description = "ARN of the media bucket."
  value       = aws_s3_bucket.media.arn
}

output "media_domain" {
  description = "CloudFront domain of the media."
  value       = aws_cloudfront_distribution.media.domain_name
}
