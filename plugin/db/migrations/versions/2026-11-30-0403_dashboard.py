"""dashboard: settings the app pages keep

Revision ID: b4d3f6a8c0e2
Revises: a3c2e5f7b9d1
Create Date: 2026-11-30 04:03:00
"""

from collections.abc import Sequence

revision: str = "b4d3f6a8c0e2"
down_revision: str | None = "a3c2e5f7b9d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
