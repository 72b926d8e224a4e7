"""Orders and checkouts as the customer card shows them."""

from __future__ import annotations

from datetime import datetime

import strawberry

from plugin.api.context import Info
from plugin.api.ids import to_global_id
from plugin.api.types.common import Money, Source
from plugin.commerce import models


@strawberry.type
class OrderLine:
    product_name: str
    variant_name: str | None
    sku: str | None
    category_name: str | None
    quantity: int
    quantity_fulfilled: int
    total: Money

    @classmethod
    def of(cls, line: models.OrderLine) -> OrderLine:
        return cls(
            product_name=line.product_name,
            variant_name=line.variant_name,
            sku=line.sku,
            category_name=line.category_name,
            quantity=line.quantity,
            quantity_fulfilled=line.quantity_fulfilled,
            total=Money(amount=line.total_price_gross, currency=line.currency),
        )


PLACED_BY = (
    "The Saleor account logged in when it was made: the buyer's own, or — when it differs "
    "from the customer's `saleorUserId` — who placed it for them (a staff member, a gift)."
)


@strawberry.type
class Order:
    pk: strawberry.Private[int]
    saleor_id: str
    number: str | None
    status: str
    charge_status: str | None
    is_paid: bool
    channel: str | None
    total: Money
    total_refunded: Money
    voucher_code: str | None
    placed_at: datetime
    source: Source | None
    email: str | None = strawberry.field(description="The buyer's e-mail (`userEmail`).")
    saleor_user_id: str | None = strawberry.field(description=PLACED_BY)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Order", self.pk))

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        return [OrderLine.of(line) for line in await info.context.loaders.order_lines.load(self.pk)]

    @classmethod
    def of(cls, order: models.Order) -> Order:
        return cls(
            pk=order.id,
            saleor_id=order.saleor_id,
            number=order.number,
            status=order.status,
            charge_status=order.charge_status,
            is_paid=order.is_paid,
            channel=order.channel_slug,
            total=Money(amount=order.total_gross, currency=order.currency),
            total_refunded=Money(amount=order.total_refunded, currency=order.currency),
            voucher_code=order.voucher_code,
            placed_at=order.placed_at,
            source=Source.of(order),
            email=order.user_email,
            saleor_user_id=order.saleor_user_id,
        )


@strawberry.type
class Checkout:
    pk: strawberry.Private[int]
    saleor_id: str
    state: str
    channel: str | None
    total: Money
    lines_count: int
    quantity: int
    started_at: datetime
    updated_at: datetime = strawberry.field(description="Saleor's time of the last change.")
    order_saleor_id: str | None
    email: str | None = strawberry.field(description="The buyer's e-mail.")
    saleor_user_id: str | None = strawberry.field(description=PLACED_BY)

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Checkout", self.pk))

    @classmethod
    def of(cls, checkout: models.Checkout) -> Checkout:
        return cls(
            pk=checkout.id,
            saleor_id=checkout.saleor_id,
            state=checkout.state.value.upper(),
            channel=checkout.channel_slug,
            total=Money(amount=checkout.total_gross, currency=checkout.currency),
            lines_count=checkout.lines_count,
            quantity=checkout.quantity,
            started_at=checkout.started_at,
            updated_at=checkout.source_updated_at,
            order_saleor_id=checkout.order_saleor_id,
            email=checkout.email,
            saleor_user_id=checkout.saleor_user_id,
        )
