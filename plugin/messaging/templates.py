"""Merchant-edited templates: Jinja2 in a sandbox, per locale with a fallback.

HTML parts autoescape; subjects and text parts do not (they are not HTML). Unknown
variables are errors, so a template that cannot render fails its step visibly instead of
sending a message with holes in it. Rendering has a budget of time and size, enforced
while it runs (plugin.messaging.sandbox); the API renders in a worker thread so a slow
template never holds the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import anyio.to_thread
from jinja2 import StrictUndefined, Template, TemplateError

from plugin.messaging.sandbox import BudgetedSandbox, BudgetExceeded, WallClockExceeded, budget

PARTS = ("subject", "html", "text")
MAX_SOURCE = 200_000
MAX_OUTPUT = 1_000_000
# Wall-clock budget of an interactive preview (its CPU budget is the sandbox's).
PREVIEW_WALL_SECONDS = 0.5

_html_env = BudgetedSandbox(autoescape=True, undefined=StrictUndefined)
_text_env = BudgetedSandbox(autoescape=False, undefined=StrictUndefined)


class TemplateProblem(ValueError):
    """A template that does not compile or render; names the locale and part. `transient`
    when only the wall clock ran out (a busy machine): a send tries again later."""

    def __init__(self, locale: str, part: str, message: str, *, transient: bool = False) -> None:
        where = f"{locale or 'default'}.{part}"
        super().__init__(f"{where}: {message}")
        self.locale, self.part, self.message = locale, part, message
        self.transient = transient


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    locale: str


def _env(part: str) -> BudgetedSandbox:
    return _html_env if part == "html" else _text_env


@lru_cache(maxsize=512)
def _compiled(part: str, source: str) -> Template:
    """Compiling costs far more than rendering; a flow renders one template many times."""
    return _env(part).from_string(source)


def validate_contents(contents: Any, *, needs_subject: bool) -> dict[str, dict[str, str]]:
    """The contents as stored, or TemplateProblem. `""` (the fallback locale) is required."""
    if not isinstance(contents, dict) or "" not in contents:
        raise TemplateProblem("", "contents", 'give an object with a "" (default) locale')
    cleaned: dict[str, dict[str, str]] = {}
    for locale, parts in contents.items():
        if not isinstance(locale, str) or len(locale) > 16:
            raise TemplateProblem(str(locale), "locale", "a locale is a short code like fr-FR")
        if not isinstance(parts, dict) or set(parts) - set(PARTS):
            raise TemplateProblem(locale, "parts", f"only {', '.join(PARTS)} are allowed")
        kept: dict[str, str] = {}
        for part in PARTS:
            source = parts.get(part, "")
            if not isinstance(source, str) or len(source) > MAX_SOURCE:
                raise TemplateProblem(locale, part, f"a text of at most {MAX_SOURCE} characters")
            try:
                _env(part).parse(source)
            except TemplateError as error:
                line = getattr(error, "lineno", None)
                raise TemplateProblem(
                    locale, part, f"{error}" + (f" (line {line})" if line else "")
                ) from None
            except RecursionError:
                raise TemplateProblem(locale, part, "the template nests too deeply") from None
            kept[part] = source
        if not kept["text"] and not kept["html"]:
            raise TemplateProblem(locale, "text", "a message needs a text or an HTML part")
        if needs_subject and not kept["subject"].strip():
            raise TemplateProblem(locale, "subject", "an e-mail needs a subject")
        cleaned[locale] = kept
    return cleaned


def pick_locale(contents: dict[str, Any], language: str | None) -> str:
    """`fr-FR` → `fr-FR`, else `fr`, else the default."""
    if language:
        for candidate in (language, language.split("-")[0]):
            for locale in contents:
                if locale and locale.lower() == candidate.lower():
                    return str(locale)
    return ""


def _render_part(source: str, variables: dict[str, Any], where: tuple[str, str]) -> str:
    """Streamed chunk by chunk: the output limit holds while the text is produced."""
    chunks: list[str] = []
    size = 0
    for chunk in _compiled(where[1], source).generate(variables):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise TemplateProblem(
                *where, f"over budget: the output is longer than {MAX_OUTPUT:,} characters"
            )
        chunks.append(chunk)
    return "".join(chunks)


def render(
    contents: dict[str, Any],
    language: str | None,
    variables: dict[str, Any],
    *,
    wall_seconds: float | None = None,
) -> Rendered:
    """Render one locale's parts under one budget; TemplateProblem says what failed (a
    budget overrun says which: time, output size, or the operation that was too big)."""
    locale = pick_locale(contents, language)
    parts = contents[locale]
    out: dict[str, str] = {}
    with budget(wall_seconds=wall_seconds):
        for part in PARTS:
            source = parts.get(part) or ""
            try:
                out[part] = _render_part(source, variables, (locale, part)) if source else ""
            except TemplateProblem:
                raise
            except BudgetExceeded as exceeded:
                raise TemplateProblem(
                    locale,
                    part,
                    f"over budget: {exceeded}",
                    transient=isinstance(exceeded, WallClockExceeded),
                ) from None
            except TemplateError as error:
                raise TemplateProblem(locale, part, str(error)) from None
            except RecursionError:
                raise TemplateProblem(locale, part, "the template nests too deeply") from None
            except Exception as error:  # a template may divide by zero, index a None …
                raise TemplateProblem(locale, part, f"{type(error).__name__}: {error}") from None
    subject = " ".join(out["subject"].split())
    return Rendered(subject=subject, html=out["html"], text=out["text"], locale=locale)


async def render_in_thread(
    contents: dict[str, Any], language: str | None, variables: dict[str, Any]
) -> Rendered:
    """`render` for a request: in a worker thread, under the preview's wall budget."""
    work = partial(render, contents, language, variables, wall_seconds=PREVIEW_WALL_SECONDS)
    return await anyio.to_thread.run_sync(work)
