"""A Jinja2 sandbox with a budget, enforced while the template renders.

Jinja2's own sandbox keeps a template away from Python's internals but not from the
machine: `{% for %}` loops nested over `range(20000)` ran for 14 s, `'x' * 10**8` built
100 MB before any output limit was looked at. Here every way a template has to spend
time or memory is checked as it happens:

- time: each loop step, call, attribute, operator and output chunk looks at the clock
  (CPU time of the rendering thread, and wall time as a backstop);
- size: what an operation would build is worked out *before* it is built: `*` and `+`
  on text and lists, `~`, `%`/`format`, the widths of `center`, `indent`, `wordwrap`,
  `str.format`, `join`/`sum` of many parts, `range()`, `lipsum()`; anything a filter
  or a call returns is measured too (shared sub-lists count every time they appear),
  and all a render builds counts against a total (`MAX_BUILT`);
- output: blocks, macros and the rendered text are counted chunk by chunk.

Mutating methods (`list.append`, `dict.update` …) are refused (Jinja2's immutable
sandbox), so nothing grows behind the budget's back. Over budget raises BudgetExceeded,
naming what went over; WallClockExceeded when only the wall clock ran out (the CPU budget
was not spent: the machine was busy, the template is not at fault).
"""

from __future__ import annotations

import functools
import inspect
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

MAX_SIZE = 1_000_000  # characters of a text, items (all levels counted) of a list
MAX_BUILT = 4_000_000  # all a render builds together (many variables each under MAX_SIZE)
MAX_RANGE = 10_000
MAX_WIDTH = 10_000  # a padding width, a format width or precision
MAX_INT_BITS = 100_000
MAX_LIPSUM_PARAGRAPHS = 100
CPU_SECONDS = 0.5
WALL_SECONDS = 5.0
_CLOCK_EVERY = 64  # loop steps between two looks at the clock


class BudgetExceeded(Exception):
    """The template went over its budget (its message says which part and why)."""


class WallClockExceeded(BudgetExceeded):
    """Only the wall-clock backstop ran out, with CPU time to spare: a busy machine, not a
    bad template (a send is tried again later; CPU and size excesses are for good)."""


@dataclass
class _Budget:
    cpu_deadline: float
    wall_deadline: float
    cpu_seconds: float
    wall_seconds: float
    built: int = 0


_CURRENT: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def budget(cpu_seconds: float | None = None, wall_seconds: float | None = None) -> Iterator[None]:
    """Everything rendered inside shares one time budget (call it in the rendering thread);
    the defaults are CPU_SECONDS and WALL_SECONDS as they are when the render starts."""
    cpu = CPU_SECONDS if cpu_seconds is None else cpu_seconds
    wall = WALL_SECONDS if wall_seconds is None else wall_seconds
    token = _CURRENT.set(_Budget(time.thread_time() + cpu, time.monotonic() + wall, cpu, wall))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def check_time() -> None:
    current = _CURRENT.get()
    if current is None:
        return
    if time.thread_time() > current.cpu_deadline:
        raise BudgetExceeded(f"rendering took longer than its budget ({current.cpu_seconds} s)")
    if time.monotonic() > current.wall_deadline:
        raise WallClockExceeded(
            f"rendering took longer than its wall-clock budget ({current.wall_seconds} s) "
            "with CPU time to spare"
        )


def _charge(size: int) -> None:
    """Count what was just built against the render's total."""
    current = _CURRENT.get()
    if current is None:
        return
    current.built += size
    if current.built > MAX_BUILT:
        raise BudgetExceeded(
            f"the template builds more than {MAX_BUILT:,} characters or items in all"
        )


def _too_big(what: str, size: int) -> BudgetExceeded:
    return BudgetExceeded(f"{what} would build {size:,} characters or items (limit {MAX_SIZE:,})")


def weight(value: Any, *, cap: int = MAX_SIZE, _memo: dict[int, int] | None = None) -> int:
    """Characters of a text; items of a list, tuple or dict with everything they hold,
    a sub-list counted each time it appears (as printing it would). Stops past `cap`."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list | tuple | dict):
        return 1
    memo = {} if _memo is None else _memo
    key = id(value)
    if key in memo:
        return memo[key]
    memo[key] = cap + 1  # a structure inside itself counts as too big
    items: Iterable[Any] = (
        (x for pair in value.items() for x in pair) if isinstance(value, dict) else value
    )
    total = len(value)
    for item in items:
        if total > cap:
            break
        total += weight(item, cap=cap, _memo=memo)
    memo[key] = total
    return total


def check_size(value: Any, what: str) -> Any:
    size = weight(value)
    if size > MAX_SIZE:
        raise _too_big(what, size)
    if isinstance(value, str | list | tuple | dict):
        _charge(size)
    return value


def _text_size(value: Any) -> int:
    """About how long `str(value)` is, without building it."""
    return len(value) if isinstance(value, str) else 4 * weight(value)


# printf-style conversions: `%(name)-10.3f`, `%s`, `%%`
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)")


def _check_percent(template: str, values: Any, what: str) -> None:
    specs = _PERCENT.findall(template)
    if not specs:
        return
    widest = 0
    for width, precision, _ in specs:
        if "*" in (width, precision):
            raise BudgetExceeded(f"{what}: `*` widths are not allowed")
        widest = max(widest, int(width or 0), int(precision or 0))
    if widest > MAX_WIDTH:
        raise BudgetExceeded(f"{what}: a width of {widest:,} (limit {MAX_WIDTH:,})")
    if isinstance(values, dict):
        parts: Iterable[Any] = values.values()
    elif isinstance(values, tuple):
        parts = values
    else:
        parts = (values,)
    longest = max((_text_size(part) for part in parts), default=0)
    size = len(template) + len(specs) * (widest + longest)
    if size > MAX_SIZE:
        raise _too_big(what, size)


def _check_braces(template: str, args: Iterable[Any], what: str) -> None:
    """`str.format`: widths bounded, no nested `{}` in a spec, and the total bounded."""
    fields = 0
    widest = 0
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise BudgetExceeded(f"{what}: nested format fields are not allowed")
        widest = max([widest, *(int(n) for n in re.findall(r"\d+", spec or ""))])
    if widest > MAX_WIDTH:
        raise BudgetExceeded(f"{what}: a width of {widest:,} (limit {MAX_WIDTH:,})")
    longest = max((_text_size(arg) for arg in args), default=0)
    size = len(template) + fields * (widest + longest)
    if size > MAX_SIZE:
        raise _too_big(what, size)


def _replaced_size(text: str, old: str, new: str, count: int | None) -> int:
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _joined_size(items: list[Any], separator: Any) -> int:
    return sum(_text_size(item) for item in items) + _text_size(separator) * max(len(items) - 1, 0)


# ---- filters: what each would build, checked on its bound arguments before it runs


def _pre_center(a: dict[str, Any]) -> None:
    if isinstance(a["width"], int) and a["width"] > MAX_SIZE:
        raise _too_big("|center", a["width"])


def _pre_indent(a: dict[str, Any]) -> None:
    text, width = str(a["s"]), a["width"]
    step = width if isinstance(width, int) else len(str(width))
    size = len(text) + (text.count("\n") + 1) * max(step, 0)
    if size > MAX_SIZE:
        raise _too_big("|indent", size)


def _pre_wordwrap(a: dict[str, Any]) -> None:
    text, width = str(a["s"]), a["width"]
    wrap = a["wrapstring"] if a["wrapstring"] is not None else "\n"
    if not isinstance(width, int) or width < 1:
        return  # textwrap refuses it
    size = len(text) + (len(text) // width + 1) * len(str(wrap))
    if size > MAX_SIZE:
        raise _too_big("|wordwrap", size)


def _pre_format(a: dict[str, Any]) -> None:
    _check_percent(str(a["value"]), a["kwargs"] or a["args"], "|format")


def _pre_join(a: dict[str, Any]) -> None:
    a["value"] = items = list(a["value"])
    if a["attribute"] is None:
        size = _joined_size(items, a["d"])
        if size > MAX_SIZE:
            raise _too_big("|join", size)


def _pre_replace(a: dict[str, Any]) -> None:
    text, old, new, count = a["s"], a["old"], a["new"], a["count"]
    if all(isinstance(x, str) for x in (text, old, new)):
        size = _replaced_size(text, old, new, count if isinstance(count, int) else None)
        if size > MAX_SIZE:
            raise _too_big("|replace", size)


def _pre_parts(name: str, key: str, limit: int) -> Callable[[dict[str, Any]], None]:
    def check(a: dict[str, Any]) -> None:
        if isinstance(a[key], int) and a[key] > limit:
            raise BudgetExceeded(f"|{name}({a[key]:,}): at most {limit:,}")

    return check


def _pre_sum(a: dict[str, Any]) -> None:
    a["iterable"] = items = list(a["iterable"])
    if isinstance(a["start"], str | list | tuple) or any(
        isinstance(item, str | list | tuple) for item in items
    ):
        size = weight(a["start"]) + sum(weight(item) for item in items)
        if size > MAX_SIZE:
            raise _too_big("|sum", size)


def _pre_urlize(a: dict[str, Any]) -> None:
    text = str(a["value"])
    extra = len(str(a["target"] or "")) + len(str(a["rel"] or "")) + 100
    size = 2 * len(text) + len(text.split()) * extra
    if size > MAX_SIZE:
        raise _too_big("|urlize", size)


_PRE_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "wordwrap": _pre_wordwrap,
    "format": _pre_format,
    "join": _pre_join,
    "replace": _pre_replace,
    "slice": _pre_parts("slice", "slices", MAX_RANGE),
    "batch": _pre_parts("batch", "linecount", MAX_SIZE),
    "truncate": _pre_parts("truncate", "length", MAX_SIZE),
    "sum": _pre_sum,
    "urlize": _pre_urlize,
}


def _budgeted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # A filter marked `pass_context` & co. gets the context first; its signature may or
    # may not show it (an async variant's wrapper shows the plain function's).
    passed = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    parameters = list(inspect.signature(func).parameters.values())
    if parameters and parameters[0].name in ("context", "eval_ctx", "environment", "env"):
        parameters = parameters[1:]
    signature = inspect.Signature(parameters)
    pre = _PRE_CHECKS.get(name)

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_time()
        if pre is not None:
            bound = signature.bind(*args[passed:], **kwargs)
            bound.apply_defaults()
            pre(bound.arguments)
            args, kwargs = (*args[:passed], *bound.args), bound.kwargs
        return check_size(func(*args, **kwargs), f"|{name}")

    return checked


def _budget_iter(value: Any) -> Iterator[Any]:
    """What a `{% for %}` walks: the clock is read every few steps, output or not."""
    current = _CURRENT.get()
    for step, item in enumerate(value):
        if step % _CLOCK_EVERY == 0 and current is not None:
            check_time()
        yield item


def _range(*args: Any) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise BudgetExceeded(f"range() of {len(numbers):,} numbers (limit {MAX_RANGE:,})")
    return numbers


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n > MAX_LIPSUM_PARAGRAPHS or max > 1000:
        raise BudgetExceeded(
            f"lipsum({n:,}): at most {MAX_LIPSUM_PARAGRAPHS} paragraphs of 1,000 words"
        )
    return generate_lorem_ipsum(n, html, min, max)


def _concat(parts: Iterable[str]) -> str:
    """Jinja2's `concat` for blocks, macros and `{% set %}` blocks, counted as it goes."""
    kept: list[str] = []
    size = 0
    for part in parts:
        size += len(part)
        if size > MAX_SIZE:
            raise _too_big("a block", size)
        kept.append(part)
    check_time()
    _charge(size)
    return "".join(kept)


def _joined(join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
    """`a ~ b ~ c`: the parts are measured before they are joined."""
    check_time()
    size = sum(_text_size(part) for part in parts)
    if size > MAX_SIZE:
        raise _too_big("`~`", size)
    _charge(size)
    return join(parts)


class _BudgetCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.budget_joined({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


# str methods that build text from a number or from their arguments
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill"}
_REFUSED_METHODS = {"translate", "maketrans", "expandtabs"}


def _check_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if not isinstance(owner, str):
        return args
    what = f"str.{name}()"
    if name in _REFUSED_METHODS:
        raise BudgetExceeded(f"{what} is not allowed in templates")
    if name in _WIDTH_METHODS and args and isinstance(args[0], int) and args[0] > MAX_SIZE:
        raise _too_big(what, args[0])
    if name == "replace" and len(args) >= 2 and all(isinstance(x, str) for x in args[:2]):
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        size = _replaced_size(owner, args[0], args[1], count)
        if size > MAX_SIZE:
            raise _too_big(what, size)
    if name == "join" and args:
        items = list(args[0])
        size = _joined_size(items, owner)
        if size > MAX_SIZE:
            raise _too_big(what, size)
        return (items, *args[1:])
    return args


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with the budget above on every operation."""

    code_generator_class = _BudgetCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(_concat)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _budgeted_filter(name, f) for name, f in self.filters.items()}
        self.filters["budget_iter"] = _budget_iter
        self.globals.update(range=_range, lipsum=_lipsum)
        self.budget_joined = _joined

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every `{% for %}` walks its items through `budget_iter` (the clock)."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, "budget_iter", [], [], None, None, lineno=loop.lineno
            )
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_time()
        what = f"`{operator}`"
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    size = weight(seq) * max(times, 0)
                    if size > MAX_SIZE:
                        raise _too_big(what, size)
                    _charge(size)
            if isinstance(left, int) and isinstance(right, int):
                self._check_bits(left.bit_length() + right.bit_length(), what)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                self._check_bits(max(left.bit_length(), 1) * right, what)
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                size = weight(left) + weight(right)
                if size > MAX_SIZE:
                    raise _too_big(what, size)
                _charge(size)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right, what)
            return check_size(super().call_binop(context, operator, left, right), what)
        return super().call_binop(context, operator, left, right)

    @staticmethod
    def _check_bits(bits: int, what: str) -> None:
        if bits > MAX_INT_BITS:
            raise BudgetExceeded(f"{what} would build a number of {bits:,} bits")

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        check_time()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        what = f"str.{value.__name__}()"

        def checked(*args: Any, **kwargs: Any) -> str:
            check_time()
            values = [*args, *kwargs.values()]
            if value.__name__ == "format_map" and args and isinstance(args[0], dict):
                values = list(args[0].values())
            _check_braces(template, values, what)
            result: str = check_size(wrapped(*args, **kwargs), what)
            return result

        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check_time()
        args = _check_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return check_size(result, f"{getattr(__obj, '__name__', 'a call')}()")
