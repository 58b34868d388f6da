"""What a finished login yields: the verified DID, its web3name and disclosed properties."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identity:
    did: str
    web3name: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    auth_time: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(data["did"], data.get("web3name"), dict(data.get("properties") or {}),
                   int(data.get("auth_time") or 0))
