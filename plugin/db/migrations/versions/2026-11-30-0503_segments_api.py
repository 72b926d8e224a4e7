"""segments and API: indexes for the card and the refresh

Revision ID: f8b7d0e2a4c6
Revises: e7a6c9d1f3b5
Create Date: 2026-11-30 05:03:00
"""

from collections.abc import Sequence

revision: str = "f8b7d0e2a4c6"
down_revision: str | None = "e7a6c9d1f3b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
