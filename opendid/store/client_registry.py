"""Where a client comes from, behind ClientStore's interface: SQLite (config.yaml, `opendid
clients add`, the admin page) and, when configured, etcd.

Precedence: a client id that SQLite holds wins over the same id in etcd (logged), so a client
defined on the host (config.yaml above all) cannot be replaced remotely through etcd. Writes
(`upsert`, `delete`) go to SQLite only: etcd's records change in etcd.
"""

from __future__ import annotations

import logging

from opendid.store.clients import ClientRecord, ClientStore
from opendid.store.db import Database
from opendid.store.etcd_clients import EtcdClients

log = logging.getLogger(__name__)


class ClientRegistry(ClientStore):
    def __init__(self, db: Database, etcd: EtcdClients | None = None) -> None:
        super().__init__(db)
        self.etcd = etcd
        self._warned: set[str] = set()

    def get(self, client_id: str) -> ClientRecord | None:
        local = super().get(client_id)
        if self.etcd is None:
            return local
        remote = self.etcd.get(client_id)
        if local is not None:
            if remote is not None and client_id not in self._warned:
                self._warned.add(client_id)
                log.warning("etcd client %s ignored: a %s client has that id and wins",
                            client_id, super().source(client_id))
            return local
        return remote

    def source(self, client_id: str) -> str | None:
        local = super().source(client_id)
        if local is None and self.etcd is not None and self.etcd.get(client_id) is not None:
            return "etcd"
        return local

    def all(self) -> list[ClientRecord]:
        local = super().all()
        if self.etcd is None:
            return local
        ids = {client.client_id for client in local}
        return local + [c for c in self.etcd.all() if c.client_id not in ids]
