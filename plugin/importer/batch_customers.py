"""A page of customers folded set-based, with the rules of `plugin.profiles.customers`.

A customer whose metadata states marketing consent is left to the webhook fold (consent is
written per identity, with its own time rules); so is one that would merge two profiles.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.importer.bulk import insert_rows
from plugin.importer.items import Item, dedup_key, first_duplicate
from plugin.importer.people import NeedsMerge, PageIdentities, PageWrites, Person, later
from plugin.importer.timeline import entry
from plugin.profiles.consent import CONSENT_KEYS
from plugin.profiles.customers import EVENT_TITLES, _customer_fields
from plugin.profiles.fields import apply_fields
from plugin.saleor.payloads import metadata_dict
from plugin.timeline.models import TimelineEntry

EVENT = "customer_created"


def states_consent(item: Item) -> bool:
    return any(key in CONSENT_KEYS for key in metadata_dict(item.node.get("metadata")))


async def fold_customers(
    session: AsyncSession, installation_id: int, items: Sequence[Item], page: PageWrites
) -> int:
    """Fold the leading customers the set-based path can; returns how many."""
    items = items[: first_duplicate(items)]
    people = PageIdentities(installation_id)
    await people.load(session, [i.claims for i in items])
    plans: list[tuple[Item, Person]] = []
    for item in items:
        if states_consent(item):
            break
        person = people.resolve(item.claims)
        if isinstance(person, NeedsMerge) or person is None:
            break
        deleted_at = person.saleor_deleted_at
        if deleted_at is None or item.updated_at >= deleted_at:
            # A late snapshot from before the deletion must not bring the account back.
            apply_fields(person.as_profile(), item.updated_at, _customer_fields(item.node))
            person.customer_updated_at = later(person.customer_updated_at, item.updated_at)
        plans.append((item, person))
    if not plans:
        return 0
    await people.write(session, page.pending)
    entries = []
    for item, person in plans:
        assert person.id is not None
        page.touched.add(person.id)
        entries.append(
            entry(
                installation_id,
                person.id,
                EVENT,
                item,
                subject_type="customer",
                summary=EVENT_TITLES[EVENT],
                data={"email": item.claims.email},
                key=dedup_key(EVENT, item),
            )
        )
    await insert_rows(
        session, TimelineEntry, entries, ignore_conflicts_on=["installation_id", "dedup_key"]
    )
    return len(plans)
