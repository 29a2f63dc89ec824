"""The host's DELETE [key] and GENERATE KEY commands, byte for byte as GP 2.3.1 Table 11-24 and yubikit's
SecurityDomainSession send them (the expected bytes are written here, not computed by the code under test)."""

from __future__ import annotations

import pytest

from gpchannel.host.sd_keys import delete_key_command, generate_key_command


def test_delete_key_command() -> None:
    assert delete_key_command(0x13, 0x02).to_bytes() == bytes.fromhex("80E4000006D00113D2010200")
    assert delete_key_command(None, 0x30, last=True).to_bytes() == bytes.fromhex("80E4000103D2013000")
    assert delete_key_command(0x10, None, channel=1).to_bytes() == bytes.fromhex("81E4000003D0011000")
    with pytest.raises(ValueError):
        delete_key_command(None, None)
    with pytest.raises(ValueError):
        delete_key_command(0x100, None)


def test_generate_key_command() -> None:
    assert generate_key_command(0x13, 0x02).to_bytes() == bytes.fromhex("80F1001304 02F0010000".replace(" ", ""))
    assert generate_key_command(0x11, 0x03, "P-384", replace_kvn=0x01).to_bytes() == bytes.fromhex(
        "80F101110403F0010100"
    )
    with pytest.raises(ValueError):
        generate_key_command(0x13, 0x02, "P-999")
