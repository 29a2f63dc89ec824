"""The OTA server's store, one module per aggregate, joined by :class:`gpchannel.server.repository.Repository`:

- :mod:`.core`: the database URL, its transactions, ``atomic()``;
- :mod:`.cards`: cards, key references, OTA counters;
- :mod:`.jobs`: jobs (queued, delivered to an admin session, completed, failed, cancelled);
- :mod:`.leases`: the workers' leases and the counter-advancing SMS send;
- :mod:`.campaigns`: campaigns and the jobs they queue.

API tokens and the audit chain keep their own modules (:mod:`gpchannel.server.tokens`,
:mod:`gpchannel.server.audit`) and join the store's transactions through ``Repository.atomic()``.
"""
