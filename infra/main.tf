################################################################################
# Names: the same as trackflow.settings.resource_names("trackflow-<env>")
################################################################################

locals {
  name_prefix = "trackflow-${var.env}"

  buckets = {
    uploads = "${local.name_prefix}-uploads"
    media   = "${local.name_prefix}-media"
  }
  uploads_prefix = "uploads/"

  events_queue = {
    name               = "${local.name_prefix}-events"
    visibility_timeout = var.events_visibility_timeout_s
  }

  # One queue per worker group and lane; each queue's visibility timeout exceeds the hard time
  # limit of every task routed to it (the app derives it the same way: limit + 60 s).
  worker_queues = {
    "cpu-standard" = { name = "${local.name_prefix}-cpu", time_limit = var.cpu_task_time_limit_s }
    "cpu-priority" = { name = "${local.name_prefix}-cpu-priority", time_limit = var.cpu_task_time_limit_s }
    "io-standard"  = { name = "${local.name_prefix}-io", time_limit = var.io_task_time_limit_s }
    "io-priority"  = { name = "${local.name_prefix}-io-priority", time_limit = var.io_task_time_limit_s }
    "cpu-bulk"     = { name = "${local.name_prefix}-cpu-bulk", time_limit = var.cpu_task_time_limit_s }
    "io-bulk"      = { name = "${local.name_prefix}-io-bulk", time_limit = var.io_task_time_limit_s }
  }

  queues = merge(
    { events = local.events_queue },
    { for key, queue in local.worker_queues : key => {
      name               = queue.name
      visibility_timeout = queue.time_limit + 60
    } }
  )

  # trackflow/adapters/state/schema.py, table for table
  tables = {
    tracks = {
      name       = "${local.name_prefix}-tracks"
      hash_key   = "track_id"
      range_key  = null
      ttl        = null
      attributes = { track_id = "S", owner = "S", created_at = "S", status = "S", updated_at = "S" }
      indexes = {
        by_owner  = { hash_key = "owner", range_key = "created_at" }
        by_status = { hash_key = "status", range_key = "updated_at" }
      }
    }
    users = {
      name       = "${local.name_prefix}-users"
      hash_key   = "user_id"
      range_key  = null
      ttl        = null
      attributes = { user_id = "S" }
      indexes    = {}
    }
    follows = {
      name       = "${local.name_prefix}-follows"
      hash_key   = "user_id"
      range_key  = "follower_id"
      ttl        = null
      attributes = { user_id = "S", follower_id = "S" }
      indexes    = { by_follower = { hash_key = "follower_id", range_key = "user_id" } }
    }
    feeds = {
      name       = "${local.name_prefix}-feeds"
      hash_key   = "user_id"
      range_key  = "entry"
      ttl        = "expires_at"
      attributes = { user_id = "S", entry = "S" }
      indexes    = {}
    }
    catalogue = {
      name       = "${local.name_prefix}-catalogue"
      hash_key   = "work_id"
      range_key  = null
      ttl        = null
      attributes = { work_id = "S", owner = "S", kind = "S" }
      indexes = {
        by_owner = { hash_key = "owner", range_key = "work_id" }
        by_kind  = { hash_key = "kind", range_key = "work_id" }
      }
    }
    fingerprints = {
      name       = "${local.name_prefix}-fingerprints"
      hash_key   = "hash"
      range_key  = null
      ttl        = null
      attributes = { hash = "N" }
      indexes    = {}
    }
    idempotency = {
      name       = "${local.name_prefix}-idempotency"
      hash_key   = "key"
      range_key  = null
      ttl        = "expires_at"
      attributes = { key = "S" }
      indexes    = {}
    }
    webhooks = {
      name       = "${local.name_prefix}-webhooks"
      hash_key   = "endpoint_id"
      range_key  = null
      ttl        = null
      attributes = { endpoint_id = "S", owner = "S", created_at = "S", audience = "S" }
      indexes = {
        by_owner    = { hash_key = "owner", range_key = "created_at" }
        by_audience = { hash_key = "audience", range_key = "endpoint_id" }
      }
    }
    webhook_events = {
      name       = "${local.name_prefix}-webhook-events"
      hash_key   = "event_id"
      range_key  = null
      ttl        = "expires_at"
      attributes = { event_id = "S" }
      indexes    = {}
    }
    webhook_deliveries = {
      name       = "${local.name_prefix}-webhook-deliveries"
      hash_key   = "endpoint_id"
      range_key  = "delivery_id"
      ttl        = "expires_at"
      attributes = { endpoint_id = "S", delivery_id = "S" }
      indexes    = {}
    }
  }
}

data "aws_caller_identity" "current" {}

################################################################################
# One key for everything at rest in this environment
################################################################################

resource "aws_kms_key" "this" {
  description             = "${local.name_prefix}: data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${local.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:In a key policy "*" is this key alone; the account-root statement is AWS's default key policy, so that IAM policies govern who uses the key.
  #checkov:skip=CKV_AWS_356:As above: the resource of a key policy is the key itself.
  #checkov:skip=CKV_AWS_109:As above: key administration stays with the account's IAM policies.
  statement {
    sid       = "Account"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "Services"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type = "Service"
      identifiers = [
        "s3.amazonaws.com", "sqs.amazonaws.com", "sns.amazonaws.com", "logs.amazonaws.com",
        "cloudwatch.amazonaws.com", "cloudfront.amazonaws.com", "dynamodb.amazonaws.com",
      ]
    }
  }
}

################################################################################
# Modules
################################################################################

module "messaging" {
  source = "./modules/messaging"

  queues            = local.queues
  max_receive_count = var.max_receive_count
  kms_key_arn       = aws_kms_key.this.arn
  events_queue_key  = "events"
  events_source_arn = "arn:aws:s3:::${local.buckets.uploads}"
}

module "storage" {
  source = "./modules/storage"

  uploads_bucket             = local.buckets.uploads
  media_bucket               = local.buckets.media
  uploads_prefix             = local.uploads_prefix
  cors_origins               = var.cors_origins
  originals_retention_days   = var.originals_retention_days
  multipart_abort_after_days = var.multipart_abort_after_days
  playback_public_key_pem    = var.playback_public_key_pem
  kms_key_arn                = aws_kms_key.this.arn
  events_queue_arn           = module.messaging.queues["events"].arn
  events_queue_policy_ready  = module.messaging.events_policy_id
}

module "state" {
  source = "./modules/state"

  tables      = local.tables
  kms_key_arn = aws_kms_key.this.arn
}

module "search" {
  source = "./modules/search"

  domain_name    = "${local.name_prefix}-search"
  vpc_id         = var.vpc_id
  subnet_ids     = slice(var.private_subnet_ids, 0, min(2, length(var.private_subnet_ids)))
  instance_type  = var.search_instance_type
  instance_count = var.search_instance_count
  kms_key_arn    = aws_kms_key.this.arn
}

module "email" {
  source = "./modules/email"

  sender = var.email_sender
}

module "registry" {
  source = "./modules/registry"

  name        = local.name_prefix
  kms_key_arn = aws_kms_key.this.arn
}

module "compute" {
  source = "./modules/compute"

  name               = local.name_prefix
  region             = var.region
  image              = "${module.registry.repository_url}:${var.image_tag}"
  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  public_subnet_ids  = var.public_subnet_ids
  certificate_arn    = var.certificate_arn
  kms_key_arn        = aws_kms_key.this.arn
  log_retention_days = var.log_retention_days
  services           = var.services
  public_url         = var.public_url
  secrets = {
    TRACKFLOW_TOKEN_SECRET          = var.token_secret_arn
    TRACKFLOW_MEDIA_CDN_PRIVATE_KEY = var.playback_key_secret_arn
  }

  environment = {
    TRACKFLOW_ENV                         = var.env
    TRACKFLOW_AWS_TARGET                  = "aws"
    TRACKFLOW_REGION                      = var.region
    TRACKFLOW_AWS_ACCOUNT_ID              = data.aws_caller_identity.current.account_id
    TRACKFLOW_CPU_TASK_TIME_LIMIT_S       = tostring(var.cpu_task_time_limit_s)
    TRACKFLOW_IO_TASK_TIME_LIMIT_S        = tostring(var.io_task_time_limit_s)
    TRACKFLOW_EVENTS_VISIBILITY_TIMEOUT_S = tostring(var.events_visibility_timeout_s)
    TRACKFLOW_MAX_RECEIVE_COUNT           = tostring(var.max_receive_count)
    TRACKFLOW_MAX_UPLOAD_BYTES            = tostring(var.max_upload_bytes)
    TRACKFLOW_EMAIL_SENDER                = var.email_sender
    TRACKFLOW_EMAIL_RATE_PER_S            = tostring(var.email_rate_per_s)
    TRACKFLOW_SEARCH_BACKEND              = "opensearch"
    TRACKFLOW_OPENSEARCH_URL              = "https://${module.search.endpoint}"
    TRACKFLOW_DATA_DIR                    = "/tmp/trackflow"
    TRACKFLOW_MEDIA_CDN_DOMAIN            = module.storage.media_domain
    TRACKFLOW_MEDIA_CDN_KEY_PAIR_ID       = module.storage.playback_key_pair_id
  }

  queues                   = module.messaging.queues
  buckets                  = module.storage.bucket_arns
  uploads_prefix           = local.uploads_prefix
  table_arns               = module.state.table_arns
  search_domain_arn        = module.search.domain_arn
  search_security_group_id = module.search.security_group_id
  ses_identity_arn         = module.email.identity_arn
}

module "observability" {
  source = "./modules/observability"

  name                   = local.name_prefix
  kms_key_arn            = aws_kms_key.this.arn
  alarm_email            = var.alarm_email
  dead_letter_queues     = { for key, queue in module.messaging.dead_letter_queues : key => queue.name }
  worker_queues          = { for key, queue in local.worker_queues : key => queue.name }
  oldest_message_alarm_s = var.oldest_message_alarm_s
  cluster_name           = module.compute.cluster_name
  services = { for key, service in module.compute.service_names : key => {
    name = service
    max  = var.services[key].max
  } }
}

################################################################################
# Moved addresses: the dead-letter and oldest-message alarms became one resource; the keys are
# this module's queue keys, so the moves live here (drop them once every environment has applied)
################################################################################

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.dead_letters["events"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["dead_letters/events"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.dead_letters["cpu-standard"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["dead_letters/cpu-standard"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.dead_letters["cpu-priority"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["dead_letters/cpu-priority"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.dead_letters["io-standard"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["dead_letters/io-standard"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.dead_letters["io-priority"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["dead_letters/io-priority"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.dead_letters["cpu-bulk"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["dead_letters/cpu-bulk"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.dead_letters["io-bulk"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["dead_letters/io-bulk"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.oldest_message["cpu-standard"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["oldest_message/cpu-standard"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.oldest_message["cpu-priority"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["oldest_message/cpu-priority"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.oldest_message["io-standard"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["oldest_message/io-standard"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.oldest_message["io-priority"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["oldest_message/io-priority"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.oldest_message["cpu-bulk"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["oldest_message/cpu-bulk"]
}

moved {
  from = module.observability.aws_cloudwatch_metric_alarm.oldest_message["io-bulk"]
  to   = module.observability.aws_cloudwatch_metric_alarm.queue["oldest_message/io-bulk"]
}
