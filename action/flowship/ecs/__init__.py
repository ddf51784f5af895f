"""The ECS target: where a workflow runs on AWS, and the AWS side of bootstrap.

`target` is `EcsTarget` (task definitions registered per workflow and scope,
the work pool's job variables); `taskdef` builds a task definition from a
machine; `placement` puts a GPU machine on configured capacity; `pool` is the
Prefect ECS work pool's template; `bootstrap` creates what deploying needs.
It implements `flowship.deploy.Target`; `deploy` never imports it.
"""

from flowship.ecs.target import EcsTarget, Network, job_variables, resolve_network

__all__ = ["EcsTarget", "Network", "job_variables", "resolve_network"]
