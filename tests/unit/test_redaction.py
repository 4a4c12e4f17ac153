"""Passwords never reach a log line, a crash report or stderr, in any form libpq takes."""

import pytest

from batchdesk.redaction import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://anna:pw@db/x", "postgresql://anna:***@db/x"),
        ("postgresql+psycopg://anna:p%40ss@db:5432/x", "postgresql+psycopg://anna:***@db:5432/x"),
        ("postgresql://anna@db/x", "postgresql://anna@db/x"),
        ("https://db.studio:8080/a@b", "https://db.studio:8080/a@b"),
        ("host=db password=pw user=anna", "host=db password=*** user=anna"),
        ("host=db password = 'p w\\'x' user=anna", "host=db password = *** user=anna"),
        ("'host=db password=pw'", "'host=db password=***'"),
        ("PGPASSWORD=pw psql", "PGPASSWORD=*** psql"),
        (
            "postgresql://db/x?sslmode=require&password=pw&user=a",
            "postgresql://db/x?sslmode=require&password=***&user=a",
        ),
        ("{'password': 'pw', 'user': 'a'}", "{'password': '***', 'user': 'a'}"),
        ('{"password": "pw"}', "{\"password\": '***'}"),
    ],
)
def test_redact_removes_passwords_from_urls_conninfo_and_mappings(text: str, expected: str) -> None:
    assert redact(text) == expected
