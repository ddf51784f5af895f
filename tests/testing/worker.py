"""A real prefect-aws ECS worker against moto, and the GPU container instance its tasks land on."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

from testing.ecs import API_KEY, REGION
from testing.servers import BIN


def add_gpu_instance(cluster: str) -> str:
    """An EC2 instance registered as a container instance: the GPU capacity the task lands on."""
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="g5.xlarge", MinCount=1, MaxCount=1)["Instances"][0]
    ecs = boto3.client("ecs", region_name=REGION)
    document = json.dumps({"instanceId": instance["InstanceId"]})
    return ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=document)["containerInstance"][
        "containerInstanceArn"
    ]


def start_worker(pool: str, env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    """A real prefect-aws ECS worker on `pool`, against moto and the test's Prefect server (log: worker.log)."""
    worker_env = os.environ | env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "AWS_DEFAULT_REGION": REGION,
        # A worker that has an API key, as any worker of a keyed Prefect API does.
        # (prefect-aws 0.7.12 fails with KeyError when prefect_api_key_secret_arn
        # is set and the worker has none; docs/ecs.md.) The local server ignores it.
        "PREFECT_API_KEY": API_KEY,
    }
    return subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "ecs", "--no-create-pool-if-not-found"],
        env=worker_env, stdout=(tmp_path / "worker.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        worker.kill()


@contextmanager
def process_worker(pool: str, api: str, tmp_path: Path) -> Iterator[Path]:
    """A real Prefect process worker on `pool` while the block runs, for runs of the local target; yields its log."""
    env = os.environ | {"PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "1",
                        "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_LOGGING_LEVEL": "INFO"}
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield log
    finally:
        worker.terminate()
        worker.wait(30)
