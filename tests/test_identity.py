"""Identity resolution and merges (plugin/profiles/identity.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.consent import set_consent
from plugin.profiles.identity import Claims, resolve
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile, ProfileTag
from plugin.saleor.models import Installation
from plugin.segments.models import Segment, SegmentMembership
from plugin.timeline.models import TimelineEntry


async def _installation(db: Database) -> int:
    async with unit_of_work(db) as session:
        installation = Installation(
            saleor_api_url=f"http://127.0.0.1:1/{uuid.uuid4().hex}/graphql/",
            app_id="QXBwOjE=",
            token_encrypted="x",
            jwks={"keys": []},
            installed_at=utcnow(),
        )
        session.add(installation)
        await session.flush()
        return installation.id


async def _resolve(db: Database, installation_id: int, claims: Claims) -> int:
    async with unit_of_work(db) as session:
        profile = await resolve(session, installation_id, claims, utcnow())
        assert profile is not None
        return profile.id


async def _profiles(db: Database, installation_id: int) -> list[Profile]:
    async with db.session() as session:
        return list(
            await session.scalars(select(Profile).where(Profile.installation_id == installation_id))
        )


async def test_guest_who_registers_keeps_one_profile(db: Database) -> None:
    inst = await _installation(db)
    guest = await _resolve(db, inst, Claims(email="ann@example.com"))
    user = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjox", email="ann@example.com"))
    assert guest == user
    (profile,) = await _profiles(db, inst)
    assert profile.saleor_user_id == "VXNlcjox"


async def test_registered_user_then_guest_order_with_same_email(db: Database) -> None:
    inst = await _installation(db)
    user = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjoy", email="bo@example.com"))
    guest = await _resolve(db, inst, Claims(email="bo@example.com", phone="+14155550100"))
    assert guest == user
    assert len(await _profiles(db, inst)) == 1


async def test_merge_keeps_consent_on_its_own_address(db: Database) -> None:
    inst = await _installation(db)
    guest = await _resolve(db, inst, Claims(email="old@example.com"))
    user = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjoz", email="new@example.com"))
    assert guest != user
    async with unit_of_work(db) as session:
        identity = await session.scalar(
            select(Identity).where(
                Identity.profile_id == guest, Identity.value == "old@example.com"
            )
        )
        assert identity is not None
        set_consent(identity, ConsentState.GRANTED, utcnow(), "test")

    # The user now uses the guest's address: the two profiles are one person.
    merged = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjoz", email="old@example.com"))
    assert merged == user  # the profile holding the Saleor account survives
    (profile,) = await _profiles(db, inst)
    async with db.session() as session:
        identities = {
            i.value: i.marketing_consent
            for i in await session.scalars(
                select(Identity).where(Identity.profile_id == profile.id)
            )
        }
        kinds = list(
            await session.scalars(
                select(TimelineEntry.kind).where(TimelineEntry.profile_id == profile.id)
            )
        )
    assert identities == {
        "VXNlcjoz": None,
        "new@example.com": None,  # never given the other address's consent
        "old@example.com": ConsentState.GRANTED,
    }
    assert "profile_merged" in kinds


async def test_two_saleor_users_are_never_merged(db: Database) -> None:
    inst = await _installation(db)
    first = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjo0", email="shared@example.com"))
    # The first user changed address; a second account registers with the old one.
    second = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjo1", email="shared@example.com"))
    assert first != second
    assert {p.saleor_user_id for p in await _profiles(db, inst)} == {"VXNlcjo0", "VXNlcjo1"}


async def test_phone_decides_only_without_email_or_account(db: Database) -> None:
    inst = await _installation(db)
    with_email = await _resolve(db, inst, Claims(email="cy@example.com", phone="+14155550111"))
    phone_only = await _resolve(db, inst, Claims(phone="+14155550111"))
    other_email = await _resolve(db, inst, Claims(email="dee@example.com", phone="+14155550111"))
    assert phone_only == with_email
    assert other_email != with_email  # a shared family phone does not merge two e-mails


async def test_anonymous_claims_make_no_profile(db: Database) -> None:
    inst = await _installation(db)
    async with unit_of_work(db) as session:
        assert await resolve(session, inst, Claims(), utcnow() - timedelta(days=1)) is None
    assert await _profiles(db, inst) == []


async def test_identity_kinds_are_stored(db: Database) -> None:
    inst = await _installation(db)
    pid = await _resolve(
        db, inst, Claims(saleor_user_id="VXNlcjo5", email="eve@example.com", phone="+14155550122")
    )
    async with db.session() as session:
        kinds = {
            i.kind
            for i in await session.scalars(select(Identity).where(Identity.profile_id == pid))
        }
    assert kinds == {IdentityKind.SALEOR_USER, IdentityKind.EMAIL, IdentityKind.PHONE}


async def test_merge_moves_tags_once_and_keeps_segment_counts(db: Database) -> None:
    inst = await _installation(db)
    guest = await _resolve(db, inst, Claims(email="tagged@example.com"))
    user = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjo5", email="other@example.com"))
    async with unit_of_work(db) as session:
        segment = Segment(
            installation_id=inst,
            key="all",
            name="All",
            rule={"field": "email", "op": "is_set"},
            member_count=2,
        )
        session.add(segment)
        await session.flush()
        for profile_id, tag in ((guest, "wholesale"), (guest, "vip"), (user, "vip")):
            session.add(
                ProfileTag(
                    installation_id=inst, profile_id=profile_id, tag=tag, created_at=utcnow()
                )
            )
        for profile_id in (guest, user):
            session.add(
                SegmentMembership(
                    installation_id=inst,
                    segment_id=segment.id,
                    profile_id=profile_id,
                    since=utcnow(),
                )
            )
    merged = await _resolve(db, inst, Claims(saleor_user_id="VXNlcjo5", email="tagged@example.com"))
    assert merged == user
    async with db.session() as session:
        tags = sorted(
            await session.scalars(select(ProfileTag.tag).where(ProfileTag.profile_id == user))
        )
        count = await session.scalar(
            select(Segment.member_count).where(Segment.installation_id == inst)
        )
    assert tags == ["vip", "wholesale"]
    assert count == 1  # the duplicate left; the survivor is still counted
