locals {
  # Which queue each service consumes (and scales on); the API consumes none.
  service_queue = {
    consumer       = "events"
    "cpu-standard" = "cpu-standard"
    "io-standard"  = "io-standard"
    "cpu-priority" = "cpu-priority"
    "io-priority"  = "io-priority"
    "cpu-bulk"     = "cpu-bulk"
    "io-bulk"      = "io-bulk"
  }
  workers = [for key in keys(local.service_queue) : key if key != "consumer"]

  commands = merge(
    { api = ["api"], consumer = ["consumer"] },
    { for key in local.workers : key => [
      "worker", "--group", split("-", key)[0], "--lane", split("-", key)[1],
      "--concurrency", tostring(var.services[key].concurrency),
    ] }
  )

  worker_queue_arns = [for key, queue in var.queues : queue.arn if key != "events"]
  table_index_arns  = [for arn in values(var.table_arns) : "${arn}/index/*"]

  # Least privilege: each service may make exactly the calls its code makes.
  statements = {
    api = [
      { sid = "PresignUploads", actions = ["s3:PutObject"],
      resources = ["${var.buckets.uploads}/${var.uploads_prefix}*"] },
      # large uploads in parts: what S3 holds (to resume and complete), abort, and the
      # assembled object's size when a completion is asked again
      { sid = "MultipartUploads", actions = ["s3:ListMultipartUploadParts",
        "s3:AbortMultipartUpload", "s3:GetObject"],
      resources = ["${var.buckets.uploads}/${var.uploads_prefix}*"] },
      { sid = "PresignPlayback", actions = ["s3:GetObject"],
      resources = ["${var.buckets.media}/tracks/*"] },
      { sid = "State", actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchGetItem"],
      resources = concat(values(var.table_arns), local.table_index_arns) },
      { sid = "SendTasks", actions = ["sqs:SendMessage"], resources = local.worker_queue_arns },
      { sid = "Search", actions = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost",
      "es:ESHttpPut", "es:ESHttpDelete"], resources = ["${var.search_domain_arn}/*"] },
    ]
    consumer = [
      { sid = "Events", actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
      resources = [var.queues["events"].arn] },
      { sid = "SendTasks", actions = ["sqs:SendMessage"], resources = local.worker_queue_arns },
      { sid = "ReadUploads", actions = ["s3:GetObject", "s3:ListBucket"],
      resources = [var.buckets.uploads, "${var.buckets.uploads}/*"] },
      { sid = "State", actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "dynamodb:Query", "dynamodb:BatchGetItem"],
      resources = concat(values(var.table_arns), local.table_index_arns) },
    ]
    worker = [
      { sid = "Tasks", actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:SendMessage"],
      resources = local.worker_queue_arns },
      { sid = "ReadUploads", actions = ["s3:GetObject", "s3:DeleteObject",
        "s3:AbortMultipartUpload"], # the sweeper aborts an upload left unfinished
      resources = ["${var.buckets.uploads}/*"] },
      { sid = "WriteMedia", actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
        "s3:AbortMultipartUpload"],
      resources = ["${var.buckets.media}/*"] },
      { sid = "ListMedia", actions = ["s3:ListBucket"], resources = [var.buckets.media] },
      { sid = "State", actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"],
      resources = concat(values(var.table_arns), local.table_index_arns) },
      { sid = "Email", actions = ["ses:SendEmail"], resources = [var.ses_identity_arn] },
      { sid = "Search", actions = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost",
      "es:ESHttpPut", "es:ESHttpDelete"], resources = ["${var.search_domain_arn}/*"] },
    ]
  }

  service_policy = merge(
    { api = "api", consumer = "consumer" },
    { for key in local.workers : key => "worker" }
  )
}

################################################################################
# Cluster and logs
################################################################################

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled" # RunningTaskCount, which the backlog-per-task scaling divides by
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = var.services

  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

################################################################################
# IAM: an execution role for ECS, and a task role per service with only what its code calls
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "Secrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = sort(values(var.secrets))
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  for_each = local.statements

  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "task" {
  for_each = local.statements

  dynamic "statement" {
    for_each = each.value
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "task" {
  for_each = local.statements

  name   = "trackflow"
  role   = aws_iam_role.task[each.key].id
  policy = data.aws_iam_policy_document.task[each.key].json
}

################################################################################
# Network
################################################################################

resource "aws_security_group" "services" {
  name        = "${var.name}-services"
  description = "trackflow services: out to AWS APIs; the API in from its load balancer"
  vpc_id      = var.vpc_id

  egress {
    description = "AWS APIs and the search domain over HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.services.id
  referenced_security_group_id = aws_security_group.alb.id
  from_port                    = 8000
  to_port                      = 8000
  ip_protocol                  = "tcp"
  description                  = "the API's port, from the load balancer"
}

resource "aws_vpc_security_group_ingress_rule" "search_from_services" {
  security_group_id            = var.search_security_group_id
  referenced_security_group_id = aws_security_group.services.id
  from_port                    = 443
  to_port                      = 443
  ip_protocol                  = "tcp"
  description                  = "search over HTTPS from the services"
}

################################################################################
# One task definition and one service per role, all from the same image
################################################################################

resource "aws_ecs_task_definition" "this" {
  for_each = var.services

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task[local.service_policy[each.key]].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name                   = each.key
    image                  = var.image
    command                = local.commands[each.key]
    essential              = true
    readonlyRootFilesystem = false # ffmpeg and the download cache write to /tmp
    user                   = "10001"
    stopTimeout            = 60 # SIGTERM first: workers hand their messages back
    # the public address: links in emails and the playback URLs the API hands out (behind the
    # load balancer a request's own scheme and host are the container's)
    environment = [for name, value in merge(var.environment, {
      TRACKFLOW_PUBLIC_URL = coalesce(var.public_url, "https://${aws_lb.api.dns_name}")
      }, each.key == "api" ? {
      TRACKFLOW_API_HOST = "0.0.0.0", TRACKFLOW_API_PORT = "8000"
    } : {}) : { name = name, value = value }]
    secrets      = [for name, arn in var.secrets : { name = name, valueFrom = arn }]
    portMappings = each.key == "api" ? [{ containerPort = 8000, protocol = "tcp" }] : []
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this[each.key].name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "this" {
  for_each = var.services

  name            = each.key
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.this[each.key].arn
  desired_count   = each.value.min
  launch_type     = "FARGATE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.services.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = each.key == "api" ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.api.arn
      container_name   = "api"
      container_port   = 8000
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count] # the autoscaler owns it
  }
}

################################################################################
# Scaling: workers and the consumer hold a backlog per task (visible messages / running tasks,
# by metric math); the API holds requests per target
################################################################################

resource "aws_appautoscaling_target" "this" {
  for_each = var.services

  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min
  max_capacity       = each.value.max
}

resource "aws_appautoscaling_policy" "backlog" {
  for_each = local.service_queue

  name               = "${each.key}-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = "ecs"
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.services[each.key].backlog_per_task
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    customized_metric_specification {
      # The two series the backlog divides (visible messages, running tasks) share one block shape.
      dynamic "metrics" {
        for_each = {
          visible = {
            label       = "messages waiting in ${var.queues[each.value].name}"
            stat        = "Sum"
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions  = { QueueName = var.queues[each.value].name }
          }
          tasks = {
            label       = "running tasks of ${each.key}"
            stat        = "Average"
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions  = { ClusterName = aws_ecs_cluster.this.name, ServiceName = aws_ecs_service.this[each.key].name }
          }
        }
        content {
          id          = metrics.key
          label       = metrics.value.label
          return_data = false
          metric_stat {
            stat = metrics.value.stat
            metric {
              namespace   = metrics.value.namespace
              metric_name = metrics.value.metric_name
              dynamic "dimensions" {
                for_each = metrics.value.dimensions
                content {
                  name  = dimensions.key
                  value = dimensions.value
                }
              }
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_task"
        label       = "backlog per task"
        expression  = "visible / IF(tasks > 0, tasks, 1)"
        return_data = true
      }
    }
  }
}

resource "aws_appautoscaling_policy" "api" {
  name               = "api-requests-per-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = "ecs"
  resource_id        = aws_appautoscaling_target.this["api"].resource_id
  scalable_dimension = aws_appautoscaling_target.this["api"].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.api_requests_per_target
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.api.arn_suffix}/${aws_lb_target_group.api.arn_suffix}"
    }
  }
}

################################################################################
# The API's load balancer
################################################################################

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "trackflow API load balancer: HTTPS from anywhere"
  vpc_id      = var.vpc_id

  ingress {
    description = "HTTPS from clients"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "to the API tasks"
    from_port   = 8000
    to_port     = 8000
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_lb" "api" {
  #checkov:skip=CKV_AWS_91:Access logs go to the account's central logging bucket, set outside this module.
  #checkov:skip=CKV2_AWS_28:A WAF is attached at the account edge where the deployment needs one.
  name                       = "${var.name}-api"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
}

resource "aws_lb_target_group" "api" {
  name        = "${var.name}-api"
  port        = 8000
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  health_check {
    path    = "/healthz"
    matcher = "200"
  }
}

resource "aws_lb_listener" "api" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}
