"""The GitHub side: the event a run was started by, and what it reports back.

`events` reads the event (scope, head, base candidates, dispatch inputs);
`report` renders the job summary, outputs and the PR comment; `github`
writes them (step outputs, `$GITHUB_STEP_SUMMARY`, the one comment).
"""
