"""What an error may show of a value that might be a secret. Pure.

People paste the token itself where the inventory wants the *name* of a variable or a file
(`token_env: 6IFA...`, `password_file: hunter2`), and CI logs keep error messages forever. So
an error about such a value never prints it, with one exception: a string shaped like a
conventional environment variable name (`WHM_TOKEN`, `ALICE_CPANEL_TOKEN`: upper case, digits,
at least one underscore) is shown, because that is what users grep their CI settings for and no
cPanel token or sensible password has that shape (tokens are 32 letters and digits without `_`).
"""

from __future__ import annotations

import re

NOT_SHOWN = "value not shown: it may be a secret"

#: Upper case words joined by underscores, like WHM_TOKEN; at most 64 characters.
_CONVENTIONAL_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")

#: Field names whose values may be secrets wherever they appear in a file.
SECRET_KEYS = frozenset(
    (
        "auth",
        "token",
        "password",
        "token_env",
        "token_file",
        "password_env",
        "password_file",
        "url_env",  # settings.notify: the variable holding an Apprise URL (credentials inside)
    )
)

#: What may name an environment variable: no '-', '+', '/', ':' (which a pasted token or URL has).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shown_env_name(name: str) -> str | None:
    """The variable name if it is safe to print, else None."""
    if len(name) <= 64 and _CONVENTIONAL_NAME.fullmatch(name):
        return name
    return None


def is_env_name(name: str) -> bool:
    """Whether `name` can be an environment variable's name at all."""
    return ENV_NAME.fullmatch(name) is not None


def env_var_phrase(name: str) -> str:
    """`environment variable WHM_TOKEN`, or a phrase that does not show the name."""
    shown = shown_env_name(name)
    return f"environment variable {shown}" if shown else "the environment variable named here"


def is_secret_field(field: str) -> bool:
    """Whether a field path (`servers[0].auth.user`, `defaults.auth`) may hold a secret."""
    segments = (part.split("[", 1)[0] for part in field.split("."))
    return any(segment in SECRET_KEYS for segment in segments)
