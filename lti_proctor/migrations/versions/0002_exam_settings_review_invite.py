"""Exam settings and review decisions (issue 8), invites and learned deployments (issue 12),
teaching-assistant opt-in (issue 9), attempt flags and webhook events keyed by identity.

Revision ID: 0002_exam_settings_review_invite
Revises: 0001_baseline
Create Date: 2026-12-07 13:25:33.270480
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_exam_settings_review_invite"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision (every engine: SQLite and PostgreSQL)."""
    op.create_table(
        "exam_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(length=255), nullable=False),
        sa.Column("context_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("exam_url", sa.String(length=2048), nullable=True),
        sa.Column("access_code", sa.Text(), nullable=True),
        sa.Column("profile", sa.String(length=64), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_threshold", sa.Double(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platform.id"],
            name=op.f("exam_settings_platform_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("exam_settings_pkey")),
        sa.UniqueConstraint("ref", name=op.f("exam_settings_ref_key")),
    )
    with op.batch_alter_table("exam_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exam_settings_platform_id"), ["platform_id"], unique=False
        )

    op.create_table(
        "lti_registration_invite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("learn_deployments", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("platform_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platform.id"],
            name=op.f("lti_registration_invite_platform_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("lti_registration_invite_pkey")),
        sa.UniqueConstraint("token_hash", name=op.f("lti_registration_invite_token_hash_key")),
    )
    op.create_table(
        "attempt_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.String(length=36), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer_sub", sa.String(length=255), nullable=False),
        sa.Column("reviewer_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["attempt.id"],
            name=op.f("attempt_review_attempt_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("attempt_review_pkey")),
    )
    with op.batch_alter_table("attempt_review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attempt_review_attempt_id"), ["attempt_id"], unique=False
        )

    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flag_reason", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("lti_deployment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "allow_teaching_assistants",
                sa.Boolean(),
                server_default=sa.text("false"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("learned_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("lti_platform", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "learn_deployments", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )

    # Events stored before keys existed keep their body hash as their identity.
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_key", sa.String(length=255), nullable=True))
    op.execute("UPDATE webhook_event SET event_key = 'sha256:' || body_hash")
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.alter_column("event_key", existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_constraint(batch_op.f("uq_webhook_event_body"), type_="unique")
        batch_op.create_unique_constraint(
            "uq_webhook_event_key", ["attempt_id", "kind", "event_key"]
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.drop_constraint("uq_webhook_event_key", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_webhook_event_body"),
            ["attempt_id", "kind", "body_hash"],
            postgresql_nulls_not_distinct=False,
        )
        batch_op.drop_column("event_key")

    with op.batch_alter_table("lti_platform", schema=None) as batch_op:
        batch_op.drop_column("learn_deployments")

    with op.batch_alter_table("lti_deployment", schema=None) as batch_op:
        batch_op.drop_column("learned_at")
        batch_op.drop_column("allow_teaching_assistants")

    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.drop_column("flagged_at")
        batch_op.drop_column("flag_reason")

    with op.batch_alter_table("attempt_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempt_review_attempt_id"))

    op.drop_table("attempt_review")
    op.drop_table("lti_registration_invite")
    with op.batch_alter_table("exam_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_settings_platform_id"))

    op.drop_table("exam_settings")
