"""Template rendering has a budget, enforced while it runs (issue 16, point 4).

Nested `range(20000)` loops used to take 14 s on the event loop (and stall `/healthz`);
`'x' * 10**8` built 100 MB before the output limit was looked at. Each abusive template
below is refused with a reason naming what went over, in the API (INVALID_INPUT), in the
dashboard's preview, and when a message is sent (failed for good, with the reason) —
unless only the wall clock ran out with CPU time to spare (a busy machine): that send is
tried again after the messaging back-off.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from plugin.context import AppContext
from plugin.db.engine import Database
from plugin.messaging import sandbox
from plugin.messaging.claims import backoff
from plugin.messaging.models import MessageStatus
from plugin.messaging.sending import deliver
from plugin.messaging.templates import TemplateProblem, render
from tests.api import gql, staff_headers
from tests.conftest import RunningApp
from tests.messaging_doubles import SmtpServer, add_template, make_customer
from tests.test_messaging_send import LATER, _message, _queue, _shop, app_ctx, smtp  # noqa: F401

LOOPS = "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}"
SILENT_LOOPS = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"

# template → what the refusal names
ABUSIVE = {
    "nested loops": (LOOPS, "longer than"),
    "nested loops without output": (SILENT_LOOPS, "longer than"),
    "three nested loops": (
        "{% for a in range(5000) %}{% for b in range(5000) %}{% for c in range(5000) %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        "longer than",
    ),
    "loops over a string": (
        "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "longer than",
    ),
    "str times a huge number": ("{{ 'x' * 10**8 }}", "`*`"),
    "str times, twice": ("{{ 'x' * 10**4 * 10**4 }}", "`*`"),
    "list times a huge number": ("{{ [1] * 10**8 }}", "`*`"),
    "list of lists": ("{{ [[1] * 100000] * 100000 }}", "`*`"),
    "huge power": ("{{ 10 ** (10 ** 8) }}", "bits"),
    "percent width": ("{{ '%999999999s' % 1 }}", "width"),
    "format filter width": ("{{ '%999999999s'|format(1) }}", "width"),
    "format filter of many parts": (
        "{{ ('%s' * 1000)|format(*(['x' * 100000] * 1000)) }}",
        "build",
    ),
    "join of huge ranges": ("{{ range(10000)|join(range(10000)|join) }}", "|join"),
    "center": ("{{ 'x'|center(10**9) }}", "|center"),
    "wordwrap": ("{{ ('x ' * 400000)|wordwrap(1, wrapstring='y' * 1000) }}", "|wordwrap"),
    "indent": ("{{ ('\n' * 100000)|indent(100000) }}", "|indent"),
    "lipsum": ("{{ lipsum(10**6) }}", "lipsum"),
    "range": ("{{ range(10**8)|length }}", "range()"),
    "doubling by ~": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "`~`",
    ),
    "doubling by +": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "`+`",
    ),
    "str method width": ("{{ 'x'.ljust(10**9) }}", "str.ljust()"),
    "str.format width": ("{{ '{:>999999999}'.format('x') }}", "width"),
    "str.format of many fields": ("{{ ('{0}' * 100000).format('x' * 1000) }}", "str.format()"),
    "replace": ("{{ ('x' * 1000000)|replace('x', 'yy') }}", "|replace"),
    "list that grows itself": (
        "{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}",
        "unsafe",
    ),
    "block of loops": ("{% set b %}" + LOOPS + "{% endset %}{{ b|length }}", "longer than"),
    "many texts, each under the limit": (
        "".join(f"{{% set v{i} = 'x' * 900000 %}}" for i in range(10)),
        "in all",
    ),
    "output too long": ("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", "output"),
}


@pytest.mark.parametrize("case", list(ABUSIVE))
def test_an_abusive_template_is_refused_with_its_reason(case: str) -> None:
    source, reason = ABUSIVE[case]
    with pytest.raises(TemplateProblem) as refused:
        render({"": {"text": source}}, None, {})
    assert refused.value.part == "text"
    assert reason in refused.value.message


def test_an_ordinary_template_still_renders() -> None:
    source = (
        "{% for item in items %}{{ loop.index }}. {{ item|upper }}{{ ', ' if not loop.last }}"
        "{% endfor %} — {{ '%05.1f'|format(total) }} {{ names|join('/') }} {{ 'ab' * 2 }} "
        "{{ '{} {}'.format('a', 1) }} {{ 'x'|center(5) }}|{{ range(3)|sum }}"
    )
    shown = render(
        {"": {"subject": "Hi {{ name }}", "text": source}},
        None,
        {"items": ["a", "b"], "total": 3.14159, "names": ["x", "y"], "name": "Ann"},
    )
    assert shown.subject == "Hi Ann"
    assert shown.text == "1. A, 2. B — 003.1 x/y abab a 1   x  |3"


PREVIEW = """query($c: JSON) { messageTemplatePreview(contents: $c) { text } }"""


async def test_the_api_answers_invalid_input_and_healthz_answers_meanwhile(
    app_server: RunningApp, saleor: Any, installation_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of seconds (the app runs in this process): the render is still going when
    # /healthz answers, however slowly a loaded machine serves it; on the event loop it
    # would have made /healthz wait for the whole budget.
    from plugin.messaging import templates

    monkeypatch.setattr(sandbox, "CPU_SECONDS", 4.0)
    monkeypatch.setattr(templates, "PREVIEW_WALL_SECONDS", 4.0)
    headers = staff_headers(saleor)
    loops = {"c": {"": {"text": SILENT_LOOPS}}}  # no output: only the clock stops it
    preview = asyncio.create_task(gql(app_server, PREVIEW, loops, headers))
    await asyncio.sleep(0.3)  # the preview is rendering now
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as client:
        health = await client.get("/healthz")
    assert health.status_code == 200
    assert not preview.done()  # /healthz did not wait for the template
    answer = await preview
    assert answer.codes == ["INVALID_INPUT"]
    assert "longer than" in answer.body["errors"][0]["message"]
    for source, reason in (ABUSIVE["str times a huge number"], ABUSIVE["lipsum"]):
        refused = await gql(app_server, PREVIEW, {"c": {"": {"text": source}}}, headers)
        assert refused.codes == ["INVALID_INPUT"]
        assert reason in refused.body["errors"][0]["message"]


async def test_the_dashboard_preview_names_the_problem(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    form = {
        "token": staff_headers(saleor)["authorization-bearer"],
        "saleorApiUrl": saleor.api_url,
        "contents": '{"": {"subject": "Hi", "text": "{{ \'x\' * 10**8 }}"}}',
    }
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as client:
        page = await client.post("/dashboard/preview/template", data=form)
    assert page.status_code == 400
    assert "over budget" in page.text


async def test_sending_an_over_budget_template_fails_the_message_for_good(
    db: Database,
    smtp: SmtpServer,  # noqa: F811
    app_ctx: AppContext,  # noqa: F811
) -> None:
    installation_id = await _shop(db, smtp)
    await add_template(db, installation_id, "loops", {"": {"subject": "Hi", "text": LOOPS}})
    profile_id = await make_customer(db, installation_id, "loops@example.com", first_name="L")
    message_id = await _queue(db, installation_id, profile_id, "loops-1", template="loops")
    await deliver(app_ctx, message_id, now=LATER)
    failed = await _message(db, message_id)
    assert failed.status is MessageStatus.FAILED  # for good: FAILED is never retried
    assert "over budget" in (failed.error or "")
    assert smtp.inbox.to("loops@example.com") == []


async def test_a_send_over_the_wall_clock_only_is_retried_with_the_back_off(
    db: Database,
    smtp: SmtpServer,  # noqa: F811
    app_ctx: AppContext,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy machine (the wall clock runs out, the CPU budget is not spent) must not fail
    a normal template for good: the message waits the send back-off and goes later."""
    installation_id = await _shop(db, smtp)
    profile_id = await make_customer(db, installation_id, "busy@example.com", first_name="B")
    message_id = await _queue(db, installation_id, profile_id, "busy-1")
    monkeypatch.setattr(sandbox, "WALL_SECONDS", -1.0)  # already out when the render starts
    await deliver(app_ctx, message_id, now=LATER)
    waiting = await _message(db, message_id)
    assert waiting.status is MessageStatus.QUEUED
    assert waiting.attempts == 1
    assert waiting.next_attempt_at == LATER + backoff(1)
    assert (waiting.error or "").startswith("transient: ")
    assert "wall-clock" in (waiting.error or "")
    assert smtp.inbox.to("busy@example.com") == []

    monkeypatch.setattr(sandbox, "WALL_SECONDS", 60.0)  # the machine is quiet again
    await deliver(app_ctx, message_id, now=waiting.next_attempt_at)
    sent = await _message(db, message_id)
    assert sent.status is MessageStatus.SENT
    assert sent.attempts == 2
    assert len(smtp.inbox.to("busy@example.com")) == 1


async def test_a_send_always_over_the_wall_clock_gives_up_after_its_attempts(
    db: Database,
    smtp: SmtpServer,  # noqa: F811
    app_ctx: AppContext,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installation_id = await _shop(db, smtp)
    profile_id = await make_customer(db, installation_id, "stuck@example.com", first_name="S")
    message_id = await _queue(db, installation_id, profile_id, "stuck-1")
    monkeypatch.setattr(sandbox, "WALL_SECONDS", -1.0)
    when = LATER
    for _ in range(app_ctx.settings.messaging_send_max_attempts):
        await deliver(app_ctx, message_id, now=when)
        when += timedelta(days=1)
    final = await _message(db, message_id)
    assert final.status is MessageStatus.FAILED
    assert final.attempts == app_ctx.settings.messaging_send_max_attempts
    assert (final.error or "").startswith("gave up after")


@pytest.mark.parametrize(
    ("text", "cpu_seconds"),
    [
        ("Hi {{ customer.first_name }}", -1.0),  # the CPU budget is spent
        ("{{ 'x' * 10**8 }}", sandbox.CPU_SECONDS),  # the size limit
    ],
    ids=["cpu", "size"],
)
async def test_a_send_over_the_cpu_or_size_budget_still_fails_for_good(
    db: Database,
    smtp: SmtpServer,  # noqa: F811
    app_ctx: AppContext,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    cpu_seconds: float,
) -> None:
    installation_id = await _shop(db, smtp)
    await add_template(db, installation_id, "heavy", {"": {"subject": "Hi", "text": text}})
    profile_id = await make_customer(db, installation_id, "heavy@example.com", first_name="H")
    message_id = await _queue(db, installation_id, profile_id, "heavy-1", template="heavy")
    monkeypatch.setattr(sandbox, "CPU_SECONDS", cpu_seconds)
    monkeypatch.setattr(sandbox, "WALL_SECONDS", 60.0)  # the wall clock never decides here
    await deliver(app_ctx, message_id, now=LATER)
    failed = await _message(db, message_id)
    assert failed.status is MessageStatus.FAILED
    assert (failed.error or "").startswith("default.text: over budget")
    assert smtp.inbox.to("heavy@example.com") == []
