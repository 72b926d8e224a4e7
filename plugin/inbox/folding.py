"""Dispatch of one stored event to the domain code of its family, then the figures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy.exc import DataError, ProgrammingError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics import rollups as analytics_rollups
from plugin.commerce.checkouts import fold_checkout_event
from plugin.commerce.fulfillments import fold_fulfillment_event
from plugin.commerce.orders import fold_order_event
from plugin.db.base import utcnow
from plugin.predictions.service import predict_profiles
from plugin.profiles.aggregates import recompute
from plugin.profiles.customers import fold_customer_event
from plugin.profiles.models import Profile
from plugin.saleor.events import family_of
from plugin.saleor.installations import fold_app_event
from plugin.saleor.payloads import JSON, PayloadError
from plugin.scoring import service as scoring
from plugin.segments.membership import reevaluate_profiles
from plugin.segments.rfm import score_profiles

Folder = Callable[[AsyncSession, int, str, JSON], Awaitable[list[Profile]]]

FOLDERS: dict[str, Folder] = {
    "checkout": fold_checkout_event,
    "order": fold_order_event,
    "fulfillment": fold_fulfillment_event,
    "customer": fold_customer_event,
    "app": fold_app_event,
}


# What a payload of the wrong shape raises in the folders (`'str' object has no attribute
# 'get'`, a bad Decimal, …): the same body fails the same way every time.
_SHAPE_ERRORS = (
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
    ValueError,
    ArithmeticError,
    RecursionError,
)


def is_payload_problem(exc: BaseException) -> bool:
    """True when retrying cannot help: the payload (not the database or the network) is
    at fault. A value of the wrong type may also be refused by the database: by its
    driver before sending (a StatementError over a TypeError/ValueError) or by the server
    as bad data or a mistyped comparison (DataError, ProgrammingError). Connection
    losses, lock time-outs and conflicts (OperationalError, InterfaceError,
    IntegrityError, OSError) stay transient."""
    if isinstance(exc, _SHAPE_ERRORS):  # PayloadError is a ValueError
        return True
    if isinstance(exc, DataError | ProgrammingError):
        return True
    if isinstance(exc, StatementError):
        orig = exc.orig
        cause = orig.__cause__ if orig is not None else None
        if isinstance(orig, _SHAPE_ERRORS) or isinstance(cause, _SHAPE_ERRORS):
            return True
        # asyncpg's own errors carry the SQLSTATE: class 22 is bad data (also its
        # "invalid input for query argument"), class 42 a statement that cannot work.
        sqlstate = str(getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", ""))
        return sqlstate.startswith(("22", "42"))
    return False


async def apply_payload(
    session: AsyncSession, installation_id: int, event_type: str, payload: JSON
) -> list[Profile]:
    """Fold the event into the CRM's state; returns the profiles whose figures are stale."""
    family = family_of(event_type)
    if family is None:
        raise PayloadError(f"unsupported event {event_type!r}")
    return await FOLDERS[family](session, installation_id, event_type, payload)


async def refresh_figures(session: AsyncSession, profiles: Iterable[Profile]) -> list[int]:
    """Recompute each profile's figures once (a batch may touch one profile many times)."""
    ids: list[int] = []
    for profile in profiles:
        if profile.id in ids:
            continue
        if await session.get(Profile, profile.id) is None:  # merged away meanwhile
            continue
        await recompute(session, profile)
        ids.append(profile.id)
    return ids


async def refresh_derived(
    session: AsyncSession, installation_id: int, profiles: Iterable[Profile]
) -> list[int]:
    """What follows from a fold: each touched customer's figures, RFM, predictions and
    score, then their segments (which may test all of those)."""
    ids = await refresh_figures(session, profiles)
    if ids:
        now = utcnow()
        touched = [p for p in [await session.get(Profile, i) for i in ids] if p is not None]
        await score_profiles(session, installation_id, touched, now)
        await predict_profiles(session, installation_id, touched, now)
        await scoring.score_profiles(session, installation_id, touched)
        await reevaluate_profiles(session, installation_id, ids, now)
    # Also without profiles: an anonymous checkout still counts in the funnel.
    await analytics_rollups.refresh_profiles(session, installation_id, ids)
    return ids


async def fold_payload(
    session: AsyncSession, installation_id: int, event_type: str, payload: JSON
) -> list[int]:
    """Fold one event and refresh what follows for every profile it touched; their ids."""
    touched = await apply_payload(session, installation_id, event_type, payload)
    return await refresh_derived(session, installation_id, touched)
