"""Testy przeglądu: różnica słów, akceptacja/odrzucenie z odmowami, zrzut CSV/JSON, CLI review.py."""

import csv
import hashlib
import io
import json
import os
import subprocess
import sys

import pytest

from lib.errors import UsageError
from lib.review import decisions as review_decisions
from lib.review import dump as review_dump
from lib.review.decisions import Outcome, accept_hunks, edit_and_accept, set_decision, undo_last
from lib.review.diff import (
    apply_hunks,
    diff_hunks,
    diff_segments,
    restore_line_endings,
    show_whitespace,
    word_diff,
)
from lib.review.dump import dump_items
from lib.review.report import export_report
from lib.review.rules import item_version, refusal_reason
from tests.conftest import PROJECT_ROOT
from tests.helpers import add_connection, add_task, add_task_item, sha256

SUMMARY = json.dumps(
    {
        "edits": [
            {
                "original": "ktury",
                "replacement": "który",
                "category": "spelling",
                "explanation": "ortografia",
            },
            {"original": "", "replacement": ".", "category": "punctuation", "explanation": "kropka na końcu"},
        ],
        "counts": {"spelling": 1, "punctuation": 1},
    },
    ensure_ascii=False,
)


def run_review(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "review.py", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def task(db, sqlite_source):
    """Zadanie z pozycjami w różnych stanach (bez synchronizacji - liczą się tylko wiersze lokalne)."""
    id_task = add_task(db, add_connection(db, sqlite_source), status="completed")
    ids = {
        "ok": add_task_item(db, id_task, 1, "Kot ktury śpi", "Kot, który śpi.", summary=SUMMARY),
        "ok2": add_task_item(db, id_task, 2, "Ala ma  psa", "Ala ma psa"),
        "outdated": add_task_item(db, id_task, 3, "stary", "nowy", status="outdated", is_changed=1),
        "changed": add_task_item(db, id_task, 4, "zmieniony", "Zmieniony", is_changed=1),
        "deleted": add_task_item(db, id_task, 5, "usunięty", "Usunięty", deleted=True),
        "pending": add_task_item(db, id_task, 6, "czeka", None, status="pending"),
        "exported": add_task_item(db, id_task, 7, "był", "Był", status="exported"),
    }
    # "changed": korekta starsza niż wykryta zmiana w źródle.
    db.execute(
        "UPDATE task_item SET processed_at=NOW() - INTERVAL 1 HOUR, verified_at=NOW() WHERE id_task_item=%s",
        (ids["changed"],),
    )
    return id_task, ids


def test_word_diff_marks_words_punctuation_and_spaces():
    assert (
        word_diff("Kot ktury śpi", "Kot, który śpi.", color=False) == "Kot{+,+} [-ktury-]{+który+} śpi{+.+}"
    )
    assert word_diff("a  b", "a b", color=False) == "a[-  -]{+ +}b"
    assert word_diff("tekst ", "tekst", color=False) == "tekst[- -]"
    assert word_diff("same", "same", color=False) == "same"
    assert word_diff(None, "nowy", color=False) == "{+nowy+}"
    colored = word_diff("zły kot", "dobry kot", color=True)
    assert colored == "\x1b[31m[-zły-]\x1b[0m\x1b[32m{+dobry+}\x1b[0m kot"


def test_accept_refuses_with_reasons_and_updates_counters(db, task):
    id_task, ids = task
    changed, refused = set_decision(db, id_task, list(ids.values()) + [999999], "accepted", "anna")
    assert sorted(changed) == sorted([ids["ok"], ids["ok2"]])
    reasons = dict(refused)
    assert "nieaktualna" in reasons[ids["outdated"]]
    assert "is_changed=1" in reasons[ids["changed"]]
    assert "usunięty" in reasons[ids["deleted"]]
    assert "nie została jeszcze przetworzona" in reasons[ids["pending"]]
    assert "wyeksportowana" in reasons[ids["exported"]]
    assert "nie ma takiej pozycji" in reasons[999999]
    rows = {r["id_task_item"]: r for r in db.query("SELECT * FROM task_item WHERE id_task=%s", (id_task,))}
    assert rows[ids["ok"]]["status"] == "accepted" and rows[ids["ok"]]["approved_by"] == "anna"
    assert rows[ids["ok"]]["approved_at"] is not None
    assert rows[ids["outdated"]]["status"] == "outdated" and rows[ids["outdated"]]["approved_by"] is None
    assert rows[ids["changed"]]["status"] == "processed"
    counters = db.query_one(
        "SELECT records_approved, records_rejected FROM task WHERE id_task=%s", (id_task,)
    )
    assert counters == {"records_approved": 2, "records_rejected": 0}


def test_is_changed_item_processed_after_the_change_can_be_accepted(db, task):
    id_task, ids = task
    db.execute(
        "UPDATE task_item SET processed_at=verified_at + INTERVAL 1 MINUTE WHERE id_task_item=%s",
        (ids["changed"],),
    )
    changed, refused = set_decision(db, id_task, [ids["changed"]], "accepted", "anna")
    assert changed == [ids["changed"]] and refused == []


def test_reject_all_processed_then_accept_changes_mind(db, task):
    id_task, ids = task
    changed, refused = set_decision(db, id_task, None, "rejected", "jan", "processed")
    # --all obejmuje tylko pozycje processed; is_changed=1 można odrzucić.
    assert sorted(changed) == sorted([ids["ok"], ids["ok2"], ids["changed"]]) and refused == []
    assert db.query_value("SELECT records_rejected FROM task WHERE id_task=%s", (id_task,)) == 3
    changed, refused = set_decision(db, id_task, [ids["ok"]], "accepted", "anna")
    assert changed == [ids["ok"]]
    row = db.query_one("SELECT status, approved_by FROM task_item WHERE id_task_item=%s", (ids["ok"],))
    assert row == {"status": "accepted", "approved_by": "anna"}
    counters = db.query_one(
        "SELECT records_approved, records_rejected FROM task WHERE id_task=%s", (id_task,)
    )
    assert counters == {"records_approved": 1, "records_rejected": 2}


def test_decision_usage_errors(db, task):
    id_task, ids = task
    with pytest.raises(UsageError):
        set_decision(db, id_task, [ids["ok"]], "accepted", "")
    with pytest.raises(UsageError):
        set_decision(db, id_task, [ids["ok"]], "accepted", "x" * 65)
    with pytest.raises(UsageError):
        set_decision(db, 424242, [ids["ok"]], "accepted", "anna")
    with pytest.raises(UsageError):
        set_decision(db, id_task, None, "accepted", "anna", "bogus")


def test_dump_csv_and_json(db, task):
    id_task, ids = task
    set_decision(db, id_task, [ids["ok"]], "accepted", "anna")
    out = io.StringIO()
    assert dump_items(db, id_task, "csv", out) == 5  # z korektą i nieusunięte
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [int(r["remote_id"]) for r in rows] == [1, 2, 3, 4, 7]
    first = rows[0]
    assert first["text_original"] == "Kot ktury śpi" and first["text_corrected"] == "Kot, który śpi."
    assert first["status"] == "accepted" and first["approved_by"] == "anna"
    assert json.loads(first["change_summary"])["counts"] == {"spelling": 1, "punctuation": 1}
    out = io.StringIO()
    assert dump_items(db, id_task, "json", out, ["accepted", "processed"]) == 3
    data = json.loads(out.getvalue())
    assert [d["remote_id"] for d in data] == [1, 2, 4]
    assert data[0]["change_summary"]["edits"][0]["replacement"] == "który"
    out = io.StringIO()
    assert dump_items(db, id_task, "json", out, ["conflict"]) == 0
    assert json.loads(out.getvalue()) == []


def test_cli_list_show_accept_reject_dump(local_env, db, task, tmp_path):
    id_task, ids = task
    result = run_review(local_env, "list", "--id_task", str(id_task))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"#{ids['ok']}  key=[1]  status=processed" in out
    assert "Kot{+,+} [-ktury-]{+który+} śpi{+.+}" in out
    assert "Ala ma[-  -]{+ +}psa" in out
    assert "\x1b[" not in out  # stdout to nie terminal
    assert "3 pozycji" in out
    colored = run_review(local_env, "list", "--id_task", str(id_task), "--limit", "1", "--color")
    assert "\x1b[31m[-ktury-]\x1b[0m" in colored.stdout and "1 pozycji" in colored.stdout

    show = run_review(local_env, "show", str(ids["ok"]))
    assert show.returncode == 0, show.stderr
    assert "[spelling] 'ktury' -> 'który': ortografia" in show.stdout
    assert "liczniki: spelling=1, punctuation=1" in show.stdout

    accept = run_review(
        local_env,
        "accept",
        "--id_task",
        str(id_task),
        "--item",
        str(ids["ok"]),
        str(ids["outdated"]),
        "--by",
        "anna",
    )
    assert accept.returncode == 1  # część pozycji odmówiona
    assert f"#{ids['outdated']}: odmowa - nieaktualna" in accept.stdout
    assert "accepted: 1 pozycji, odmówiono: 1" in accept.stdout
    reject = run_review(local_env, "reject", "--id_task", str(id_task), "--all", "--by", "jan")
    assert reject.returncode == 0, reject.stdout + reject.stderr
    assert "rejected: 2 pozycji, odmówiono: 0" in reject.stdout
    statuses = dict(
        (r["id_task_item"], r["status"]) for r in db.query("SELECT id_task_item, status FROM task_item")
    )
    assert statuses[ids["ok"]] == "accepted" and statuses[ids["ok2"]] == "rejected"

    target = tmp_path / "review.csv"
    dump = run_review(
        local_env,
        "dump",
        "--id_task",
        str(id_task),
        "--format",
        "csv",
        "--status",
        "accepted,rejected",
        "--output",
        str(target),
    )
    assert dump.returncode == 0, dump.stderr
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [(r["remote_id"], r["status"], r["approved_by"]) for r in rows] == [
        ("1", "accepted", "anna"),
        ("2", "rejected", "jan"),
        ("4", "rejected", "jan"),
    ]
    dump_json = run_review(
        local_env, "dump", "--id_task", str(id_task), "--format", "json", "--status", "accepted"
    )
    assert json.loads(dump_json.stdout)[0]["text_corrected"] == "Kot, który śpi."


def test_cli_usage_errors_are_one_line(local_env, settings):
    unknown = run_review(local_env, "list", "--id_task", "424242")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1] == "review: zadanie 424242 nie istnieje w tabeli task"
    missing = run_review(local_env, "show", "424242")
    assert missing.returncode == 2 and "pozycja 424242 nie istnieje" in missing.stderr
    both = run_review(local_env, "accept", "--id_task", "1", "--by", "x")
    assert both.returncode == 2  # argparse: brak --item/--all


# --- model zmian (hunki) -----------------------------------------------------------------------


def test_diff_hunks_split_words_punctuation_and_whitespace():
    hunks = diff_hunks("Kot ktury śpi", "Kot, który śpi.")
    assert [(h.index, h.old, h.new) for h in hunks] == [(0, "", ","), (1, "ktury", "który"), (2, "", ".")]
    assert [(h.old, h.new) for h in diff_hunks("a  b\nc", "a b\r\nc")] == [("  ", " "), ("\n", "\r\n")]
    assert diff_hunks("same", "same") == []
    assert [(h.old, h.new) for h in diff_hunks(None, "nowy")] == [("", "nowy")]


def test_apply_hunks_takes_only_the_chosen_changes():
    a, b = "Kot ktury śpi na oknie", "Kot, który śpi na oknie."
    assert apply_hunks(a, b, [0, 1, 2]) == b
    assert apply_hunks(a, b, []) == a
    assert apply_hunks(a, b, [1]) == "Kot który śpi na oknie"
    assert apply_hunks(a, b, [0, 2]) == "Kot, ktury śpi na oknie."
    with pytest.raises(UsageError, match="nie ma zmian o numerach"):
        apply_hunks(a, b, [7])


def test_show_whitespace_marks_spaces_tabs_and_newlines():
    assert show_whitespace("a  b") == [("a", False), ("·", True), ("·", True), ("b", False)]
    assert show_whitespace("\r\n\t\u00a0") == [("␍", True), ("↵\n", True), ("→", True), ("⍽", True)]
    assert show_whitespace("") == []


def test_word_diff_and_segments_rebuild_both_texts():
    a, b = "Ala  ma\nkota ", "Ala ma\r\nkota."
    segments = diff_segments(a, b)
    assert "".join(s.text if s.hunk is None else s.hunk.old for s in segments) == a
    assert "".join(s.text if s.hunk is None else s.hunk.new for s in segments) == b


@pytest.mark.parametrize(
    ("stored", "edited", "expected"),
    [
        ("a\r\nb", "a\nb\nc", "a\r\nb\r\nc"),  # konsekwentne CRLF wracają
        ("a\rb", "a\nb", "a\rb"),  # samo CR
        ("a\nb", "a\nb c", "a\nb c"),  # LF zostaje
        ("a\r\nb\nc", "a\nb\nc", "a\nb\nc"),  # mieszane: bez zgadywania
        ("a b", "a\nb", "a\nb"),  # nowa linia dopisana przez człowieka
    ],
)
def test_restore_line_endings(stored, edited, expected):
    assert restore_line_endings(stored, edited) == expected


def test_hunks_property_all_none_and_subsets():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(list("ab ,.\n\tąę") + ["kot", "pies"])
    texts = st.lists(alphabet, max_size=12).map("".join)

    @settings(max_examples=200, deadline=None)
    @given(texts, texts, st.data())
    def check(a, b, data):
        hunks = diff_hunks(a, b)
        assert apply_hunks(a, b, [h.index for h in hunks]) == b
        assert apply_hunks(a, b, []) == a
        chosen = data.draw(st.sets(st.sampled_from([h.index for h in hunks]))) if hunks else set()
        result = apply_hunks(a, b, chosen)
        # Wynik to oryginał z podmienionymi dokładnie wybranymi zmianami (kolejność zachowana).
        expected = "".join(
            s.text if s.hunk is None else (s.hunk.new if s.hunk.index in chosen else s.hunk.old)
            for s in diff_segments(a, b)
        )
        assert result == expected

    check()


# --- decyzje ze strony przeglądu: dziennik, wersje, poprawki, cofanie ------------------------------


def _item(db, id_item):
    return db.query_one("SELECT * FROM task_item WHERE id_task_item=%s", (id_item,))


def _log(db, id_item):
    return db.query("SELECT * FROM review_log WHERE id_task_item=%s ORDER BY id_review_log", (id_item,))


def test_set_decision_logs_and_refuses_versions_not_shown(db, task):
    id_task, ids = task
    shown = item_version(_item(db, ids["ok"]))
    db.execute("UPDATE task_item SET text_corrected='Kot, który śpi!' WHERE id_task_item=%s", (ids["ok2"],))
    changed, refused = set_decision(
        db,
        id_task,
        [ids["ok"], ids["ok2"]],
        "accepted",
        "anna",
        None,
        session="s1",
        expected={ids["ok"]: shown, ids["ok2"]: "2000-01-01T00:00:00"},
    )
    assert changed == [ids["ok"]]
    assert refused == [
        (ids["ok2"], "pozycja zmieniła się od wyświetlenia (teraz: processed) - sprawdź ją jeszcze raz")
    ]
    entry = _log(db, ids["ok"])[0]
    assert (entry["action"], entry["reviewer"], entry["session"]) == ("accept", "anna", "s1")
    assert (entry["status_before"], entry["status_after"], entry["text_after"]) == (
        "processed",
        "accepted",
        None,
    )
    assert _log(db, ids["ok2"]) == []
    # CLI (bez sesji) też zostawia ślad.
    set_decision(db, id_task, [ids["ok2"]], "rejected", "jan")
    assert [(e["action"], e["session"]) for e in _log(db, ids["ok2"])] == [("reject", None)]


def test_edit_and_accept_stores_text_with_task_hash_method(db, task):
    id_task, ids = task
    db.execute("UPDATE task SET hash_method='md5' WHERE id_task=%s", (id_task,))
    version = item_version(_item(db, ids["ok"]))
    outcome = edit_and_accept(db, ids["ok"], "Kot, który śpi (poprawione).", "anna", "s1", version)
    assert outcome == Outcome(True, None, ids["ok"])
    row = _item(db, ids["ok"])
    assert row["text_corrected"] == "Kot, który śpi (poprawione)."
    assert row["local_hash"] == hashlib.md5("Kot, który śpi (poprawione).".encode()).hexdigest()
    assert (row["status"], row["approved_by"]) == ("accepted", "anna") and row["approved_at"] is not None
    entry = _log(db, ids["ok"])[-1]
    assert (
        entry["action"] == "edit"
        and entry["text_before"] == "Kot, który śpi."
        and entry["hash_after"] == row["local_hash"]
    )
    assert db.query_value("SELECT records_approved FROM task WHERE id_task=%s", (id_task,)) == 1
    # Drugie kliknięcie z tym samym tekstem: nic się nie zmienia, bez odmowy i bez nowego wpisu.
    again = edit_and_accept(db, ids["ok"], "Kot, który śpi (poprawione).", "anna", "s1", version)
    assert again == Outcome(False, None, ids["ok"]) and len(_log(db, ids["ok"])) == 1
    # Stara wersja i inny tekst: odmowa z opisem, kto zdecydował.
    stale = edit_and_accept(db, ids["ok"], "Inny tekst", "jan", "s2", version)
    assert (
        stale.reason
        == "pozycja zmieniła się od wyświetlenia (teraz: accepted (anna)) - sprawdź ją jeszcze raz"
    )
    # Zaakceptowaną pozycję można jeszcze poprawić (przed eksportem).
    fresh = item_version(_item(db, ids["ok"]))
    assert edit_and_accept(db, ids["ok"], "Kot śpi.", "jan", "s2", fresh).changed
    assert _item(db, ids["ok"])["approved_by"] == "jan"


@pytest.mark.parametrize("which", ["outdated", "deleted", "pending", "exported", "changed"])
def test_edit_refused_by_the_cli_rules(db, task, which):
    id_task, ids = task
    before = _item(db, ids[which])
    outcome = edit_and_accept(db, ids[which], "cokolwiek", "anna")
    assert outcome.changed is False
    assert outcome.reason == refusal_reason(before, "accepted")
    after = _item(db, ids[which])
    assert (after["text_corrected"], after["status"]) == (before["text_corrected"], before["status"])


def test_edit_keeps_crlf_line_endings(db, task):
    id_task, ids = task
    db.execute("UPDATE task_item SET text_corrected='Raz.\\r\\nDwa.' WHERE id_task_item=%s", (ids["ok2"],))
    edit_and_accept(db, ids["ok2"], "Raz.\nDwa i trzy.", "anna")
    assert _item(db, ids["ok2"])["text_corrected"] == "Raz.\r\nDwa i trzy."


def test_accept_hunks_stores_original_with_chosen_changes(db, task):
    id_task, ids = task
    version = item_version(_item(db, ids["ok"]))
    assert accept_hunks(db, ids["ok"], [], "anna", "s1", version).reason.startswith(
        "nie wybrano żadnej zmiany"
    )
    assert "nie ma zmian o numerach [9]" in accept_hunks(db, ids["ok"], [9], "anna", "s1", version).reason
    outcome = accept_hunks(db, ids["ok"], [1, 2], "anna", "s1", version)
    assert outcome.changed
    row = _item(db, ids["ok"])
    assert row["text_corrected"] == "Kot który śpi." and row["local_hash"] == sha256("Kot który śpi.")
    assert row["status"] == "accepted"
    entry = _log(db, ids["ok"])[-1]
    assert entry["action"] == "partial" and json.loads(entry["hunks"]) == [1, 2]


def test_undo_walks_back_the_sessions_decisions(db, task):
    id_task, ids = task
    set_decision(db, id_task, [ids["ok"]], "rejected", "anna", session="s1")
    edit_and_accept(db, ids["ok2"], "Ala ma psa.", "anna", "s1")
    set_decision(db, id_task, [ids["ok2"]], "rejected", "jan", session="s2")  # inna sesja
    # Ostatnia decyzja sesji s1 (poprawka ok2) jest już nadpisana przez s2: odmowa z opisem.
    refused = undo_last(db, id_task, "s1", "anna")
    assert refused.changed is False and refused.id_item == ids["ok2"]
    assert refused.reason == "nie można cofnąć: pozycja zmieniła się po tej decyzji (teraz: rejected (jan))"
    undone = undo_last(db, id_task, "s2", "jan")
    assert undone == Outcome(True, None, ids["ok2"])
    assert _item(db, ids["ok2"])["status"] == "accepted"
    undone = undo_last(db, id_task, "s1", "anna")
    assert undone.changed and undone.id_item == ids["ok2"]
    row = _item(db, ids["ok2"])
    assert (row["status"], row["text_corrected"], row["approved_by"]) == ("processed", "Ala ma psa", None)
    assert row["local_hash"] == sha256("Ala ma psa")
    assert undo_last(db, id_task, "s1", "anna") == Outcome(True, None, ids["ok"])
    assert _item(db, ids["ok"])["status"] == "processed"
    assert undo_last(db, id_task, "s1", "anna").reason == "nie ma decyzji do cofnięcia w tej sesji"
    actions = [r["action"] for r in db.query("SELECT action FROM review_log ORDER BY id_review_log")]
    assert actions == ["reject", "edit", "reject", "undo", "undo", "undo"]
    assert db.query_value("SELECT records_rejected FROM task WHERE id_task=%s", (id_task,)) == 0


def test_undo_refused_after_export(db, task):
    id_task, ids = task
    set_decision(db, id_task, [ids["ok"]], "accepted", "anna", session="s1")
    db.execute(
        "UPDATE task_item SET status='exported', exported_at=NOW() WHERE id_task_item=%s", (ids["ok"],)
    )
    outcome = undo_last(db, id_task, "s1", "anna")
    assert outcome.reason == "nie można cofnąć: pozycja zmieniła się po tej decyzji (teraz: exported (anna))"
    assert _item(db, ids["ok"])["status"] == "exported"


def test_two_reviewers_at_once_one_decision_wins(settings, db, task):
    """Dwie sesje decydują o tej samej pozycji w tej samej chwili: wygrywa jedna, druga widzi jej decyzję."""
    import threading

    from lib.db_local import connect_local

    id_task, ids = task
    version = item_version(_item(db, ids["ok"]))
    barrier = threading.Barrier(2)
    results = {}

    def reviewer(name, decision):
        conn = connect_local(settings)
        try:
            barrier.wait()
            results[name] = set_decision(
                conn, id_task, [ids["ok"]], decision, name, None, session=name, expected={ids["ok"]: version}
            )
        finally:
            conn.close()

    threads = [threading.Thread(target=reviewer, args=a) for a in (("anna", "accepted"), ("jan", "rejected"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, (changed, _r) in results.items() if changed]
    assert len(winners) == 1
    loser = "jan" if winners == ["anna"] else "anna"
    row = _item(db, ids["ok"])
    assert row["approved_by"] == winners[0]
    assert results[loser][1] == [
        (
            ids["ok"],
            f"pozycja zmieniła się od wyświetlenia (teraz: {row['status']} ({winners[0]})) - sprawdź ją jeszcze raz",
        )
    ]
    assert len(_log(db, ids["ok"])) == 1


def test_cli_edit_opens_editor_and_accepts(local_env, db, task, tmp_path):
    id_task, ids = task
    script = tmp_path / "fake_editor.py"
    script.write_text(
        "import sys\np = sys.argv[1]\nt = open(p, encoding='utf-8', newline='').read()\n"
        "open(p, 'w', encoding='utf-8', newline='').write(t.replace('który', 'który naprawdę') + '\\n')\n",
        encoding="utf-8",
    )
    env = {**local_env, "EDITOR": f"{sys.executable} {script}", "VISUAL": ""}
    result = run_review(env, "edit", str(ids["ok"]), "--by", "ola")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"#{ids['ok']}: poprawka zapisana, status accepted (approved_by=ola)" in result.stdout
    row = _item(db, ids["ok"])
    # Nowa linia dopisana przez edytor na końcu pliku nie trafia do tekstu.
    assert row["text_corrected"] == "Kot, który naprawdę śpi." and row["local_hash"] == sha256(
        row["text_corrected"]
    )
    assert _log(db, ids["ok"])[-1]["action"] == "edit"
    refused = run_review(env, "edit", str(ids["outdated"]), "--by", "ola")
    assert refused.returncode == 1 and "odmowa - nieaktualna" in refused.stdout
    unchanged = run_review(
        {**local_env, "EDITOR": "true", "VISUAL": ""}, "edit", str(ids["ok2"]), "--by", "ola"
    )
    assert unchanged.returncode == 0 and "tekst bez zmian - nic nie zapisano" in unchanged.stdout
    assert _item(db, ids["ok2"])["status"] == "processed"
    failing = run_review(
        {**local_env, "EDITOR": "false", "VISUAL": ""}, "edit", str(ids["ok2"]), "--by", "ola"
    )
    assert failing.returncode == 1 and "edytor zakończył się kodem 1" in failing.stderr


# --- liczniki zadania zmieniane przy decyzji, zrzut i decyzje --all po statusach ---------------


def _counters(db, id_task):
    return db.query_one(
        "SELECT records_approved, records_rejected, records_exported FROM task WHERE id_task=%s", (id_task,)
    )


def _recount(db, id_task):
    from lib import task_item

    task_item.refresh_review_counters(db, id_task)
    return _counters(db, id_task)


def test_decisions_change_counters_exactly_like_a_full_recount(db, task):
    """Liczniki zmieniane o różnicę w każdej decyzji, poprawce, cofnięciu = pełne przeliczenie."""
    import random

    id_task, ids = task
    # Stan początkowy nie musi zgadzać się z pozycjami: decyzje zmieniają liczniki o różnicę.
    assert _recount(db, id_task) == {"records_approved": 0, "records_rejected": 0, "records_exported": 1}
    extra = [add_task_item(db, id_task, 100 + n, f"tekst {n} ktury", f"tekst {n} który.") for n in range(12)]
    db.execute("UPDATE task_item SET status='conflict', approved_at=NOW() WHERE id_task_item=%s", (extra[0],))
    _recount(db, id_task)
    decidable = [ids["ok"], ids["ok2"], *extra]
    rng = random.Random(16)
    steps = []
    for step in range(60):
        kind = rng.choice(["accept", "reject", "edit", "partial", "undo", "undo", "all", "refused"])
        item = rng.choice(decidable)
        session = rng.choice(["s1", "s2"])
        if kind in ("accept", "reject"):
            set_decision(db, id_task, [item], f"{kind}ed", "anna", None, session=session)
        elif kind == "edit":
            edit_and_accept(db, item, f"poprawka {step}", "jan", session)
        elif kind == "partial":
            accept_hunks(db, item, [0], "ola", session)
        elif kind == "undo":
            undo_last(db, id_task, session, "anna")
        elif kind == "all":
            set_decision(db, id_task, None, rng.choice(["accepted", "rejected"]), "ola", "processed")
        else:  # odmowy nie zmieniają nic
            set_decision(db, id_task, [ids["deleted"], ids["exported"], ids["pending"]], "accepted", "x")
        steps.append(kind)
        incremental = _counters(db, id_task)
        assert incremental == _recount(db, id_task), (step, steps)
    assert {"undo", "edit", "partial", "all"} <= set(steps)
    # Licznik nieaktualny (np. sprzed tej wersji) nie schodzi poniżej zera.
    db.execute("UPDATE task SET records_approved=0, records_rejected=0 WHERE id_task=%s", (id_task,))
    set_decision(db, id_task, None, "rejected", "anna", "accepted")
    counters = _counters(db, id_task)
    assert counters["records_approved"] == 0 and counters["records_rejected"] >= 0


def test_dump_merges_statuses_in_id_order_across_pages(db, task, monkeypatch):
    """Zrzut czyta każdy status osobno stronami i scala je po ``id_task_item`` (kolejność jak dotąd)."""
    id_task, ids = task
    statuses = ["processed", "accepted", "rejected", "conflict"]
    extra = [
        add_task_item(db, id_task, 200 + n, f"t{n}", f"T{n}.", status=statuses[n % 4]) for n in range(11)
    ]
    monkeypatch.setattr(review_dump, "_DUMP_PAGE", 2)
    out = io.StringIO()
    count = dump_items(db, id_task, "json", out)
    dumped = [r["id_task_item"] for r in json.loads(out.getvalue())]
    expected = sorted([ids["ok"], ids["ok2"], ids["outdated"], ids["changed"], ids["exported"], *extra])
    assert dumped == expected and count == len(expected)
    out = io.StringIO()
    dump_items(db, id_task, "csv", out, ["rejected", "accepted"])
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [int(r["id_task_item"]) for r in rows] == [
        i for i in extra if statuses[extra.index(i) % 4] in ("rejected", "accepted")
    ]


def test_decision_all_statuses_pages_through_each_status(db, task, monkeypatch):
    """``--all`` bez filtra statusu: każdy status stronami (keyset), odmowy z powodem, bez pominięć."""
    id_task, ids = task
    extra = [add_task_item(db, id_task, 300 + n, f"t{n}", f"T{n}.", status="rejected") for n in range(5)]
    _recount(db, id_task)
    monkeypatch.setattr(review_decisions, "_DECISION_CHUNK", 2)
    changed, refused = set_decision(db, id_task, None, "accepted", "anna", None)
    assert sorted(changed) == sorted([ids["ok"], ids["ok2"], *extra])
    reasons = dict(refused)
    assert set(reasons) == {ids["outdated"], ids["changed"], ids["pending"], ids["exported"]}
    assert reasons[ids["exported"]] == "pozycja jest już wyeksportowana do źródła"
    assert _counters(db, id_task) == _recount(db, id_task)


def test_export_report_shows_the_last_export_run_and_problems(db, task):
    id_task, ids = task
    db.execute(
        "INSERT INTO run_log (id_task, kind, run_id, status, started_at, stats) VALUES "
        "(%s, 'export', 'run-old', 'completed', NOW(3) - INTERVAL 1 HOUR, '{\"exported\": 9}'), "
        "(%s, 'export', 'run-new', 'completed', NOW(3) - INTERVAL 1 MINUTE, '{\"exported\": 2, \"conflicts\": 1}'), "
        "(%s, 'sync', 'run-sync', 'completed', NOW(3), NULL)",
        (id_task, id_task, id_task),
    )
    db.execute(
        "UPDATE task_item SET status='conflict', export_error='tekst w źródle zmienił się' WHERE id_task_item=%s",
        (ids["ok"],),
    )
    db.execute(
        "UPDATE task_item SET status='accepted', export_error='brak klucza' WHERE id_task_item=%s",
        (ids["ok2"],),
    )
    report = export_report(db, id_task)
    assert report.run["run_id"] == "run-new" and report.stats == {"exported": 2, "conflicts": 1}
    assert [(p["id_task_item"], p["status"], p["export_error"]) for p in report.problems] == [
        (ids["ok"], "conflict", "tekst w źródle zmienił się"),
        (ids["ok2"], "accepted", "brak klucza"),
    ]
    assert export_report(db, id_task + 1000).run is None
