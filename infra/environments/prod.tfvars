env       = "prod"
region    = "us-east-1"
image_tag = "REPLACE_WITH_RELEASE_TAG"

cors_origins = ["https://trackflow.example"]
email_sender = "noreply@trackflow.example"
alarm_email  = "oncall@trackflow.example"

vpc_id                  = "vpc-REPLACE_ME"
private_subnet_ids      = ["subnet-REPLACE_ME_A", "subnet-REPLACE_ME_B", "subnet-REPLACE_ME_C"]
public_subnet_ids       = ["subnet-REPLACE_ME_D", "subnet-REPLACE_ME_E", "subnet-REPLACE_ME_F"]
certificate_arn         = "arn:aws:acm:us-east-1:000000000000:certificate/REPLACE_ME"
token_secret_arn        = "arn:aws:secretsmanager:us-east-1:000000000000:secret:trackflow-prod-token-REPLACE_ME"
playback_key_secret_arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:trackflow-prod-playback-key-REPLACE_ME"
# the public half of the key above (openssl rsa -in key.pem -pubout)
playback_public_key_pem = "-----BEGIN PUBLIC KEY-----\nREPLACE_ME\n-----END PUBLIC KEY-----\n"

search_instance_type  = "m6g.large.search"
search_instance_count = 2
log_retention_days    = 90

# `trackflow capacity --uploads-per-hour N --tfvars infra/environments/prod.capacity.tfvars`
# sizes these for a measured load; deploy.sh passes that file after this one when it exists.
services = {
  api            = { cpu = 512, memory = 1024, min = 2, max = 10, backlog_per_task = 0, concurrency = 0 }
  consumer       = { cpu = 256, memory = 512, min = 2, max = 4, backlog_per_task = 200, concurrency = 0 }
  "cpu-standard" = { cpu = 2048, memory = 4096, min = 2, max = 40, backlog_per_task = 4, concurrency = 2 }
  "io-standard"  = { cpu = 512, memory = 1024, min = 2, max = 10, backlog_per_task = 50, concurrency = 4 }
  "cpu-priority" = { cpu = 2048, memory = 4096, min = 1, max = 10, backlog_per_task = 1, concurrency = 2 }
  "io-priority"  = { cpu = 512, memory = 1024, min = 1, max = 4, backlog_per_task = 10, concurrency = 4 }
  "cpu-bulk"     = { cpu = 2048, memory = 4096, min = 1, max = 4, backlog_per_task = 20, concurrency = 2 }
  "io-bulk"      = { cpu = 512, memory = 1024, min = 1, max = 4, backlog_per_task = 200, concurrency = 4 }
}
