"""Fund accounts on the dev chain through chopsticks' `dev_setStorage` (dev chain only)."""

from __future__ import annotations

from substrateinterface.storage import StorageKey

from opendid.kilt.chain import ChainClient
from opendid.kilt.errors import ChainError

KILT = 10**15


def fund(client: ChainClient, address: str, amount: int = 1000 * KILT) -> None:
    """Set the free balance of `address`, keeping its nonce (chopsticks only)."""
    nonce = client.account_nonce(address)
    with client.substrate() as conn:
        key = StorageKey.create_from_storage_function(
            "System", "Account", [address],
            runtime_config=conn.runtime_config, metadata=conn.metadata,
        )
        value = conn.runtime_config.create_scale_object(key.value_scale_type)
        encoded = value.encode({
            "nonce": nonce, "consumers": 0, "providers": 1, "sufficients": 0,
            "data": {"free": amount, "reserved": 0, "frozen": 0,
                     "flags": 170141183460469231731687303715884105728},
        })
        response = conn.rpc_request("dev_setStorage", [[[key.to_hex(), encoded.to_hex()]]])
    if "error" in response:
        raise ChainError(f"dev_setStorage failed (is this a chopsticks dev chain?): {response}")
