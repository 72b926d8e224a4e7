"""Staff actions on parcels: set a manual carrier's status, correct the carrier, and
configure the shop's carrier accounts."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput, NotFound
from plugin.api.fields import mutation as api_mutation
from plugin.api.ids import from_global_id
from plugin.api.queries.tracking import CARRIER_CONFIGURATION
from plugin.api.types.tracking import Carrier, CarrierAccount, Shipment, ShipmentStatus
from plugin.tracking import accounts
from plugin.tracking import models as tracking_models
from plugin.tracking.alerts import raise_alerts
from plugin.tracking.shipments import reschedule_now, set_status

MAX_TEXT = 1024


@strawberry.input
class CredentialInput:
    key: str
    value: str


@strawberry.input(description="A carrier API account; credentials replace the stored ones.")
class CarrierAccountInput:
    carrier: Carrier
    credentials: list[CredentialInput] = strawberry.field(
        description="aftership: api_key, webhook_secret; cdek: client_id, client_secret; "
        "russian_post: login, password."
    )
    base_url: str | None = None
    max_concurrency: int = 4
    requests_per_second: float = 10.0


async def _shipment(
    session: AsyncSession, installation_id: int, id: strawberry.ID
) -> tracking_models.Shipment:
    model = tracking_models.Shipment
    row = await session.scalar(
        select(model).where(
            model.id == from_global_id("Shipment", id), model.installation_id == installation_id
        )
    )
    if row is None:
        raise NotFound("No such shipment.", field="id")
    return row


def _text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"At most {MAX_TEXT} characters.", field=field)
    return value.strip() or None


@strawberry.type
class TrackingMutations:
    @api_mutation(
        "Set the status of a parcel sent with the manual carrier (MANAGE_ORDERS); the "
        "customer's timeline and messages follow as for any carrier."
    )
    async def shipment_status_set(
        self,
        info: Info,
        id: strawberry.ID,
        status: ShipmentStatus,
        text: str | None = None,
        pickup_point: str | None = None,
        pickup_hours: str | None = None,
        estimated_delivery: datetime | None = None,
    ) -> Shipment:
        ctx = info.context
        viewer = ctx.require(*permissions.ORDERS)
        carrier_text = _text(text, "text")
        point = _text(pickup_point, "pickupPoint")
        hours = _text(pickup_hours, "pickupHours")
        if estimated_delivery is not None and estimated_delivery.tzinfo is None:
            raise InvalidInput("Give the time with its UTC offset.", field="estimatedDelivery")
        async with ctx.write() as session:
            row = await _shipment(session, viewer.installation_id, id)
            if row.carrier != "manual":
                raise InvalidInput(
                    f"This parcel is tracked by {row.carrier}; set its carrier to manual first.",
                    field="id",
                )
            if row.cancelled_at is not None:
                raise InvalidInput("The fulfillment was cancelled in Saleor.", field="id")
            await set_status(
                session,
                row,
                status.domain,
                ctx.now,
                carrier_text=carrier_text,
                pickup_point=point,
                pickup_hours=hours,
                estimated_delivery=estimated_delivery,
            )
            # A problem staff record by hand reaches the order's notes like a carrier's.
            await raise_alerts(session, row, ctx.now, ctx.app.settings.tracking_stalled_days)
            await session.flush()
            return Shipment.of(row)

    @api_mutation(
        "Correct the carrier of a parcel (MANAGE_ORDERS); the choice sticks and the parcel "
        "is polled at the next tick."
    )
    async def shipment_carrier_set(
        self, info: Info, id: strawberry.ID, carrier: Carrier
    ) -> Shipment:
        ctx = info.context
        viewer = ctx.require(*permissions.ORDERS)
        async with ctx.write() as session:
            row = await _shipment(session, viewer.installation_id, id)
            row.carrier = carrier.value
            row.carrier_source = "staff"
            row.poll_failures = 0
            row.last_error = None
            if carrier is Carrier.MANUAL:
                row.next_poll_at = None
            else:
                reschedule_now(row, ctx.now)
            await session.flush()
            return Shipment.of(row)

    @api_mutation(
        "Create or replace the shop's account with a carrier API (MANAGE_ORDERS and "
        "MANAGE_APPS). The answer tells the webhook URL to give the carrier."
    )
    async def carrier_account_configure(
        self, info: Info, input: CarrierAccountInput
    ) -> CarrierAccount:
        ctx = info.context
        viewer = ctx.require(*CARRIER_CONFIGURATION)
        credentials = {c.key.strip(): c.value for c in input.credentials}
        if len(credentials) != len(input.credentials):
            raise InvalidInput("A credential is given twice.", field="credentials")
        box = accounts.box(ctx.app.settings.secret_key.get_secret_value())
        if input.base_url is not None and input.base_url.strip():
            # Staff's own URL (the built-in ones are the carriers'), resolved before the
            # transaction; checked again on every connection, as DNS may change.
            try:
                url = accounts.validate(
                    input.carrier.value, credentials, input.base_url, input.max_concurrency
                )
            except ValueError as exc:
                raise InvalidInput(str(exc), field="input") from None
            try:
                await accounts.check_base_url(ctx.app.carrier_egress, url)
            except ValueError as exc:
                raise InvalidInput(str(exc), field="baseUrl") from None
        async with ctx.write() as session:
            try:
                row = await accounts.configure(
                    session,
                    box,
                    installation_id=viewer.installation_id,
                    carrier=input.carrier.value,
                    credentials=credentials,
                    base_url=input.base_url,
                    max_concurrency=input.max_concurrency,
                    requests_per_second=input.requests_per_second,
                )
            except ValueError as exc:
                raise InvalidInput(str(exc), field="input") from None
            return CarrierAccount.of(row)
