"""Who runs orion: the Unix account of the process, never an environment variable.

``getpass.getuser()`` reads ``$USER``/``$LOGNAME`` first, so ``USER=root orion submit``
would record another owner. The uid is what the kernel says; its name is what ``/etc/passwd``
(or NSS) says.
"""

from __future__ import annotations

import os
from functools import cache


@cache
def current_user() -> str:
    """Name of the account this process runs as (``uid<N>`` when it has no name).

    >>> import pwd
    >>> current_user() == pwd.getpwuid(os.getuid()).pw_name
    True
    """
    import pwd

    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        return f"uid{uid}"
