"""The OTA server's first schema: cards, card_keys, ota_counters, campaigns, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written out in full (not built from gpchannel.server.db): a migration is frozen once released, while db.py
follows the latest revision. tests/server/test_migrations.py checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOB_STATES = "state IN ('queued', 'sent', 'done', 'failed', 'cancelled')"
_CAMPAIGN_STATES = "state IN ('running', 'cancelled', 'finished')"
_TRANSPORTS = "transport IN ('scp81', 'scp80', 'scp81+sms')"


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cards",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("iccid", sa.Text(), nullable=True),
        sa.Column("psk_identity", sa.Text(), nullable=True),
        sa.Column("msisdn", sa.Text(), nullable=True),
        sa.Column("ota", sa.JSON(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cards"),
        sa.UniqueConstraint("iccid", name="uq_cards_iccid"),
        sa.UniqueConstraint("psk_identity", name="uq_cards_psk_identity"),
        sa.CheckConstraint("iccid IS NOT NULL OR psk_identity IS NOT NULL", name="ck_cards_identified"),
    )
    op.create_table(
        "card_keys",
        sa.Column("card_id", _id(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("kvn", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("card_id", "purpose", "kvn", name="pk_card_keys"),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name="fk_card_keys_card_id_cards", ondelete="CASCADE"),
        sa.CheckConstraint("kvn >= 0 AND kvn <= 255", name="ck_card_keys_kvn"),
    )
    op.create_table(
        "ota_counters",
        sa.Column("card_id", _id(), nullable=False),
        sa.Column("kvn", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("card_id", "kvn", name="pk_ota_counters"),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name="fk_ota_counters_card_id_cards", ondelete="CASCADE"),
        sa.CheckConstraint("value >= 0 AND value <= 1099511627775", name="ck_ota_counters_value"),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("transport", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("script", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
        sa.CheckConstraint(_CAMPAIGN_STATES, name="ck_campaigns_state"),
        sa.CheckConstraint(_TRANSPORTS, name="ck_campaigns_transport"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", _id(), nullable=True),
        sa.Column("card_id", _id(), nullable=False),
        sa.Column("transport", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("script", sa.JSON(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", _ts(), nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_until", _ts(), nullable=True),
        sa.Column("delivery_id", sa.Text(), nullable=True),
        sa.Column("counter_used", sa.BigInteger(), nullable=True),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name="fk_jobs_campaign_id_campaigns", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name="fk_jobs_card_id_cards", ondelete="CASCADE"),
        sa.UniqueConstraint("delivery_id", name="uq_jobs_delivery_id"),
        sa.CheckConstraint(_JOB_STATES, name="ck_jobs_state"),
        sa.CheckConstraint(_TRANSPORTS, name="ck_jobs_transport"),
        sa.CheckConstraint("attempts >= 0", name="ck_jobs_attempts"),
    )
    op.create_index("ix_jobs_state_transport_not_before", "jobs", ["state", "transport", "not_before"])
    op.create_index("ix_jobs_card_id_state", "jobs", ["card_id", "state"])
    op.create_index("ix_jobs_campaign_id_state", "jobs", ["campaign_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_campaign_id_state", table_name="jobs")
    op.drop_index("ix_jobs_card_id_state", table_name="jobs")
    op.drop_index("ix_jobs_state_transport_not_before", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("campaigns")
    op.drop_table("ota_counters")
    op.drop_table("card_keys")
    op.drop_table("cards")
