"""Parse results cached by git blob sha, so planning reads each file's bytes once, ever.

A blob sha names exact content, so an entry can never be stale; the cache
only needs a version for the analysers' own code (`VERSION`). It lives in
`$FLOWSHIP_CACHE_DIR` when set (restore it with actions/cache in CI), else in
`<git dir>/flowship/`. Each kind of result is one file, loaded only when a
plan needs it and atomically replaced; a missing or corrupt file is an empty
cache. Entries for blobs neither in the planned commit nor used by this run
are dropped on write, so the cache stays the size of the tree.

The cache is input, not memory: in CI it is a downloaded archive, and
whoever could write it (any job that saves under a key this job restores)
could make a plan skip or delete a flow. So nothing read from it is trusted:

* The format is JSON. `marshal` (what this used before) is documented as
  unsafe for data from elsewhere, and a five-byte file claiming a tuple of
  2**31 items keeps `marshal.loads` busy for most of a minute; JSON is
  parsed in time linear in its size, and files over `MAX_FILE_BYTES` are
  not read at all.
* Each entry is its own JSON text `[blob sha, VERSION, result]`, decoded
  only when a plan asks for that blob (a warm plan of a 20,000-module tree
  decodes a handful), and checked before use: the sha it claims must be the
  blob looked up, the version this code's, and the result exactly the shape
  the analyser returns (`_VALID`). Anything else is a miss: the blob is read
  and parsed again and the entry replaced. A check never raises.

What validation cannot see is a well-formed entry that lies about its own
blob: only re-parsing would, and that is the work the cache saves. That is
why CI keys the cache by scope (action.yml, docs/action.md): a production
job never restores what a pull request could have written.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flowship.workflow import Workflow

VERSION = 4  # 2: flow names written verbatim; 3: JSON, each entry carries its blob sha and version; 4: Workflow(smoke=...)

# Far above a real cache (a 20,000-module tree's tables are about 8 MB), far
# below what parsing could turn into gigabytes of objects.
MAX_FILE_BYTES = 64 * 1024 * 1024
_MAX_LINE = 2**31  # line numbers and import levels beyond this no parser reports

MISS = object()  # what `entry` and the checks return for anything not to be trusted


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a cached value")  # NaN and Infinity are valid to json, not to a plan


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not finite")
    return value


def _decode(data: bytes | str) -> Any:
    """JSON with only finite numbers; raises ValueError (or RecursionError) on anything else."""
    return json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)


def load(path: Path | None) -> Any:
    """What `store` wrote at `path`, or None when it is missing, corrupt, too large or of another version."""
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = _decode(path.read_bytes())
    except (OSError, ValueError, RecursionError, MemoryError):
        return None
    if isinstance(data, dict) and data.get("version") == VERSION:
        return data.get("data")
    return None


def store(path: Path | None, data: Any) -> None:
    if path is None:
        return
    try:
        text = json.dumps({"version": VERSION, "data": data}, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return  # not writable as JSON: keep the old file, the next run just recomputes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only checkout plans as well, only slower next time


# -- what each kind of result looks like ------------------------------------------------
# Each returns the result as the analyser returns it (tuples, not JSON's
# lists), or MISS. They never raise: a value of any shape is only a miss.

def _is_int(value: Any, low: int = 0) -> bool:
    return type(value) is int and low <= value < _MAX_LINE


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_optional_str(value: Any) -> bool:
    return value is None or type(value) is str


def _problem(value: Any) -> tuple[int, str] | None | object:
    """A (line, message) pair or None."""
    if value is None:
        return None
    if type(value) is list and len(value) == 2 and _is_int(value[0]) and _is_str(value[1]):
        return (value[0], value[1])
    return MISS


def _imports(value: Any) -> Any:
    """`scan_imports`: ((level, module, (name, ...)), ...)."""
    if type(value) is not list:
        return MISS
    found = []
    for item in value:
        if type(item) is not list or len(item) != 3:
            return MISS
        level, module, names = item
        if not _is_int(level) or not _is_str(module) or type(names) is not list or not all(map(_is_str, names)):
            return MISS
        found.append((level, module, tuple(names)))
    return tuple(found)


def _workflow(value: Any) -> Any:
    """`Workflow.to_json()` as discovery caches it: exactly what rebuilding the Workflow gives back."""
    if value is None:
        return None
    if type(value) is not dict:
        return MISS
    try:
        again = json.loads(json.dumps(Workflow.from_json(value).to_json(), allow_nan=False))
        # Compared as text so that True is not 1 and 1 is not 1.0.
        same = json.dumps(again, sort_keys=True) == json.dumps(value, sort_keys=True)
    except Exception:  # noqa: BLE001 - whatever a wrong shape raises inside the model, it is only a miss
        return MISS
    return value if same else MISS


def _flows(value: Any) -> Any:
    """`ModuleFacts.to_cache()`: (syntax_error, ((line, flow, workflow, problem), ...), ((function, name, line), ...))."""
    if type(value) is not list or len(value) != 3:
        return MISS
    error, declared, flows = value
    syntax_error = _problem(error)
    if syntax_error is MISS or type(declared) is not list or type(flows) is not list:
        return MISS
    declarations = []
    for item in declared:
        if type(item) is not list or len(item) != 4:
            return MISS
        line, flow, workflow, problem = item
        checked, why = _workflow(workflow), _problem(problem)
        if not _is_int(line) or not _is_optional_str(flow) or checked is MISS or why is MISS:
            return MISS
        declarations.append((line, flow, checked, why))
    functions = []
    for item in flows:
        if type(item) is not list or len(item) != 3:
            return MISS
        function, name, line = item
        if not _is_str(function) or not function.isidentifier() or not _is_optional_str(name) or not _is_int(line):
            return MISS
        functions.append((function, name, line))
    return (syntax_error, tuple(declarations), tuple(functions))


# A kind with no check here is never read back (fail closed): add its check with it.
_VALID: dict[str, Callable[[Any], Any]] = {"imports": _imports, "flows": _flows}


def entry(kind: str, sha: str, text: Any) -> Any:
    """The result stored as `text` for blob `sha`, or MISS unless it is exactly what `kind` returns for a blob."""
    check = _VALID.get(kind)
    if check is None or type(text) is not str:
        return MISS
    try:
        data = _decode(text)
    except (ValueError, RecursionError, MemoryError):
        return MISS
    if type(data) is not list or len(data) != 3 or data[0] != sha or type(data[1]) is not int or data[1] != VERSION:
        return MISS
    try:
        return check(data[2])
    except RecursionError:  # a check walks only fixed depths, but stay a miss whatever comes
        return MISS


def encode(sha: str, result: Any) -> str | None:
    """The entry text for `result` of blob `sha`; None when it is not writable as JSON."""
    try:
        return json.dumps([sha, VERSION, result], allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None


class ParseCache:
    def __init__(self, directory: Path | None):
        self.directory = directory
        self.tables: dict[str, dict[str, Any]] = {}  # kind -> blob sha -> entry text, as stored
        self.results: dict[str, dict[str, Any]] = {}  # kind -> blob sha -> checked result
        self.dirty: set[str] = set()
        self.used: set[str] = set()  # blobs asked for in this run: kept when pruning

    @classmethod
    def for_repo(cls, cache_dir: str | None, git_dir: Path | None) -> ParseCache:
        if cache_dir:
            return cls(Path(cache_dir))
        return cls(git_dir / "flowship" if git_dir is not None else None)

    def file(self, name: str) -> Path | None:
        return self.directory / f"{name}-v{VERSION}.json" if self.directory is not None else None

    def table(self, kind: str) -> dict[str, Any]:
        if kind not in self.tables:
            data = load(self.file(f"parse-{kind}"))
            self.tables[kind] = data if isinstance(data, dict) else {}
            self.results[kind] = {}
        return self.tables[kind]

    def get_many(
        self,
        kind: str,
        blobs: dict[str, str],
        read: Callable[[Iterable[str]], dict[str, bytes]],
        compute: Callable[[dict[str, bytes]], dict[str, Any]],
    ) -> dict[str, Any]:
        """path -> cached result for each (path, blob sha); missing or invalid entries are read and computed."""
        table = self.table(kind)
        results = self.results[kind]
        self.used.update(blobs.values())
        missing = set()
        for sha in set(blobs.values()):
            if sha in results:
                continue
            value = entry(kind, sha, table.get(sha))
            if value is MISS:
                missing.add(sha)
                if table.pop(sha, None) is not None:
                    self.dirty.add(kind)  # a bad entry is never written back, even if the blob cannot be read
            else:
                results[sha] = value
        if missing:
            for sha, value in compute(read(missing)).items():
                results[sha] = value
                text = encode(sha, value)
                if text is not None:
                    table[sha] = text
            self.dirty.add(kind)
        return {path: results[sha] for path, sha in blobs.items() if sha in results}

    def save(self, keep: Iterable[str] = ()) -> None:
        """Write what changed, keeping only entries for the blobs in `keep` or used in this run."""
        keep = set(keep) | self.used
        for kind in sorted(self.dirty):
            table = {k: v for k, v in self.tables[kind].items() if k in keep and type(v) is str}
            store(self.file(f"parse-{kind}"), table)
        self.dirty.clear()
