"""A merge keeps what other packages hold on the duplicate: its messages, opt-outs and
parcels move to the survivor instead of vanishing with the deleted profile."""

from __future__ import annotations

from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.messaging.models import Channel, Message, MessageStatus, TopicOptOut
from plugin.profiles.merge import merge_profiles
from plugin.profiles.models import Profile
from plugin.tracking.models import Shipment
from tests.conftest import new_installation


async def test_messages_opt_outs_and_parcels_follow_the_survivor(db: Database) -> None:
    installation_id = await new_installation(db)
    now = utcnow()
    async with unit_of_work(db) as session:
        older = Profile(installation_id=installation_id, email="m@example.com")
        newer = Profile(installation_id=installation_id, email="m.guest@example.com")
        session.add_all([older, newer])
        await session.flush()
        session.add_all(
            [
                Message(
                    installation_id=installation_id,
                    idempotency_key="merge-test",
                    profile_id=newer.id,
                    channel=Channel.EMAIL,
                    template_key="welcome",
                    status=MessageStatus.SENT,
                ),
                # both said no to offers by e-mail: kept once; reviews only on the duplicate
                TopicOptOut(
                    installation_id=installation_id,
                    profile_id=older.id,
                    channel=Channel.EMAIL,
                    topic="offers",
                ),
                TopicOptOut(
                    installation_id=installation_id,
                    profile_id=newer.id,
                    channel=Channel.EMAIL,
                    topic="offers",
                ),
                TopicOptOut(
                    installation_id=installation_id,
                    profile_id=newer.id,
                    channel=Channel.EMAIL,
                    topic="reviews",
                ),
                Shipment(
                    installation_id=installation_id,
                    fulfillment_saleor_id="RnVsZmlsbG1lbnQ6MQ==",
                    order_saleor_id="T3JkZXI6MQ==",
                    profile_id=newer.id,
                    tracking_number="MERGE1",
                    carrier="manual",
                    carrier_source="test",
                    shipped_at=now,
                    status_changed_at=now,
                    source_updated_at=now,
                ),
            ]
        )
        await session.flush()
        survivor = await merge_profiles(session, older, newer, now)
        survivor_id, loser_id = survivor.id, newer.id
    assert survivor_id == older.id

    async with db.session() as session:
        messages = list(
            await session.scalars(
                select(Message.profile_id).where(
                    Message.installation_id == installation_id,
                    Message.idempotency_key == "merge-test",
                )
            )
        )
        opt_outs = sorted(
            (row.profile_id, row.topic)
            for row in await session.scalars(
                select(TopicOptOut).where(TopicOptOut.installation_id == installation_id)
            )
        )
        parcel = await session.scalar(
            select(Shipment.profile_id).where(Shipment.tracking_number == "MERGE1")
        )
        assert await session.get(Profile, loser_id) is None
    assert messages == [survivor_id]
    assert opt_outs == [(survivor_id, "offers"), (survivor_id, "reviews")]
    assert parcel == survivor_id
