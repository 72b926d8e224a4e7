"""Finding the installation or the customer a command is about, or saying clearly why not.

Errors are `click.ClickException`s: the command line shows the message (no traceback) and
exits with status 1.
"""

from __future__ import annotations

import click
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import Identity, IdentityKind, Profile
from plugin.saleor.models import Installation, InstallationStatus
from plugin.saleor.payloads import normalise_email


def describe(installation: Installation) -> str:
    return f"{installation.id} ({installation.saleor_api_url})"


async def installation_for(
    session: AsyncSession, installation_id: int | None, *, active: bool = True
) -> Installation:
    """The installation asked for, or the only one there is."""
    if installation_id is not None:
        installation = await session.get(Installation, installation_id)
        if installation is None:
            raise click.ClickException(
                f"no installation {installation_id}; `crm installations list` shows them"
            )
        if active and installation.status is not InstallationStatus.ACTIVE:
            raise click.ClickException(f"installation {describe(installation)} is uninstalled")
        return installation
    query = select(Installation).order_by(Installation.id)
    if active:
        query = query.where(Installation.status == InstallationStatus.ACTIVE)
    rows = list(await session.scalars(query))
    if not rows:
        raise click.ClickException(
            "no installed shop yet: install the app from the Saleor dashboard first"
        )
    if len(rows) > 1:
        choices = ", ".join(describe(row) for row in rows)
        raise click.ClickException(
            f"several shops installed; pick one with --installation: {choices}"
        )
    return rows[0]


async def customer_by_email(
    session: AsyncSession, email: str, installation_id: int | None
) -> Profile:
    """The profile holding this e-mail (as a profile field or a known identity)."""
    wanted = normalise_email(email)
    if wanted is None:
        raise click.ClickException(f"{email!r} is not an e-mail address")
    by_field = select(Profile.id).where(Profile.email == wanted)
    by_identity = select(Identity.profile_id).where(
        Identity.kind == IdentityKind.EMAIL, Identity.value == wanted
    )
    query = select(Profile).where(Profile.id.in_(by_field.union(by_identity)))
    if installation_id is not None:
        query = query.where(Profile.installation_id == installation_id)
    profiles = list(await session.scalars(query.order_by(Profile.id)))
    if not profiles:
        where = f" in installation {installation_id}" if installation_id is not None else ""
        raise click.ClickException(f"no customer with e-mail {wanted}{where}")
    shops = sorted({p.installation_id for p in profiles})
    if len(shops) > 1:
        raise click.ClickException(
            f"{wanted} is a customer of several shops (installations "
            f"{', '.join(map(str, shops))}); pick one with --installation"
        )
    return profiles[0]
