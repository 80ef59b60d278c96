"""`daemon.journal_url` selects the PostgreSQL journal: refused with a line naming the field when it is not a
PostgreSQL URL (never repeating it: it may hold a password), masked wherever the configuration is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.app.settings import SettingsError, settings_from_document
from daemon.app.settings_view import effective_config, secret_values
from daemon.store.postgres import masked_url

URL = "postgresql://marginguard:hunter2-secret@db.internal:5432/marginguard"


def test_a_journal_url_that_is_not_postgresql_is_refused_by_name_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"^config error: daemon\.journal_url: expected a PostgreSQL URL"
    ) as e:
        settings_from_document(
            {"daemon": {"journal_url": "mysql://u:hunter2-secret@h/db"}}, env={}, base_dir=tmp_path
        )
    assert "hunter2" not in str(e.value)


def test_the_journal_url_is_a_secret_masked_in_check_config_and_redacted_from_logs(tmp_path: Path) -> None:
    settings = settings_from_document({"daemon": {"journal_url": URL}}, env={}, base_dir=tmp_path)
    assert settings.daemon.journal_url_value() == URL
    assert "hunter2" not in json.dumps(effective_config(settings))
    assert URL in secret_values(settings)  # the log redactor masks it wherever it turns up
    assert masked_url(URL) == "postgresql://marginguard:***@db.internal:5432/marginguard"


def test_without_a_journal_url_the_journal_is_the_sqlite_file(tmp_path: Path) -> None:
    settings = settings_from_document({}, env={}, base_dir=tmp_path)
    assert settings.daemon.journal_url_value() is None
    assert settings.daemon.storage_path == tmp_path / "marginguard.sqlite"
