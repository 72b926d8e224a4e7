"""One template or flow by key, and parcels filtered by carrier: what the dashboard's
editors and deliveries page ask for."""

from __future__ import annotations

from typing import Any

from plugin.db.engine import Database
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp, eventually


async def test_one_template_and_one_flow_by_key(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    headers = staff_headers(saleor)
    made = await gql(
        app_server,
        "mutation($i: MessageTemplateInput!) { messageTemplateCreate(input: $i) { key } }",
        {
            "i": {
                "key": "hello",
                "name": "Hello",
                "contents": {"": {"subject": "Hi", "text": "Hello"}},
            }
        },
        headers,
    )
    assert "errors" not in made.body, made.body

    async def listed() -> dict[str, Any] | None:
        answer = await gql(
            app_server,
            "{ messageTemplates { key name contents } messageFlows { key name enabled } }",
            {},
            headers,
        )
        assert "errors" not in answer.body, answer.body
        return answer.data if answer.data["messageFlows"] else None  # presets: the tick's

    found = await eventually(listed)
    templates, flows = found["messageTemplates"], found["messageFlows"]
    one = await gql(
        app_server,
        "query($t: String!, $f: String!) { messageTemplate(key: $t) { key name contents } "
        "messageFlow(key: $f) { key name enabled } }",
        {"t": templates[-1]["key"], "f": flows[-1]["key"]},
        headers,
    )
    assert "errors" not in one.body, one.body
    assert one.data["messageTemplate"] == templates[-1]
    assert one.data["messageFlow"] == flows[-1]
    for field in ("messageTemplate", "messageFlow"):
        missing = await gql(app_server, f'{{ {field}(key: "no-such-key") {{ key }} }}', {}, headers)
        assert missing.body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_parcels_filtered_by_carrier(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    await seed_customer(db, installation_id, "parcels@example.com", shipments=2)
    query = "query($c: Carrier) { shipments(carrier: $c) { trackingNumber carrier } }"
    manual = await gql(app_server, query, {"c": "MANUAL"}, staff_headers(saleor))
    assert "errors" not in manual.body, manual.body
    assert len(manual.data["shipments"]) == 2
    assert {s["carrier"] for s in manual.data["shipments"]} == {"MANUAL"}
    other = await gql(app_server, query, {"c": "CDEK"}, staff_headers(saleor))
    assert other.data["shipments"] == []
