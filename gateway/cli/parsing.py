"""The command line as people type it: connection options before or after the command, and parse
errors that never repeat what was typed.

- The options every terminal command shares (`--target`, `--cert`, `--staff-token`, ...) are
  accepted before the command (`hallgate --target X kiosk request-code N`), after the command group
  (`hallgate kiosk --target X request-code N`) and after the command (`hallgate kiosk request-code N
  --target X`). The later, more specific one wins.
- A parse error never echoes a value: a token pasted in the wrong place, a password given as a
  command, a secret after a flag that takes none. It names the position of the word (the first
  word after `hallgate` is position 1) or the option instead.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

# The options the terminal commands share, each taking one value.
CONNECTION_OPTIONS = ("--target", "--cert", "--staff-token", "--data-dir", "--ca", "--insecure-dev-identity")
SHARED_TITLE = "connection options (also accepted before the command, or after its group)"

_OPTION_NAME = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*")
_QUOTED = r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
_INVALID_CHOICE = re.compile(r"invalid choice: " + _QUOTED)
_INVALID_VALUE = re.compile(r"invalid (.{1,40}?) value: " + _QUOTED)
_IGNORED = re.compile(r"ignored explicit argument " + _QUOTED)
_AMBIGUOUS = re.compile(r"ambiguous option: (\S+) could match")

_argv: list[str] = []  # the command line being parsed, as typed (for positions)
_root: argparse.ArgumentParser | None = None


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through add_subparsers, every parser below it) whose errors name
    positions and options, never the values typed."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error("unrecognized arguments: " + "; ".join(describe_words(extras)))
        return parsed

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {scrub(message)}\n")


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`argv` parsed by `parser`, connection options before the command moved to its end."""
    global _argv, _root
    _argv, _root = list(argv), parser
    return parser.parse_args(hoist(argv, parser))  # type: ignore[no-any-return]


def hoist(argv: list[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Connection options typed before the command, moved after it: right after the command's group
    when the group takes them (`--target X kiosk calls ...` is `kiosk --target X calls ...`, so a
    value given after the group or the command wins), else at the end (before any `--`). Without a
    command, `argv` as it is."""
    i, moved = 0, []
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name not in CONNECTION_OPTIONS:
            break
        width = 1 if "=" in argv[i] else 2
        moved += argv[i:i + width]
        i += width
    rest = argv[i:]
    if not moved or not rest or rest[0].startswith("-"):
        return argv
    group = next((child for name, child in _named_children(parser) if name == rest[0]), None) if parser else None
    if group is not None:
        options = {s for a in group._actions for s in a.option_strings}
        if all(word.split("=", 1)[0] in options for word in moved if word.startswith("--")):
            return rest[:1] + moved + rest[1:]
    if "--" in rest:
        k = rest.index("--")
        return rest[:k] + moved + rest[k:]
    return rest + moved


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The connection options on `hallgate` itself, for its --help (they are moved after the command
    before parsing)."""
    group = parser.add_argument_group("connection options (before or after the command, for the terminal "
                                      "commands: kiosk, clerk, legal, lending, audit, incident, health)")
    for name, helptext in (("--target", "gateway address [HALLGATE_TARGET, default 127.0.0.1:50051]"),
                           ("--cert", "terminal certificate: a name in <data-dir>/pki or a path to NAME.crt "
                                      "[HALLGATE_CLIENT_CERT; each command has its terminal's default]"),
                           ("--staff-token", "staff token from `hallgate <group> sign-in` [HALLGATE_STAFF_TOKEN]"),
                           ("--data-dir", "where `make run` put the development PKI [HALLGATE_DATA_DIR]"),
                           ("--ca", "CA bundle the gateway's certificate chains to [default <data-dir>/pki/ca.crt]"),
                           ("--insecure-dev-identity", "development only: plaintext, presenting this SPIFFE ID")):
        group.add_argument(name, default=argparse.SUPPRESS, help=helptext)


def share_connection_options(parser: argparse.ArgumentParser) -> None:
    """Every command of a group that has connection options accepts them after the command too:
    the same options, set only when given there (so the group's value stands otherwise)."""
    for group in _children(parser):
        shared = [a for a in group._actions if set(a.option_strings) & set(CONNECTION_OPTIONS)]
        if not shared:
            continue
        for leaf in _children(group):
            have = {s for a in leaf._actions for s in a.option_strings}
            todo = [a for a in shared if not set(a.option_strings) & have]
            if not todo:
                continue
            section = leaf.add_argument_group(SHARED_TITLE)
            for a in todo:
                section.add_argument(*a.option_strings, dest=a.dest, default=argparse.SUPPRESS, help=a.help,
                                     metavar=a.metavar)


def _children(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    seen: set[int] = set()
    for _, child in _named_children(parser):
        if id(child) not in seen:
            seen.add(id(child))
            yield child


def _named_children(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


# --- errors that name positions, never values ------------------------------------------------------


def position(word: str, taken: set[int] | None = None) -> int | None:
    """The 1-based position of `word` on the command line as typed (the first not in `taken`)."""
    for i, typed in enumerate(_argv):
        if (typed == word or typed.split("=", 1)[-1] == word) and (taken is None or i not in taken):
            if taken is not None:
                taken.add(i)
            return i + 1
    return None


def _where(word: str, taken: set[int] | None = None) -> str:
    at = position(word, taken)
    return f"the word at position {at} (not shown)" if at else "a word (not shown)"


def describe_words(words: list[str]) -> list[str]:
    """Unrecognized words, each as the option it is or its position: never the word itself."""
    taken: set[int] = set()
    out = []
    for word in words:
        name = word.split("=", 1)[0]
        if word.startswith("-") and _OPTION_NAME.fullmatch(name):
            at = position(word, taken)
            out.append(f"option {name}" + (" with a value (not shown)" if "=" in word else "")
                       + (f" at position {at}" if at else ""))
        else:
            out.append(_where(word, taken))
    return out


def _literal(quoted: str) -> str:
    try:
        return str(ast.literal_eval(quoted))
    except (ValueError, SyntaxError):
        return quoted[1:-1]


def scrub(message: str) -> str:
    """An argparse error message without any value that was typed."""
    message = _INVALID_CHOICE.sub(lambda m: f"invalid choice: {_where(_literal(m.group(1)))}", message)
    message = _INVALID_VALUE.sub(lambda m: f"invalid {m.group(1)} value: {_where(_literal(m.group(2)))}", message)
    message = _IGNORED.sub(lambda m: f"ignored explicit argument: {_where(_literal(m.group(1)))}", message)
    message = _AMBIGUOUS.sub(lambda m: f"ambiguous option: {m.group(1).split('=', 1)[0]} could match", message)
    known = _known_words()
    for i, typed in enumerate(_argv):  # anything else typed that the message would repeat
        for word in {typed, typed.split("=", 1)[-1]}:
            if len(word) >= 4 and word not in known and word in message:
                message = message.replace(word, f"(the word at position {i + 1}, not shown)")
    return message


def _known_words() -> set[str]:
    """Every option, command and choice of the parser tree: safe to show, and shown in usage."""
    words: set[str] = set()
    stack = [_root] if _root is not None else []
    while stack:
        p = stack.pop()
        words.add(p.prog)
        words.update(p.prog.split())
        for a in p._actions:
            words.update(a.option_strings)
            if a.dest:
                words.add(a.dest)
            if a.metavar:
                words.add(str(a.metavar))
            if isinstance(a, argparse._SubParsersAction):
                words.update(a.choices)
                stack.extend(a.choices.values())
            elif a.choices:
                words.update(str(c) for c in a.choices)
    return words
