"""Helpers for tests that signal an `asyncrl train` subprocess."""
import signal


def sigint_as_at_a_terminal() -> None:
    """Popen preexec_fn: SIGINT back to its default in the child. A shell that starts a job
    in the background (`make test &`, nohup) makes it ignore SIGINT, children inherit that,
    and Python then installs no KeyboardInterrupt handler; these tests send SIGINT as
    Ctrl-C at a terminal does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
