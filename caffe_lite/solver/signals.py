"""SIGINT / SIGHUP during solve(): Caffe's sigint_effect / sighup_effect.

The handler only records the signal; the solver asks for the requested action
after each iteration (and between test batches), so a snapshot is never taken
half-way through an update. A second SIGINT while a stop is pending raises
KeyboardInterrupt, for when an iteration takes too long to wait for.
"""
import contextlib
import signal
import threading

from ..errors import SolverError

NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"
EFFECTS = (NONE, STOP, SNAPSHOT)


def check_effect(value, flag):
    if value not in EFFECTS:
        raise SolverError(f"{flag} must be one of {', '.join(EFFECTS)}, got '{value}'")
    return value


class SignalActions:
    """Turns received signals into solver actions (Caffe's SignalHandler)."""

    def __init__(self, sigint_effect=STOP, sighup_effect=SNAPSHOT):
        self.effects = {"SIGINT": check_effect(sigint_effect, "sigint_effect"),
                        "SIGHUP": check_effect(sighup_effect, "sighup_effect")}
        self.pending = []

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if name == "SIGINT" and self.effects["SIGINT"] == STOP and "SIGINT" in self.pending:
            raise KeyboardInterrupt
        self.pending.append(name)

    def requested_action(self):
        """The action of the oldest pending signal (SIGHUP first, as in Caffe)."""
        for name in ("SIGHUP", "SIGINT"):
            if name in self.pending:
                self.pending.remove(name)
                return self.effects[name]
        return NONE

    @contextlib.contextmanager
    def installed(self):
        """Hook the handlers for the duration (main thread only; else a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        names = [n for n in ("SIGINT", "SIGHUP") if hasattr(signal, n)]
        previous = {n: signal.signal(getattr(signal, n), self._handle) for n in names}
        try:
            yield self
        finally:
            for name, handler in previous.items():
                signal.signal(getattr(signal, name), handler)
