output "bucket_arns" {
  description = "Bucket ARNs by role: uploads and media."
  value       = { for key, bucket in local.buckets : key => bucket.arn }
}

output "playback_key_pair_id" {
  description = "Id of the CloudFront public key the API's media URL signatures name (Key-Pair-Id)."
  value       = aws_cloudfront_public_key.playback.id
}

output "media_domain" {
  description = "CloudFront domain of the media."
  value       = aws_cloudfront_distribution.media.domain_name
}
