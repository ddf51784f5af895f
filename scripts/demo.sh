#!/usr/bin/env bash
# The story of flowship in one command, on a laptop, with no AWS account:
#   1. a push to main deploys every flow,
#   2. a change to one flow on a branch deploys a preview of just that flow,
#   3. a run of the preview completes and shows its result,
#   4. closing the branch removes the preview, and main is untouched.
# It sets itself up (scripts/setup.sh), starts a local Prefect server with its
# UI, works on a throwaway copy of this repository's flows/ (your checkout is
# never touched) and stops everything at the end. FLOWSHIP_DEMO_KEEP=1 keeps
# the server and the preview up afterwards so you can look around the UI;
# Ctrl-C ends it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh
PY="$ROOT/.venv/bin/python"
SETUP_SECONDS=$SECONDS
KEEP="${FLOWSHIP_DEMO_KEEP:-}"

say() { printf '\n\033[1m### %s\033[0m\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
# Wide enough that deployment names are not cut off.
deployments() { printf '$ prefect deployment ls\n' >&2; COLUMNS=160 prefect deployment ls; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/flowship-demo.XXXXXX")"
PIDS=()
cleanup() {
    # TERM, a grace period, then KILL for anything that did not stop.
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 20); do
        alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.5
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- a Prefect server of the demo's own (SQLite in a temporary PREFECT_HOME) ----------
PORT="${FLOWSHIP_DEMO_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export PREFECT_HOME="$WORK/prefect"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export FLOWSHIP_PREFECT_UI_URL="http://127.0.0.1:$PORT"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_SERVER_LOGGING_LEVEL=WARNING
export PREFECT_WORKER_QUERY_SECONDS=2
unset PREFECT_API_KEY GITHUB_ACTIONS
say "Starting a local Prefect server (UI at $FLOWSHIP_PREFECT_UI_URL; usually 10-30 s)"
prefect server start --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
started=$SECONDS
printf 'waiting for it' >&2
for _ in $(seq 1 180); do
    "$PY" -c "import urllib.request as u; u.urlopen('$PREFECT_API_URL/health', timeout=2)" 2>/dev/null && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { printf '\n' >&2; cat "$WORK/server.log" >&2; exit 1; }
    printf '.' >&2
    sleep 1
done
printf '\n' >&2
"$PY" -c "import urllib.request as u; u.urlopen('$PREFECT_API_URL/health', timeout=2)" \
    || { echo "the Prefect server did not start; see its log:" >&2; tail -40 "$WORK/server.log" >&2; exit 1; }
echo "Prefect is up after $((SECONDS - started)) s: $FLOWSHIP_PREFECT_UI_URL" >&2

# -- a throwaway repository holding a copy of this repository's flows -----------------
REPO="$WORK/repo"
mkdir -p "$REPO"
cp -R flows pyproject.toml "$REPO/"
find "$REPO" -name __pycache__ -prune -exec rm -rf {} +
printf '.flowship/\n__pycache__/\ndata/\n' >"$REPO/.gitignore"
g() { git -C "$REPO" -c user.name="flowship demo" -c user.email=demo@flowship.invalid "$@"; }
g init -q -b main
g add -A
g commit -q -m "Add the example flows"
fs() { run flowship --root "$REPO" "$@"; }

# The flow this story changes: a CPU flow (the ETL when it is there), so the run is
# quick; and small values for whichever of its parameters take them.
mapfile -t PICK < <(flowship --root "$REPO" discover --json 2>/dev/null | (cd "$REPO" && "$PY" -c '
import json, sys
from prefect.utilities.callables import parameter_schema_from_entrypoint
flows = json.load(sys.stdin)["workflows"]
cpu = [w for w in flows if not w["machine"]["is_gpu"]]
pick = next((w for w in cpu if w["file"].endswith("etl.py")), None) or (cpu or flows)[0]
print(pick["name"]); print(pick["file"])
names = parameter_schema_from_entrypoint(pick["entrypoint"]).properties
small = {"n_rows": "200", "epochs": "1", "n_samples": "200", "output": sys.argv[1]}
for k, v in small.items():
    if k in names:
        print(f"--param={k}={v}")' "$WORK/data/training.csv"))
FLOW="${PICK[0]}"
FILE="${PICK[1]}"
PARAMS=("${PICK[@]:2}")
BRANCH="feature/faster-${FLOW}"

main_snapshot() {  # the main deployments as the server stores them, less what a polling worker changes
    "$PY" - <<EOF
import json, urllib.request
req = urllib.request.Request("$PREFECT_API_URL/deployments/filter", method="POST", headers={"content-type": "application/json"},
    data=json.dumps({"deployments": {"tags": {"all_": ["flowship", "scope:main"]}}}).encode())
found = json.loads(urllib.request.urlopen(req).read())
print(json.dumps(sorted(({k: v for k, v in d.items() if k not in ("status", "last_polled")} for d in found),
                        key=lambda d: d["id"]), sort_keys=True))
EOF
}

# -- 1. a push to main deploys every flow ----------------------------------------------
say "1. A push to main deploys every flow"
fs deploy --all --branch main
deployments
say "   ...and deploying the same commit again changes nothing"
fs deploy --all --branch main
MAIN_BEFORE="$(main_snapshot)"

# -- 2. a change to one flow on a branch: a preview of just that flow ------------------
say "2. A change to $FILE on the branch $BRANCH"
g checkout -q -b "$BRANCH"
printf '\n# A change on %s: the demo edits this flow, and only it is previewed.\n' "$BRANCH" >>"$REPO/$FILE"
g commit -q -am "Tweak $FLOW"
say "   flowship plan says what the branch changes, compared with its merge base with main"
fs plan --branch "$BRANCH" --pr 1
fs deploy --branch "$BRANCH" --pr 1
deployments

# -- 3. a run of the preview completes and shows its result ----------------------------
say "3. A worker on the local pool runs the preview; flowship follows the run"
POOL="$(cd "$REPO" && "$PY" -c 'from flowship.config import load_config; print(load_config(".").local_pool)')"
# Started with SIGINT restored (a script's background jobs inherit it ignored),
# so the worker can stop cleanly when the demo ends.
"$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
    prefect worker start --pool "$POOL" --type process >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
fs run "$FLOW" --scope "$BRANCH" "${PARAMS[@]}" --wait

# -- 4. closing the branch removes the preview; main is untouched ----------------------
if [ "$KEEP" = 1 ]; then
    say "4. (FLOWSHIP_DEMO_KEEP=1: the preview stays for you to look at; main stays exactly as it was)"
else
    say "4. The branch is closed: its preview goes, main stays exactly as it was"
    g checkout -q main
    g branch -q -D "$BRANCH"
    fs cleanup --branch "$BRANCH"
fi
deployments
if [ "$(main_snapshot)" = "$MAIN_BEFORE" ]; then
    echo "main's deployments are exactly as they were before the preview (ids, versions, fields, update times)." >&2
else
    echo "main's deployments changed during the preview: this is a bug." >&2
    exit 1
fi

say "Done: the story took $((SECONDS - SETUP_SECONDS)) s (and setting up ${SETUP_SECONDS} s). The Prefect UI: $FLOWSHIP_PREFECT_UI_URL"
if [ "$KEEP" = 1 ]; then
    echo "The server, its worker and the preview of $BRANCH stay up (FLOWSHIP_DEMO_KEEP=1); press Ctrl-C to stop them." >&2
    wait "${PIDS[0]}"
fi
