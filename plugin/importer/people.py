"""Identity resolution for a whole page at once, with the rules of `plugin.profiles.identity`.

The page's identities (and their profiles' fields) are read in one query; each object is
then resolved in order against that map, exactly as `resolve` would one event at a time —
the Saleor user first, then the e-mail, the phone only when neither is given, a new profile
otherwise, and identities attached where nobody holds them. The one case left to the
webhook code is a merge of two existing profiles (rare; `NEEDS_MERGE`).
New profiles and identities, and the changed fields of existing ones, are then written in
a few multi-row statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import ZERO, utcnow
from plugin.importer import pg_bulk
from plugin.importer.bulk import any_of, insert_rows, update_rows
from plugin.profiles.fields import PROFILE_FIELDS
from plugin.profiles.identity import Claims, buyer_claims, choose
from plugin.profiles.models import Identity, IdentityKind, Profile

SOURCE_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "referrer")
# Everything a fold may change on a profile besides its figures.
STATE_COLUMNS: tuple[str, ...] = (
    *sorted(PROFILE_FIELDS),
    "field_times",
    "saleor_user_id",
    "customer_updated_at",
    "saleor_deleted_at",
    *SOURCE_FIELDS,
    "source_at",
)
# What order and checkout folds can change (the account's own fields come from customers
# only): pages of those read and write just these.
PURCHASE_COLUMNS: tuple[str, ...] = (
    *("email", "first_name", "last_name", "language", "city", "country", "phone"),
    *("field_times", "saleor_user_id", *SOURCE_FIELDS, "source_at"),
)


JSON_COLUMNS = ("addresses", "saleor_metadata", "field_times")


class Person:
    """A profile as the page sees it: its id (None until inserted) and its state columns.
    `apply_fields`/`apply_source` work on it as on a `Profile` (same attribute names)."""

    saleor_user_id: str | None
    customer_updated_at: datetime | None
    saleor_deleted_at: datetime | None

    def __init__(
        self,
        profile_id: int | None,
        state: dict[str, Any],
        columns: tuple[str, ...] = STATE_COLUMNS,
    ) -> None:
        self.id = profile_id
        self.columns = columns
        self.original = dict(state) if profile_id is not None else {}
        self.saleor_deleted_at = self.customer_updated_at = None
        for name in columns:
            setattr(self, name, state.get(name))

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.columns}

    def as_profile(self) -> Profile:
        """For the field rules, which only read and set attributes."""
        return cast(Profile, self)

    @property
    def saleor_user(self) -> str | None:
        value = getattr(self, "saleor_user_id", None)
        return str(value) if value else None


@dataclass
class PageWrites:
    """What a page's folds leave for its end: the profiles touched (figures to recompute)
    and the new state of existing ones (written with the figures, one UPDATE)."""

    touched: set[int] = field(default_factory=set)
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)

    async def flush_pending(self, session: AsyncSession) -> None:
        """Before the webhook code reads profiles (an object folded on its own)."""
        await update_profiles(
            session, [{"id": pid, **state} for pid, state in self.pending.items()]
        )
        self.pending.clear()


class NeedsMerge:
    """Two existing profiles turn out to be one person: the webhook code merges them."""


NEEDS_MERGE: Final = NeedsMerge()


class PageIdentities:
    """The owners of a page's identities, updated as objects are resolved in order."""

    def __init__(self, installation_id: int, columns: tuple[str, ...] = STATE_COLUMNS) -> None:
        self.installation_id = installation_id
        self.columns = columns
        self.owners: dict[tuple[IdentityKind, str], Person] = {}
        self.people: dict[int, Person] = {}
        self.new_people: list[Person] = []
        self.new_identities: list[tuple[Person, IdentityKind, str]] = []

    async def load(self, session: AsyncSession, claims: list[Claims]) -> None:
        """One query: every identity the page names, with its profile's state."""
        pairs = sorted(
            {
                (kind.name, value)
                for c in claims
                for kind, value in (
                    (IdentityKind.SALEOR_USER, c.saleor_user_id),
                    (IdentityKind.EMAIL, c.email),
                    (IdentityKind.PHONE, c.phone),
                )
                if value is not None
            }
        )
        if not pairs:
            return
        if session.get_bind().dialect.name == "postgresql":
            await self._load_postgresql(session, pairs)
            return
        values = sorted({value for _, value in pairs})
        columns = [getattr(Profile, name) for name in self.columns]
        rows = await session.execute(
            select(Identity.kind, Identity.value, Profile.id, *columns)
            .join(Profile, Profile.id == Identity.profile_id)
            .where(
                Identity.installation_id == self.installation_id,
                Identity.kind.in_(list(IdentityKind)),  # so the unique index serves the lookup
                any_of(session, Identity.value, values),
            )
        )
        for row in rows:
            kind, value, profile_id, *state = row
            person = self.people.get(profile_id)
            if person is None:
                state_of = dict(zip(self.columns, state, strict=True))
                person = Person(profile_id, state_of, self.columns)
                self.people[profile_id] = person
            self.owners[(IdentityKind(kind), value)] = person

    async def _load_postgresql(self, session: AsyncSession, pairs: list[tuple[str, str]]) -> None:
        """The same query, read straight from the driver (thousands of rows a batch), by
        (kind, value) pairs: one probe of the unique index each, not one per kind. One row
        per profile, its identities among the pairs aggregated: a customer named by user,
        e-mail and phone is read (and their JSON decoded) once, not three times."""
        columns = ", ".join(f'p."{name}"' for name in self.columns)
        rows = await pg_bulk.fetch(
            session,
            f"SELECT p.id, {columns}, array_agg(i.kind) AS kinds, array_agg(i.value) AS vals "
            "FROM identities i JOIN profiles p ON p.id = i.profile_id "
            "WHERE i.installation_id = $1 AND (i.kind, i.value) IN "
            "(SELECT * FROM unnest($2::varchar[], $3::varchar[])) GROUP BY p.id",
            self.installation_id,
            [kind for kind, _ in pairs],
            [value for _, value in pairs],
        )
        for row in rows:
            person = self.people.get(row["id"])
            if person is None:
                state = {name: row[name] for name in self.columns}
                for name in JSON_COLUMNS:
                    if name in state:
                        state[name] = pg_bulk.decoded(state[name])
                person = Person(row["id"], state, self.columns)
                self.people[row["id"]] = person
            for kind, value in zip(row["kinds"], row["vals"], strict=True):
                self.owners[(IdentityKind[kind], value)] = person

    def _owner(self, kind: IdentityKind, value: str | None) -> Person | None:
        return self.owners.get((kind, value)) if value else None

    def resolve(self, claims: Claims) -> Person | NeedsMerge | None:
        """`plugin.profiles.identity.resolve` against the page's map, deciding with the
        same functions (`buyer_claims`, `choose`); None if anonymous."""
        if claims.empty:
            return None
        by_user = self._owner(IdentityKind.SALEOR_USER, claims.saleor_user_id)
        by_email = self._owner(IdentityKind.EMAIL, claims.email)
        buyer = buyer_claims(claims, by_user, by_email)
        if buyer is not claims:
            claims, by_user = buyer, None
            if claims.empty:
                return None
        by_phone = None
        if not claims.saleor_user_id and not claims.email:
            by_phone = self._owner(IdentityKind.PHONE, claims.phone)
        person, duplicate = choose(claims, by_user, by_email, by_phone)
        if duplicate is not None:
            return NEEDS_MERGE
        if person is None:
            person = Person(None, {}, self.columns)
            self.new_people.append(person)
        if claims.saleor_user_id and not person.saleor_user:
            person.saleor_user_id = claims.saleor_user_id
        for kind, value in (
            (IdentityKind.SALEOR_USER, claims.saleor_user_id),
            (IdentityKind.EMAIL, claims.email),
            (IdentityKind.PHONE, claims.phone),
        ):
            if value and (kind, value) not in self.owners:
                self.owners[(kind, value)] = person
                self.new_identities.append((person, kind, value))
        return person

    async def write(self, session: AsyncSession, pending: dict[int, dict[str, Any]]) -> None:
        """New profiles (ids in order) and their identities; the changed state of existing
        ones goes to `pending`, written with their figures in one UPDATE per page."""
        if self.new_people:
            now = utcnow()
            rows = [
                {"installation_id": self.installation_id, **p.state(), **_figures_zero()}
                | {"created_at": now, "updated_at": now}
                for p in self.new_people
            ]
            ids = await insert_rows(session, Profile, rows, returning="id")
            for person, new_id in zip(self.new_people, ids, strict=True):
                person.id = int(new_id)
                self.people[person.id] = person
                person.original = person.state()
            self.new_people = []
        if self.new_identities:
            now = utcnow()
            await insert_rows(
                session,
                Identity,
                [
                    {
                        "installation_id": self.installation_id,
                        "profile_id": person.id,
                        "kind": kind,
                        "value": value,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for person, kind, value in self.new_identities
                ],
            )
            self.new_identities = []
        for person in self.people.values():
            state = person.state()
            if person.id is not None and state != person.original:
                pending[person.id] = state
                person.original = dict(state)


def _figures_zero() -> dict[str, Any]:
    """A new profile's figures before its first recompute (the model's defaults)."""
    return {
        "orders_count": 0,
        "paid_orders_count": 0,
        "cancelled_orders_count": 0,
        "refunded_orders_count": 0,
        "total_spent": ZERO,
        "average_order_value": ZERO,
    }


async def update_profiles(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """One multi-row UPDATE keyed by `id` (every row with the same columns)."""
    await update_rows(session, Profile, rows)


def later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a
