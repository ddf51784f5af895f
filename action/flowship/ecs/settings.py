"""The `[tool.flowship.aws]` table a deployed stack implies: printed, or written into pyproject.toml.

Writing edits only that table's keys, line by line, so the rest of the file
(comments, order, other tables, `[[tool.flowship.aws.gpu-capacity]]`) stays
as the team wrote it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from flowship.config import PYPROJECT, Config

HEADER = "[tool.flowship.aws]"


def aws_values(config: Config) -> dict[str, object]:
    """The keys of `[tool.flowship.aws]` (config.py's names) that the stack decides."""
    aws = config.aws
    values: dict[str, object] = {
        "region": aws.region,
        "cluster": aws.cluster,
        "execution-role-arn": aws.execution_role_arn,
        "task-role-arn": aws.task_role_arn,
        "log-group": aws.log_group,
        "subnets": list(aws.subnets),
        "security-groups": list(aws.security_groups),
        "assign-public-ip": aws.assign_public_ip,
        "prefect-api-key-secret-arn": aws.prefect_api_key_secret_arn,
    }
    return {k: v for k, v in values.items() if v is not None}


def _toml(value: object) -> str:
    # JSON's strings, lists and booleans are TOML's too.
    return json.dumps(value)


def table(config: Config) -> str:
    lines = [HEADER] + [f"{key} = {_toml(value)}" for key, value in aws_values(config).items()]
    return "\n".join(lines) + "\n"


def write(config: Config) -> Path:
    """Set the stack's keys in `<root>/pyproject.toml`'s `[tool.flowship.aws]` (added if missing)."""
    path = config.root / PYPROJECT
    text = path.read_text() if path.exists() else ""
    values = aws_values(config)
    if config.ecr_repository:
        text = _set_in(text, "[tool.flowship]", {"ecr-repository": config.ecr_repository})
    text = _set_in(text, HEADER, values)
    path.write_text(text)
    return path


def _set_in(text: str, header: str, values: dict[str, object]) -> str:
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == header)
    except StopIteration:
        block = [header] + [f"{k} = {_toml(v)}" for k, v in values.items()]
        return "\n".join([*lines, "", *block]).lstrip("\n") + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    pending = dict(values)
    i = start + 1
    while i < end:
        match = re.match(r"^\s*([A-Za-z0-9_-]+)\s*=\s*(.*)$", lines[i])
        if match and match.group(1) in pending:
            if match.group(2).startswith("[") and "]" not in match.group(2):
                # An array over several lines becomes flowship's one line.
                close = next((j for j in range(i + 1, end) if "]" in lines[j]), i)
                del lines[i + 1 : close + 1]
                end -= close - i
            lines[i] = f"{match.group(1)} = {_toml(pending.pop(match.group(1)))}"
        i += 1
    insert = [f"{k} = {_toml(v)}" for k, v in pending.items()]
    last = end
    while last > start + 1 and not lines[last - 1].strip():
        last -= 1
    lines[last:last] = insert
    return "\n".join(lines) + "\n"
