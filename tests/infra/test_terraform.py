"""infra/ against the code: names, queues, limits, tables and permissions agree with the
application's settings, and Terraform itself accepts the configuration where it is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from trackflow.adapters.state.schema import TABLES
from trackflow.domain.track import STEPS
from trackflow.settings import DLQ_SUFFIX, Lane, Settings, WorkerGroup, resource_names

INFRA = Path(__file__).resolve().parents[2] / "infra"
TF_FILES = sorted(INFRA.rglob("*.tf"))
MODULES = sorted(p for p in (INFRA / "modules").iterdir() if p.is_dir())


def plain(value: Any) -> Any:
    """python-hcl2 keeps a literal's quotes: strip them, recursively."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return plain(hcl2.load(handle))


def root_locals() -> dict[str, Any]:
    return load(INFRA / "main.tf")["locals"][0]


def render(template: str, env: str) -> str:
    return template.replace("${local.name_prefix}", f"trackflow-{env}").replace("${var.env}", env)


def variable_default(name: str) -> Any:
    for block in load(INFRA / "variables.tf")["variable"]:
        if name in block:
            return block[name]["default"]
    raise KeyError(name)


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_tf_file_parses(path: Path):
    assert load(path)


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_modules_follow_the_terraform_aws_modules_layout(module: Path):
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (module / name).exists(), name
    readme = (module / "README.md").read_text()
    for block in load(module / "variables.tf").get("variable", []):
        for variable, spec in block.items():
            assert f"`{variable}`" in readme, f"{module.name}: input {variable} not documented"
            assert spec.get("description"), f"{module.name}: {variable} has no description"
            assert "type" in spec, f"{module.name}: {variable} has no type"
    for block in load(module / "outputs.tf").get("output", []):
        for output in block:
            assert f"`{output}`" in readme, f"{module.name}: output {output} not documented"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_names_are_the_settings_names(env: str):
    expected = resource_names(f"trackflow-{env}")
    local = root_locals()
    assert render(local["buckets"]["uploads"], env) == expected["uploads_bucket"]
    assert render(local["buckets"]["media"], env) == expected["media_bucket"]
    assert render(local["events_queue"]["name"], env) == expected["events_queue"]
    for group in WorkerGroup:
        for lane in Lane:
            queue = local["worker_queues"][f"{group}-{lane}"]
            assert render(queue["name"], env) == expected[f"{group}_{lane}_queue"]
    for table in TABLES:
        assert render(local["tables"][table.name]["name"], env) == expected[f"{table.name}_table"]
    assert local["uploads_prefix"] == defaults().uploads_prefix


def test_every_queue_the_app_routes_to_exists_with_a_dead_letter_queue():
    settings = defaults().model_copy(update={"env": "dev"})
    local = root_locals()
    terraform_queues = {render(local["events_queue"]["name"], "dev")} | {
        render(q["name"], "dev") for q in local["worker_queues"].values()
    }
    assert set(settings.all_queues) == terraform_queues
    messaging = load(INFRA / "modules/messaging/main.tf")["resource"]
    queues = {
        name: spec
        for block in messaging
        for kind, specs in block.items()
        if kind == "aws_sqs_queue"
        for name, spec in specs.items()
    }
    assert queues["dlq"]["for_each"] == queues["this"]["for_each"] == "${var.queues}"
    assert queues["dlq"]["name"] == "${each.value.name}-dlq" and DLQ_SUFFIX == "-dlq"
    assert "aws_sqs_queue.dlq[each.key].arn" in str(queues["this"]["redrive_policy"])
    assert queues["dlq"]["message_retention_seconds"] > 345600  # longer than the source's
    assert queues["this"]["receive_wait_time_seconds"] == 20
    assert queues["this"]["kms_master_key_id"]


def defaults() -> Settings:
    """The settings as shipped, whatever this process's environment says."""
    return Settings.model_construct()


def test_every_worker_queue_has_a_worker_service_in_every_environment():
    """A lane without workers is a queue that fills and never drains."""
    queues = {f"{group}-{lane}" for group in WorkerGroup for lane in Lane}
    compute = load(INFRA / "modules/compute/main.tf")["locals"][0]
    assert set(compute["service_queue"]) - {"consumer"} == queues
    assert {k for k, v in compute["service_queue"].items() if k == v} == queues
    assert set(variable_default("services")) == queues | {"api", "consumer"}
    for env in ("dev", "prod"):
        tfvars = plain(hcl2.loads((INFRA / "environments" / f"{env}.tfvars").read_text()))
        assert set(tfvars["services"]) == queues | {"api", "consumer"}, env


def test_visibility_timeouts_exceed_the_hard_limits_of_every_task_routed_to_them():
    settings = defaults()
    assert variable_default("cpu_task_time_limit_s") == settings.cpu_task_time_limit_s
    assert variable_default("io_task_time_limit_s") == settings.io_task_time_limit_s
    assert variable_default("events_visibility_timeout_s") == settings.events_visibility_timeout_s
    assert variable_default("max_receive_count") == settings.max_receive_count
    local = root_locals()
    limits = {
        "${var.cpu_task_time_limit_s}": settings.cpu_task_time_limit_s,
        "${var.io_task_time_limit_s}": settings.io_task_time_limit_s,
    }
    assert "queue.time_limit + 60" in str(local["queues"])
    for key, queue in local["worker_queues"].items():
        group = WorkerGroup(key.split("-")[0])
        visibility = limits[queue["time_limit"]] + 60
        for step in STEPS:
            if step.group is group:
                assert visibility > settings.task_time_limit(step.group), (key, step.name)
        assert visibility == settings.visibility_timeouts[settings.queue(group)]


def test_tables_are_the_schema_tables():
    local = root_locals()["tables"]
    assert set(local) == {t.name for t in TABLES}
    for table in TABLES:
        spec = local[table.name]
        assert spec["hash_key"] == table.hash_key
        assert spec["range_key"] == table.range_key
        assert spec["ttl"] == table.ttl_attribute
        assert {k: v for k, v in spec["attributes"].items()} == {
            a: table.attribute_type(a) for a in table.key_attributes
        }
        assert {
            name: (i["hash_key"], i.get("range_key")) for name, i in spec["indexes"].items()
        } == {i.name: (i.hash_key, i.range_key) for i in table.indexes}
    state = load(INFRA / "modules/state/main.tf")["resource"][0]["aws_dynamodb_table"]["this"]
    assert state["billing_mode"] == "PAY_PER_REQUEST"
    assert state["point_in_time_recovery"][0]["enabled"] is True
    assert state["server_side_encryption"][0]["enabled"] is True


# The calls each service's code makes (boto3 and kombu), by the resources they touch.
REQUIRED = {
    "api": {
        "s3:PutObject",
        "s3:GetObject",  # presigned GETs for playback
        "s3:ListMultipartUploadParts",
        "s3:AbortMultipartUpload",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "sqs:SendMessage",
        "es:ESHttpGet",
        "es:ESHttpPost",
        "es:ESHttpPut",
        "es:ESHttpDelete",
    },
    "consumer": {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "s3:GetObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    },
    "worker": {
        "sqs:ReceiveMessage",
        "s3:AbortMultipartUpload",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "ses:SendEmail",
        "es:ESHttpPost",
        "es:ESHttpDelete",
    },
}


@pytest.mark.parametrize("role", sorted(REQUIRED))
def test_each_service_may_make_its_calls_and_nothing_wildcarded(role: str):
    statements = load(INFRA / "modules/compute/main.tf")["locals"][0]["statements"][role]
    allowed = {action for statement in statements for action in statement["actions"]}
    assert REQUIRED[role] <= allowed, REQUIRED[role] - allowed
    for statement in statements:
        assert not any("*" in action for action in statement["actions"]), statement
        for resource in statement["resources"]:
            text = str(resource)
            assert text not in ("*", "arn:aws:*") and not text.startswith("*"), statement


def test_the_services_environment_names_real_settings():
    environment = load(INFRA / "main.tf")["module"]
    compute = next(m["compute"] for m in environment if "compute" in m)
    fields = set(Settings.model_fields)
    for name in compute["environment"]:
        assert name.startswith("TRACKFLOW_") and name[10:].lower() in fields, name


def _terraform() -> str | None:
    binary = shutil.which("terraform")
    mirror = Path("/opt/tf-plugins/registry.terraform.io/hashicorp/aws")
    return binary if binary and mirror.exists() else None


@pytest.mark.skipif(_terraform() is None, reason="no terraform binary with a local AWS provider")
def test_terraform_validates_and_is_formatted(tmp_path: Path):
    work = tmp_path / "infra"
    shutil.copytree(INFRA, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    env = {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_CLI_CONFIG_FILE": str(tmp_path / "none.tfrc"),
    }
    (tmp_path / "none.tfrc").write_text("")

    def run(*args):
        return subprocess.run(
            [_terraform(), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    formatted = run("fmt", "-recursive", "-check")
    assert formatted.returncode == 0, formatted.stdout
    init = run("init", "-backend=false", "-input=false", "-plugin-dir=/opt/tf-plugins")
    assert init.returncode == 0, init.stderr
    validate = run("validate", "-no-color")
    assert validate.returncode == 0, validate.stderr + validate.stdout


@pytest.mark.parametrize(
    "name", ["max_upload_bytes", "multipart_abort_after_days", "originals_retention_days", "region"]
)
def test_infra_defaults_are_the_settings_defaults(name: str):
    assert variable_default(name) == Settings.model_fields[name].default


def test_environments_set_every_required_variable():
    required = {
        name
        for block in load(INFRA / "variables.tf")["variable"]
        for name, spec in block.items()
        if "default" not in spec
    }
    for env in ("dev", "prod"):
        text = (INFRA / "environments" / f"{env}.tfvars").read_text()
        given = set(re.findall(r"^(\w+)\s*=", text, re.M))
        assert required <= given, (env, required - given)


def test_checkov_finds_nothing_and_every_skip_says_why():
    checkov = Path(__file__).resolve().parents[2] / ".venv-tools" / "bin" / "checkov"
    binary = str(checkov) if checkov.exists() else shutil.which("checkov")
    assert binary, "checkov is missing: `make test` installs it into .venv-tools"
    result = subprocess.run(
        [
            binary,
            "-d",
            str(INFRA),
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    import json

    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    for path in TF_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=[A-Z0-9_,]+:\S.{20,}", line), (path.name, line)


def test_deploy_says_plainly_what_is_missing(tmp_path: Path):
    """No AWS here: the preflight refuses and names what ops must provide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = f"{tmp_path}:/usr/bin:/bin"  # no terraform, aws or docker on this PATH
    result = subprocess.run(
        ["bash", str(INFRA / "deploy.sh"), "apply", "dev"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    message = result.stderr
    for needed in ("terraform", "AWS CLI", "Docker engine", "REPLACE_ME"):
        assert needed in message, message
    missing = subprocess.run(
        ["bash", str(INFRA / "deploy.sh"), "plan", "nowhere"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 2 and "nowhere.tfvars" in missing.stderr
