"""importer: what the batched import path keeps

Revision ID: c5e4a7b9d1f3
Revises: b4d3f6a8c0e2
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

revision: str = "c5e4a7b9d1f3"
down_revision: str | None = "b4d3f6a8c0e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
