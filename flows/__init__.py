"""The example flows this repository ships and deploys with flowship.

Each module here declares one `workflow = Workflow(...)` and one `@flow`;
`flows.common` holds the helpers they share (no Workflow, so discovery
skips it). Flows import helpers absolutely (`from flows.common import data`):
Prefect puts the working directory (the repository root, in the images and
for the local process pool) on `sys.path` when it loads an entrypoint, and
flowship's change analysis follows those imports, so editing a helper
redeploys every flow that uses it.
"""
