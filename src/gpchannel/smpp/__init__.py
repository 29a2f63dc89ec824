"""SCP80 over SMPP 3.4: the OTA server's SMS link and the handset bridge (I/O: asyncio; the SMPP stack is ours).

- :mod:`~gpchannel.smpp.pdu`: the SMPP 3.4 PDU codec (sans-I/O);
- :mod:`~gpchannel.smpp.session`, :mod:`~gpchannel.smpp.esme`, :mod:`~gpchannel.smpp.smsc`: the session layer, an
  ESME (client) and an SMSC (server) on asyncio;
- :mod:`~gpchannel.smpp.receipt`: esm_class / protocol_id / data_coding of OTA messages, delivery receipts
  (sans-I/O);
- :mod:`~gpchannel.smpp.client`: :class:`OtaSmppClient`, submit_sm of command packets (concatenated when
  needed), PoRs and receipts from deliver_sm;
- :mod:`~gpchannel.smpp.handset`: :class:`HandsetCard`, SMS-DELIVER -> ENVELOPE -> PoR against a transport;
- :mod:`~gpchannel.smpp.bridge`: :class:`HandsetBridge`, the SMPP server in front of a card (or a sink).
"""

from gpchannel.smpp.bridge import BridgeStats, HandsetBridge, deliver_tpdu
from gpchannel.smpp.client import OtaSmppClient, PorMessage, Submitted, command_segments
from gpchannel.smpp.handset import CardOutcome, HandsetCard, submit_in_proactive
from gpchannel.smpp.receipt import DeliveryReceipt, MessageState, is_receipt, receipt_wanted

__all__ = [
    "BridgeStats",
    "CardOutcome",
    "DeliveryReceipt",
    "HandsetBridge",
    "HandsetCard",
    "MessageState",
    "OtaSmppClient",
    "PorMessage",
    "Submitted",
    "command_segments",
    "deliver_tpdu",
    "is_receipt",
    "receipt_wanted",
    "submit_in_proactive",
]
