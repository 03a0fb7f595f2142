#!/usr/bin/env bash
# make deploy ENV=<env> / make plan ENV=<env>: check what is needed first, say plainly what is
# missing, then build and push the image and run Terraform with the environment's variables.
set -euo pipefail

action="${1:?usage: deploy.sh plan|apply ENV}"
env="${2:?usage: deploy.sh plan|apply ENV}"
here="$(cd "$(dirname "$0")" && pwd)"
vars="$here/environments/$env.tfvars"
# worker scaling sized by `trackflow capacity --tfvars infra/environments/<env>.capacity.tfvars`
capacity="$here/environments/$env.capacity.tfvars"
var_files=(-var-file="$vars")
[[ -f "$capacity" ]] && var_files+=(-var-file="$capacity")
missing=()

[[ -f "$vars" ]] || missing+=("infra/environments/$env.tfvars (copy dev.tfvars and fill in its REPLACE_ME values)")
command -v terraform >/dev/null 2>&1 || missing+=("terraform 1.5+ on PATH (https://developer.hashicorp.com/terraform/install)")
command -v aws >/dev/null 2>&1 || missing+=("the AWS CLI on PATH (for the ECR login)")
if [[ "$action" == "apply" ]]; then
  if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    missing+=("a running Docker engine (to build and push the image)")
  fi
fi
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
if [[ -z "$region" && -f "$vars" ]]; then
  region="$(sed -n 's/^region *= *"\(.*\)"/\1/p' "$vars")"
fi
[[ -n "$region" ]] || missing+=("a region: AWS_REGION, or region = \"...\" in $env.tfvars")
if command -v aws >/dev/null 2>&1; then
  account="$(aws sts get-caller-identity --query Account --output text 2>/dev/null || true)"
  [[ -n "$account" ]] || missing+=("AWS credentials (aws sts get-caller-identity fails: set AWS_PROFILE or keys)")
fi
if [[ -f "$vars" ]] && grep -q REPLACE_ME "$vars"; then
  missing+=("values for every REPLACE_ME in $env.tfvars (VPC, subnets, certificate, token secret)")
fi
if ((${#missing[@]})); then
  echo "make $action ENV=$env cannot run yet. Missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi

cd "$here"
terraform init -input=false
if [[ "$action" == "plan" ]]; then
  tag="$(git rev-parse --short HEAD)"
  terraform plan -input=false "${var_files[@]}" -var "image_tag=$tag"
  exit 0
fi
tag="$(git rev-parse --short HEAD)-$(date +%Y%m%d%H%M%S)"
terraform apply -input=false "${var_files[@]}" -var "image_tag=$tag" -target=module.registry
repository="$(terraform output -raw repository_url)"
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "${repository%%/*}"
docker build -t "$repository:$tag" "$here/.."
docker push "$repository:$tag"
terraform apply -input=false "${var_files[@]}" -var "image_tag=$tag"
