"""Connection strings are passed to libpq as given and never shown with a password."""

import pytest

from batchdesk.errors import InvalidRequest
from batchdesk.settings import Settings
from batchdesk.storage import conninfo
from batchdesk.storage.database import resolve_target


def test_description_names_user_host_port_and_database_without_the_password() -> None:
    text = conninfo.describe("postgresql://anna:s3cret@db.studio:5433/batchdesk")
    assert text == "anna@db.studio:5433/batchdesk"


def test_key_value_strings_and_services_are_accepted() -> None:
    assert conninfo.describe("host=db dbname=x password=pw") == "db/x"
    assert conninfo.describe("service=studio") == "service studio"


def test_sqlalchemy_style_urls_are_turned_into_libpq_urls() -> None:
    assert conninfo.normalise("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"


def test_a_password_is_stripped_before_the_url_is_kept() -> None:
    stripped = conninfo.strip_password("postgresql://anna:s3cret@db.studio/batchdesk")
    assert "s3cret" not in stripped
    assert conninfo.describe(stripped) == "anna@db.studio/batchdesk"
    assert conninfo.strip_password("postgresql://anna@h/db") == "postgresql://anna@h/db"


def test_an_invalid_url_is_refused_without_repeating_it() -> None:
    # libpq's own message would quote the string back, password and all.
    for bad in ("postgresql://anna:s3cret@[db/x", "postgresql://anna:s3cret@db/x?bogus=1"):
        with pytest.raises(InvalidRequest) as caught:
            conninfo.normalise(bad)
        assert "s3cret" not in str(caught.value)


def test_the_url_is_chosen_by_flag_then_environment_then_settings_then_embedded() -> None:
    settings = Settings(database_url="postgresql://from-settings/db")
    env = {"BATCHDESK_DATABASE_URL": "postgresql://from-env/db"}
    assert resolve_target("postgresql://from-flag/db", env, settings).chosen_by == "--database-url"
    assert resolve_target(None, env, settings).chosen_by == "BATCHDESK_DATABASE_URL"
    assert resolve_target(None, {}, settings).chosen_by == "the settings file"
    assert resolve_target(None, {}, Settings()).is_embedded
