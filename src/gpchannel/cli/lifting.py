"""Global options after the command, as GlobalPlatformPro users type them.

``gpchannel list --reader X -k KEY`` is read as ``gpchannel --reader X -k KEY list``: before click parses the
command line, :class:`LiftingGroup` moves every global option (with its value) that appears after the command to
the front. An option the command itself defines keeps its place and its meaning (``card serve --trace`` is the
emulator's trace, ``ota send --reader`` the OTA command's reader); an unknown option stays where it is, so click
still refuses it with its usual message. Everything after ``--`` is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from gpchannel.cli.guard import GuardedGroup

__all__ = ["LiftingGroup", "lift_global_options"]


def _arity(command: click.Command, ctx: click.Context) -> dict[str, bool]:
    """Option name -> whether it takes a value, for ``command``'s own options (its help option included)."""
    out: dict[str, bool] = {name: False for name in ctx.help_option_names}
    for param in command.params:
        if isinstance(param, click.Option):
            takes = not (param.is_flag or param.count)
            for name in (*param.opts, *param.secondary_opts):
                out[name] = takes
    return out


def _split(word: str) -> tuple[str, str | None]:
    """``--reader=X`` -> (``--reader``, ``X``); ``-rX`` -> (``-r``, ``X``); ``--reader`` -> (``--reader``, None)."""
    if word.startswith("--"):
        name, sep, value = word.partition("=")
        return name, (value if sep else None)
    if len(word) > 2:
        return word[:2], word[2:]
    return word, None


def _is_option(word: str) -> bool:
    return word.startswith("-") and word != "-" and not _looks_negative(word)


def _looks_negative(word: str) -> bool:
    """``-1`` is a value (a negative number), not an option."""
    return len(word) > 1 and (word[1].isdigit() or word[1] == ".")


def lift_global_options(group: click.Group, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """``args`` with the group's options that follow a subcommand moved before it (see the module docstring)."""
    args = list(args)
    globals_ = _arity(group, ctx)
    lifted: list[str] = []
    kept: list[str] = []
    command: click.Command = group
    own = globals_
    i = 0
    in_subcommand = False
    command_at = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            kept += args[i:]
            break
        if _is_option(word):
            name, attached = _split(word)
            if name in own:
                takes = own[name]
                width = 2 if takes and attached is None and i + 1 < len(args) else 1
                kept += args[i : i + width]
                i += width
                continue
            if in_subcommand and name in globals_:
                takes = globals_[name]
                width = 2 if takes and attached is None and i + 1 < len(args) else 1
                lifted += args[i : i + width]
                i += width
                continue
            kept.append(word)  # unknown here: click says so
            i += 1
            continue
        if isinstance(command, click.Group):
            sub = command.get_command(ctx, word)
            if sub is not None:
                if not in_subcommand:
                    command_at = len(kept)
                command = sub
                own = _arity(sub, ctx)
                in_subcommand = True
        kept.append(word)
        i += 1
    if not lifted:
        return args
    # The leading global options, then the lifted ones (a repeated option: the later one wins, as typed), then
    # the command and its own arguments.
    return kept[:command_at] + lifted + kept[command_at:]


class LiftingGroup(GuardedGroup):
    """The root group: global options are accepted after the command too (:func:`lift_global_options`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, lift_global_options(self, ctx, args))
