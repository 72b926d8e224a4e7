"""tracking: shared carrier limits and re-driven alerts

Revision ID: e7a6c9d1f3b5
Revises: d6f5b8c0e2a4
Create Date: 2026-11-30 05:02:00
"""

from collections.abc import Sequence

revision: str = "e7a6c9d1f3b5"
down_revision: str | None = "d6f5b8c0e2a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
