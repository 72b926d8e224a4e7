"""messaging: what the batched sender keeps

Revision ID: d6f5b8c0e2a4
Revises: c5e4a7b9d1f3
Create Date: 2026-11-30 05:01:00
"""

from collections.abc import Sequence

revision: str = "d6f5b8c0e2a4"
down_revision: str | None = "c5e4a7b9d1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
