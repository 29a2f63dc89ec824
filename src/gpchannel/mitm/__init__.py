"""An attacker in the middle, to show what each security level of a secure channel stops.

The attacker sits on the line between the host (the server) and the card and acts on the wire bytes only: it
never holds a key. :mod:`gpchannel.mitm.attacks` is the attacker itself (a transport wrapper around any
transport: the emulator in memory or a card behind PC/SC); :mod:`gpchannel.mitm.scenario` runs each attack
against a live SCP02 / SCP03 session with the emulator and judges what happened; :mod:`gpchannel.mitm.scp80`
does the same for SCP80 secured SMS packets; :mod:`gpchannel.mitm.report` prints the tables.

The three security services of GlobalPlatform (GP Card Specification 2.3.1, 10.1 and 10.2) are what stops the
attacks: entity authentication (INITIALIZE UPDATE and EXTERNAL AUTHENTICATE), integrity and data-origin
authentication (C-MAC / R-MAC, chained), and confidentiality (C-DECRYPTION / R-ENCRYPTION).
"""

from gpchannel.mitm.attacks import Attack, MitmTransport, Service, WireEvent

__all__ = ["Attack", "MitmTransport", "Service", "WireEvent"]
