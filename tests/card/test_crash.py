"""SIGKILL the card in the middle of PUT KEY and INSTALL / DELETE, restart it from its state directory, and check
that the state is loadable, whole (the state of just before or just after a command), and usable: a secure
channel opens with the persisted keys and counter. ``GPCHANNEL_KILLS`` sets the number of kills (default 20)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from gpchannel.card.dispatcher import Card
from gpchannel.io.store import DirectoryStore
from tests.card.harness import ECHO_AID, counter_random, open_session, send

_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, ".")
    from gpchannel.card.dispatcher import Card
    from gpchannel.card.profile import load_profile
    from gpchannel.codec.apdu import CommandApdu
    from gpchannel.crypto.keys import KeyType, StaticKeys
    from gpchannel.gp.install import InstallForInstall, InstallParameters
    from gpchannel.gp.privileges import Privileges
    from gpchannel.codec.tlv import tlv
    from gpchannel.io.store import DirectoryStore
    from gpchannel.scp.put_key import PutKeyData, put_key_command
    from tests.card.harness import ECHO_AID, counter_random, open_session, profile_text, secure

    from gpchannel.card.state import LoadFile

    PACKAGE, MODULE = bytes.fromhex("A0000000620301"), bytes.fromhex("A000000062030101")

    def initial():
        state = load_profile(profile_text())
        state.load_files.append(LoadFile(PACKAGE, state.isd_aid, [MODULE]))
        return state

    store = DirectoryStore(sys.argv[1])
    card = Card.from_store(store, initial, random=counter_random())
    host = open_session(card, "03", 0x03)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        key = bytes([n % 256]) * 16
        data = PutKeyData.from_static_keys(StaticKeys.single(key, 0x31, KeyType.AES), host.encrypt_key)
        has = card.state.isd.sd.keyset(0x31) is not None
        assert secure(card, host, put_key_command(data, key_id=1, old_kvn=0x31 if has else 0)).sw == 0x9000
        instance = bytes.fromhex("A0000000871002FF49FF0590")
        params = InstallParameters().to_bytes()
        install = InstallForInstall(PACKAGE, MODULE, instance, Privileges(), params)
        if card.state.application(instance) is None:
            cmd = CommandApdu(0x80, 0xE6, 0x0C, 0x00, install.to_bytes(), le=256)
        else:
            cmd = CommandApdu(0x80, 0xE4, 0x00, 0x00, tlv(0x4F, instance), le=256)
        assert secure(card, host, cmd).sw == 0x9000, n
    """
)


def test_sigkill_during_put_key_and_install(tmp_path: Path) -> None:
    kills = int(os.environ.get("GPCHANNEL_KILLS", "20"))
    root = Path(__file__).resolve().parents[2]
    store = DirectoryStore(tmp_path)
    seen_keys: set[bytes] = set()
    for round_ in range(kills):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path)], cwd=root, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", "the card did not start from its state directory"
        try:
            child.wait(timeout=0.01 * (1 + round_ % 5))
        except subprocess.TimeoutExpired:
            pass
        assert child.returncode is None, "the child stopped on its own (a failed command)"
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = store.load()
        assert state is not None and state.isd.sd is not None
        keyset = state.isd.sd.keyset(0x31)
        if keyset is not None:
            assert keyset.enc == keyset.mac == keyset.dek and len(set(keyset.enc)) == 1  # never half a PUT KEY
            seen_keys.add(keyset.enc)
        card = Card(state, store, random=counter_random())
        host = open_session(card, "03", 0x01)  # the persisted counter and keys still open a channel
        assert host.is_open
        assert send(card, "00A404000C" + ECHO_AID.hex()).sw == 0x9000
    assert seen_keys, "no PUT KEY was ever committed"
