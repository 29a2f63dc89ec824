"""What an admin session's answers mean for its job (GP Amendment B 3, ETSI TS 102 226 5.2.2): the results of a
response script, and which SENT jobs an admin session sent (not the SMS fallback of a scp81+sms campaign)."""

from __future__ import annotations

from gpchannel.errors import DecodeError
from gpchannel.ota.remote_apdu import BadFormat, ResponseScript
from gpchannel.server.repository import SCP81_TRANSPORTS, ApduResult, JobRecord, JobState

__all__ = ["SMS_DELIVERY_PREFIX", "admin_delivery", "partial_results", "results_of"]

SMS_DELIVERY_PREFIX = "sms-"
"""Delivery ids of jobs sent by SMS (SCP80; the scp81+sms fallback), which admin sessions leave alone."""


def results_of(job: JobRecord, script: ResponseScript) -> tuple[tuple[ApduResult, ...], JobState, str | None]:
    """Pair the job's C-APDUs with the card's R-APDUs (TS 102 226 5.2.2) -> (results, state, reason).

    ``done`` when the card answered every command (whatever their status words: they are the results); ``failed``
    with the reason when it stopped early (an error action, or a failing command), reported a bad format TLV, or
    answered more commands than the script had. The results that were answered are kept in every case.
    """
    responses = script.responses
    total = len(job.script)
    results = tuple(ApduResult(job.script[i], r.data, r.sw) for i, r in enumerate(responses[:total]))
    bad = [item for item in script.items if isinstance(item, BadFormat)]
    if bad:
        return results, JobState.FAILED, f"the card reported a bad format TLV (90 {bad[0].value.hex().upper()})"
    if len(responses) > total:
        return results, JobState.FAILED, f"the response script holds {len(responses)} R-APDUs for {total} commands"
    executed = script.executed if script.executed is not None else len(responses)
    if executed < total or len(responses) < total:
        done = min(executed, len(responses))
        last = f" (last status {responses[done - 1].sw:04X})" if 0 < done <= len(responses) else ""
        return results, JobState.FAILED, f"the card stopped after {done} of {total} commands{last}"
    return results, JobState.DONE, None


def partial_results(job: JobRecord, body: bytes) -> tuple[ApduResult, ...]:
    """The results a non-``ok`` POST may carry (the SE admin agent variant sends those of the commands it ran
    before the failure; Amendment B's card sends no body): kept when they parse, else none."""
    if not body:
        return ()
    try:
        return results_of(job, ResponseScript.from_bytes(body))[0]
    except DecodeError:
        return ()


def admin_delivery(job: JobRecord) -> bool:
    """Whether the job's delivery is an admin session's (not an SMS one: scp80_worker's ids start ``sms-``)."""
    return job.transport in SCP81_TRANSPORTS and not (job.delivery_id or "sms-").startswith(SMS_DELIVERY_PREFIX)
