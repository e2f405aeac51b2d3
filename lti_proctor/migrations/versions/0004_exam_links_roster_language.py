"""Exam links resolved through settings kept in the tool, the NRPS roster URL, the attempt's
language, and access codes stored sealed (text; plaintext rows are read as they are until
`lti-proctor keys rotate-encryption` seals them).

Revision ID: 0004_exam_links_roster_language
Revises: 0003_sealed_webhook_secrets
Create Date: 2026-12-07 14:10:10.662616
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_exam_links_roster_language"
down_revision = "0003_sealed_webhook_secrets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision (every engine: SQLite and PostgreSQL)."""
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.alter_column(
            "access_code",
            existing_type=sa.VARCHAR(length=255),
            type_=sa.Text(),
            existing_nullable=True,
        )

    with op.batch_alter_table("exam", schema=None) as batch_op:
        batch_op.add_column(sa.Column("memberships_url", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("settings_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_exam_settings_id"), ["settings_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("exam_settings_id_fkey"),
            "exam_settings",
            ["settings_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("exam", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("exam_settings_id_fkey"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_exam_settings_id"))
        batch_op.drop_column("settings_id")
        batch_op.drop_column("memberships_url")

    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.alter_column(
            "access_code",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=255),
            existing_nullable=True,
        )
        batch_op.drop_column("language")
