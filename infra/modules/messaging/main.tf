################################################################################
# Queues, each with its dead-letter queue
################################################################################

resource "aws_sqs_queue" "dlq" {
  for_each = var.queues

  name                      = "${each.value.name}-dlq"
  message_retention_seconds = 1209600 # 14 days: longer than any source queue keeps a message
  kms_master_key_id         = var.kms_key_arn
}

resource "aws_sqs_queue" "this" {
  for_each = var.queues

  name                       = each.value.name
  visibility_timeout_seconds = each.value.visibility_timeout
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20 # long polling
  kms_master_key_id          = var.kms_key_arn

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "this" {
  for_each = var.queues

  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this[each.key].arn]
  })
}

################################################################################
# S3 may send to the events queue, for the uploads bucket only
################################################################################

data "aws_iam_policy_document" "events" {
  statement {
    sid       = "UploadsBucketEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this[var.events_queue_key].arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.events_source_arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.this[var.events_queue_key].id
  policy    = data.aws_iam_policy_document.events.json
}
