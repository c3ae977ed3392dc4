"""Errors that reach the user as one clear line.

Anything raised as `ProbelabError` is a problem with the user's input or machine
(a missing option, an unreachable cluster, a port in use). The CLI prints its message
and exits non-zero instead of showing a traceback; the pytest plugin fails the run with it.
"""


class ProbelabError(Exception):
    """A failure the user can act on; the message is the whole story."""

    exit_code = 2


class WaitTimeout(AssertionError):
    """A condition did not hold by its deadline.

    An AssertionError, so pytest reports it as a failed assertion together with the
    timeline the message carries.
    """


class WaitAborted(AssertionError):
    """A wait whose condition can no longer hold (its pod or namespace is being deleted,
    its pod was replaced) fails at once instead of at its deadline.

    Not a WaitTimeout: `Lab.assert_never` reads a timeout as "it never happened", and a
    pod deleted under it must not pass that way.
    """
