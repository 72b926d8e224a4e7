"""import and lifecycle: import runs, retention

Revision ID: a3c2e5f7b9d1
Revises: f2b1d4e6a8c0
Create Date: 2026-11-30 04:02:00
"""

from collections.abc import Sequence

revision: str = "a3c2e5f7b9d1"
down_revision: str | None = "f2b1d4e6a8c0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
