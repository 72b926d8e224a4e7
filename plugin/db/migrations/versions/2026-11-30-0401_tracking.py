"""tracking: shipments, checkpoints, carrier polls

Revision ID: f2b1d4e6a8c0
Revises: e1a0c3f5d7b9
Create Date: 2026-11-30 04:01:00
"""

from collections.abc import Sequence

revision: str = "f2b1d4e6a8c0"
down_revision: str | None = "e1a0c3f5d7b9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
