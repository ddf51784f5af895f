"""flowship: deploy Prefect flows to AWS ECS GPU/CPU capacity from GitHub Actions."""

from flowship.workflow import AwsEcsImage, AwsEcsMachine, Cron, Interval, Workflow

__all__ = ["AwsEcsImage", "AwsEcsMachine", "Cron", "Interval", "Workflow"]
__version__ = "0.1.0"
