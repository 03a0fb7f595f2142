output "bucket_arns" {
  description = "Bucket ARNs by role: uploads and media."
  value       = { for key, bucket in local.buckets : key => bucket.arn }
}

output "media_domain" {
  description = "CloudFront domain of the media."
  value       = aws_cloudfront_distribution.media.domain_name
}
