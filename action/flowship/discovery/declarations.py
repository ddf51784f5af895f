"""Reading one flow module's declarations with `ast`, never importing it.

A module declares a workflow with a module-level `name = Workflow(...)` and
a Prefect flow with `@flow` / `@flow(...)` / `@prefect.flow(...)`. The
declaration's arguments are evaluated by a small evaluator that knows
literals, `AwsEcsMachine(...)`, `AwsEcsImage.<name>`, `Cron(...)`,
`Interval(...)` and `timedelta(...)`, and then the real `Workflow` is built,
so validation errors point at the exact line of the bad field. Anything else
(a variable, a function call) cannot be read without running the module and
is reported with the way to write it instead.

The result (`ModuleFacts`) depends only on the file's bytes, so it is cached
by git blob sha (`flowship.discovery.cache`).
"""

from __future__ import annotations

import ast
import json
import operator
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flowship.discovery import limits
from flowship.errors import InputError, MachineError
from flowship.workflow import AwsEcsImage, AwsEcsMachine, Cron, Interval, Workflow

# What each flowship/prefect/datetime export means to the evaluator.
_FLOWSHIP = {"Workflow", "AwsEcsMachine", "AwsEcsImage", "Cron", "Interval"}
_MODULES = {"flowship": _FLOWSHIP, "flowship.workflow": _FLOWSHIP, "prefect": {"flow"}, "datetime": {"timedelta"}}
_CALLABLE: dict[str, Any] = {"AwsEcsMachine": AwsEcsMachine, "Cron": Cron, "Interval": Interval, "timedelta": timedelta}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}
_LARGEST = 10**15
_WORKFLOW_BINDINGS = {"Workflow", "mod:flowship", "mod:flowship.workflow"}
HOW = "write it inline as a literal, AwsEcsMachine(...), AwsEcsImage.<name>, Cron(...), Interval(...) or timedelta(...)"


@dataclass(frozen=True)
class Declared:
    """A `Workflow(...)` found at module level: the workflow, or why it is not readable."""

    line: int
    flow: str | None  # Workflow(flow="fn"): the @flow it belongs to
    workflow: dict[str, Any] | None  # Workflow.to_json(), None when unreadable
    problem: tuple[int, str] | None = None


@dataclass(frozen=True)
class FlowFunction:
    function: str
    name: str | None  # the Prefect flow name, None when not a literal
    line: int


@dataclass(frozen=True)
class ModuleFacts:
    syntax_error: tuple[int, str] | None
    declared: tuple[Declared, ...]
    flows: tuple[FlowFunction, ...]

    def to_cache(self) -> tuple:
        return (
            self.syntax_error,
            tuple((d.line, d.flow, d.workflow, d.problem) for d in self.declared),
            tuple((f.function, f.name, f.line) for f in self.flows),
        )

    @classmethod
    def from_cache(cls, data: tuple) -> ModuleFacts:
        error, declared, flows = data
        return cls(
            tuple(error) if error else None,
            tuple(Declared(line, flow, wf, tuple(p) if p else None) for line, flow, wf, p in declared),
            tuple(FlowFunction(*f) for f in flows),
        )


class Unreadable(Exception):
    def __init__(self, node: ast.AST | _At, message: str):
        super().__init__(message)
        self.line = getattr(node, "lineno", 1)
        self.message = message


def analyze(source: bytes) -> ModuleFacts:
    """The workflow declarations and @flow functions of one module's source.

    Bounded work whatever the file holds: a file over `limits.MAX_FILE_BYTES`
    is not parsed, and nesting too deep for the parser (a 5,000-term `1+1+...`)
    or memory it cannot get is a problem at line 1 of that file alone, so one
    hostile file never stops discovery of the others.
    """
    if len(source) > limits.MAX_FILE_BYTES:
        return ModuleFacts((1, limits.TOO_LARGE), (), ())
    try:
        return _analyze(source)
    except (RecursionError, MemoryError):
        return ModuleFacts((1, limits.TOO_DEEP), (), ())


def _analyze(source: bytes) -> ModuleFacts:
    try:
        with warnings.catch_warnings():  # a module's own SyntaxWarnings are its author's, not flowship's output
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source)
    except SyntaxError as exc:
        return ModuleFacts((exc.lineno or 1, f"syntax error: {exc.msg}"), (), ())
    except ValueError as exc:  # null bytes
        return ModuleFacts((1, f"cannot be parsed: {exc}"), (), ())
    names = _bindings(tree)
    declared: list[Declared] = []
    flows: list[FlowFunction] = []
    at_top: set[int] = set()
    for stmt in tree.body:
        value = None
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            value = stmt.value
        elif isinstance(stmt, ast.Expr):
            value = stmt.value
        if isinstance(value, ast.Call) and _meaning(value.func, names) == "Workflow":
            at_top.add(id(value))
            declared.append(_declaration(value, names))
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            flow = _flow_function(stmt, names, source)
            if flow is not None:
                flows.append(flow)
    # A declaration under `if`, `try`, `with` or in a function may or may not
    # run, so it cannot be read statically; were it skipped, the flow would
    # look deleted and its production deployment would go (docs/changes.md).
    nested = sorted(
        node.lineno for node in ast.walk(tree)
        if isinstance(node, ast.Call) and id(node) not in at_top and _meaning(node.func, names) == "Workflow"
    ) if _WORKFLOW_BINDINGS.intersection(names.values()) else []
    declared.extend(Declared(line, None, None, (line, NOT_AT_TOP)) for line in nested)
    return ModuleFacts(None, tuple(declared), tuple(flows))


NOT_AT_TOP = ("Workflow(...) must be a statement at module level (not under if, try or with, nor in a function "
              "or class), so flowship can read it without running the module")


def _bindings(tree: ast.Module) -> dict[str, str]:
    """Local name -> what it means: "Workflow", "flow", "mod:flowship", "mod:prefect", ...

    Imports are read wherever they are (under `if TYPE_CHECKING:` or `try:`
    too), so a declaration that uses such a name is still recognised.
    """
    names: dict[str, str] = {}
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.ImportFrom) and stmt.module in _MODULES and stmt.level == 0:
            exported = _MODULES[stmt.module]
            for alias in stmt.names:
                if alias.name == "*":
                    names.update({n: n for n in exported})
                elif alias.name in exported:
                    names[alias.asname or alias.name] = alias.name
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name in _MODULES:
                    names[alias.asname or alias.name] = f"mod:{alias.name}"
    return names


def _meaning(node: ast.AST, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        meaning = names.get(node.id)
        return None if meaning is None or meaning.startswith("mod:") else meaning
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        module = names.get(node.value.id, "")
        if module.startswith("mod:") and node.attr in _MODULES[module[4:]]:
            return node.attr
    return None


def _flow_function(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, names: dict[str, str], source: bytes
) -> FlowFunction | None:
    for decorator in fn.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        if _meaning(call.func if call else decorator, names) != "flow":
            continue
        name: str | None = fn.name.replace("_", "-")  # Prefect's own default
        for keyword in call.keywords if call else ():
            if keyword.arg == "name":
                literal = keyword.value
                name = literal.value if isinstance(literal, ast.Constant) and isinstance(literal.value, str) else None
                if name is not None and not _verbatim(name, literal, source):
                    name = None  # an escape or adjacent literals: planning finds names by their bytes
        return FlowFunction(fn.name, name, decorator.lineno)
    return None


def _verbatim(value: str, node: ast.expr, source: bytes) -> bool:
    """Whether the literal's own text holds `value` as written (so searching the file's bytes finds it)."""
    lines = source.splitlines(keepends=True)
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    if last >= len(lines):
        return False
    if first == last:
        text = lines[first][node.col_offset:node.end_col_offset]
    else:
        text = lines[first][node.col_offset:] + b"".join(lines[first + 1:last]) + lines[last][:node.end_col_offset]
    return value.encode("utf-8") in text


def _declaration(call: ast.Call, names: dict[str, str]) -> Declared:
    flow: str | None = None
    kwargs: dict[str, Any] = {}
    try:
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            raise Unreadable(call, f"Workflow(*args/**kwargs) cannot be read without running the module; {HOW}")
        args = [_evaluate(a, names) for a in call.args]
        for keyword in call.keywords:
            kwargs[keyword.arg] = _evaluate(keyword.value, names)  # type: ignore[index]
        flow = kwargs.get("flow") if isinstance(kwargs.get("flow"), str) else None
        data = _construct(Workflow, call, args, kwargs).to_json()
        try:
            data = json.loads(json.dumps(data, allow_nan=False))  # what the plan and the cache carry, tuples as lists
        except (TypeError, ValueError):
            raise Unreadable(call, "parameters must be JSON values (strings, finite numbers, lists, dicts)") from None
        return Declared(call.lineno, flow, data)
    except Unreadable as exc:
        return Declared(call.lineno, flow, None, (exc.line, exc.message))


def _construct(cls: Any, call: ast.Call, args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return cls(*args, **kwargs)
    except MachineError as exc:
        # Point at the keyword that holds the bad field when there is one.
        line = next((k.value.lineno for k in call.keywords if k.arg == exc.field), call.lineno)
        raise Unreadable(_At(line), exc.message) from None
    except InputError as exc:
        raise Unreadable(call, exc.message) from None
    except TypeError as exc:
        message = str(exc).replace("__init__()", f"{cls.__name__}()")
        raise Unreadable(call, f"{message}.") from None
    except (ValueError, OverflowError) as exc:
        raise Unreadable(call, f"{cls.__name__}(...) is invalid: {exc}.") from None


@dataclass
class _At:
    lineno: int


def _evaluate(node: ast.AST, names: dict[str, str]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_evaluate(e, names) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise Unreadable(node, f"a `**` inside a dict cannot be read statically; {HOW}")
        return {_evaluate(k, names): _evaluate(v, names)  # type: ignore[arg-type]  # None keys refused above
                for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, names)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _evaluate(node.left, names), _evaluate(node.right, names)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
            # Bounded so a declaration like 9**9**9 cannot hang discovery.
            if any(abs(v) > _LARGEST for v in (left, right)) or (isinstance(node.op, ast.Pow) and abs(right) > 64):
                raise Unreadable(node, f"arithmetic in Workflow(...) is limited to numbers up to {_LARGEST}; {HOW}")
            try:
                result = _BINOPS[type(node.op)](left, right)
            except (ArithmeticError, ValueError):
                raise Unreadable(node, f"this arithmetic cannot be evaluated; {HOW}") from None
            if isinstance(result, complex) or abs(result) > _LARGEST:
                raise Unreadable(node, f"arithmetic in Workflow(...) is limited to numbers up to {_LARGEST}; {HOW}")
            return result
        if isinstance(node.op, ast.Add) and all(isinstance(v, str) for v in (left, right)):
            return left + right
    if isinstance(node, ast.Attribute) and _meaning(node.value, names) == "AwsEcsImage":
        if node.attr in AwsEcsImage.__members__:
            return AwsEcsImage(node.attr)
        raise Unreadable(
            node,
            f"AwsEcsImage has no family {node.attr!r} (it has {', '.join(AwsEcsImage.__members__)}); "
            f"name a family of [tool.flowship.images] as a string, e.g. image={node.attr!r}",
        )
    if isinstance(node, ast.Call):
        meaning = _meaning(node.func, names)
        if meaning in _CALLABLE:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                raise Unreadable(node, f"{meaning}(*args/**kwargs) cannot be read statically; {HOW}")
            args = [_evaluate(a, names) for a in node.args]
            kwargs = {k.arg: _evaluate(k.value, names) for k in node.keywords}
            return _construct(_CALLABLE[meaning], node, args, kwargs)  # type: ignore[arg-type]
        return _fail(node, "a function call")
    if isinstance(node, ast.Name):
        return _fail(node, f"the variable {node.id!r}")
    return _fail(node, f"this {type(node).__name__} expression")


def _fail(node: ast.AST, what: str) -> Any:
    raise Unreadable(node, f"{what} in Workflow(...) cannot be read without running the module; {HOW}")
