"""timeline: one key per object and kind, whichever path brought the entry

Entries of objects created or deleted (`order_created`, `checkout_created`,
`customer_created`, `customer_deleted`) were keyed by the event's `issuedAt` (webhook) or
the object's own date (import), so an object first seen by webhook got a second entry
from the import. They are keyed `<kind>:<object id>` now (plugin/timeline/keys.py): the
duplicates go (the first recorded stays) and the rest are re-keyed. A fulfillment's
entries (created, approved, tracking number updated, …) become one: the newest stays,
keyed `fulfillment:<id>`, dated when the first happened.

Revision ID: d4f6a8c0e2b3
Revises: c3e5a7b9d1f2
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4f6a8c0e2b3"
down_revision: str | None = "c3e5a7b9d1f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONCE_PER_OBJECT = ("order_created", "checkout_created", "customer_created", "customer_deleted")


def upgrade() -> None:
    kinds = ", ".join(f"'{kind}'" for kind in ONCE_PER_OBJECT)
    op.execute(
        sa.text(
            f"""
            DELETE FROM timeline_entries
            WHERE kind IN ({kinds}) AND subject_id IS NOT NULL
              AND id NOT IN (
                SELECT MIN(id) FROM timeline_entries
                WHERE kind IN ({kinds}) AND subject_id IS NOT NULL
                GROUP BY installation_id, kind, subject_id
              )
            """
        )
    )
    op.execute(
        sa.text(
            f"""
            UPDATE timeline_entries SET dedup_key = kind || ':' || subject_id
            WHERE kind IN ({kinds}) AND subject_id IS NOT NULL
            """
        )
    )
    fulfillments = "subject_type = 'fulfillment' AND subject_id IS NOT NULL"
    op.execute(
        sa.text(
            f"""
            UPDATE timeline_entries SET occurred_at = (
                SELECT MIN(first.occurred_at) FROM timeline_entries AS first
                WHERE first.installation_id = timeline_entries.installation_id
                  AND first.subject_type = 'fulfillment'
                  AND first.subject_id = timeline_entries.subject_id
            )
            WHERE {fulfillments}
            """
        )
    )
    op.execute(
        sa.text(
            f"""
            DELETE FROM timeline_entries
            WHERE {fulfillments}
              AND id NOT IN (
                SELECT MAX(id) FROM timeline_entries
                WHERE {fulfillments}
                GROUP BY installation_id, subject_id
              )
            """
        )
    )
    op.execute(
        sa.text(
            f"""
            UPDATE timeline_entries SET dedup_key = 'fulfillment:' || subject_id,
                kind = CASE WHEN kind = 'fulfillment_canceled' THEN kind
                            ELSE 'fulfillment_created' END
            WHERE {fulfillments}
            """
        )
    )


def downgrade() -> None:
    """The merged and removed entries are not brought back; keys stay as they are (the
    older code writes its own keys next to them)."""
