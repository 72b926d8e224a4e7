"""Notes, tags and consent on a customer (MANAGE_USERS)."""

from __future__ import annotations

import enum

import strawberry
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.api import permissions
from plugin.api.auth import Viewer
from plugin.api.context import Info
from plugin.api.errors import InvalidInput, NotFound
from plugin.api.fields import mutation as api_mutation
from plugin.api.ids import from_global_id
from plugin.api.types.customer import Customer
from plugin.api.types.timeline import Note
from plugin.db.upsert import insert_ignore
from plugin.notes.service import MAX_NOTE_LENGTH, add_note
from plugin.profiles.consent import set_consent
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile, ProfileTag
from plugin.segments.membership import reevaluate_profiles
from plugin.timeline.service import record

MAX_TAG_LENGTH = 64
MAX_TAGS_PER_CALL = 20


@strawberry.enum
class ConsentChannel(enum.Enum):
    EMAIL = "email"
    SMS = "sms"


async def profile_for(
    session: AsyncSession, viewer: Viewer, customer_id: str, *, field: str = "customerId"
) -> Profile:
    pk = from_global_id("Customer", customer_id, field=field)
    profile = await session.scalar(
        select(Profile).where(Profile.id == pk, Profile.installation_id == viewer.installation_id)
    )
    if profile is None:
        raise NotFound("No such customer.", field=field)
    return profile


def clean_tags(tags: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(t.strip() for t in tags))
    if not cleaned or len(cleaned) > MAX_TAGS_PER_CALL:
        raise InvalidInput(f"Give 1 to {MAX_TAGS_PER_CALL} tags.", field="tags")
    for tag in cleaned:
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(f"A tag has 1 to {MAX_TAG_LENGTH} characters.", field="tags")
    return cleaned


@strawberry.type
class CustomerMutations:
    @api_mutation("Add a note, signed by the caller. Needs MANAGE_USERS.")
    async def customer_add_note(self, info: Info, customer_id: strawberry.ID, text: str) -> Note:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        text = text.strip()
        if not text or len(text) > MAX_NOTE_LENGTH:
            raise InvalidInput(f"A note has 1 to {MAX_NOTE_LENGTH} characters.", field="text")
        async with ctx.write() as session:
            profile = await profile_for(session, viewer, customer_id)
            note = await add_note(
                session,
                installation_id=viewer.installation_id,
                profile_id=profile.id,
                text=text,
                now=ctx.now,
                author_user_id=viewer.user_id,
                author_email=viewer.email,
                author_token_id=viewer.token_id,
            )
        return Note.of(note)

    @api_mutation("Add tags (existing ones are kept). Needs MANAGE_USERS.")
    async def customer_tag(
        self, info: Info, customer_id: strawberry.ID, tags: list[str]
    ) -> Customer:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        cleaned = clean_tags(tags)
        async with ctx.write() as session:
            profile = await profile_for(session, viewer, customer_id)
            for tag in cleaned:
                await insert_ignore(
                    session,
                    ProfileTag,
                    {
                        "installation_id": viewer.installation_id,
                        "profile_id": profile.id,
                        "tag": tag,
                        "created_at": ctx.now,
                    },
                    conflict_columns=["profile_id", "tag"],
                )
            await reevaluate_profiles(session, viewer.installation_id, [profile.id], ctx.now)
        return Customer.of(profile)

    @api_mutation("Remove tags. Needs MANAGE_USERS.")
    async def customer_untag(
        self, info: Info, customer_id: strawberry.ID, tags: list[str]
    ) -> Customer:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        cleaned = clean_tags(tags)
        async with ctx.write() as session:
            profile = await profile_for(session, viewer, customer_id)
            await session.execute(
                delete(ProfileTag).where(
                    ProfileTag.profile_id == profile.id, ProfileTag.tag.in_(cleaned)
                )
            )
            await reevaluate_profiles(session, viewer.installation_id, [profile.id], ctx.now)
        return Customer.of(profile)

    @api_mutation(
        "Record marketing consent for the customer's e-mail addresses or phone "
        "numbers (or only `address`). Needs MANAGE_USERS."
    )
    async def customer_set_consent(
        self,
        info: Info,
        customer_id: strawberry.ID,
        channel: ConsentChannel,
        granted: bool,
        address: str | None = None,
    ) -> Customer:
        ctx = info.context
        viewer = ctx.require(*permissions.CUSTOMERS)
        kind = IdentityKind.EMAIL if channel is ConsentChannel.EMAIL else IdentityKind.PHONE
        state = ConsentState.GRANTED if granted else ConsentState.DENIED
        author = viewer.email or (f"api-token:{viewer.token_id}" if viewer.token_id else "staff")
        async with ctx.write() as session:
            profile = await profile_for(session, viewer, customer_id)
            identities = list(
                await session.scalars(
                    select(Identity).where(
                        Identity.profile_id == profile.id,
                        Identity.installation_id == viewer.installation_id,
                        Identity.kind == kind,
                    )
                )
            )
            if address is not None:
                wanted = address.strip().lower() if kind is IdentityKind.EMAIL else address.strip()
                identities = [i for i in identities if i.value == wanted]
            if not identities:
                what = "e-mail address" if kind is IdentityKind.EMAIL else "phone number"
                raise InvalidInput(
                    f"The customer has no {what}" + (" like that." if address else "."),
                    field="address" if address is not None else "channel",
                )
            for identity in identities:
                set_consent(identity, state, ctx.now, f"api:{author}")
            await record(
                session,
                installation_id=viewer.installation_id,
                profile_id=profile.id,
                kind="consent_changed",
                occurred_at=ctx.now,
                dedup_key=f"consent:{profile.id}:{kind.value}:{ctx.now.isoformat()}",
                summary=f"{'Granted' if granted else 'Withdrew'} {channel.name} consent ({author})",
                data={"channel": channel.name, "granted": granted, "by": author},
            )
            await session.flush()
            await reevaluate_profiles(session, viewer.installation_id, [profile.id], ctx.now)
        return Customer.of(profile)
