"""ctl messages: one parser and a verb table, after Plan 9's Cmdtab.

A ctl write is text, one verb per line: `verb arg…`. The table says how many
arguments each verb takes, which handler runs it and a one-line help; reading the
ctl file prints that help from the same table. Parsing is pure and refuses bad input
before any handler runs, quoting what it refused.

Words are split as sh splits them (QUOTING), so a host path with spaces can be an
argument: `import "/tmp/a b/x.tar" REF`; Python's shlex.quote makes such a word.
"""

import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from base.errors import InvalidArgument
from mountpoint.scope import Scope
from mountpoint.services import Services

QUOTING = "words split as in sh: \"a b\" or 'a b' is one word, \\ quotes the next character"
"""How a line is split, said once for `cat ctl` and the reference."""

_WORD = re.compile(r"""(?:[^\s'"\\]+|'[^']*'|"(?:[^"\\]|\\.)*"|\\.)+""", re.DOTALL)
_PART = re.compile(r"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\\(.)|([^'"\\]+)""", re.DOTALL)
_ESCAPED = re.compile(r'\\([\\"])')  # within "…" a backslash keeps only these, as in sh


def split_words(text: str, limit: int | None = None) -> list[str]:
    """The words of `text`, quotes removed, as sh splits them; with `limit`, the
    limit-th word is the rest of the text as it is (a verb's JSON)."""
    words: list[str] = []
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return words
        if limit is not None and len(words) == limit - 1:
            return [*words, text[at:].rstrip()]
        word = _WORD.match(text, at)
        if word is None:
            raise InvalidArgument(f"unfinished quote or escape: {text[at:at + 80]}")
        if word.end() < len(text) and not text[word.end()].isspace():
            raise InvalidArgument(f"unfinished quote or escape: {text[at:at + 80]}")
        words.append(_unquoted(word.group()))
        at = word.end()


def _unquoted(word: str) -> str:
    parts = []
    for part in _PART.finditer(word):
        single, double, escaped, plain = part.groups()
        if single is not None:
            parts.append(single)
        elif double is not None:
            parts.append(_ESCAPED.sub(r"\1", double))
        else:
            parts.append(escaped if escaped is not None else plain)
    return "".join(parts)


# A verb's handler: the services, the ctl file's scope and the verb's arguments. A
# lambda over an async service call is one: `lambda app, s, args: app.cas.abort(args[0])`.
Handler = Callable[[Services, Scope, list[str]], Awaitable[None]]

WRITER_UID: ContextVar[int] = ContextVar("WRITER_UID")
"""While a verb runs: the uid of the process whose write of the ctl file sent it (its
open's FUSE request), for a verb that reads a file the line names on the writer's
behalf (pull's credentials=FILE) and must take only what the writer may read."""


@dataclass(frozen=True)
class Verb:
    """One ctl verb. `usage` names the arguments (`REF [TARGET_REF]`); brackets mark
    optional ones. With `rest`, the last argument takes the rest of the line as is
    (JSON, say)."""

    name: str
    usage: str
    help: str
    handler: Handler
    rest: bool = False

    @property
    def synopsis(self) -> str:
        """`name usage`: how `cat ctl`, a refused count and the reference show the verb."""
        return f"{self.name} {self.usage}".strip()

    @property
    def min_args(self) -> int:
        return sum(1 for word in self.usage.split() if not word.startswith("["))

    @property
    def max_args(self) -> int | None:
        words = self.usage.split()
        return None if any(w.endswith("...]") or w.endswith("…]") for w in words) else len(words)


class VerbTable:
    """The verbs a ctl file accepts."""

    def __init__(self, *verbs: Verb) -> None:
        self.verbs = {verb.name: verb for verb in verbs}
        width = max((len(v.synopsis) for v in self.verbs.values()), default=0)
        lines = "".join(f"{v.synopsis:<{width}}  {v.help}\n" for v in self.verbs.values())
        self._help = f"{lines}# {QUOTING}\n"

    def help(self) -> str:
        """What `cat ctl` prints: one verb a line with its usage and help (made once:
        each stat of a ctl file renders it)."""
        return self._help

    def parse(self, line: str) -> tuple[Verb, list[str]]:
        """Split one line into its verb and arguments, checking the argument count."""
        words = line.split(None, 1)  # a verb name is never quoted
        if not words:
            raise InvalidArgument("empty ctl message")
        verb = self.verbs.get(words[0])
        if verb is None:
            known = ", ".join(self.verbs)
            raise InvalidArgument(f"unknown control message (verbs: {known})")
        rest = words[1] if len(words) > 1 else ""
        max_args = verb.max_args
        args = split_words(rest, max_args if verb.rest else None)
        if len(args) < verb.min_args or (max_args is not None and len(args) > max_args):
            raise InvalidArgument(f"bad arguments: usage: {verb.synopsis}")
        return verb, args

