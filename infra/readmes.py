"""Write each module's README (purpose, inputs, outputs) from its .tf files, the way
terraform-docs does: `make infra-docs`. tests/infra checks that every input and output is in it."""

from __future__ import annotations

import sys
from pathlib import Path

import hcl2

MODULES = Path(__file__).parent / "modules"
PURPOSE = {
    "storage": "The uploads bucket (private, encrypted, versioned, CORS for browser uploads, "
    "lifecycle rules, ObjectCreated notification to the events queue) and the media bucket "
    "(private, encrypted) served by CloudFront through origin access control.",
    "messaging": "Every SQS queue the app uses, each with a dead-letter queue (redrive, longer "
    "retention), KMS encryption and long polling; the events queue admits S3 from the uploads "
    "bucket only (aws:SourceArn).",
    "state": "The DynamoDB tables: on demand, KMS encryption, point-in-time recovery, TTL where "
    "records expire.",
    "compute": "ECS on Fargate: one image, one service per role (API behind an ALB, consumer, a "
    "worker service per queue group), each scaling on its queue's backlog per task by target "
    "tracking with metric math; a least-privilege task role per role; log groups.",
    "search": "The OpenSearch domain for track search, in the VPC, encrypted, HTTPS only.",
    "email": "The SES identity the uploader emails come from.",
    "observability": "Alarms to one SNS topic: dead-letter queues not empty, oldest message too "
    "old, a service at its maximum capacity.",
    "registry": "The ECR repository of the one trackflow image.",
}


def _text(value: object) -> str:
    text = str(value)
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text


def readme(module: Path) -> str:
    with (module / "variables.tf").open() as handle:
        variables = hcl2.load(handle).get("variable", [])
    with (module / "outputs.tf").open() as handle:
        outputs = hcl2.load(handle).get("output", [])
    lines = [
        f"# {module.name}",
        "",
        PURPOSE[module.name],
        "",
        "## Inputs",
        "",
        "| name | type | default | description |",
        "|---|---|---|---|",
    ]
    for block in variables:
        for name, spec in block.items():
            default = _text(spec["default"]) if "default" in spec else "required"
            kind = _text(spec.get("type", "")).replace("${", "").replace("}", "").replace("\n", " ")
            about = _text(spec.get("description", ""))
            lines.append(f"| `{_text(name)}` | `{kind}` | `{default}` | {about} |")
    lines += ["", "## Outputs", "", "| name | description |", "|---|---|"]
    for block in outputs:
        for name, spec in block.items():
            lines.append(f"| `{_text(name)}` | {_text(spec.get('description', ''))} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    for module in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        (module / "README.md").write_text(readme(module))
    return 0


if __name__ == "__main__":
    sys.exit(main())
