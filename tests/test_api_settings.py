"""Score weights and RFM boundaries over the API: read, tune, validated, and used by the
next refresh; configuration needs MANAGE_USERS and MANAGE_APPS."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.segments.membership import refresh_installation
from tests.api import gql, seed_customer, staff_headers
from tests.conftest import RunningApp

READ = """
{ scoreSettings { weights { factor description weight } sources { source value } }
  rfmSettings { recencyDays frequency monetary { currency boundaries } } }
"""
SCORE = """
mutation($input: ScoreSettingsInput!) {
  scoreSettingsUpdate(input: $input) { weights { factor weight } sources { source value } }
}
"""
RFM = """
mutation($input: RfmSettingsInput!) {
  rfmSettingsUpdate(input: $input) { recencyDays frequency monetary { currency boundaries } }
}
"""


async def test_defaults_then_tuned_weights_drive_the_score(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    answer = await gql(app_server, READ, headers=headers)
    assert "errors" not in answer.body, answer.body
    weights = {w["factor"]: w["weight"] for w in answer.data["scoreSettings"]["weights"]}
    assert weights["recency"] == 25
    assert weights["source"] == 0
    assert answer.data["rfmSettings"] == {"recencyDays": None, "frequency": None, "monetary": []}

    # Only the source counts now: a google customer scores 100, another source 50.
    only_source = {factor: 0 for factor in weights} | {"source": 1}
    tuned = await gql(
        app_server,
        SCORE,
        {
            "input": {
                "weights": [{"factor": f, "weight": w} for f, w in only_source.items()],
                "sources": [{"source": "google", "value": 1}],
            }
        },
        headers,
    )
    assert "errors" not in tuned.body, tuned.body
    assert tuned.data["scoreSettingsUpdate"]["sources"] == [{"source": "google", "value": 1.0}]
    google = await seed_customer(db, installation_id, "g@example.com", orders=2)
    other = await seed_customer(db, installation_id, "o@example.com", orders=2)
    async with unit_of_work(db) as session:
        for profile_id, source in ((google, "google"), (other, "bing")):
            profile = await session.get(Profile, profile_id)
            assert profile is not None
            profile.utm_source = source
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, utcnow(), dialect=db.dialect)
    async with db.session() as session:
        rows = await session.execute(
            select(Profile.email, Profile.score).where(Profile.id.in_([google, other]))
        )
        scores = {email: score for email, score in rows}
    assert scores == {"g@example.com": 100, "o@example.com": 50}

    # A later change of one weight keeps the others as tuned.
    again = await gql(
        app_server, SCORE, {"input": {"weights": [{"factor": "recency", "weight": 5}]}}, headers
    )
    after = {w["factor"]: w["weight"] for w in again.data["scoreSettingsUpdate"]["weights"]}
    assert after["recency"] == 5
    assert after["source"] == 1
    assert after["frequency"] == 0


async def test_rfm_boundaries_set_and_cleared(
    app_server: RunningApp, saleor: Any, installation_id: int, db: Database
) -> None:
    headers = staff_headers(saleor)
    answer = await gql(
        app_server,
        RFM,
        {
            "input": {
                "frequency": [2, 3, 5, 8],
                "monetary": [{"currency": "usd", "boundaries": ["50", "100", "200", "400"]}],
            }
        },
        headers,
    )
    assert "errors" not in answer.body, answer.body
    assert answer.data["rfmSettingsUpdate"] == {
        "recencyDays": None,
        "frequency": [2.0, 3.0, 5.0, 8.0],
        "monetary": [{"currency": "USD", "boundaries": ["50", "100", "200", "400"]}],
    }
    # Six orders are more than the third boundary (5), not the fourth (8): frequency 4.
    buyer = await seed_customer(db, installation_id, "f@example.com", orders=6)
    async with unit_of_work(db) as session:
        await refresh_installation(session, installation_id, utcnow(), dialect=db.dialect)
    async with db.session() as session:
        profile = await session.get(Profile, buyer)
        assert profile is not None
        assert profile.rfm_frequency == 4

    cleared = await gql(app_server, RFM, {"input": {"frequency": []}}, headers)
    assert cleared.data["rfmSettingsUpdate"]["frequency"] is None
    assert cleared.data["rfmSettingsUpdate"]["monetary"][0]["currency"] == "USD"


async def test_bad_settings_and_missing_permissions(
    app_server: RunningApp, saleor: Any, installation_id: int
) -> None:
    headers = staff_headers(saleor)
    unknown = await gql(
        app_server, SCORE, {"input": {"weights": [{"factor": "zodiac", "weight": 1}]}}, headers
    )
    assert unknown.codes == ["INVALID_INPUT"]
    assert "zodiac" in unknown.body["errors"][0]["message"]
    unordered = await gql(app_server, RFM, {"input": {"frequency": [5, 3, 2, 1]}}, headers)
    assert unordered.codes == ["INVALID_INPUT"]
    assert "increasing" in unordered.body["errors"][0]["message"]
    short = await gql(app_server, RFM, {"input": {"recencyDays": [30]}}, headers)
    assert short.codes == ["INVALID_INPUT"]

    staff = staff_headers(saleor, ["MANAGE_USERS"])
    assert (await gql(app_server, READ, headers=staff)).codes == []
    denied = await gql(
        app_server, SCORE, {"input": {"weights": [{"factor": "recency", "weight": 1}]}}, staff
    )
    assert denied.codes == ["FORBIDDEN"]
    assert (await gql(app_server, READ)).codes == ["UNAUTHENTICATED"]
