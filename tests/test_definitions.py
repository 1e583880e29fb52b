"""Definicje Dagstera: ładują się (też przez CLI jak w produkcji) i zawierają assety, joby, sensory."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def test_definitions_validate_cli(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml.example").read_text())
    # Bez dostępu do .env i bazy: ładowanie definicji nie może zależeć od konfiguracji.
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ENV_FILE": str(tmp_path / "missing.env"),
        "SENSOR_INTERVAL_S": "not-a-number",
    }
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_defs_contents(monkeypatch):
    monkeypatch.setenv("SENSOR_INTERVAL_S", "7")
    from ailexia_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"remote_snapshot", "task_item_hashes", "ai_corrections", "source_export", "ai_quality"}
    for name in ("sync_job", "ai_job", "export_job"):
        assert defs.resolve_job_def(name).partitions_def is not None
    repo = defs.get_repository_def()
    sensors = {s.name: s for s in repo.sensor_defs}
    assert {"task_sensor", "ai_after_sync_sensor"} <= set(sensors)
    assert sensors["task_sensor"].job_name == "sync_job"
    assert sensors["ai_after_sync_sensor"].job_name == "ai_job"
    assert sensors["task_sensor"].default_status.value == "RUNNING"
    assert sensors["task_sensor"].minimum_interval_seconds >= 1


def test_runs_use_the_in_process_executor():
    """Joby i niejawny job assetów (przycisk Materialize) wykonują kroki w procesie runu."""
    from dagster import in_process_executor

    from ailexia_dagster.constants import AI_JOB, EXPORT_JOB, SYNC_JOB
    from ailexia_dagster.definitions import defs

    for name in (SYNC_JOB, AI_JOB, EXPORT_JOB):
        assert defs.resolve_job_def(name).executor_def is in_process_executor, name
    assert defs.resolve_implicit_global_asset_job_def().executor_def is in_process_executor
