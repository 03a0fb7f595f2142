################################################################################
# Uploads: private, encrypted, versioned; clients write here through presigned POSTs
################################################################################

resource "aws_s3_bucket" "uploads" {
  #checkov:skip=CKV_AWS_144:Originals are re-creatable by their uploaders and expire; cross-region replication would double the cost of a buffer.
  #checkov:skip=CKV_AWS_18:Access is logged by CloudTrail data events at the account level; bucket access logs would repeat them.
  bucket = var.uploads_bucket
}

resource "aws_s3_bucket" "media" {
  #checkov:skip=CKV_AWS_144:Media can be rebuilt from the originals by reprocessing; replication is left to the account's DR plan.
  #checkov:skip=CKV_AWS_18:Reads are logged by CloudFront; writes by CloudTrail data events.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the media bucket.
  bucket = var.media_bucket
}

locals {
  buckets = { uploads = aws_s3_bucket.uploads, media = aws_s3_bucket.media }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_cors_configuration" "this" {
  for_each = length(var.cors_origins) > 0 ? local.buckets : {}

  bucket = each.value.id
  cors_rule {
    # PUT: browsers send a large file's parts to presigned UploadPart URLs
    allowed_methods = ["GET", "HEAD", "POST", "PUT"]
    allowed_origins = var.cors_origins
    allowed_headers = ["*"]
    expose_headers  = ["ETag"]
    max_age_seconds = 3000
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    # the local sweeper aborts as this rule does (tasks/recovery.py)
    abort_incomplete_multipart_upload {
      days_after_initiation = var.multipart_abort_after_days
    }
  }

  rule {
    id     = "expire-originals"
    status = "Enabled"
    filter {
      prefix = var.uploads_prefix
    }
    expiration {
      days = var.originals_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "media" {
  bucket = aws_s3_bucket.media.id

  rule {
    id     = "tidy"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }
}

################################################################################
# ObjectCreated under the uploads prefix -> the events queue
################################################################################

resource "aws_s3_bucket_notification" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  queue {
    id            = "uploads-to-events"
    queue_arn     = var.events_queue_arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.uploads_prefix
  }

  # S3 checks that it may send to the queue when the notification is set: the policy first.
  depends_on = [terraform_data.events_policy_ready]
}

resource "terraform_data" "events_policy_ready" {
  input = var.events_queue_policy_ready
}

################################################################################
# Media served through CloudFront, which alone may read the bucket (origin access control)
################################################################################

resource "aws_cloudfront_origin_access_control" "media" {
  name                              = var.media_bucket
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# The API signs every media URL (a custom policy over a track's streaming prefix covers a
# playlist's segments); CloudFront refuses anything unsigned.
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-trusted-signers.html
resource "aws_cloudfront_public_key" "playback" {
  name        = "${var.media_bucket}-playback"
  encoded_key = var.playback_public_key_pem
}

resource "aws_cloudfront_key_group" "playback" {
  name  = "${var.media_bucket}-playback"
  items = [aws_cloudfront_public_key.playback.id]
}

locals {
  # Managed cache policies: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html
  caching_optimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"
  caching_disabled  = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
  # Segments and init segments never change under a key: cached at the edge. Playlists are
  # rewritten per viewer by the API; one fetched here directly is not cached.
  media_paths = {
    "*.m4s"  = local.caching_optimized
    "*.mp4"  = local.caching_optimized
    "*.m3u8" = local.caching_disabled
  }
}

resource "aws_cloudfront_response_headers_policy" "media" {
  name = "${var.media_bucket}-headers"

  # hls.js fetches segments from the web client's origin
  dynamic "cors_config" {
    for_each = length(var.cors_origins) > 0 ? [1] : []
    content {
      access_control_allow_credentials = false
      access_control_max_age_sec       = 3600
      origin_override                  = true
      access_control_allow_headers {
        items = ["*"]
      }
      access_control_allow_methods {
        items = ["GET", "HEAD", "OPTIONS"]
      }
      access_control_allow_origins {
        items = var.cors_origins
      }
      access_control_expose_headers {
        items = ["Content-Length", "Content-Range"]
      }
    }
  }

  security_headers_config {
    content_type_options {
      override = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
  }
}

resource "aws_cloudfront_distribution" "media" {
  #checkov:skip=CKV_AWS_68:Every request must carry the API's signature; a WAF is attached at the account edge where needed.
  #checkov:skip=CKV2_AWS_47:No WAF here (see CKV_AWS_68).
  #checkov:skip=CKV_AWS_86:Access logs go to the account's central logging bucket, configured outside this module.
  #checkov:skip=CKV_AWS_310:A single origin: S3 is highly available; there is no second origin to fail over to.
  #checkov:skip=CKV_AWS_374:Tracks are served worldwide.
  #checkov:skip=CKV2_AWS_42:The default certificate serves the cloudfront.net domain; a custom domain brings its own.
  #checkov:skip=CKV_AWS_174:With the default certificate CloudFront itself sets the TLS floor; a custom domain's certificate uses TLSv1.2_2021.
  #checkov:skip=CKV_AWS_305:The distribution serves objects by key only; there is no root page to serve.
  enabled         = true
  is_ipv6_enabled = true
  comment         = "${var.media_bucket}: renditions, artwork and waveforms"
  price_class     = "PriceClass_100"

  origin {
    domain_name              = aws_s3_bucket.media.bucket_regional_domain_name
    origin_id                = "media"
    origin_access_control_id = aws_cloudfront_origin_access_control.media.id
  }

  default_cache_behavior {
    target_origin_id           = "media"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    cache_policy_id            = local.caching_optimized
    response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id
    trusted_key_groups         = [aws_cloudfront_key_group.playback.id]
    compress                   = true
  }

  dynamic "ordered_cache_behavior" {
    for_each = local.media_paths
    content {
      path_pattern               = ordered_cache_behavior.key
      target_origin_id           = "media"
      viewer_protocol_policy     = "redirect-to-https"
      allowed_methods            = ["GET", "HEAD", "OPTIONS"]
      cached_methods             = ["GET", "HEAD"]
      cache_policy_id            = ordered_cache_behavior.value
      response_headers_policy_id = aws_cloudfront_response_headers_policy.media.id
      trusted_key_groups         = [aws_cloudfront_key_group.playback.id]
      compress                   = true # playlists gzip-encoded (Apple HLS authoring spec 10.1)
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
    minimum_protocol_version       = "TLSv1.2_2021"
  }
}

data "aws_iam_policy_document" "cloudfront_reads" {
  statement {
    sid       = "CloudFrontReads"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.media.arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.media.arn]
    }
  }
}

################################################################################
# Bucket policies: both buckets refuse plain HTTP; the media bucket also admits CloudFront
################################################################################

data "aws_iam_policy_document" "this" {
  for_each = local.buckets

  source_policy_documents = each.key == "media" ? [data.aws_iam_policy_document.cloudfront_reads.json] : []

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets

  bucket = each.value.id
  policy = data.aws_iam_policy_document.this[each.key].json
}

# The policies were one resource per bucket; these keep the deployed ones in place (drop them
# once every environment has applied).
moved {
  from = aws_s3_bucket_policy.uploads
  to   = aws_s3_bucket_policy.this["uploads"]
}

moved {
  from = aws_s3_bucket_policy.media
  to   = aws_s3_bucket_policy.this["media"]
}
