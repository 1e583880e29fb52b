"""Benchmarki uruchamiają się w małej skali (czy nie zepsuły się po zmianach w lib/).

Liczby z tak małych przebiegów nic nie mówią o wydajności - sprawdzamy tylko, że skrypt
przechodzi wszystkie scenariusze i drukuje tabelę z poprawnymi licznikami zapytań.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

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
    # Paczki po 20: 600 różnych tekstów w 30 zapytaniach.
    packed = re.search(r"^paczki\s+32\s+(\d+)\s+(\d+)\s+(\d+)", result.stdout, re.M)
    assert packed and tuple(int(g) for g in packed.groups()) == (600, 600, 30)
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
