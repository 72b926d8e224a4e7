"""dashboard: what the app's pages keep

Revision ID: a9c8e1f3b5d7
Revises: f8b7d0e2a4c6
Create Date: 2026-11-30 05:04:00
"""

from collections.abc import Sequence

revision: str = "a9c8e1f3b5d7"
down_revision: str | None = "f8b7d0e2a4c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
