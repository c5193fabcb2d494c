"""Database URLs: malformed ones are one line (exit 2); passwords are never printed.

Reproductions of the hostile-input review (2026-11-30, sections 9 and 11): `?password=` was
printed in full by doctor, db upgrade and every error line; a raw '@' in the password leaked
its tail; a non-numeric port or an unclosed IPv6 bracket was an internal ValueError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion

DOWN = "127.0.0.1:1"  # nothing listens on port 1
URLS = {
    "user:pass@": f"postgresql://postgres:TopSecret1@{DOWN}/orion",
    "?password=": f"postgresql://postgres@{DOWN}/orion?password=TopSecret2",
    "host and password in the query": (
        "postgresql:///orion?host=127.0.0.1&port=1&password=TopSecret3&sslmode=disable"
    ),
    "raw @ in the password": f"postgresql://postgres:Top@Secret4@{DOWN}/orion",
    "percent-encoded password": f"postgresql://postgres:Top%40Secret5%2F@{DOWN}/orion",
    "sslpassword in the query": f"postgresql://postgres@{DOWN}/orion?sslpassword=TopSecret6",
    "non-numeric port": "postgresql://postgres:TopSecret7@127.0.0.1:notaport/orion",
    "unclosed IPv6 bracket": "postgresql://postgres:TopSecret8@[::1/orion",
}
COMMANDS = [
    ["doctor"],
    ["doctor", "--json"],
    ["db", "upgrade"],
    ["ls"],
    ["ls", "--json"],
    ["poll"],
    ["show", "1"],
    ["cancel", "1"],
    ["submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--scheduler", "local"],
]
MALFORMED = ("raw @ in the password", "non-numeric port", "unclosed IPv6 bracket")


@pytest.mark.parametrize("form", list(URLS))
def test_no_command_prints_the_password(
    form: str, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_DATABASE_URL", URLS[form])
    for args in COMMANDS:
        result = orion(*args, expect=None)
        text = result.stdout + result.stderr
        assert "Secret" not in text, (args, text)
        assert "Traceback" not in text and "internal error" not in text, (args, text)
        if args[0] == "doctor":
            failed = ('"ok": false' if "--json" in args else "FAIL database") in result.stdout
            assert result.exit_code == 1 and failed, (args, text)
            continue
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, args
        assert result.exit_code == (2 if form in MALFORMED else 1), (args, text)


def test_malformed_urls_say_what_is_wrong(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {
        "non-numeric port": "port 'notaport' is not a number",
        "unclosed IPv6 bracket": "IPv6 address opened with '[' is not closed",
        "raw @ in the password": "write '@' as %40",
    }
    for form, words in expected.items():
        monkeypatch.setenv("ORION_DATABASE_URL", URLS[form])
        assert words in orion("ls", expect=2).stderr


@pytest.mark.postgres
@pytest.mark.parametrize("form", ["?password=", "percent-encoded password", "user:pass@"])
def test_a_working_url_is_printed_without_its_password(
    form: str, orion_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust authentication ignores the password: doctor succeeds and must still hide it."""
    base, name = postgres_url.rsplit("/", 1)
    host = base.split("@", 1)[1]
    url = {
        "?password=": f"postgresql://postgres@{host}/{name}?password=TopSecret9",
        "percent-encoded password": f"postgresql://postgres:Top%40Secret9@{host}/{name}",
        "user:pass@": f"postgresql://postgres:TopSecret9@{host}/{name}",
    }[form]
    monkeypatch.setenv("ORION_DATABASE_URL", url)
    upgraded = orion("db", "upgrade")
    assert f"/{name}: schema" in upgraded.stderr and "Secret" not in upgraded.stderr
    for args in (["doctor"], ["doctor", "--json"]):
        result = orion(*args, expect=None)
        assert "Secret" not in result.stdout + result.stderr
        assert f"127.0.0.1:5432/{name}" in result.stdout


def test_redact_and_scrub_cover_every_form() -> None:
    from orion_cli.db.urls import redact, scrub

    for form, url in URLS.items():
        assert "Secret" not in redact(url), form
        message = f"could not connect to {url}; failed to resolve host 'Secret4@127.0.0.1'"
        if form != "raw @ in the password":
            message = message.replace("Secret4", "")
        assert "Secret" not in scrub(message, url), form
    assert redact("sqlite:////home/me/orion@work/orion.db") == (
        "sqlite:////home/me/orion@work/orion.db"
    )
