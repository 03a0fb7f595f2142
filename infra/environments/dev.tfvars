env       = "dev"
region    = "us-east-1"
image_tag = "latest-dev"

cors_origins = ["http://localhost:8000"]
email_sender = "noreply@dev.trackflow.example"

vpc_id                  = "vpc-REPLACE_ME"
private_subnet_ids      = ["subnet-REPLACE_ME_A", "subnet-REPLACE_ME_B"]
public_subnet_ids       = ["subnet-REPLACE_ME_C", "subnet-REPLACE_ME_D"]
certificate_arn         = "arn:aws:acm:us-east-1:000000000000:certificate/REPLACE_ME"
token_secret_arn        = "arn:aws:secretsmanager:us-east-1:000000000000:secret:trackflow-dev-token-REPLACE_ME"
playback_key_secret_arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:trackflow-dev-playback-key-REPLACE_ME"
# the public half of the key above (openssl rsa -in key.pem -pubout)
playback_public_key_pem = "-----BEGIN PUBLIC KEY-----\nREPLACE_ME\n-----END PUBLIC KEY-----\n"

search_instance_type  = "t3.small.search"
search_instance_count = 1
log_retention_days    = 14

services = {
  api            = { cpu = 256, memory = 512, min = 1, max = 2, backlog_per_task = 0, concurrency = 0 }
  consumer       = { cpu = 256, memory = 512, min = 1, max = 1, backlog_per_task = 200, concurrency = 0 }
  "cpu-standard" = { cpu = 1024, memory = 2048, min = 0, max = 4, backlog_per_task = 4, concurrency = 1 }
  "io-standard"  = { cpu = 256, memory = 512, min = 1, max = 2, backlog_per_task = 50, concurrency = 4 }
  "cpu-priority" = { cpu = 1024, memory = 2048, min = 0, max = 2, backlog_per_task = 1, concurrency = 1 }
  "io-priority"  = { cpu = 256, memory = 512, min = 0, max = 1, backlog_per_task = 10, concurrency = 4 }
  "cpu-bulk"     = { cpu = 1024, memory = 2048, min = 0, max = 1, backlog_per_task = 20, concurrency = 1 }
  "io-bulk"      = { cpu = 256, memory = 512, min = 0, max = 1, backlog_per_task = 200, concurrency = 4 }
}
