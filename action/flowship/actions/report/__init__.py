"""What a `flowship ci` run did, rendered for people: the job summary, the PR
comment, and the step outputs. Data in (`model`), text out (`render`); an
update's fields are read for people in `fields`."""

from flowship.actions.report.model import DeploymentLine, ImageLine, Report, RunLine
from flowship.actions.report.render import comment_markdown, headline, md, outputs, summary_markdown
from flowship.deploy.result import STATUSES, Status
from flowship.markdown import code_block

__all__ = [
    "STATUSES",
    "DeploymentLine",
    "ImageLine",
    "Report",
    "RunLine",
    "Status",
    "code_block",
    "comment_markdown",
    "headline",
    "md",
    "outputs",
    "summary_markdown",
]
