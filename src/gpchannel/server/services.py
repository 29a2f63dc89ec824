"""Opening what the server's parts share (:class:`gpchannel.server.config.ServerServices`): the store, migrated, and
the key provider the configuration names. The server (:mod:`gpchannel.server.app`) and a scale-out worker process
(:mod:`gpchannel.server.worker`) both start here.
"""

from __future__ import annotations

from gpchannel.keystore import KeyProvider
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.keys import open_key_provider
from gpchannel.server.repository import Repository

__all__ = ["open_services"]


def open_services(config: ServerConfig) -> ServerServices:
    """Open the store (migrating it) and the key provider (synchronous; call it through a thread)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    repository = Repository(config.database_url)
    try:
        keys: KeyProvider = open_key_provider(config, repository)
    except BaseException:
        repository.close()
        raise
    return ServerServices(repository=repository, keys=keys, config=config)
