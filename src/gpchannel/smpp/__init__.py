"""SCP80 over SMPP 3.4: the SMPP adapter (I/O: asyncio; the SMPP stack is ours). It sits with :mod:`gpchannel.io`:
it imports the core and nothing above it; the handsets that answer on the other side (the handset bridge, a
fleet's handsets) are emulation and live in :mod:`gpchannel.emulator`.

- :mod:`~gpchannel.smpp.pdu`: the SMPP 3.4 PDU codec (sans-I/O);
- :mod:`~gpchannel.smpp.session`, :mod:`~gpchannel.smpp.esme`, :mod:`~gpchannel.smpp.smsc`: the session layer, an
  ESME (client) and an SMSC (server) on asyncio;
- :mod:`~gpchannel.smpp.receipt`: esm_class / protocol_id / data_coding of OTA messages, delivery receipts
  (sans-I/O);
- :mod:`~gpchannel.smpp.client`: :class:`OtaSmppClient`, submit_sm of command packets (concatenated when
  needed), PoRs and receipts from deliver_sm.
"""

from gpchannel.smpp.client import OtaSmppClient, PorMessage, Submitted, command_segments
from gpchannel.smpp.receipt import DeliveryReceipt, MessageState, is_receipt, receipt_wanted

__all__ = [
    "DeliveryReceipt",
    "MessageState",
    "OtaSmppClient",
    "PorMessage",
    "Submitted",
    "command_segments",
    "is_receipt",
    "receipt_wanted",
]
