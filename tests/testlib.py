"""What every Python test driver shares: the failure type, the check that
raises it, and tying a helper process's life to the test's."""

import ctypes
import signal


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def die_with_parent():
    """preexec_fn for subprocess: SIGKILL this child when the test dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
