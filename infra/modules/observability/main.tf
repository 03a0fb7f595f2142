################################################################################
# Alarms to one SNS topic: dead letters, old messages, services at their ceiling
################################################################################

resource "aws_sns_topic" "this" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  # The queue alarms differ only in these settings, so that one resource below makes them all.
  queue_alarm_kinds = {
    dead_letters = {
      queues      = var.dead_letter_queues
      suffix      = "not-empty"
      description = "Messages that could never be processed are waiting in %s: inspect them with `trackflow dlq list`, fix the cause, replay with `trackflow dlq redrive`."
      metric_name = "ApproximateNumberOfMessagesVisible"
      periods     = 1
      threshold   = 0
    }
    oldest_message = {
      queues      = var.worker_queues
      suffix      = "oldest-message"
      description = "The oldest message in %s has waited over ${var.oldest_message_alarm_s} s: the workers are not keeping up (see `trackflow capacity`)."
      metric_name = "ApproximateAgeOfOldestMessage"
      periods     = 5
      threshold   = var.oldest_message_alarm_s
    }
  }

  queue_alarms = merge([
    for kind, alarm in local.queue_alarm_kinds : {
      for key, queue in alarm.queues : "${kind}/${key}" => merge(alarm, { queue = queue })
    }
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "queue" {
  for_each = local.queue_alarms

  alarm_name          = "${each.value.queue}-${each.value.suffix}"
  alarm_description   = format(each.value.description, each.value.queue)
  namespace           = "AWS/SQS"
  metric_name         = each.value.metric_name
  dimensions          = { QueueName = each.value.queue }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]
}

resource "aws_cloudwatch_metric_alarm" "at_max_capacity" {
  for_each = var.services

  alarm_name          = "${var.name}-${each.key}-at-max"
  alarm_description   = "${each.key} has run at its maximum of ${each.value.max} tasks for 15 minutes: raise the maximum or the service's size."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = var.cluster_name, ServiceName = each.value.name }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 3
  threshold           = each.value.max
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
}
