"""The Alembic environment and revisions of the tool's schema; run through lti_proctor.schema."""
