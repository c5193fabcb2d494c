"""Database URLs: read them strictly, print them without passwords, scrub passwords from text.

A password can sit in a URL three ways: ``user:secret@host``, percent-encoded there
(``user:se%40cret@host``), or as a libpq query parameter (``?password=secret``, and
``sslpassword`` for a client key). Printing goes through SQLAlchemy's
``URL.render_as_string(hide_password=True)`` with every ``*password*`` query parameter removed;
driver messages are scrubbed of every form of the password. A raw ``@`` in the user name or
password makes the URL ambiguous (SQLAlchemy and libpq would take the rest as the host name
and print it), so such a URL is refused. Only :func:`redact` and :func:`check_url` import
SQLAlchemy; :func:`scrub` works on any text without it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote

from orion_cli.errors import ConfigError

FIX_HINT = "fix ORION_DATABASE_URL (or database_url in orion.toml)"
#: shorter passwords are not scrubbed out of driver messages: they would mangle every word
#: that contains them, and protect nothing
MIN_SCRUBBED_CHARS = 3


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written without a driver.

    >>> normalize_url("postgresql://u@h/db"), normalize_url("postgres://u@h/db")
    ('postgresql+psycopg://u@h/db', 'postgresql+psycopg://u@h/db')
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _parts(url: str) -> tuple[str, str | None, str, str]:
    """Split ``url`` into (scheme, credentials or None, host-and-path, query).

    The credentials end at the *last* ``@`` before the query, so that no part of a password
    with a raw ``@`` is ever taken for the host.

    >>> _parts("postgresql://u:a@b@h:5/db?sslmode=require")
    ('postgresql', 'u:a@b', 'h:5/db', 'sslmode=require')
    """
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    creds, at, host = rest.rpartition("@")
    return scheme, (creds if at else None), host, query


def _is_file_url(url: str) -> bool:
    return url.startswith("sqlite")


def passwords(url: str) -> list[str]:
    """Every spelling of the passwords in ``url`` (raw, decoded, encoded), longest first.

    >>> passwords("postgresql://u:Top%40Secret@h/db?password=two")
    ['Top%40Secret', 'Top@Secret', 'two']
    """
    if _is_file_url(url) or "://" not in url:
        return []
    _, creds, _, query = _parts(url)
    raw: list[str] = []
    if creds and ":" in creds:
        secret = creds.split(":", 1)[1]
        raw += [secret, *secret.split("@")]  # a raw '@' splits it where drivers split it
    for key, value in parse_qsl(query, keep_blank_values=True):
        if "password" in key.lower():
            raw.append(value)
    for key_value in query.split("&"):
        key, _, value = key_value.partition("=")
        if "password" in unquote(key).lower():
            raw.append(value)
    forms = {form for secret in raw for form in (secret, unquote(secret), quote(unquote(secret)))}
    return sorted((f for f in forms if len(f) >= MIN_SCRUBBED_CHARS), key=lambda f: (-len(f), f))


def scrub(text: str, url: str) -> str:
    """Replace every form of ``url``'s passwords in ``text`` by ``***``.

    >>> scrub("failed to resolve host 'Secret@h'", "postgresql://u:Top@Secret@h/db")
    "failed to resolve host '***@h'"
    """
    for secret in passwords(url):
        text = text.replace(secret, "***")
    return text


def _fallback_redact(url: str) -> str:
    """Redact a URL that SQLAlchemy cannot read: keep scheme, user and host, drop the query.

    >>> _fallback_redact("postgresql://u:a@b@h:x/db?password=p")
    'postgresql://u:***@h:x/db'
    """
    scheme, creds, host, _ = _parts(url)
    user = (creds or "").split(":", 1)[0]
    shown = "" if creds is None else "***@" if "@" in user else f"{user}:***@"
    return f"{scheme}://{shown}{host}"


def without_password(url: str) -> str:
    """``url`` with its password removed (not masked): what a crontab line may hold.

    >>> without_password("postgresql://ann:secret@db.lab/orion?sslmode=require&password=x")
    'postgresql://ann@db.lab/orion?sslmode=require'
    """
    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    hidden = [key for key in parsed.query if "password" in key.lower()]
    parsed = parsed.difference_update_query(hidden)
    bare = URL.create(
        parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database
    ).update_query_dict(dict(parsed.query))
    return bare.render_as_string(hide_password=False)


def redact(url: str) -> str:
    """Return ``url`` fit to print: no password, in no form.

    >>> redact("postgresql://u:secret@h/db")
    'postgresql://u:***@h/db'
    >>> redact("postgresql://u@h/db?sslmode=require&password=secret")
    'postgresql://u@h/db?sslmode=require'
    """
    if _is_file_url(url) or "://" not in url:
        return url
    _, creds, _, _ = _parts(url)
    if creds is not None and "@" in creds:
        return _fallback_redact(url)
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - any unreadable URL: print the safe minimum
        return _fallback_redact(url)
    hidden = [key for key in parsed.query if "password" in key.lower()]
    parsed = parsed.difference_update_query(hidden)
    return scrub(parsed.render_as_string(hide_password=True), url)


def check_url(url: str, parse: bool = True) -> None:
    """Raise a ConfigError (exit 2) naming the problem if ``url`` cannot be used as written.

    ``parse=False`` skips what needs SQLAlchemy's parser (port, brackets).

    >>> check_url("postgresql://u:p@h:notaport/db")
    Traceback (most recent call last):
    ...
    orion_cli.errors.ConfigError: database URL 'postgresql://u:***@h:notaport/db' cannot be read: port 'notaport' is not a number
    """  # noqa: E501
    if _is_file_url(url):
        _check_sqlite_url(url)
        return
    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise ConfigError(
            f"database URL '{redact(url)}' is neither sqlite nor postgresql",
            "set ORION_DATABASE_URL to sqlite:///path/orion.db or postgresql://user@host/db",
        )
    _, creds, host, _ = _parts(url)
    if creds is not None and "@" in creds:
        raise ConfigError(
            f"database URL '{redact(url)}' has a raw '@' in its user name or password",
            f"write '@' as %40 there; {FIX_HINT}",
        )
    if not parse:  # the quick `orion ls` path: no SQLAlchemy import
        return
    from sqlalchemy.engine import make_url

    try:
        make_url(normalize_url(url))
    except Exception as exc:  # noqa: BLE001 - ValueError, ArgumentError: a malformed URL
        authority = host.split("/", 1)[0]
        port = authority.rsplit("]", 1)[-1].rpartition(":")[2] if ":" in authority else ""
        if authority.startswith("[") and "]" not in authority:
            why = "an IPv6 address opened with '[' is not closed with ']'"
        elif port and not port.isdigit():
            why = f"port '{port}' is not a number"
        else:
            why = scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, url)
        raise ConfigError(f"database URL '{redact(url)}' cannot be read: {why}", FIX_HINT) from None


def _check_sqlite_url(url: str) -> None:
    """Accept only ``sqlite:///relative.db`` and ``sqlite:////absolute.db``.

    SQLAlchemy takes more (``sqlite:relative`` fails inside it, ``?uri=true`` makes every
    derived file name a URI option, ``?mode=ro`` opens read-write anyway), and an in-memory
    database forgets every job when orion exits.

    >>> _check_sqlite_url("sqlite:////home/ann/orion.db")
    >>> _check_sqlite_url("sqlite:///x.db?mode=ro")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    orion_cli.errors.ConfigError: database URL 'sqlite:///x.db?mode=ro' is not a form orion reads: options after '?' are not supported ...
    """  # noqa: E501
    path = url.removeprefix("sqlite:///")
    if url in ("sqlite://", "sqlite:///:memory:"):
        why = "an in-memory database forgets every job when orion exits"
    elif not url.startswith("sqlite:///") or not path:
        why = "a SQLite URL is sqlite:/// followed by the path of the database file"
    elif "?" in url:
        why = "options after '?' are not supported (orion opens the file itself)"
    elif path.startswith("file:"):
        why = "'file:' URIs are not supported"
    else:
        return
    raise ConfigError(
        f"database URL '{url}' is not a form orion reads: {why}",
        "write sqlite:///relative/orion.db or sqlite:////absolute/orion.db in "
        "ORION_DATABASE_URL (or database_url in orion.toml)",
    )
