"""Widen attempt.webhook_secret to text: sealed values (sealed:<fernet>) are about 150 characters.

Rows written before sealing keep their plaintext and are read as they are; run
`lti-proctor keys rotate-encryption` once after upgrading to seal them.

Revision ID: 0003_sealed_webhook_secrets
Revises: 0002_exam_settings_review_invite
Create Date: 2026-12-07 13:42:58.651986
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sealed_webhook_secrets"
down_revision = "0002_exam_settings_review_invite"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision (every engine: SQLite and PostgreSQL)."""
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.alter_column(
            "webhook_secret",
            existing_type=sa.VARCHAR(length=128),
            type_=sa.Text(),
            existing_nullable=False,
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.alter_column(
            "webhook_secret",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=128),
            existing_nullable=False,
        )
