"""Postęp długich etapów (``lib/runtime/progress.py``): liczby, linie dla ludzi, rytm linii i pasek."""

import io
import logging
import sys
import time

from lib.runtime import progress


def test_sync_figures_and_line_on_resume():
    # Wznowienie: 600 000 wierszy przeskanował poprzedni run, ten run przeczytał 100 000 w 10 s.
    stats = {"scanned": 700000, "records_total": 1000000, "fetched": 100000, "new": 5, "stopped": None}
    figs = progress.figures("sync", stats, 10.0)
    assert figs["done"] == 700000 and figs["total"] == 1000000 and figs["percent"] == 70.0
    assert figs["rate"] == 10000.0  # tempo z pracy tego runu, nie z całej operacji
    assert figs["eta_s"] == 30.0
    line = progress.format_line("sync", 2, figs)
    assert line == (
        "sync zadania 2: 700 000 / 1 000 000 wierszy (70,0%), 10 000 wierszy/s, pozostało ~30 s, minęło 10 s"
    )


def test_ai_line_has_items_tokens_cost_and_no_none():
    stats = {
        "processed": 100,
        "failed": 5,
        "skipped": 15,
        "items_total": 500,
        "tokens_input": 40000,
        "tokens_output": 5210,
        "cost_usd": 0.01234,
        "stopped": None,
        "response_format": None,
    }
    figs = progress.figures("ai", stats, 40.0)
    assert (figs["done"], figs["total"], figs["tokens"], figs["cost_usd"]) == (120, 500, 45210, 0.01234)
    line = progress.format_line("ai", 7, figs)
    assert line.startswith(
        "AI zadania 7: 120 / 500 pozycji (24,0%), 3,0 pozycji/s, tokeny 45 210, koszt 0,0123 USD"
    )
    assert "pozostało ~2 min 07 s" in line
    assert "None" not in line


def test_unknown_total_and_no_batches_yet():
    figs = progress.figures("export", {"exported": 3, "already_exported": 1}, 2.0)
    assert figs["total"] == 0 and figs["eta_s"] == -1.0 and figs["percent"] == 0.0
    assert (
        progress.format_line("export", 1, figs) == "eksport zadania 1: 4 pozycji, 2,0 pozycji/s, minęło 2 s"
    )
    assert progress.format_line("verify", 1, None, 12.4) == "weryfikacja zadania 1: w toku, minęło 12 s"
    assert progress.format_duration(7384) == "2 h 03 min"


def test_tracking_emits_every_interval_even_when_engine_is_silent():
    lines: list[tuple[float, str]] = []
    started = time.monotonic()

    def emit(line: str, figures: dict[str, float]) -> None:
        lines.append((time.monotonic() - started, line))

    with progress.tracking("sync", 3, emit, every_s=0.2) as report:
        report({"scanned": 10, "records_total": 100, "fetched": 10})
        time.sleep(1.1)  # silnik milczy (wolna strona źródła): zegar powtarza ostatni stan
        report({"scanned": 100, "records_total": 100, "fetched": 100})
    assert len(lines) >= 5, lines
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:], strict=False)]
    assert max(gaps) < 0.5, gaps
    assert "10 / 100 wierszy (10,0%)" in lines[0][1]
    assert "100 / 100 wierszy (100,0%)" in lines[-1][1]  # linia końcowa z ostatnim stanem


def test_terminal_bar_only_on_a_tty():
    class FakeTty(io.StringIO):
        def isatty(self) -> bool:
            return True

    with progress.terminal(io.StringIO()) as active:
        assert active is False and not progress.bar_active()
    screen = FakeTty()
    with progress.terminal(screen) as active:
        assert active and progress.bar_active()
        with progress.tracking("sync", 4, None, every_s=5) as report:
            report({"scanned": 50, "records_total": 200, "fetched": 50})
            report({"scanned": 200, "records_total": 200, "fetched": 200})
    assert not progress.bar_active()
    drawn = screen.getvalue()
    assert "sync zadania 4" in drawn and "200/200" in drawn and "100%" in drawn


def test_console_log_goes_above_the_bar_and_handlers_come_back(monkeypatch):
    """Log konsoli w czasie paska idzie linią nad paskiem (tqdm.write), plik logu bez zmian; potem powrót."""

    class FakeTty(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = FakeTty()
    monkeypatch.setattr(sys, "stderr", screen)
    logger = logging.getLogger("ailexia")
    console, kept = logging.StreamHandler(), logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logger, "handlers", [console, kept])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    with progress.terminal() as active:
        assert active
        with progress.tracking("sync", 5, None, every_s=5) as report:
            report({"scanned": 10, "records_total": 100, "fetched": 10})
            assert console not in logger.handlers and kept in logger.handlers
            logger.info("linia w czasie paska")
            report({"scanned": 100, "records_total": 100, "fetched": 100})
        assert logger.handlers == [console, kept]
    drawn = screen.getvalue()
    assert "linia w czasie paska\n" in kept.stream.getvalue()
    lines = [line for line in drawn.replace("\r", "\n").split("\n") if "linia w czasie paska" in line]
    assert lines == ["linia w czasie paska"], drawn
