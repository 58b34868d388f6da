"""Changing clients from the admin page: only SQLite clients ("cli", "admin") are editable;
each change is validated whole, checked on chain, saved, and written to the audit log."""

from __future__ import annotations

import dataclasses

from opendid.admin import audit
from opendid.admin.forms import ClientForm, FormErrors, Saved, check_on_chain, generate_secret
from opendid.admin.forms import validate as validate_form
from opendid.admin.login import ADMIN_CLIENT_ID
from opendid.kilt.chain import ChainClient
from opendid.store.clients import ClientRecord, ClientStore, hash_client_secret
from opendid.store.db import write_transaction

EDITABLE_SOURCES = ("cli", "admin")
ADMIN_SOURCE = "admin"
WHERE = {"config": "config.yaml", "etcd": "etcd", "builtin": "built in (the admin login)"}


class ReadOnly(Exception):
    """The client comes from somewhere the admin page does not change."""


class NotFound(Exception):
    pass


def where(source: str | None) -> str:
    """Where a client is defined, in words."""
    return WHERE.get(source or "", source or "unknown")


class ClientAdmin:
    def __init__(self, clients: ClientStore, chain: ChainClient, production: bool) -> None:
        self.clients, self.chain, self.production = clients, chain, production

    def editable(self, client_id: str) -> ClientRecord:
        """The client, if the admin page may change it; `NotFound` / `ReadOnly` otherwise."""
        client = self.clients.get(client_id)
        if client is None:
            raise NotFound(client_id)
        source = self.clients.source(client_id)
        if source not in EDITABLE_SOURCES or client_id == ADMIN_CLIENT_ID:
            raise ReadOnly(f"{client_id} is defined in {where(source)}: change it there.")
        return client

    def create(self, form: ClientForm, admin_did: str) -> Saved:
        """A new client, never over an existing one: of racing creates of one id (in any
        worker), one wins and the others are a 409."""
        saved = validate_form(form, None, self.production)
        if form.client_id == ADMIN_CLIENT_ID or self.clients.source(form.client_id) is not None:
            raise self._exists(form.client_id)
        check_on_chain(self.chain, saved.record)
        # the store's own writes nest inside as savepoints
        with write_transaction(self.clients.db.connect()):
            if self.clients.source(form.client_id) is not None:
                raise self._exists(form.client_id)
            self.clients.upsert(saved.record, source=ADMIN_SOURCE)
        audit.record(admin_did, "created", form.client_id, audit.describe(saved.record))
        return saved

    @staticmethod
    def _exists(client_id: str) -> FormErrors:
        return FormErrors({"client_id": f"A client {client_id} exists already."}, 409)

    def update(self, client_id: str, form: ClientForm, admin_did: str) -> Saved:
        existing = self.editable(client_id)
        saved = validate_form(dataclasses.replace(form, client_id=client_id), existing,
                              self.production)
        check_on_chain(self.chain, saved.record)
        self.clients.upsert(saved.record, source=self.clients.source(client_id) or ADMIN_SOURCE)
        audit.record(admin_did, "updated", client_id, audit.describe(saved.record))
        return saved

    def delete(self, client_id: str, admin_did: str) -> None:
        self.editable(client_id)
        self.clients.delete(client_id)
        audit.record(admin_did, "deleted", client_id)

    def rotate_secret(self, client_id: str, admin_did: str) -> str:
        """A new secret (returned once, stored hashed); the old one stops working at once."""
        client = self.editable(client_id)
        if client.is_public:
            raise FormErrors({"": f"{client_id} is a public client: it has no secret."})
        secret = generate_secret()
        self.clients.upsert(dataclasses.replace(client, client_secret=hash_client_secret(secret)),
                            source=self.clients.source(client_id) or ADMIN_SOURCE)
        audit.record(admin_did, "rotated the secret of", client_id)
        return secret
