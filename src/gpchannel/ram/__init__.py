"""GP Amendment B "RAM over HTTP" admin protocol (SCP81's HTTP layer), sans-I/O: the vocabulary (admin), the RAS
side of a connection (server), the card side (client) and the Administration Session Triggering Parameters
(trigger). TLS lives in gpchannel.io.tls_psk; the scripts themselves in gpchannel.ota.remote_apdu."""

from __future__ import annotations

from gpchannel.ram.admin import ADMIN_PROTOCOL, ContentFamily, ContentType, ScriptStatus, TargetedApplication
from gpchannel.ram.client import AdminClientConnection, AdminServerError, ScriptDelivery, SessionEnd
from gpchannel.ram.server import AdminRequest, AdminServerConnection
from gpchannel.ram.trigger import RetryPolicy, TimerCoding, TriggerParameters

__all__ = [
    "ADMIN_PROTOCOL",
    "AdminClientConnection",
    "AdminRequest",
    "AdminServerConnection",
    "AdminServerError",
    "ContentFamily",
    "ContentType",
    "RetryPolicy",
    "ScriptDelivery",
    "ScriptStatus",
    "SessionEnd",
    "TargetedApplication",
    "TimerCoding",
    "TriggerParameters",
]
