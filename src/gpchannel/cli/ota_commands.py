"""``gpchannel ota build|parse|send``: the OTA server side of SCP80 (ETSI TS 102 225 / 226, 3GPP TS 31.115).

* ``build``: APDUs -> a remote command script (compact, or expanded with ``--expanded``) -> a secured command
  packet -> the packet, its SMS-DELIVER TPDUs or the SMS-PP DOWNLOAD ENVELOPEs (``--format``), hex or JSON;
* ``parse``: a PoR (SMS user data ``02 71 00 ...``, a response packet, or an SMS-SUBMIT TPDU) -> status,
  counter and the remote APDU responses, verified with the command's SPI, KIc, KID and key set;
* ``send``: the ENVELOPEs through PC/SC (``--reader``) or the in-process emulator (``--emulator DIR``); the
  PoR is fetched with GET RESPONSE on ``61 xx`` / ``9F xx``, or with FETCH on ``91 xx`` (SEND SHORT MESSAGE),
  and verified (the global ``--trace-file`` records the exchanges for ``trace decode``). The command exits 4
  when the card refused (a PoR status other than 00, or a last status word that
  is not success) unless ``--ok-on-refusal`` is given.

Keys come from ``--profile FILE`` (its ``[[ota.keysets]]``, by ``--kvn``) or from ``--kic`` / ``--kid`` with
their algorithms. The counter of each (card, KVN) is kept in a local JSON store (``--counter-store PATH``,
default ``$XDG_DATA_HOME/gpchannel/ota-counters.json`` or ``~/.local/share/gpchannel/...``), written
atomically *before* the packet leaves, so the next packet is always higher than any the card accepted
(ota-notes E.5). Keys are never printed.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gpchannel.card.profile_ota import check_ota
from gpchannel.card.profile_schema import check_shape
from gpchannel.cli.conventions import KVN_HELP, KvnType
from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.ota_por import TracedTransport, exchange, proactive_submit, refusal
from gpchannel.cli.ota_store import CounterStore, default_counter_store
from gpchannel.cli.settings import fail, fail_on
from gpchannel.cli.target import open_transport
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError, GPChannelError, ProfileError, UnsupportedError
from gpchannel.ota import (
    KIC_ALGORITHMS,
    KID_ALGORITHMS,
    Address,
    CipherAlgorithm,
    CommandScript,
    CompactResponse,
    Kic,
    Kid,
    MacAlgorithm,
    Response,
    ResponseScript,
    Scp80KeySet,
    SmsDeliver,
    SmsPpDownload,
    SmsSubmit,
    Spi,
    encode_compact,
    key_lengths,
    secure_command,
    secured_message,
    split_packet,
    unsecure_response,
)

__all__ = [
    "CounterStore",
    "OtaKeys",
    "default_counter_store",
    "ota",
    "parse_por",
    "proactive_submit",
    "profile_keysets",
    "resolve_keys",
]

DEFAULT_SPI = "1619"
"""CC, ciphering, counter strictly higher; PoR required, with CC and ciphered, in the SMS-DELIVER-REPORT."""
DEFAULT_TAR = "B00001"
MAX_COUNTER = (1 << 40) - 1
"""CNTR is 5 bytes (TS 102 225 5.1.1)."""


# --------------------------------------------------------------------------------------------- keys and options


@dataclass(frozen=True)
class OtaKeys:
    """A key set with its KVN, the KIc / KID bytes naming its algorithms, the card id and its last counter."""

    keyset: Scp80KeySet
    kic: Kic
    kid: Kid
    kvn: int
    card: str
    profile_counter: int = 0


def _address(text: str) -> Address:
    """The TP-OA of the SMS-DELIVER: digits (and * # a b c), at most 20."""
    try:
        return Address(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--originator") from None


def _hex(text: str, name: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(" ", "").replace(":", ""))
    except ValueError:
        raise click.BadParameter("hex digits expected", param_hint=name) from None


def _read_profile(path: Path) -> dict[str, Any]:
    try:
        return check_shape(tomllib.loads(path.read_text()))  # every key's TOML type, before any value is read
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ProfileError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--profile") from None


def _keyset(kic: bytes, kid: bytes, cipher: CipherAlgorithm, mac: MacAlgorithm) -> Scp80KeySet:
    """The key set; a key whose length does not fit its algorithm is a usage error (its value is never shown)."""
    legacy = cipher is CipherAlgorithm.DES_CBC or mac is MacAlgorithm.DES_CBC_MAC  # a legacy card's own choice
    try:
        return Scp80KeySet(kic, kid, cipher=cipher, mac=mac, allow_single_des=legacy)
    except (UnsupportedError, ValueError) as exc:
        message = f"{exc} (check the key lengths and --kic-algorithm / --kid-algorithm)"
        raise click.BadParameter(message, param_hint="KIc/KID") from None


def resolve_keys(
    profile: Path | None,
    kvn: int | None,
    kic_key: str | None,
    kid_key: str | None,
    kic_algorithm: str,
    kid_algorithm: str,
    card_id: str | None,
) -> OtaKeys:
    """The key set from the options, else from the profile's ``[[ota.keysets]]`` (``kvn``, or the first)."""
    card = card_id or "default"
    counter = 0
    if kic_key is not None or kid_key is not None:
        if kic_key is None or kid_key is None:
            raise click.UsageError("give both --kic and --kid (or a --profile)")
        cipher, mac = KIC_ALGORITHMS[kic_algorithm], KID_ALGORITHMS[kid_algorithm]
        kic, kid = _hex(kic_key, "--kic"), _hex(kid_key, "--kid")
        for option, key, algorithm, sizes in (
            ("--kic", kic, kic_algorithm, key_lengths(cipher)),
            ("--kid", kid, kid_algorithm, key_lengths(mac)),
        ):
            if len(key) not in sizes:
                expected = " or ".join(str(n) for n in sizes)
                message = f"a {algorithm} key is {expected} bytes, got {len(key)} (the value is not shown)"
                raise click.BadParameter(message, param_hint=option)
        keyset = _keyset(kic, kid, cipher, mac)
        number = 1 if kvn is None else kvn
    elif profile is not None:
        raw = _read_profile(profile)
        keysets = _profile_sets(raw)
        chosen = next((k for k in keysets if kvn is None or k["kvn"] == kvn), None)
        if chosen is None:
            raise click.BadParameter(f"no [[ota.keysets]] with kvn {kvn}", param_hint="--profile")
        number = int(chosen["kvn"])
        cipher, mac = KIC_ALGORITHMS[chosen["kic_algorithm"]], KID_ALGORITHMS[chosen["kid_algorithm"]]
        keyset = _keyset(_hex(chosen["kic"], "kic"), _hex(chosen["kid"], "kid"), cipher, mac)
        counter = int(chosen.get("counter", 0))
        card_table = raw.get("card")
        card = card_id or str((card_table.get("iccid") if isinstance(card_table, dict) else None) or "default")
    else:
        raise click.UsageError("give --profile FILE or --kic/--kid keys")
    if not 1 <= number <= 15:
        raise click.BadParameter("an OTA key version is 1..15", param_hint="--kvn")
    return OtaKeys(keyset, Kic.for_cipher(cipher, number), Kid.for_mac(mac, number), number, card, counter)


def _profile_sets(raw: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        section = check_ota(raw.get("ota", {}))
    except ProfileError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    return list(section.get("keysets", []))


def profile_keysets(profile: Path) -> list[tuple[int, Scp80KeySet]]:
    """Every ``[[ota.keysets]]`` of a card profile as ``(kvn, key set)`` (the trace inspector's candidates)."""
    out = []
    for chosen in _profile_sets(_read_profile(profile)):
        cipher, mac = KIC_ALGORITHMS[chosen["kic_algorithm"]], KID_ALGORITHMS[chosen["kid_algorithm"]]
        out.append((int(chosen["kvn"]), _keyset(_hex(chosen["kic"], "kic"), _hex(chosen["kid"], "kid"), cipher, mac)))
    return out


def _packet_options(fn: Any) -> Any:
    options = [
        click.option("--profile", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Card profile."),
        click.option(
            "--kvn", type=KvnType(), help=f"OTA key set version (1..F, {KVN_HELP}; default: the profile's first)."
        ),
        click.option(
            "--kic", "kic_key", envvar="GPCHANNEL_OTA_KIC", help="Ciphering key, hex (env GPCHANNEL_OTA_KIC)."
        ),
        click.option("--kid", "kid_key", envvar="GPCHANNEL_OTA_KID", help="RC/CC key, hex (env GPCHANNEL_OTA_KID)."),
        click.option("--kic-algorithm", type=click.Choice(list(KIC_ALGORITHMS)), default="aes-cbc", show_default=True),
        click.option("--kid-algorithm", type=click.Choice(list(KID_ALGORITHMS)), default="aes-cmac", show_default=True),
        click.option("--spi", default=DEFAULT_SPI, show_default=True, help="SPI, 2 bytes hex (TS 102 225 5.1.1)."),
        click.option("--card-id", help="Counter store key (default: the profile's ICCID)."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _global(name: str) -> Any:
    """A global option (``gpchannel --profile/--reader/--emulator ... ota ...``) when the command has none."""
    ctx = click.get_current_context(silent=True)
    settings = ctx.find_root().obj if ctx is not None else None
    return getattr(settings, name, None)


def _spi(text: str) -> Spi:
    raw = _hex(text, "--spi")
    try:
        return Spi.from_bytes(raw)
    except (DecodeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--spi") from None


def _script(apdus: tuple[str, ...], expanded: bool) -> bytes:
    try:
        commands = [CommandApdu.from_bytes(_hex(a, "APDU")) for a in apdus]
    except DecodeError as exc:
        raise click.BadParameter(str(exc), param_hint="APDUS") from None
    extended = next((c for c in commands if c.is_extended), None)
    if extended is not None and not expanded:  # TS 102 226 5.2.1: the compact format has one-byte lengths
        message = f"{str(extended)[:24]}... has extended lengths: the compact format cannot carry it; add --expanded"
        raise click.BadParameter(message, param_hint="APDUS")
    return CommandScript.of(commands).to_bytes() if expanded else encode_compact(commands)


@dataclass(frozen=True)
class Built:
    packet: bytes
    counter: int
    user_data: list[bytes]
    envelopes: list[CommandApdu]


def _build(
    keys: OtaKeys,
    spi: Spi,
    tar: bytes,
    data: bytes,
    counter: int | None,
    store: CounterStore,
    originator: str,
    sim: bool,
) -> Built:
    """Secure the script with the next counter (recorded before anything is sent) and wrap it for SMS-PP."""
    if len(tar) != 3:
        raise click.BadParameter("a TAR is 3 bytes", param_hint="--tar")
    value = counter if counter is not None else max(store.last(keys.card, keys.kvn), keys.profile_counter) + 1
    packet = secure_command(
        data, spi=spi, kic=keys.kic, kid=keys.kid, tar=tar, counter=value, keyset=keys.keyset
    ).to_bytes()
    store.record(keys.card, keys.kvn, value)
    uds = split_packet(packet, reference=value & 0xFF)
    address = _address(originator)
    envelopes = [SmsPpDownload(SmsDeliver(address, ud).to_bytes()).to_apdu(0xA0 if sim else 0x80) for ud in uds]
    return Built(packet, value, uds, envelopes)


# --------------------------------------------------------------------------------------------- PoR


def parse_por(raw: bytes, spi: Spi, keys: OtaKeys) -> tuple[Response, dict[str, Any]]:
    """Verify a PoR (TP-UD with UDH ``02 71 00``, a bare response packet, or an SMS-SUBMIT TPDU) and describe it."""
    if raw[:3] == b"\x02\x71\x00":
        packet = secured_message(raw).packet
    elif raw[:1] and raw[0] & 0x03 == 0x01 and len(raw) > 3 and raw[0] & 0x40:
        packet = secured_message(SmsSubmit.from_bytes(raw).user_data).packet
    else:
        packet = raw
    por = unsecure_response(packet, spi=spi, kic=keys.kic, kid=keys.kid, keyset=keys.keyset)
    out: dict[str, Any] = {
        "status": f"{por.status:02X}",
        "status_name": por.status.name,
        "counter": por.counter,
        "tar": por.tar.hex().upper(),
        "authenticated": por.authenticated,
    }
    if por.data[:1] in (b"\xab", b"\xaf"):
        script = ResponseScript.from_bytes(por.data)
        out["executed"] = script.executed
        out["responses"] = [_response(r) for r in script.responses]
    elif por.data:
        compact = CompactResponse.from_bytes(por.data)
        out["executed"] = compact.executed
        out["responses"] = [_response(compact.last)]
    return por, out


def _response(r: ResponseApdu) -> dict[str, str]:
    return {"sw": f"{r.sw:04X}", "data": r.data.hex().upper()}


def _print_por(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    trust = "verified" if info["authenticated"] else "NOT authenticated (no CC on this PoR)"
    click.echo(f"PoR status {info['status']} ({info['status_name']}), counter {info['counter']}, {trust}")
    if "executed" in info:
        click.echo(f"executed commands: {info['executed']}")
    for r in info.get("responses", []):
        click.echo(f"  {r['data']} {r['sw']}".replace("   ", "  "))


# --------------------------------------------------------------------------------------------- commands


@click.group()
def ota() -> None:
    """SCP80 over-the-air packets: build, parse, send (the OTA server side)."""


_store_option = click.option(
    "--counter-store", type=click.Path(dir_okay=False, path_type=Path), help="Counter store (JSON) path."
)


@ota.command()
@click.argument("apdus", nargs=-1, required=True)
@_packet_options
@click.option("--tar", default=DEFAULT_TAR, show_default=True, help="Receiving entity, 3 bytes hex.")
@click.option(
    "--counter", type=click.IntRange(0, MAX_COUNTER), help="CNTR to use, 0..2^40-1 (default: the store's last + 1)."
)
@_store_option
@click.option("--expanded", is_flag=True, help="Expanded remote APDU format (AA) instead of compact.")
@click.option("--format", "fmt", type=click.Choice(["packet", "sms", "envelope"]), default="envelope")
@click.option("--originator", default="12345678", show_default=True, help="TP-OA digits of the SMS-DELIVER.")
@click.option("--sim", is_flag=True, help="GSM SIM class (A0) ENVELOPEs.")
def build(
    apdus: tuple[str, ...],
    profile: Path | None,
    kvn: int | None,
    kic_key: str | None,
    kid_key: str | None,
    kic_algorithm: str,
    kid_algorithm: str,
    spi: str,
    card_id: str | None,
    as_json: bool,
    tar: str,
    counter: int | None,
    counter_store: Path | None,
    expanded: bool,
    fmt: str,
    originator: str,
    sim: bool,
) -> None:
    """Secure APDUS (hex) into a command packet, SMS-DELIVER TPDUs or ENVELOPEs."""
    profile = profile or _global("profile")
    keys = resolve_keys(profile, kvn, kic_key, kid_key, kic_algorithm, kid_algorithm, card_id)
    store = CounterStore(counter_store or default_counter_store())
    built = _build(keys, _spi(spi), _hex(tar, "--tar"), _script(apdus, expanded), counter, store, originator, sim)
    if fmt == "packet":
        items = [built.packet]
    elif fmt == "sms":
        items = [SmsDeliver(_address(originator), ud).to_bytes() for ud in built.user_data]
    else:
        items = [e.to_bytes() for e in built.envelopes]
    if as_json:
        click.echo(json.dumps({"counter": built.counter, "kvn": keys.kvn, fmt: [i.hex().upper() for i in items]}))
    else:
        for item in items:
            click.echo(item.hex().upper())


@ota.command()
@click.argument("por")
@_packet_options
def parse(
    por: str,
    profile: Path | None,
    kvn: int | None,
    kic_key: str | None,
    kid_key: str | None,
    kic_algorithm: str,
    kid_algorithm: str,
    spi: str,
    card_id: str | None,
    as_json: bool,
) -> None:
    """Verify and decode a PoR (hex) with the command's SPI and key set."""
    keys = resolve_keys(profile or _global("profile"), kvn, kic_key, kid_key, kic_algorithm, kid_algorithm, card_id)
    try:
        _, info = parse_por(_hex(por, "POR"), _spi(spi), keys)
    except GPChannelError as exc:
        fail_on(None, exc, "the PoR does not verify or decode: ")
    _print_por(info, as_json)


@ota.command()
@click.argument("apdus", nargs=-1, required=True)
@_packet_options
@click.option("--tar", default=DEFAULT_TAR, show_default=True, help="Receiving entity, 3 bytes hex.")
@click.option(
    "--counter", type=click.IntRange(0, MAX_COUNTER), help="CNTR to use, 0..2^40-1 (default: the store's last + 1)."
)
@_store_option
@click.option("--expanded", is_flag=True, help="Expanded remote APDU format (AA) instead of compact.")
@click.option("--reader", envvar="GPCHANNEL_READER", help="PC/SC reader name substring.")
@click.option("--emulator", type=click.Path(file_okay=False, path_type=Path), help="Emulator state directory.")
@click.option("--sim", is_flag=True, help="GSM SIM class (A0): 9F xx and A0 C0.")
@click.option(
    "--ok-on-refusal",
    is_flag=True,
    help="Exit 0 even when the card refused (PoR status not 00, or a last status word not success; default: 4).",
)
def send(
    apdus: tuple[str, ...],
    profile: Path | None,
    kvn: int | None,
    kic_key: str | None,
    kid_key: str | None,
    kic_algorithm: str,
    kid_algorithm: str,
    spi: str,
    card_id: str | None,
    as_json: bool,
    tar: str,
    counter: int | None,
    counter_store: Path | None,
    expanded: bool,
    reader: str | None,
    emulator: Path | None,
    sim: bool,
    ok_on_refusal: bool,
) -> None:
    """Send APDUS (hex) over the air: ENVELOPEs to the card, then the PoR fetched and verified.

    Exits 4 when the card refused (PoR status other than 00, or a last status word other than success), unless
    --ok-on-refusal."""
    profile = profile or _global("profile")
    if reader is None and emulator is None:
        reader, emulator = _global("reader"), _global("emulator")
    if card_id is None and emulator is not None and profile is None:
        card_id = str(emulator.resolve())
    keys = resolve_keys(profile, kvn, kic_key, kid_key, kic_algorithm, kid_algorithm, card_id)
    store = CounterStore(counter_store or default_counter_store())
    the_spi = _spi(spi)
    the_tar = _hex(tar, "--tar")
    script = _script(apdus, expanded)
    transport = open_transport(reader, emulator, profile)  # errors: cli/exit_codes.py's table
    trace_file = _global("trace_file")
    if trace_file is not None:
        transport = TracedTransport(transport, trace_file)
    try:
        built = _build(keys, the_spi, the_tar, script, counter, store, "12345678", sim)
        por_ud = exchange(transport, built.envelopes, sim)
        if not por_ud:
            click.echo(json.dumps({"counter": built.counter, "por": None}) if as_json else "no PoR (per the SPI)")
            return
        por, info = parse_por(por_ud, the_spi, keys)
    finally:
        transport.close()
    _print_por(info, as_json)
    why = refusal(por, info)
    if why is not None and not ok_on_refusal:
        fail(None, why, ExitCode.CARD_REFUSED)
