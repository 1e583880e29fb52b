"""Testy wczytywania konfiguracji: .env, pierwszeństwo środowiska, walidacja typów."""

import re
from pathlib import Path

import pytest

from lib.errors import ConfigError
from lib.load_config import PROJECT_ROOT, Settings, load_config


def test_defaults_without_env_file(tmp_path):
    settings = load_config(tmp_path / "missing.env", environ={})
    assert settings.batch_size == 500
    assert settings.log_sql_queries is False
    assert settings.log_level == "INFO"
    assert settings.db_local_port == 3306


def test_env_file_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("BATCH_SIZE=250\nDB_LOCAL_NAME=from_file\nLOG_SQL_QUERIES=true\nLOG_LEVEL=debug\n")
    settings = load_config(env_file, environ={"DB_LOCAL_NAME": "from_env"})
    assert settings.batch_size == 250
    assert settings.db_local_name == "from_env"
    assert settings.log_sql_queries is True
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("BATCH_SIZE", "abc", "BATCH_SIZE"),
        ("BATCH_SIZE", "0", "BATCH_SIZE"),
        ("DB_LOCAL_PORT", "-1", "DB_LOCAL_PORT"),
        ("LOG_SQL_QUERIES", "maybe", "LOG_SQL_QUERIES"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("AI_MAX_COST_USD", "cheap", "AI_MAX_COST_USD"),
    ],
)
def test_bad_value_names_the_key(tmp_path, key, value, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "none.env", environ={key: value})
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_env_example_documents_every_key():
    text = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^(?:# )?([A-Z_]+)=", text, flags=re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_relative_paths_are_project_relative(tmp_path):
    settings = load_config(tmp_path / "none.env", environ={"LOG_DIR": "logs"})
    assert Path(settings.log_dir) == PROJECT_ROOT / "logs"
