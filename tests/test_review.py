"""Testy przeglądu: różnica słów, akceptacja/odrzucenie z odmowami, zrzut CSV/JSON, CLI review.py."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from lib import review
from lib.errors import UsageError
from tests.conftest import PROJECT_ROOT
from tests.helpers import add_connection, add_task, add_task_item

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
        review.word_diff("Kot ktury śpi", "Kot, który śpi.", color=False)
        == "Kot{+,+} [-ktury-]{+który+} śpi{+.+}"
    )
    assert review.word_diff("a  b", "a b", color=False) == "a[-  -]{+ +}b"
    assert review.word_diff("tekst ", "tekst", color=False) == "tekst[- -]"
    assert review.word_diff("same", "same", color=False) == "same"
    assert review.word_diff(None, "nowy", color=False) == "{+nowy+}"
    colored = review.word_diff("zły kot", "dobry kot", color=True)
    assert colored == "\x1b[31m[-zły-]\x1b[0m\x1b[32m{+dobry+}\x1b[0m kot"


def test_accept_refuses_with_reasons_and_updates_counters(db, task):
    id_task, ids = task
    changed, refused = review.set_decision(db, id_task, list(ids.values()) + [999999], "accepted", "anna")
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
    changed, refused = review.set_decision(db, id_task, [ids["changed"]], "accepted", "anna")
    assert changed == [ids["changed"]] and refused == []


def test_reject_all_processed_then_accept_changes_mind(db, task):
    id_task, ids = task
    changed, refused = review.set_decision(db, id_task, None, "rejected", "jan", "processed")
    # --all obejmuje tylko pozycje processed; is_changed=1 można odrzucić.
    assert sorted(changed) == sorted([ids["ok"], ids["ok2"], ids["changed"]]) and refused == []
    assert db.query_value("SELECT records_rejected FROM task WHERE id_task=%s", (id_task,)) == 3
    changed, refused = review.set_decision(db, id_task, [ids["ok"]], "accepted", "anna")
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
        review.set_decision(db, id_task, [ids["ok"]], "accepted", "")
    with pytest.raises(UsageError):
        review.set_decision(db, id_task, [ids["ok"]], "accepted", "x" * 65)
    with pytest.raises(UsageError):
        review.set_decision(db, 424242, [ids["ok"]], "accepted", "anna")
    with pytest.raises(UsageError):
        review.set_decision(db, id_task, None, "accepted", "anna", "bogus")


def test_dump_csv_and_json(db, task):
    id_task, ids = task
    review.set_decision(db, id_task, [ids["ok"]], "accepted", "anna")
    out = io.StringIO()
    assert review.dump_items(db, id_task, "csv", out) == 5  # z korektą i nieusunięte
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [int(r["remote_id"]) for r in rows] == [1, 2, 3, 4, 7]
    first = rows[0]
    assert first["text_original"] == "Kot ktury śpi" and first["text_corrected"] == "Kot, który śpi."
    assert first["status"] == "accepted" and first["approved_by"] == "anna"
    assert json.loads(first["change_summary"])["counts"] == {"spelling": 1, "punctuation": 1}
    out = io.StringIO()
    assert review.dump_items(db, id_task, "json", out, ["accepted", "processed"]) == 3
    data = json.loads(out.getvalue())
    assert [d["remote_id"] for d in data] == [1, 2, 4]
    assert data[0]["change_summary"]["edits"][0]["replacement"] == "który"
    out = io.StringIO()
    assert review.dump_items(db, id_task, "json", out, ["conflict"]) == 0
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
