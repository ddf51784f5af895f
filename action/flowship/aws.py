"""boto3 clients and the translation of AWS errors into flowship errors.

Every AWS call goes through `client()`, so the endpoint (moto in tests,
`AWS_ENDPOINT_URL`), the region and retries are decided in one place, and
through `translate()` when it fails, so AccessDenied names the IAM action.
"""

from __future__ import annotations

from typing import Any

from flowship.config import Config
from flowship.errors import FlowshipError


def client(config: Config, service: str) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    kwargs: dict[str, Any] = {
        "config": BotoConfig(retries={"max_attempts": 8, "mode": "adaptive"}, user_agent_extra="flowship"),
    }
    if config.aws.region:
        kwargs["region_name"] = config.aws.region
    if config.env.aws_endpoint_url:
        kwargs["endpoint_url"] = config.env.aws_endpoint_url
    return boto3.client(service, **kwargs)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore `ClientError` (e.g. "RepositoryNotFoundException"), else ""."""
    response = getattr(exc, "response", None)
    return str((response.get("Error") or {}).get("Code") or "") if isinstance(response, dict) else ""


def translate(exc: Exception, action: str) -> FlowshipError:
    """A flowship error for a failed AWS call; `action` is e.g. 'ecs:RegisterTaskDefinition'."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return FlowshipError(
            f"no AWS credentials for {action}. In GitHub Actions, use aws-actions/configure-aws-credentials "
            "with OIDC (id-token: write); pull requests from forks never get credentials."
        )
    if isinstance(exc, NoRegionError):
        return FlowshipError(f"no AWS region for {action}: set [tool.flowship.aws] region or AWS_REGION.")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Unknown")
        message = err.get("Message", str(exc))
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            return FlowshipError(f"AWS denied {action}: grant the deploy role `{action}` (README: IAM permissions). {message}")
        if code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}:
            return FlowshipError(f"the AWS credentials for {action} are invalid or expired ({code}).")
        return FlowshipError(f"{action} failed: {code}: {message}")
    return FlowshipError(f"{action} failed: {type(exc).__name__}: {exc}")
