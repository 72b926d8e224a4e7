"""The customer (a CRM profile): fields from the profile row, relations through loaders."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.fields import field as api_field
from plugin.api.ids import to_global_id
from plugin.api.loaders import (
    MESSAGE_SORT,
    ORDER_SORT,
    SHIPMENT_SORT,
    TIMELINE_SORT,
    PageKey,
)
from plugin.api.pagination import (
    DEFAULT_PAGE_SIZE,
    Connection,
    SortKey,
    connection,
    encode_cursor,
    page_size,
)
from plugin.api.types.commerce import Checkout, Order
from plugin.api.types.common import Money, Source
from plugin.api.types.messaging import Message
from plugin.api.types.timeline import Note, TimelineItem
from plugin.api.types.tracking import Shipment
from plugin.predictions.explain import explain as explain_prediction
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile
from plugin.segments.evaluate import explain
from plugin.segments.facts import PROFILE_COLUMNS, ProfileFacts

if TYPE_CHECKING:
    from plugin.api.types.segment import Segment


@strawberry.enum
class ConsentStatus(enum.Enum):
    GRANTED = "granted"
    DENIED = "denied"


@strawberry.type(description="Marketing consent of one address or phone number.")
class ContactConsent:
    channel: str = strawberry.field(description="EMAIL or SMS.")
    address: str
    status: ConsentStatus | None
    updated_at: datetime | None
    source: str | None

    @classmethod
    def of(cls, identity: Identity) -> ContactConsent:
        state = identity.marketing_consent
        return cls(
            channel="EMAIL" if identity.kind is IdentityKind.EMAIL else "SMS",
            address=identity.value,
            status=ConsentStatus(state.value) if isinstance(state, ConsentState) else None,
            updated_at=identity.consent_updated_at,
            source=identity.consent_source,
        )


@strawberry.type
class Consent:
    email: ConsentStatus | None = strawberry.field(description="Of the customer's main e-mail.")
    sms: ConsentStatus | None = strawberry.field(description="Of the customer's main phone.")
    contacts: list[ContactConsent]


@strawberry.type
class Rfm:
    recency: int | None
    frequency: int | None
    monetary: int | None
    cell: str


@strawberry.type
class Prediction:
    profile: strawberry.Private[Profile]
    p_alive: float | None = strawberry.field(description="Probability the customer is active.")
    predicted_orders_12m: float | None
    predicted_value_12m: Money | None
    predicted_next_order_at: datetime | None

    @api_field(
        "The prediction in plain words: the customer's own orders, the shop's model "
        "(or the fallback, said so) and what the figures mean."
    )
    async def explanation(self, info: Info) -> str:
        currency = self.profile.currency
        model = await info.context.loaders.prediction_models.load(currency) if currency else None
        return explain_prediction(self.profile, model, info.context.now)


@strawberry.type(description="One part of the customer score.")
class ScoreFactor:
    name: str
    meaning: str
    value: float = strawberry.field(description="The customer's value of the factor, 0–1.")
    weight: float = strawberry.field(description="Its share of the score, 0–1.")
    points: float = strawberry.field(description="value × weight × 100: what it adds.")


T = TypeVar("T")


async def _page(
    loader: DataLoader[PageKey, list[T]],
    profile_id: int,
    first: int | None,
    after: str | None,
    sort: SortKey,
) -> list[T]:
    """One more row than the page holds (it tells whether another page follows)."""
    if after is not None:
        sort.after(after)  # a bad cursor fails here, not inside the batch
    return await loader.load((profile_id, page_size(first) + 1, after))


@strawberry.type
class CustomerSegment:
    segment: Annotated[Segment, strawberry.lazy("plugin.api.types.segment")]
    since: datetime
    profile: strawberry.Private[Profile]

    @api_field(
        "Why the customer is in the segment: each part of the rule, "
        "whether it holds and the customer's value."
    )
    async def why(self, info: Info) -> JSON:
        loaders = info.context.loaders
        pk = self.profile.id
        orders, checkouts = await loaders.facts.load(pk)
        identities = await loaders.identities.load(pk)
        facts = ProfileFacts(  # as plugin.segments.facts.load_facts builds them
            attributes={name: getattr(self.profile, name) for name in PROFILE_COLUMNS},
            orders=orders,
            checkouts=checkouts,
            tags=frozenset(await loaders.tags.load(pk)),
            consents=frozenset(
                str(i.kind) for i in identities if i.marketing_consent is ConsentState.GRANTED
            ),
            segments={segment.key for segment, _ in await loaders.memberships.load(pk)},
        )
        rule = await loaders.rules.load(json.dumps(self.segment.rules, sort_keys=True))
        return JSON(explain(rule, facts, info.context.now).as_dict())


@strawberry.type
class Customer:
    profile: strawberry.Private[Profile]
    # Plain values, no resolvers: a list page resolves ~15 fields for each of 100 rows.
    id: strawberry.ID
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    saleor_user_id: str | None
    city: str | None
    country: str | None
    orders_count: int
    paid_orders_count: int
    total_spent: Money | None = strawberry.field(
        description="Money kept in the customer's main currency (most orders); a customer "
        "who paid in several currencies has every one in `spentByCurrency`."
    )
    average_order_value: Money | None = strawberry.field(
        description="Average check in the main currency; see `averageCheckByCurrency`."
    )
    first_order_at: datetime | None
    last_order_at: datetime | None
    average_days_between_orders: float | None
    source: Source | None
    rfm: Rfm | None
    score: int | None
    prediction: Prediction | None
    created_at: datetime

    @classmethod
    def of(cls, p: Profile) -> Customer:
        currency = p.currency
        predicted = (p.p_alive, p.predicted_orders_12m, p.predicted_value_12m)
        return cls(
            profile=p,
            id=strawberry.ID(to_global_id("Customer", p.id)),
            email=p.email,
            phone=p.phone,
            first_name=p.first_name,
            last_name=p.last_name,
            saleor_user_id=p.saleor_user_id,
            city=p.city,
            country=p.country,
            orders_count=p.orders_count,
            paid_orders_count=p.paid_orders_count,
            total_spent=Money.of(p.total_spent, currency),
            average_order_value=Money.of(p.average_order_value, currency),
            first_order_at=p.first_order_at,
            last_order_at=p.last_order_at,
            average_days_between_orders=p.average_days_between_orders,
            source=Source.of(p, p.source_at),
            rfm=Rfm(
                recency=p.rfm_recency,
                frequency=p.rfm_frequency,
                monetary=p.rfm_monetary,
                cell=p.rfm_cell,
            )
            if p.rfm_cell
            else None,
            score=p.score,
            prediction=Prediction(
                profile=p,
                p_alive=p.p_alive,
                predicted_orders_12m=p.predicted_orders_12m,
                predicted_value_12m=Money.of(p.predicted_value_12m, currency),
                predicted_next_order_at=p.predicted_next_order_at,
            )
            if any(v is not None for v in predicted) or p.predicted_next_order_at
            else None,
            created_at=p.created_at,
        )

    @api_field(
        "Money the shop kept from the customer, one entry per currency they bought in "
        "(Σ charged − refunded over every order, cancelled ones included), the main "
        "currency first. Never added across currencies."
    )
    async def spent_by_currency(self, info: Info) -> list[Money]:
        totals = await info.context.loaders.totals.load(self.profile.id)
        return [Money(amount=t.total_spent, currency=t.currency) for t in totals]

    @api_field(
        "Average check per currency (paid orders' totals ÷ paid orders), the main "
        "currency first; currencies without a paid order are left out."
    )
    async def average_check_by_currency(self, info: Info) -> list[Money]:
        totals = await info.context.loaders.totals.load(self.profile.id)
        return [
            Money(amount=t.average_order_value, currency=t.currency)
            for t in totals
            if t.paid_orders_count > 0
        ]

    @api_field("Why the score is what it is: each factor, its weight and its points.")
    async def score_factors(self, info: Info) -> list[ScoreFactor]:
        factors = await info.context.loaders.score_factors.load(self.profile.id)
        return [
            ScoreFactor(
                name=f.name, meaning=f.meaning, value=f.value, weight=f.weight, points=f.points
            )
            for f in factors
        ]

    @strawberry.field
    async def tags(self, info: Info) -> list[str]:
        return await info.context.loaders.tags.load(self.profile.id)

    @strawberry.field
    async def consent(self, info: Info) -> Consent:
        identities = await info.context.loaders.identities.load(self.profile.id)
        contacts = [i for i in identities if i.kind in (IdentityKind.EMAIL, IdentityKind.PHONE)]

        def main(kind: IdentityKind, value: str | None) -> ConsentStatus | None:
            of_kind = [i for i in contacts if i.kind is kind]
            chosen = next((i for i in of_kind if i.value == value), of_kind[0] if of_kind else None)
            return ContactConsent.of(chosen).status if chosen else None

        return Consent(
            email=main(IdentityKind.EMAIL, (self.profile.email or "").lower()),
            sms=main(IdentityKind.PHONE, self.profile.phone),
            contacts=[ContactConsent.of(i) for i in contacts],
        )

    @api_field("The segments the customer is in, each with why.")
    async def segments(self, info: Info) -> list[CustomerSegment]:
        from plugin.api.types.segment import Segment

        memberships = await info.context.loaders.memberships.load(self.profile.id)
        return [
            CustomerSegment(segment=Segment.of(segment), since=since, profile=self.profile)
            for segment, since in memberships
        ]

    @api_field("Newest first. Needs MANAGE_ORDERS.")
    async def orders(
        self, info: Info, first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Order]:
        info.context.require(*permissions.ORDERS)
        rows = await _page(info.context.loaders.orders, self.profile.id, first, after, ORDER_SORT)
        return connection(
            [(encode_cursor(o.placed_at, o.id), Order.of(o)) for o in rows],
            limit=page_size(first),
            after=after,
        )

    @api_field("Newest first. Needs MANAGE_CHECKOUTS.")
    async def checkouts(self, info: Info, first: int | None = DEFAULT_PAGE_SIZE) -> list[Checkout]:
        info.context.require(*permissions.CHECKOUTS)
        limit = page_size(first)
        rows = await info.context.loaders.checkouts.load((self.profile.id, limit, None))
        return [Checkout.of(c) for c in rows]

    @api_field(
        "Parcels sent to the customer with their tracking status, newest first. "
        "Needs MANAGE_ORDERS."
    )
    async def shipments(
        self, info: Info, first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Shipment]:
        info.context.require(*permissions.ORDERS)
        loader = info.context.loaders.shipments
        rows = await _page(loader, self.profile.id, first, after, SHIPMENT_SORT)
        return connection(
            [(encode_cursor(s.shipped_at, s.id), Shipment.of(s)) for s in rows],
            limit=page_size(first),
            after=after,
        )

    @api_field(
        "Messages sent, scheduled or skipped for the customer (e-mail, SMS), newest "
        "first, with opens, clicks and the reason a message did not go out."
    )
    async def messages(
        self, info: Info, first: int | None = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Message]:
        info.context.require(*permissions.CUSTOMERS)
        loader = info.context.loaders.messages
        rows = await _page(loader, self.profile.id, first, after, MESSAGE_SORT)
        return connection(
            [(encode_cursor(m.created_at, m.id), Message.of(m)) for m in rows],
            limit=page_size(first),
            after=after,
        )

    @api_field(
        "Newest first. Order and checkout events need MANAGE_ORDERS and "
        "MANAGE_CHECKOUTS; without them those items are left out."
    )
    async def timeline(
        self,
        info: Info,
        first: int | None = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        kinds: list[str] | None = None,
    ) -> Connection[TimelineItem]:
        viewer = info.context.require(*permissions.CUSTOMERS)
        limit = page_size(first)
        if after is not None:
            TIMELINE_SORT.after(after)
        hidden = tuple(
            sorted(
                prefix
                for prefix, needed in permissions.TIMELINE_KIND_PERMISSIONS.items()
                if not viewer.has(needed)
            )
        )
        key = (self.profile.id, limit + 1, after, tuple(sorted(kinds)) if kinds else None, hidden)
        rows = await info.context.loaders.timeline.load(key)
        return connection(
            [(encode_cursor(e.occurred_at, e.id), TimelineItem.of(e)) for e in rows],
            limit=limit,
            after=after,
        )

    @api_field("Newest first.")
    async def notes(self, info: Info) -> list[Note]:
        return [Note.of(n) for n in await info.context.loaders.notes.load(self.profile.id)]
