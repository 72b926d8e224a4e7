"""The doubles themselves: their signatures verify and their payloads fit Saleor's schema."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest

from plugin.saleor.jws import SignatureError, verify_detached
from tests.simulator import FakeShop, SaleorSimulator


def test_webhook_signature_is_detached_unencoded_rs256() -> None:
    with SaleorSimulator() as saleor:
        body = b'{"__typename": "OrderCreated"}'
        signature = saleor.sign(body)
        head, payload, tail = signature.split(".")
        assert payload == ""  # detached
        header = jwt.get_unverified_header(signature)
        assert header["alg"] == "RS256"
        assert header["b64"] is False
        assert header["crit"] == ["b64"]
        assert header["kid"] == saleor.jwks()["keys"][0]["kid"]
        verify_detached(signature, body, saleor.jwks())
        with pytest.raises(SignatureError):
            verify_detached(signature, body + b" ", saleor.jwks())


def test_graphql_endpoint_validates_against_saleor_schema() -> None:
    with SaleorSimulator() as saleor:
        token = saleor.new_app_token()
        headers = {"Authorization": f"Bearer {token}"}
        good = httpx.post(saleor.api_url, json={"query": "{ app { id } }"}, headers=headers)
        assert good.json() == {"data": {"app": {"id": saleor.app_id}}}
        bad = httpx.post(saleor.api_url, json={"query": "{ app { nope } }"}, headers=headers)
        assert bad.status_code == 400
        assert saleor.invalid_queries == ["{ app { nope } }"]
        saleor.revoke_token(token)
        revoked = httpx.post(saleor.api_url, json={"query": "{ app { id } }"}, headers=headers)
        assert revoked.json()["data"] == {"app": None}
        # Deleted and installed again: the old App's tokens authenticate nothing.
        old = {"Authorization": f"Bearer {saleor.new_app_token()}"}
        saleor.reinstall_app(43)
        gone = httpx.post(saleor.api_url, json={"query": "{ app { id } }"}, headers=old)
        assert gone.status_code == 200
        assert gone.json() == {"data": {"app": None}}
        fresh = {"Authorization": f"Bearer {saleor.new_app_token()}"}
        again = httpx.post(saleor.api_url, json={"query": "{ app { id } }"}, headers=fresh)
        assert again.json() == {"data": {"app": {"id": saleor.app_id}}}


def test_shop_story_emits_saleor_shaped_events_in_time_order() -> None:
    shop = FakeShop()
    user = shop.create_customer("Ann@Example.com", first_name="Ann")[0].object_id
    checkout = shop.create_checkout(user_id=user, lines=[("Mug", "MUG", "Kitchen", 2, 7.5)])
    checkout_id = checkout[0].object_id
    events = [
        *checkout,
        *shop.pay_checkout(checkout_id),
        *shop.complete_checkout(checkout_id),
    ]
    order_id = events[-2].object_id
    events += shop.fulfill(order_id, tracking_number="TRACK-1")
    assert [e.event_type for e in events] == [
        "checkout_created",
        "checkout_fully_paid",
        "order_created",
        "order_fully_paid",
        "fulfillment_created",
        "order_fulfilled",
    ]
    assert [e.issued_at for e in events] == sorted(e.issued_at for e in events)
    order = json.loads(events[2].body)["order"]
    assert order["checkoutId"] == checkout_id
    assert order["user"]["email"] == "Ann@Example.com"
    assert order["total"]["gross"] == {"amount": 20.0, "currency": "USD"}  # 15 + 5 shipping
    assert json.loads(events[4].body)["fulfillment"]["trackingNumber"] == "TRACK-1"
