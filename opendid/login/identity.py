"""What a finished login yields: the verified DID, its web3name and disclosed properties, and
for a credential login which credential (root hash, CType, attester) proved them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identity:
    did: str
    web3name: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    auth_time: int = 0
    root_hash: str | None = None
    ctype_hash: str | None = None
    attester: str | None = None

    @property
    def amr(self) -> list[str]:
        """How the user logged in (OIDC `amr`): with a credential, or with the DID alone."""
        return ["credential"] if self.root_hash else ["did"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (dataclasses.asdict deep-copies every value: a tenth of a millisecond per
        login for nothing, as the dict is serialised at once)."""
        return {"did": self.did, "web3name": self.web3name, "properties": dict(self.properties),
                "auth_time": self.auth_time, "root_hash": self.root_hash,
                "ctype_hash": self.ctype_hash, "attester": self.attester}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(data["did"], data.get("web3name"), dict(data.get("properties") or {}),
                   int(data.get("auth_time") or 0), data.get("root_hash"),
                   data.get("ctype_hash"), data.get("attester"))
