"""The OTA server for card fleets: SCP81 remote administration (GP Amendment B) and SCP80 campaigns.

Storage is :mod:`gpchannel.server.db` (the tables) and :mod:`gpchannel.server.repository` (the one API every
other server module uses, on SQLite or PostgreSQL); the schema is versioned by the Alembic scripts in
``gpchannel/server/migrations``.
"""

from __future__ import annotations

__all__: list[str] = []
