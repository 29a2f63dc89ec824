"""A seeded, time-bounded, reproducible mutation fuzzer over every input gpchannel takes from outside.

The rule it checks (design.md): a parser returns a value or raises the project's documented error (a
:class:`~gpchannel.errors.GPChannelError` subclass, or what the target's table row documents); the card answers
a status word. Anything else is a finding: printed with the target, the seed, the input's index and its hex, and
written to a reproducer file.

Run: ``python -m fuzz --seed 1 --seconds 60 --inputs 100000`` (``make fuzz`` with FUZZ_SEED, FUZZ_SECONDS,
FUZZ_INPUTS); ``python -m fuzz --replay FILE`` runs one reproducer again. Every input is a pure function of
(seed, target, index), so a finding reproduces from those three alone.
"""
