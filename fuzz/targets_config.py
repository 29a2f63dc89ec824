"""Targets: card profiles (TOML: gpchannel.card.profile), card inventories (CSV/JSON: gpchannel.server.inventory)
and the job API's body validators (the parsing functions behind gpchannel.server.api, called directly).

Text formats get two targets each: the bytes mutated as they are (syntax, encodings), and a structured one where
the input bytes choose a key of a valid document and a value of another type or range to put there (so the
loaders behind the parser see every wrong value, not only syntax errors)."""

from __future__ import annotations

import copy
import json
import random
import tomllib
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from fuzz.engine import Target, each
from fuzz.seeds import example_bytes
from gpchannel.card.profile import load_profile, profile_from_dict
from gpchannel.server import api
from gpchannel.server.inventory import parse_inventory
from gpchannel.server.inventory_import import resolved_json
from gpchannel.server.repository import JobTransport

__all__ = ["TARGETS"]

_ODD_VALUES: tuple[object, ...] = (
    [],
    {},
    [{}],
    [[]],
    "",
    " ",
    "zz",
    "0x",
    "A0",
    "A0" * 17,
    "00" * 64,
    "-1",
    "1e99",
    "ⅰⅱ",
    "\x00",
    0,
    -1,
    1,
    15,
    16,
    255,
    256,
    65536,
    2**40,
    2**63,
    -(2**63),
    True,
    False,
    1.5,
    float("nan"),
    {"a": 1},
    ["aes-cbc"],
    [1, "a"],
)


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _edit(document: Any, data: bytes) -> Any:
    """A copy of ``document`` with one to three values replaced, deleted or keys added, as ``data`` chooses."""
    rng = random.Random(data)
    doc = json.loads(json.dumps(document))
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = rng.choice(paths)
        holder = doc
        for step in path[:-1]:
            holder = holder[step]
        action = rng.randrange(4)
        if action == 0 and isinstance(holder, dict):
            del holder[path[-1]]
        elif action == 1 and isinstance(holder, dict):
            holder[rng.choice(("spam", "kvn", "aid", "type", "psk", "keysets"))] = copy.deepcopy(
                rng.choice(_ODD_VALUES)
            )
        else:
            holder[path[-1]] = copy.deepcopy(rng.choice(_ODD_VALUES))
    return doc


def _profiles() -> Sequence[bytes]:
    return example_bytes("profiles/scp03.toml", "profiles/scp02.toml")


def _profile_text(data: bytes) -> None:
    load_profile(data)


def _profile_values(data: bytes) -> None:
    documents = [tomllib.loads(t.decode()) for t in _profiles()]
    profile_from_dict(_edit(documents[data[0] % len(documents) if data else 0], data))


_INVENTORY_CSV = (
    "iccid,msisdn,psk_identity,psk,psk_kvn,kvn,kic,kic_algorithm,kid,kid_algorithm,tar,spi,counter\n"
    "8988211000000000001,4915550001,8988211000000000001,0102030405060708090A0B0C0D0E0F10,1,1,"
    "000102030405060708090A0B0C0D0E0F,aes-cbc,101112131415161718191A1B1C1D1E1F,aes-cmac,B00001,1619,0\n"
    "8988211000000000002,+4915550002,,,,2,0001020304050607,des-cbc,master:m,3des-2key,000000,1200,5\n"
)


def _inventory_json() -> dict[str, Any]:
    return {
        "cards": [
            {
                "iccid": "8988211000000000003",
                "psk_identity": "id-3",
                "psk": "0102030405060708090A0B0C0D0E0F10",
                "keysets": [
                    {
                        "kvn": 1,
                        "kic": "master:m",
                        "kic_algorithm": "aes-cbc",
                        "kid": "00" * 16,
                        "kid_algorithm": "aes-cmac",
                        "tar": "B00001",
                        "spi": "1619",
                        "counter": 7,
                    },
                    {
                        "kvn": 3,
                        "kic": "derive:emv:8988211000000000001",
                        "kic_algorithm": "3des-2key",
                        "kid": "derive:emv:8988211000000000001",
                        "kid_algorithm": "3des-2key",
                    },
                ],
            }
        ]
    }


def _inventory(data: bytes) -> None:
    cards = parse_inventory(data)
    resolved_json(cards, {"m": bytes(range(32))})


def _inventory_values(data: bytes) -> None:
    parse_inventory(json.dumps(_edit(_inventory_json(), data)), format="json")


def _api_seeds() -> Sequence[bytes]:
    bodies: list[Any] = [
        {
            "card": {"iccid": "8988211000000000001"},
            "apdus": ["80CA006600", "00A4040008A000000151000000"],
            "target": "A000000151000000",
            "transport": "scp81",
        },
        {"card": {"id": 3}, "apdus": ["80E60C00"], "target": "B00001", "transport": "scp80"},
        {
            "iccid": "8988211000000000001",
            "psk_identity": "id-1",
            "psk": "00" * 16,
            "psk_kvn": 1,
            "msisdn": "4915550001",
        },
    ]
    return [json.dumps(b).encode() for b in bodies]


def _http_error(call: Callable[[], object]) -> None:
    """The validators refuse with an aiohttp HTTP error (a JSON 4xx body): the documented refusal."""
    try:
        call()
    except web.HTTPException as exc:
        if not 400 <= exc.status < 500:
            raise AssertionError(f"HTTP {exc.status} for a bad body") from None


def _job_body(data: bytes) -> None:
    """What the job and card handlers do with a body before they touch the store (server/api.py)."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return  # answered 400 by api._body
    if not isinstance(body, dict):
        return
    _http_error(lambda: api._apdus(body.get("apdus")))
    for transport in JobTransport:
        _http_error(lambda t=transport: api.parse_target(body.get("target"), t))  # type: ignore[misc]
    _http_error(lambda: api._iccid(api._optional_str(body, "iccid")))
    _http_error(lambda: api._optional_str(body, "psk_identity"))
    if isinstance(body.get("psk"), str | int | list | dict | None):
        _http_error(lambda: api._hex(body.get("psk"), "psk"))


def _job_values(data: bytes) -> None:
    seeds = [json.loads(s) for s in _api_seeds()]
    _job_body(json.dumps(_edit(seeds[data[0] % len(seeds) if data else 0], data)).encode())


TARGETS: tuple[Target, ...] = (
    Target("card.profile", _profiles, _profile_text, max_size=8192),
    Target("card.profile.values", lambda: [bytes((n,)) + b"profile" for n in range(8)], _profile_values, max_size=64),
    Target("server.inventory", lambda: [_INVENTORY_CSV.encode(), json.dumps(_inventory_json()).encode()], _inventory),
    Target(
        "server.inventory.values",
        lambda: [bytes((n,)) + b"inventory" for n in range(8)],
        _inventory_values,
        max_size=64,
    ),
    Target("server.api.bodies", _api_seeds, each(_job_body)),
    Target("server.api.bodies.values", lambda: [bytes((n,)) + b"job" for n in range(8)], _job_values, max_size=64),
)
