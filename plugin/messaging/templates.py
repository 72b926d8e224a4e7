"""Merchant-edited templates: Jinja2 in a sandbox, per locale with a fallback.

HTML parts autoescape; subjects and text parts do not (they are not HTML). Unknown
variables are errors, so a template that cannot render fails its step visibly instead of
sending a message with holes in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

PARTS = ("subject", "html", "text")
MAX_SOURCE = 200_000
MAX_OUTPUT = 1_000_000

_html_env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
_text_env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


class TemplateProblem(ValueError):
    """A template that does not compile or render; names the locale and part."""

    def __init__(self, locale: str, part: str, message: str) -> None:
        where = f"{locale or 'default'}.{part}"
        super().__init__(f"{where}: {message}")
        self.locale, self.part, self.message = locale, part, message


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    locale: str


def _env(part: str) -> SandboxedEnvironment:
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


def render(contents: dict[str, Any], language: str | None, variables: dict[str, Any]) -> Rendered:
    locale = pick_locale(contents, language)
    parts = contents[locale]
    out: dict[str, str] = {}
    for part in PARTS:
        source = parts.get(part) or ""
        try:
            text = _compiled(part, source).render(variables) if source else ""
        except TemplateError as error:
            raise TemplateProblem(locale, part, str(error)) from None
        except Exception as error:  # a template may divide by zero, index a None …
            raise TemplateProblem(locale, part, f"{type(error).__name__}: {error}") from None
        if len(text) > MAX_OUTPUT:
            raise TemplateProblem(locale, part, "the rendered text is too long")
        out[part] = text
    subject = " ".join(out["subject"].split())
    return Rendered(subject=subject, html=out["html"], text=out["text"], locale=locale)
