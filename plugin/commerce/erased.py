"""Objects naming an erased person: left unfolded, and their raw bodies erased too."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.privacy import erase_raw_events
from plugin.profiles.suppression import Contact, names_erased_person


async def skip_erased(
    session: AsyncSession, installation_id: int, contacts: list[Contact], issued_at: datetime
) -> bool:
    """True when the object names an erased person: folding it would bring them back (a
    fresh guest profile with their e-mail), and keeping its raw body would keep their PII."""
    if not await names_erased_person(session, installation_id, contacts):
        return False
    await erase_raw_events(
        session, installation_id, sorted({value.lower() for _, value in contacts}), issued_at
    )
    return True
