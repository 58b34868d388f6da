"""The client form of the admin page: what it shows, what it accepts, and the chain checks
run before a client is saved. Every problem is reported per field; nothing is saved unless
the whole form is good."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opendid.admin.allowlist import normalise_did
from opendid.config import ID_TOKEN_ALGORITHMS, check_claim_map
from opendid.kilt.chain import ChainClient
from opendid.kilt.encoding import from_hex
from opendid.kilt.errors import InvalidDid, InvalidHex
from opendid.store.clients import ClientRecord, hash_client_secret

CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PROPERTY = re.compile(r"[^\s,=\x00-\x1f\x7f]{1,64}")
MAX_URLS = 20
MAX_URL_LENGTH = 2048
MAX_REQUIREMENTS = 5
MAX_ITEMS = 20
KINDS = ("confidential", "public")
STYLES = ("opendid", "standard")


class FormErrors(Exception):
    """The form is not good: field name -> message ('' for the form as a whole)."""

    def __init__(self, errors: dict[str, str], status: int = 400) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors, self.status = errors, status


@dataclass
class RequirementRow:
    ctype: str = ""
    attesters: str = ""
    properties: str = ""

    @property
    def empty(self) -> bool:
        return not (self.ctype.strip() or self.attesters.strip() or self.properties.strip())


@dataclass
class ClientForm:
    """The form's fields as text, as the page shows them (and re-shows them on an error)."""

    client_id: str = ""
    redirect_urls: str = ""
    kind: str = "confidential"
    token_style: str = "opendid"
    alg: str = "RS256"
    claim_map: str = ""
    requirements: list[RequirementRow] = field(default_factory=list)

    def with_blank_row(self) -> ClientForm:
        """One empty requirement row to fill in, below the existing ones."""
        rows = [r for r in self.requirements if not r.empty]
        if len(rows) < MAX_REQUIREMENTS:
            rows.append(RequirementRow())
        return dataclasses.replace(self, requirements=rows)

    @classmethod
    def from_record(cls, record: ClientRecord) -> ClientForm:
        return cls(
            client_id=record.client_id,
            redirect_urls="\n".join(record.redirect_urls),
            kind="public" if record.is_public else "confidential",
            token_style="standard" if record.is_standard else "opendid",
            alg=record.signing_alg or "RS256",
            claim_map="\n".join(f"{k} = {v}" for k, v in (record.claim_map or {}).items()),
            requirements=[RequirementRow(
                str(r.get("cTypeHash", "")), "\n".join(r.get("trustedAttesters") or []),
                ", ".join(r.get("requiredProperties") or [])) for r in record.requirements],
        )

    @classmethod
    def from_request(cls, form: Mapping[str, str], client_id: str | None = None) -> ClientForm:
        """The posted fields (`client_id` from the URL when editing)."""
        rows = [RequirementRow(form.get(f"req-{i}-ctype", ""), form.get(f"req-{i}-attesters", ""),
                               form.get(f"req-{i}-properties", ""))
                for i in range(MAX_REQUIREMENTS)]
        return cls(
            client_id=client_id if client_id is not None else form.get("client_id", "").strip(),
            redirect_urls=form.get("redirect_urls", ""),
            kind=form.get("kind", ""),
            token_style=form.get("token_style", ""),
            alg=form.get("alg", ""),
            claim_map=form.get("claim_map", ""),
            requirements=[r for r in rows if not r.empty],
        )


@dataclass(frozen=True)
class Saved:
    """A record ready to store, and the new secret when one was generated (shown once)."""

    record: ClientRecord
    secret: str | None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]


def _redirect_urls(text: str, errors: dict[str, str]) -> list[str]:
    urls = _lines(text)
    if not urls:
        errors["redirect_urls"] = "List at least one redirect URI."
    elif len(urls) > MAX_URLS:
        errors["redirect_urls"] = f"At most {MAX_URLS} redirect URIs."
    elif len(set(urls)) != len(urls):
        errors["redirect_urls"] = "Each redirect URI once."
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.netloc
                or parts.fragment or "#" in url or len(url) > MAX_URL_LENGTH
                or any(c.isspace() or ord(c) < 32 for c in url)):
            errors["redirect_urls"] = (f"'{url[:100]}' is not an http(s) URL without a "
                                       "fragment.")
            break
    return urls


def _requirements(rows: list[RequirementRow], production: bool,
                  errors: dict[str, str]) -> list[dict[str, Any]]:
    if len(rows) > MAX_REQUIREMENTS:
        errors["requirements"] = f"At most {MAX_REQUIREMENTS} requirements."
        return []
    result = []
    for index, row in enumerate(rows):
        key = f"req-{index}"
        ctype = row.ctype.strip().lower()
        try:
            from_hex(ctype, 32, "The CType hash")
        except InvalidHex as exc:
            errors[f"{key}-ctype"] = f"{exc} (0x and 64 hex digits)."
            continue
        attesters = []
        for line in _lines(row.attesters)[:MAX_ITEMS + 1]:
            try:
                attesters.append(normalise_did(line))
            except InvalidDid as exc:
                errors[f"{key}-attesters"] = str(exc)
                break
        if len(attesters) > MAX_ITEMS:
            errors[f"{key}-attesters"] = f"At most {MAX_ITEMS} trusted attesters."
        if not attesters and production and f"{key}-attesters" not in errors:
            errors[f"{key}-attesters"] = ("List the attesters this client trusts: with none, "
                                          "any attester passes, even the user's own DID "
                                          "(refused with production: true).")
        properties = [p.strip() for p in re.split(r"[,\n]", row.properties) if p.strip()]
        if len(properties) > MAX_ITEMS or any(PROPERTY.fullmatch(p) is None
                                              for p in properties):
            errors[f"{key}-properties"] = ("Property names separated by commas (no spaces "
                                           "inside a name).")
        elif len(set(properties)) != len(properties):
            errors[f"{key}-properties"] = "Each property once."
        result.append({"cTypeHash": ctype, "trustedAttesters": list(dict.fromkeys(attesters)),
                       "requiredProperties": properties})
    return result


def _claim_map(text: str, errors: dict[str, str]) -> dict[str, str] | None:
    mapping: dict[str, str] = {}
    for line in _lines(text):
        claim, sep, prop = (part.strip() for part in line.partition("="))
        if not sep or not claim or claim in mapping or (prop and not PROPERTY.fullmatch(prop)):
            errors["claim_map"] = (f"'{line[:80]}': one 'claim = Property' per line, each "
                                   "claim once.")
            return None
        mapping[claim] = prop
    try:
        check_claim_map(mapping)
    except ValueError as exc:
        errors["claim_map"] = str(exc)
        return None
    return mapping or None


def validate(form: ClientForm, existing: ClientRecord | None, production: bool) -> Saved:
    """The record the form describes (keeping what the form does not show of an existing
    client), or `FormErrors`. A confidential client without a secret gets a new one."""
    errors: dict[str, str] = {}
    if existing is None and CLIENT_ID.fullmatch(form.client_id) is None:
        errors["client_id"] = ("1 to 64 letters, digits, '.', '_' or '-', starting with a "
                               "letter or digit.")
    urls = _redirect_urls(form.redirect_urls, errors)
    if form.kind not in KINDS:
        errors["kind"] = "Choose confidential or public."
    if form.token_style not in STYLES:
        errors["token_style"] = "Choose OpenDID-style or standard tokens."
    elif form.token_style == "standard" and form.alg not in ID_TOKEN_ALGORITHMS:
        errors["alg"] = f"Choose one of {', '.join(ID_TOKEN_ALGORITHMS)}."
    elif form.token_style == "opendid" and form.kind == "public":
        errors["token_style"] = ("A public client holds no secret to check OpenDID-style "
                                 "tokens with: choose standard tokens.")
    requirements = _requirements(form.requirements, production, errors)
    claim_map = _claim_map(form.claim_map, errors)
    if errors:
        raise FormErrors(errors)
    secret = None
    stored = existing.client_secret if existing is not None else None
    if form.kind == "public":
        stored = None
    elif stored is None:
        secret = generate_secret()
        stored = hash_client_secret(secret)
    alg = form.alg if form.token_style == "standard" else None
    base = existing or ClientRecord(form.client_id, None, [])
    record = dataclasses.replace(base, client_secret=stored, redirect_urls=urls,
                                 requirements=requirements, id_token_alg=alg,
                                 claim_map=claim_map)
    return Saved(record, secret)


def generate_secret() -> str:
    """256 random bits, as `opendid clients add` makes them; only the hash is stored."""
    return secrets.token_urlsafe(32)


def check_on_chain(chain: ChainClient, record: ClientRecord) -> None:
    """Each requirement's CType exists on chain and each trusted attester's DID resolves;
    `FormErrors` naming the field otherwise. An unreachable chain raises `ChainUnavailable`
    (a 503: nothing is saved unchecked)."""
    errors: dict[str, str] = {}
    for index, requirement in enumerate(record.requirements):
        if chain.ctype(requirement["cTypeHash"]) is None:
            errors[f"req-{index}-ctype"] = (f"CType {requirement['cTypeHash']} does not exist "
                                            "on chain.")
        for did in requirement["trustedAttesters"]:
            if chain.did(did) is None:
                errors[f"req-{index}-attesters"] = f"{did} does not resolve on chain."
                break
    if errors:
        raise FormErrors(errors)
