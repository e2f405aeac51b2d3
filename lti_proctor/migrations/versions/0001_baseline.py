"""The baseline: the tables the tool had when migrations began (what create_all made).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-07

Constraint names follow extensions.NAMING_CONVENTION (PostgreSQL's own defaults), so a
database made by create_all before this revision is stamped at it as it stands (see
schema.upgrade_database). Frozen: never import model code here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the baseline tables (SQLite and PostgreSQL)."""
    op.create_table(
        "lti_platform",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("auth_login_url", sa.String(length=1024), nullable=False),
        sa.Column("auth_token_url", sa.String(length=1024), nullable=False),
        sa.Column("key_set_url", sa.String(length=1024), nullable=False),
        sa.Column("auth_audience", sa.String(length=1024), nullable=True),
        sa.Column("family", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("lti_platform_pkey")),
        sa.UniqueConstraint("issuer", "client_id", name="uq_platform_issuer_client"),
    )
    op.create_index("ix_lti_platform_issuer", "lti_platform", ["issuer"], unique=False)

    op.create_table(
        "lti_tool_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("lti_tool_key_pkey")),
        sa.UniqueConstraint("kid", name=op.f("lti_tool_key_kid_key")),
    )
    op.create_index("ix_lti_tool_key_status", "lti_tool_key", ["status"], unique=False)
    op.create_index(
        "uq_tool_key_one_current",
        "lti_tool_key",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'current'"),
        postgresql_where=sa.text("status = 'current'"),
    )

    op.create_table(
        "outbox_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("locked_by", sa.String(length=128), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("outbox_job_pkey")),
    )
    op.create_index("ix_outbox_job_dedupe_key", "outbox_job", ["dedupe_key"], unique=False)
    op.create_index(
        "ix_outbox_job_due", "outbox_job", ["status", "scheduled_at", "id"], unique=False
    )
    op.create_index("ix_outbox_job_kind", "outbox_job", ["kind"], unique=False)

    op.create_table(
        "store_entry",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("store_entry_pkey")),
    )
    op.create_index("ix_store_entry_expires_at", "store_entry", ["expires_at"], unique=False)

    op.create_table(
        "exam",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(length=255), nullable=False),
        sa.Column("resource_link_id", sa.String(length=255), nullable=False),
        sa.Column("context_id", sa.String(length=255), nullable=True),
        sa.Column("context_title", sa.String(length=255), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=191), nullable=False),
        sa.Column("group_external_id", sa.String(length=191), nullable=True),
        sa.Column("lineitems_url", sa.String(length=1024), nullable=True),
        sa.Column("lineitem_url", sa.String(length=1024), nullable=True),
        sa.Column("proctoring_lineitem_url", sa.String(length=1024), nullable=True),
        sa.Column("ags_scopes", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platform.id"],
            name=op.f("exam_platform_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("exam_pkey")),
        sa.UniqueConstraint("external_id", name=op.f("exam_external_id_key")),
    )
    op.create_index("ix_exam_platform_id", "exam", ["platform_id"], unique=False)

    op.create_table(
        "learner",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("sub", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("given_name", sa.String(length=255), nullable=True),
        sa.Column("family_name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("external_id", sa.String(length=191), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platform.id"],
            name=op.f("learner_platform_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("learner_pkey")),
        sa.UniqueConstraint("external_id", name=op.f("learner_external_id_key")),
    )
    op.create_index("ix_learner_platform_id", "learner", ["platform_id"], unique=False)

    op.create_table(
        "lti_deployment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("default_profile", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platform.id"],
            name=op.f("lti_deployment_platform_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("lti_deployment_pkey")),
        sa.UniqueConstraint("platform_id", "deployment_id", name="uq_deployment_platform_id"),
    )
    op.create_index(
        "ix_lti_deployment_platform_id", "lti_deployment", ["platform_id"], unique=False
    )

    op.create_table(
        "attempt",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("profile_name", sa.String(length=64), nullable=False),
        sa.Column("start_proof", sa.String(length=16), nullable=False),
        sa.Column("webhook_secret", sa.String(length=128), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("token_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report_url", sa.String(length=2048), nullable=True),
        sa.Column("session_url", sa.String(length=2048), nullable=True),
        sa.Column("service_session_id", sa.String(length=191), nullable=True),
        sa.Column("service_attempt_id", sa.String(length=191), nullable=True),
        sa.Column("session_response", sa.JSON(), nullable=True),
        sa.Column("exam_url", sa.String(length=2048), nullable=True),
        sa.Column("access_code", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exam.id"], name=op.f("attempt_exam_id_fkey"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"], ["learner.id"], name=op.f("attempt_learner_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("attempt_pkey")),
        sa.UniqueConstraint(
            "exam_id", "learner_id", "number", name="uq_attempt_exam_learner_number"
        ),
    )
    op.create_index("ix_attempt_exam_id", "attempt", ["exam_id"], unique=False)
    op.create_index("ix_attempt_learner_id", "attempt", ["learner_id"], unique=False)

    op.create_table(
        "attempt_report",
        sa.Column("attempt_id", sa.String(length=36), nullable=False),
        sa.Column("risk_score", sa.Float(), nullable=True),
        sa.Column("risk_source", sa.String(length=32), nullable=False),
        sa.Column("risk_level", sa.String(length=64), nullable=True),
        sa.Column("violation_count", sa.Integer(), nullable=False),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.Column("recommendations", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["attempt.id"],
            name=op.f("attempt_report_attempt_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attempt_id", name=op.f("attempt_report_pkey")),
    )
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("raw_body", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["attempt.id"],
            name=op.f("webhook_event_attempt_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("webhook_event_pkey")),
        sa.UniqueConstraint("attempt_id", "kind", "body_hash", name="uq_webhook_event_body"),
    )
    op.create_index("ix_webhook_event_attempt_id", "webhook_event", ["attempt_id"], unique=False)


def downgrade() -> None:
    """Revert this revision: drop every table, dependents first."""
    op.drop_table("webhook_event")
    op.drop_table("attempt_report")
    op.drop_table("attempt")
    op.drop_table("lti_deployment")
    op.drop_table("learner")
    op.drop_table("exam")
    op.drop_table("store_entry")
    op.drop_table("outbox_job")
    op.drop_table("lti_tool_key")
    op.drop_table("lti_platform")
