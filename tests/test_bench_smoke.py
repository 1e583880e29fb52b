"""Benchmarki uruchamiają się w małej skali (czy nie zepsuły się po zmianach w lib/).

Liczby z tak małych przebiegów nic nie mówią o wydajności - sprawdzamy tylko, że skrypt
przechodzi wszystkie scenariusze i drukuje tabelę z poprawnymi licznikami zapytań.
"""

import json
import os
import random
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pymysql
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_ai_bench_small_run_prints_all_scenarios(settings):
    result = _run(
        ["bench/ai_bench.py", "--items", "60", "--latency", "0.02", "--cost-scale", "0.02"], timeout=240
    )
    # Kod 1 = cel przepustowości nieosiągnięty; przy 60 pozycjach to możliwe i nie jest błędem.
    assert result.returncode in (0, 1), result.stderr[-2000:]
    rows = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(unikalne|samo SDK \(baza\)|30% duplikatów)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        if match:
            rows[(match.group(1), int(match.group(2)))] = tuple(int(g) for g in match.groups()[2:])
    assert set(rows) == {("unikalne", 8), ("unikalne", 32), ("samo SDK (baza)", 32), ("30% duplikatów", 32)}
    # (pozycje, różne teksty, zapytania): każdy różny tekst wysłany dokładnie raz.
    assert rows[("unikalne", 32)] == (60, 60, 60)
    assert rows[("30% duplikatów", 32)] == (60, 42, 42)
    # Paczki po 20, tyle zapytań co w 'unikalne': 1 200 różnych tekstów w 60 zapytaniach.
    packed = re.search(r"^paczki\s+32\s+(\d+)\s+(\d+)\s+(\d+)", result.stdout, re.M)
    assert packed and tuple(int(g) for g in packed.groups()) == (1200, 1200, 60)
    # Tabela kosztu: oba tryby, krótkie i długie; paczki płacą za krótkie teksty mniej wejścia.
    cost = {
        (m.group(1).strip(), m.group(2)): float(m.group(3))
        for m in re.finditer(
            r"^(1 na zapytanie|paczki)\s+(krótkie|długie)\s+\d+\s+\d+\s+\d+\s+([\d.]+)", result.stdout, re.M
        )
    }
    assert set(cost) == {(m, p) for m in ("1 na zapytanie", "paczki") for p in ("krótkie", "długie")}
    assert cost[("paczki", "krótkie")] < cost[("1 na zapytanie", "krótkie")] / 2
    assert "cel paczek" in result.stdout
    # Tryb batch (pełna droga: plik JSONL, batch, odbiór): koszt na 1 000 pozycji po cenach batch.
    usd = {
        (m.group(1).strip(), m.group(2)): float(m.group(3))
        for m in re.finditer(
            r"^(1 na zapytanie|batch 1/linię|batch paczki)\s+(krótkie|długie)(?:\s+[\d.]+){6}\s+([\d.]+)$",
            result.stdout,
            re.M,
        )
    }
    assert {("batch 1/linię", "krótkie"), ("batch paczki", "krótkie")} <= set(usd)
    assert usd[("batch 1/linię", "krótkie")] == pytest.approx(
        usd[("1 na zapytanie", "krótkie")] / 2, rel=0.01
    )
    assert usd[("batch paczki", "krótkie")] < usd[("batch 1/linię", "krótkie")]
    assert "batch paczki vs 1 na zapytanie: cały korpus" in result.stdout


def test_sync_bench_small_run_checks_every_path():
    """2 000 wierszy bez dlt i Sling, PostgreSQL (BIGINT) i SQLite: raw copy i procesy ``sync.py`` z dokładnymi licznikami."""
    result = _run(
        ["bench/sync_bench.py", "--rows", "2000", "--skip-peers", "--kinds", "pg_bigint", "sqlite", "--json"],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    by_kind = {r["kind"]: r for r in report["results"]}
    assert set(by_kind) == {"pg_bigint", "sqlite"}
    paths = ["raw", "initial", "resync_none", "resync_10", "resync_01pct", "resync_1pct"]
    for kind, result_of in by_kind.items():
        runs = {run["path"]: run for run in result_of["runs"]}
        assert list(runs) == [*paths, "cursor_prime", "resync_1pct_cursor"], kind
        assert {"dlt", "sling"} <= set(result_of["skipped"])
        # 1 % z 2 000 zmienionych, 0,5 % usuniętych, 0,5 % wstawionych - liczniki zadania co do sztuki.
        assert runs["initial"]["counters"] == {
            "records_new": 2000,
            "records_updated": 0,
            "records_deleted": 0,
        }
        assert runs["resync_1pct"]["counters"] == {
            "records_new": 10,
            "records_updated": 20,
            "records_deleted": 10,
        }
        assert runs["resync_10"]["counters"] == {
            "records_new": 0,
            "records_updated": 10,
            "records_deleted": 0,
        }
        assert runs["resync_01pct"]["counters"] == {
            "records_new": 0,
            "records_updated": 2,
            "records_deleted": 0,
        }
        assert runs["resync_none"]["counters"] == {
            "records_new": 0,
            "records_updated": 0,
            "records_deleted": 0,
        }
        for run in runs.values():
            assert run["seconds"] > 0 and run["peak_mib"] > 1
    pg = {run["path"]: run for run in by_kind["pg_bigint"]["runs"]}
    text_bytes = by_kind["pg_bigint"]["source_text_mib"] * 2**20
    # Proxy liczy bajty naprawdę: kopia i pierwsza synchronizacja czytają wszystkie teksty, resync bez
    # zmian - odciski (przy 2 000 wierszy przeważa stały koszt: katalog, sprawdzenie pierwszej strony).
    assert pg["raw"]["source_bytes"] >= text_bytes and pg["initial"]["source_bytes"] >= text_bytes
    assert pg["resync_none"]["source_bytes"] < pg["initial"]["source_bytes"] / 2
    assert {run["source_bytes"] for run in by_kind["sqlite"]["runs"]} == {None}
    targets = {t["target"]: t["met"] for t in report["targets"] if t["rows"] == 2000}
    assert len(targets) == 9
    assert targets["pg_bigint: initial rows/s >= 1.5x dlt"] is None  # bez dlt
    assert all(met is not None for name, met in targets.items() if "dlt" not in name and "Sling" not in name)


def test_sync_bench_fingerprints_see_one_changed_character(pg_source):
    """Sprawdzenie wyniku w benchmarku porównuje treść: zmiana jednego znaku (4-bajtowego) jest widoczna."""
    from bench import sync_bench

    rows = sync_bench.generate_rows(
        random.Random(1), sync_bench.make_corpus(random.Random(1), 20_000), 1, 300
    )
    assert all(50 <= len(text) <= 600 for _, text in rows)
    # Teksty zawierają znaki 4-bajtowe (utf8mb4), nie tylko polskie 2-bajtowe.
    assert any(any(len(ch.encode()) == 4 for ch in text) for _, text in rows)
    conn = pg_source["conn"]
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE texts (id BIGINT PRIMARY KEY, body TEXT)")
    sync_bench.copy_into_pg(conn, rows)
    name = f"ailexia_t_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True, charset="utf8mb4")
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cur.execute(
                f"CREATE TABLE `{name}`.plain (id BIGINT PRIMARY KEY, body TEXT) CHARACTER SET utf8mb4"
            )
            cur.executemany(f"INSERT INTO `{name}`.plain VALUES (%s, %s)", rows)
        source = sync_bench.source_fingerprint(pg_source["db_name"])
        assert source["rows"] == 300
        assert sync_bench.mariadb_fingerprint(name, "plain", "id", "body") == source
        with admin.cursor() as cur:
            cur.execute(
                f"UPDATE `{name}`.plain SET body = CONCAT(SUBSTR(body, 1, 10), '🙂', SUBSTR(body, 12)) WHERE id=7"
            )
        assert sync_bench.mariadb_fingerprint(name, "plain", "id", "body") != source
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def test_sync_bench_without_bench_extra_skips_peers_and_says_why(monkeypatch):
    """Instalacja samego ``dev`` (bez dodatku ``bench``): dlt i Sling pominięte z powodem, raw copy zostaje."""
    import importlib.util

    from bench import sync_bench

    real_find_spec = importlib.util.find_spec
    hidden = {"dlt", "pyarrow", "sling_linux_amd64"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in hidden else real_find_spec(name, *a)
    )
    reasons = sync_bench.peers_available(skip=False)
    assert reasons["raw"] is None
    assert "not installed" in reasons["dlt"] and "dlt" in reasons["dlt"] and "pyarrow" in reasons["dlt"]
    assert "not installed" in reasons["sling"]
