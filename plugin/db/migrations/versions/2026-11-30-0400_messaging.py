"""messaging: flows, runs, messages, templates, consent

Revision ID: e1a0c3f5d7b9
Revises: d2b4f1c8e391
Create Date: 2026-11-30 04:00:00
"""

from collections.abc import Sequence

revision: str = "e1a0c3f5d7b9"
down_revision: str | None = "d2b4f1c8e391"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
