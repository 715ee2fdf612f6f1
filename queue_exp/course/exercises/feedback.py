"""What a check answers: :class:`Feedback`, a short list of what is right (✓),
what is wrong (✗) and a hint, shown as Markdown in a notebook and as plain text
anywhere else (both deterministic, so nbval can compare them).

Also the guards every check needs: :func:`run_learner_code` runs the
learner's function in a thread with a time limit and catches what it raises,
:func:`friendly_errors` turns an unreachable broker into a Feedback that
says how to start it, instead of a traceback, and :func:`helpers_used` finds
the course's own helpers in a learner's function (an exercise that asks for
client code is not answered by one call to a helper that does it all).
"""

from __future__ import annotations

import dis
import functools
import logging
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

from queue_exp.clients.rabbitmq_management import ManagementUnavailable
from queue_exp.config import Settings
from queue_exp.course.exercises.probes import texts_of
from queue_exp.errors import BrokerUnavailable

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., "Feedback"])


@dataclass
class Feedback:
    """The answer of one ``check_…()``: passed when nothing is wrong (and something
    was checked at all)."""

    title: str
    right: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    hint: str | None = None

    def ok(self, text: str) -> Feedback:
        self.right.append(text)
        return self

    def fail(self, text: str, hint: str | None = None) -> Feedback:
        """Record something wrong; the first hint given is the one shown."""
        self.wrong.append(text)
        if hint and not self.hint:
            self.hint = hint
        return self

    @property
    def passed(self) -> bool:
        return bool(self.right) and not self.wrong

    def __bool__(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        return "✓ Well done" if self.passed else "Not yet"

    @property
    def text(self) -> str:
        """Everything the feedback says, in one string (what tests search)."""
        return str(self)

    def __str__(self) -> str:
        lines = [f"{self.verdict}: {self.title}"]
        lines += [f"  ✓ {item}" for item in self.right]
        lines += [f"  ✗ {item}" for item in self.wrong]
        if self.hint and not self.passed:
            lines.append(f"  Hint: {self.hint}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        lines = [f"**{self.verdict}: {_md(self.title)}**", ""]
        lines += [f"- ✓ {_md(item)}" for item in self.right]
        lines += [f"- ✗ {_md(item)}" for item in self.wrong]
        if self.hint and not self.passed:
            # folded: the learner opens it when they want it, not before
            lines += ["", "<details><summary>💡 Hint</summary>", "", _md(self.hint), "",
                      "</details>"]
        return "\n".join(lines)


def _md(text: str) -> str:
    """``text`` for Markdown: ``*`` and ``_`` outside `code spans` are literal (a
    binding key like '*.critical' must not start italics)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[i] = parts[i].replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_")
    return "`".join(parts)


def friendly_errors(check: F) -> F:
    """A broker that cannot be reached is not the learner's mistake: answer with a
    Feedback that says so and how to start it."""

    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> Feedback:
        try:
            return check(*args, **kwargs)
        except (BrokerUnavailable, ManagementUnavailable) as exc:
            title = (check.__doc__ or check.__name__).strip().splitlines()[0]
            return Feedback(title).fail(
                f"the check could not reach a broker: {exc}",
                "start the brokers (`make brokers`), then run the setup cell and this one again",
            )

    return wrapper  # type: ignore[return-value]


@dataclass
class LearnerRun:
    """What happened when the learner's code ran: its return value, or the
    exception it raised, or that it did not finish in time."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def finished(self) -> bool:
        return self.error is None and not self.timed_out


def run_learner_code(function: Callable[..., Any], *args: Any, timeout_s: float = 15.0
                     ) -> LearnerRun:
    """Call ``function(*args)`` in a daemon thread and wait at most ``timeout_s``.

    Python cannot stop a thread from outside: if the learner's code never
    returns, it keeps running in the background (the feedback says so)."""
    run = LearnerRun()

    def target() -> None:
        try:
            run.value = function(*args)
        except (Exception, SystemExit) as exc:  # the learner's mistake, explained by the check
            run.error = exc

    thread = threading.Thread(target=target, name="queue_exp-exercise", daemon=True)
    thread.start()
    thread.join(timeout_s)
    run.timed_out = thread.is_alive()
    if run.timed_out:
        log.warning("%s did not return within %s s", getattr(function, "__name__", "?"),
                    timeout_s)
    return run


# where the course's helpers live: they do in one call what an exercise asks the
# learner to write with the clients (queue_exp.config, the settings, is fine to use)
HELPER_PACKAGES = ("queue_exp.course", "queue_exp.clients")


def _is_helper(obj: Any) -> bool:
    if isinstance(obj, types.ModuleType):
        module = obj.__name__
    elif isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        module = getattr(obj, "__module__", None) or ""
    else:
        return False  # a value (a task, the settings, a client object): not a helper
    return module == "queue_exp" or any(module == package or module.startswith(package + ".")
                                        for package in HELPER_PACKAGES)


def helpers_used(function: Any) -> list[str]:
    """The course's helpers that ``function`` calls, as written in its code
    (``kl.read_to_end``, ``kafka_admin.group_offsets``): looked up in the names
    its code loads, and in the learner's own functions it calls. Sorted, no repeats."""
    found: set[str] = set()
    seen: set[int] = set()

    def visit(fn: Any) -> None:
        code = getattr(fn, "__code__", None)
        if code is None or id(code) in seen:
            return
        seen.add(id(code))
        names = dict(getattr(fn, "__globals__", {}))
        cells = zip(code.co_freevars, getattr(fn, "__closure__", None) or (), strict=False)
        for name, cell in cells:
            try:
                names[name] = cell.cell_contents
            except ValueError:  # a closure variable not assigned yet
                pass
        for inner in _code_objects(code):
            instructions = list(dis.get_instructions(inner))
            for i, ins in enumerate(instructions):
                if ins.opname not in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF"):
                    continue
                obj = names.get(ins.argval)
                if _is_helper(obj):
                    nxt = instructions[i + 1] if i + 1 < len(instructions) else None
                    attribute = nxt is not None and nxt.opname in ("LOAD_ATTR", "LOAD_METHOD")
                    found.add(f"{ins.argval}.{nxt.argval}" if attribute else ins.argval)
                elif isinstance(obj, types.FunctionType) and obj.__globals__ is fn.__globals__:
                    visit(obj)  # another function of the learner's: look inside it too

    visit(function)
    return sorted(found)


class Named:
    """A task whose full names start with its settings' namespace (a dataclass with a
    ``settings`` field); ``label`` shortens every such name in a text."""

    settings: Settings

    def label(self, text: str) -> str:
        return text.replace(self.settings.namespace + ".", "")


def unusable(fb: Feedback, name: str, function: Any, signature: str, hint: str | None = None,
             client: str = "the client") -> bool:
    """Fail ``fb`` (and return True) if the learner's ``function`` is not a function
    (``signature`` says how to define it) or, where a ``hint`` is given, if it calls
    the course's helpers (:func:`refuse_helpers`)."""
    if not callable(function):
        fb.fail(f"`{name}` is not a function", f"define `{signature}`")
        return True
    return hint is not None and refuse_helpers(fb, name, function, hint, client)


def returned_texts(fb: Feedback, call: str, value: Any, hint: str) -> list[str] | None:
    """The texts of the messages a learner's ``call`` returned, or ``None`` with ``fb``
    failed: it returned ``None``, or something that is not a list of messages or texts."""
    texts = texts_of(value)
    if value is None:
        fb.fail(f"`{call}` returned None", hint)
    elif texts is None:
        fb.fail(f"`{call.split('(')[0]}` returned {kind(value)}; expected a list of the "
                "messages' texts (or of the messages)", hint)
    return texts


def refuse_helpers(fb: Feedback, name: str, function: Any, hint: str,
                   client: str = "the client") -> bool:
    """Fail ``fb`` (and return True) if the learner's ``function`` calls the course's
    helpers: the exercise asks for the client code they would hide."""
    used = helpers_used(function)
    if used:
        fb.fail(f"`{name}` calls the course's {'helper' if len(used) == 1 else 'helpers'} "
                f"{', '.join(f'`{u}`' for u in used)}, which would do the exercise for you; "
                f"write it with {client} itself", hint)
    return bool(used)


def _code_objects(code: types.CodeType) -> list[types.CodeType]:
    """``code`` and every code object nested in it (comprehensions, lambdas, inner defs)."""
    out = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out += _code_objects(const)
    return out


def describe_error(exc: BaseException, shorten: Callable[[str], str] = str) -> str:
    """``ValueError: bad input``, at most 200 characters, names shortened."""
    text = shorten(f"{type(exc).__name__}: {exc}".strip().rstrip(":"))
    return text if len(text) <= 200 else text[:197] + "…"


def not_finished(fb: Feedback, name: str, run: LearnerRun, timeout_s: float,
                 shorten: Callable[[str], str] = str, waits_hint: str = "") -> Feedback:
    """Fill ``fb`` for a learner function that raised or did not return."""
    if run.timed_out:
        return fb.fail(
            f"`{name}` did not return within {timeout_s:g} seconds; it is still running in "
            "the background (restart the kernel to stop it)",
            waits_hint or "every loop that waits for a broker needs an end: a time limit, "
            "or a count of what it expects",
        )
    assert run.error is not None
    hint = f"call `{name}` in a cell of its own to see where (the whole traceback)"
    if _missing_topic(run.error):
        hint = ("Kafka found no such topic: the course's broker does not create topics "
                "on first use, so check the name, or create the topic first "
                "(`kafka_admin.create_topic(name, partitions=…)`); " + hint)
    return fb.fail(f"`{name}` raised {describe_error(run.error, shorten)}", hint)


def _missing_topic(exc: BaseException) -> bool:
    """kafka-python's answer to a send to a topic the broker does not have: it waits
    for the topic's metadata until ``max_block_ms`` runs out."""
    return type(exc).__name__ == "KafkaTimeoutError" and "update metadata" in str(exc)


def kind(value: Any) -> str:
    """``kind(3)`` -> ``an int``, ``kind([])`` -> ``a list``: what a learner's answer is."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``count(1, "message")`` -> ``1 message``; ``count(3, "message")`` -> ``3 messages``."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def quoted(items: list[Any]) -> str:
    """``['a', 'b']`` -> ``'a', 'b'``; ``[]`` -> ``nothing``."""
    return ", ".join(f"'{item}'" for item in items) if items else "nothing"
