"""Mały serwer HTTP zgodny z OpenAI (``/v1/chat/completions``) do testów i benchmarku.

Deterministyczna "korekta": poprawia kilka znanych błędów (``bląd`` -> ``błąd``,
``wogóle`` -> ``w ogóle``, ``napewno`` -> ``na pewno``) i zwraca listę poprawek; tłumaczenie
zwraca ``[<target>] <tekst>``. Odpowiedź to JSON zgodny ze schematem z ``lib/ai/prompts.py``.

Paczki (``lib/ai/packs.py``): gdy prompt systemowy mówi o "JSON array", a wiadomość użytkownika
jest tablicą ``[{"id", "text"}]``, serwer odpowiada ``{"items": [{"id", "text", "edits"}]}`` -
każdy tekst poprawiony tak samo jak pojedynczy. Licznik ``per_text`` liczy każdy tekst paczki.

``usage`` jest realistyczne: ``prompt_tokens`` = znaki wszystkich wiadomości / 4 + 3 na
wiadomość (więc prompt systemowy kosztuje przy każdym zapytaniu, a paczka rozkłada go na teksty),
``completion_tokens`` = znaki odpowiedzi / 4 + 1.

Konfiguracja per test (bezpieczna wątkowo): stałe opóźnienie, kolejka wstrzykiwanych błędów
(429 z ``Retry-After``, 500, opóźnienie dłuższe niż timeout klienta, zepsuty JSON, odpowiedź
nie-JSON, 401, 404; dla paczek także błędy jednej pozycji: ``pack_drop`` - brak wpisu,
``pack_duplicate`` - wpis dwa razy, ``pack_unknown_id`` - wpis z nieznanym id zamiast właściwego,
``pack_invalid`` - wpis bez tekstu; ``lone_surrogate`` - tekst z ucieczką pojedynczego surogatu, także w paczce), tryb odrzucania ``response_format`` (jak llama.cpp), liczniki
zapytań (łącznie i per tekst wejściowy), zapis zapytań, bramkę (``gate``): zapytania czekają,
aż nadejdzie ich łącznie tyle, ile ustawiono — np. by dowieść, że pracują dwa procesy naraz — oraz
największą liczbę zapytań w toku naraz (``max_in_flight``).

Wybrane odpowiedzi (``answers``): słownik tekst wejściowy -> tekst odpowiedzi; tekst z tego
słownika (także w paczce) dostaje dokładnie podaną odpowiedź z jedną poprawką (kategoria
``other``: ``original`` = tekst wejściowy, ``replacement`` = odpowiedź) zamiast korekty
z ``FIXES`` - np. by sprawdzić, że dowolne znaki odpowiedzi trafiają do bazy bajt w bajt.
Pusty słownik (domyślnie) niczego nie zmienia; tłumaczenie też korzysta z tego słownika.

Batch API: ``/v1/files`` (upload multipart, lista, obiekt pliku, ``/content``, DELETE) i ``/v1/batches``
(create, retrieve, list z ``after``/``has_more``, cancel). Linie batcha przechodzą przez tę samą
odpowiedź czatu (``chat_answer``, z błędami z ``add_fault``); koniec batcha sterowany stanem:
``batch_mode`` (``complete`` przy pierwszym retrieve albo ``hold`` do ``finish_batches``),
``batch_outcome`` (completed / expired / failed), ``batch_done_lines`` i ``cancel_done_lines``.
"""

import email.policy
import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FIXES = {"bląd": "błąd", "wogóle": "w ogóle", "napewno": "na pewno"}

_TARGET_RE = re.compile(r"target language:\s*([\w-]+)", re.IGNORECASE)


PACK_FAULTS = ("pack_drop", "pack_duplicate", "pack_unknown_id", "pack_invalid")

# ``lone_surrogate``: tekst odpowiedzi zaczyna się ucieczką JSON pojedynczego surogatu (poprawny JSON,
# tekst niezapisywalny w UTF-8); znacznik zastępowany po ``json.dumps``, bo sam surogat nie przejdzie przez UTF-8.
_LONE_SURROGATE = "\\ud83d"
_SURROGATE_MARK = "@@lone-surrogate@@"


def usage_for(messages: list[dict[str, Any]], content: str, cached: int = 0) -> dict[str, Any]:
    """Zwraca deterministyczne ``usage``: długość wszystkich wiadomości zapytania i treści odpowiedzi / 4."""
    chars = sum(
        len(m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content")))
        for m in messages
    )
    prompt_tokens = chars // 4 + 3 * len(messages)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(content) // 4 + 1,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": min(cached, prompt_tokens)}
    return usage


def correct_text(text: str) -> tuple[str, list[dict[str, str]]]:
    """Poprawia znane błędy; zwraca tekst i listę poprawek (kategoria ``spelling``)."""
    edits = []
    for wrong, right in FIXES.items():
        if wrong in text:
            text = text.replace(wrong, right)
            edits.append(
                {"original": wrong, "replacement": right, "category": "spelling", "explanation": "pisownia"}
            )
    return text, edits


def make_state() -> dict[str, Any]:
    """Tworzy stan serwera (konfiguracja, błędy, liczniki)."""
    return {
        "lock": threading.Lock(),
        "latency": 0.0,
        "faults": [],
        "reject_json_schema": False,
        "reject_json_object": False,
        "cached_tokens": 0,
        "total": 0,
        "per_text": Counter(),
        "packs": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "requests": [],
        "keep_requests": True,
        "models": None,
        # Bramka: zapytania czekają, aż serwer dostanie łącznie ``gate`` zapytań (0 = wyłączona).
        "gate": 0,
        "gate_timeout": 20.0,
        "gate_open": threading.Event(),
        "in_flight": 0,
        "max_in_flight": 0,
        # Wybrane odpowiedzi: tekst wejściowy -> dokładny tekst odpowiedzi (pusty = korekta z FIXES).
        "answers": {},
        # Batch API: pliki (id -> opis + treść), batche (id -> obiekt) i sterowanie końcem batcha.
        "files": {},
        "batches": {},
        "batch_seq": 0,
        # complete = batch kończy się przy pierwszym retrieve; hold = czeka na ``finish_batches``.
        "batch_mode": "complete",
        # Jak kończy się batch w trybie complete: completed, expired (po ``batch_done_lines`` liniach), failed.
        "batch_outcome": "completed",
        "batch_done_lines": None,
        # Ile linii zdąży się wykonać przed anulowaniem (reszta trafia do pliku błędów).
        "cancel_done_lines": 0,
        "batch_calls": Counter(),
    }


def add_fault(
    state: dict[str, Any], kind: str, times: int = 1, text: str | None = None, **options: Any
) -> None:
    """Dopisuje błąd do kolejki: ``kind`` w 429, 500, timeout, malformed, non_json, 401, 404, drop_placeholder.

    Args:
        state: Stan serwera.
        kind: Rodzaj błędu.
        times: Ile kolejnych zapytań dostaje ten błąd.
        text: Tylko zapytania o ten tekst (``None`` = dowolne).
        **options: ``retry_after`` (s) dla 429, ``delay`` (s) dla timeout.
    """
    with state["lock"]:
        for _ in range(times):
            state["faults"].append({"kind": kind, "text": text, **options})


def _take_fault(state: dict[str, Any], texts: list[str], pack: bool) -> dict[str, Any] | None:
    """Zabiera pierwszy pasujący błąd: ten sam tekst (w paczce: któryś z jej tekstów) albo dowolny.

    Błędy pozycji paczki (``pack_*``) pasują tylko do paczek.
    """
    with state["lock"]:
        for index, fault in enumerate(state["faults"]):
            if fault["kind"] in PACK_FAULTS and not pack:
                continue
            if fault["text"] is None or fault["text"] in texts:
                return state["faults"].pop(index)
    return None


def _pack_entries(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]] | None:
    """Wpisy paczki ``[{"id", "text"}]`` albo ``None``, gdy to zapytanie o jeden tekst."""
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    if "JSON array" not in system:
        return None
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("id"), str) and isinstance(e.get("text"), str)
        for e in entries
    ):
        return None
    return entries


def _answer(
    text: str, target: str | None, answers: dict[str, str] | None = None
) -> tuple[str, list[dict[str, str]]]:
    """Odpowiedź modelu dla jednego tekstu: wybrana (``answers``), tłumaczenie ``[target] tekst`` albo korekta."""
    if answers and text in answers:
        chosen = answers[text]
        return chosen, [
            {"original": text, "replacement": chosen, "category": "other", "explanation": "wybrana odpowiedź"}
        ]
    if target:
        return f"[{target}] {text}", []
    return correct_text(text)


def _pack_content(
    entries: list[dict[str, Any]],
    target: str | None,
    fault: dict[str, Any] | None,
    answers: dict[str, str] | None = None,
) -> str:
    """Treść odpowiedzi na paczkę, z ewentualnym błędem jednej pozycji."""
    kind = fault["kind"] if fault else None
    victim = None
    if fault is not None:
        victim = next((e["id"] for e in entries if fault["text"] in (None, e["text"])), None)
    items = []
    for entry in entries:
        answer_text, edits = _answer(entry["text"], target, answers)
        if kind == "drop_placeholder" and entry["id"] == victim:
            answer_text = re.sub(r"\{\w+\}", "", answer_text)
        item: dict[str, Any] = {"id": entry["id"], "text": answer_text, "edits": edits}
        if entry["id"] == victim:
            if kind == "pack_drop":
                continue
            if kind == "pack_unknown_id":
                item["id"] = f"x{entry['id']}"
            if kind == "pack_invalid":
                item["text"] = None
            if kind == "pack_duplicate":
                items.append(dict(item))
            if kind == "lone_surrogate":
                item["text"] = _SURROGATE_MARK + answer_text
        items.append(item)
    return json.dumps({"items": items}, ensure_ascii=False).replace(_SURROGATE_MARK, _LONE_SURROGATE)


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _error_body(message: str, kind: str = "error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None}}


def chat_answer(
    state: dict[str, Any], payload: dict[str, Any], headers: Any = None, delay: bool = True
) -> tuple[int, Any, dict[str, str] | None]:
    """Odpowiedź na jedno zapytanie czatu (HTTP albo linia batcha): ``(kod, ciało, nagłówki)``.

    Liczy zapytanie, stosuje bramkę, opóźnienie i wstrzyknięte błędy (``add_fault``); zapytanie
    HTTP (``headers`` podane) trafia do ``state["requests"]``. Linie batcha (``delay=False``) nie
    czekają stałego opóźnienia - batch wykonuje się od razu przy odpytaniu.
    """
    messages = payload.get("messages") or []
    text = _first_user_text(messages)
    entries = _pack_entries(messages, text)
    texts = [e["text"] for e in entries] if entries is not None else [text]
    record: dict[str, Any] = {
        "payload": payload,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "time": time.monotonic(),
        "texts": texts,
    }
    with state["lock"]:
        state["total"] += 1
        state["packs"] += entries is not None
        for one in texts:
            state["per_text"][one] += 1
        if state["keep_requests"] and headers is not None:
            state["requests"].append(record)
        latency = state["latency"]
        models = state["models"]
        gate = state["gate"]
        if gate and state["total"] >= gate:
            state["gate_open"].set()
    if gate:
        state["gate_open"].wait(state["gate_timeout"])
    fault = _take_fault(state, texts, entries is not None)
    kind = fault["kind"] if fault else None
    if kind == "timeout":
        time.sleep(fault.get("delay", 5.0))
        # Klient zwykle już zerwał połączenie; odpowiedź mogłaby wyglądać na sukces.
        return 500, _error_body("late answer after timeout"), None
    if latency and delay:
        time.sleep(latency)
    if kind == "429":
        return (
            429,
            _error_body("Rate limit reached", "rate_limit"),
            {"Retry-After": str(fault.get("retry_after", 1))},
        )
    if kind == "500":
        return 500, _error_body("internal server error"), None
    if kind == "401":
        return 401, _error_body("Incorrect API key provided", "invalid_request_error"), None
    if kind == "404" or (models is not None and payload.get("model") not in models):
        return (
            404,
            _error_body(f"The model `{payload.get('model')}` does not exist", "invalid_request_error"),
            None,
        )
    if kind == "non_json":
        return 200, b"<html>bad gateway</html>", None
    response_format = (payload.get("response_format") or {}).get("type")
    if response_format == "json_schema" and state["reject_json_schema"]:
        return (
            500,
            _error_body('response_format type must be one of "text" or "json_object", but got: json_schema'),
            None,
        )
    if response_format == "json_object" and state["reject_json_object"]:
        return 400, _error_body("response_format json_object is not supported by this server"), None
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    match = _TARGET_RE.search(system)
    target = match.group(1) if match else None
    answers = state.get("answers")
    if entries is not None:
        content = _pack_content(entries, target, fault, answers)
    else:
        answer_text, edits = _answer(text, target, answers)
        if kind == "drop_placeholder":
            answer_text = re.sub(r"\{\w+\}", "", answer_text)
        content = json.dumps({"text": answer_text, "edits": edits}, ensure_ascii=False)
        if kind == "lone_surrogate":
            content = content.replace('"text": "', '"text": "' + _LONE_SURROGATE, 1)
    if kind == "malformed":
        content = content[: len(content) // 2]
    body = {
        "id": f"chatcmpl-{state['total']}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_for(messages, content, state["cached_tokens"]),
    }
    record["content"] = content
    record["usage"] = body["usage"]
    with state["lock"]:
        state["prompt_tokens"] += body["usage"]["prompt_tokens"]
        state["completion_tokens"] += body["usage"]["completion_tokens"]
    return 200, body, None


# --- Batch API (/v1/files, /v1/batches) ---------------------------------------------------


def _parse_multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """Czyta formularz multipart (upload pliku): nazwa pola -> tekst albo ``(nazwa pliku, bajty)``."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        fields[name] = (filename, data) if filename else data.decode("utf-8")
    return fields


def _new_id(state: dict[str, Any], prefix: str) -> str:
    state["batch_seq"] += 1
    return f"{prefix}-{state['batch_seq']:05d}"


def _add_file(state: dict[str, Any], filename: str, data: bytes, purpose: str) -> dict[str, Any]:
    """Zapisuje plik w stanie serwera i zwraca jego obiekt (bez treści)."""
    with state["lock"]:
        file_id = _new_id(state, "file")
        info = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        state["files"][file_id] = {"info": info, "data": data}
    return info


def _process_batch(state: dict[str, Any], batch: dict[str, Any], final: str, done_lines: int | None) -> None:
    """Wykonuje linie batcha i zamyka go statusem ``final`` (completed, expired, cancelled, failed).

    Pierwsze ``done_lines`` linii (``None`` = wszystkie) dostaje odpowiedź czatu (błąd czatu -> plik
    błędów z ``status_code``); pozostałe trafiają do pliku błędów z kodem ``batch_expired`` /
    ``batch_cancelled``.
    """
    now = int(time.time())
    if final == "failed":
        batch.update(
            status="failed",
            failed_at=now,
            errors={"object": "list", "data": [{"code": "invalid_request", "message": "fake failure"}]},
        )
        return
    lines = [line for line in state["files"][batch["input_file_id"]]["data"].decode().splitlines() if line]
    outputs, errors = [], []
    for index, line in enumerate(lines):
        request = json.loads(line)
        request_id = f"batch_req_{batch['id']}_{index}"
        if done_lines is not None and index >= done_lines:
            errors.append(
                {
                    "id": request_id,
                    "custom_id": request["custom_id"],
                    "response": None,
                    "error": {"code": f"batch_{final}", "message": f"This request was not executed: {final}"},
                }
            )
            continue
        code, body, _headers = chat_answer(state, request["body"], delay=False)
        entry = {
            "id": request_id,
            "custom_id": request["custom_id"],
            "response": {"status_code": code, "request_id": request_id, "body": body},
            "error": None,
        }
        (outputs if code == 200 else errors).append(entry)
    for key, entries in (("output_file_id", outputs), ("error_file_id", errors)):
        if entries:
            data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode("utf-8")
            batch[key] = _add_file(state, f"{batch['id']}_{key}.jsonl", data, "batch_output")["id"]
    batch["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}
    batch["status"] = final
    batch[f"{final}_at"] = now


def finish_batches(state: dict[str, Any], outcome: str = "completed", done_lines: int | None = None) -> int:
    """Kończy wszystkie otwarte batche (tryb ``hold``); zwraca ich liczbę.

    Args:
        state: Stan serwera.
        outcome: ``completed``, ``expired`` albo ``failed``.
        done_lines: Ile linii każdego batcha wykonać (``None`` = wszystkie).
    """
    count = 0
    for batch in list(state["batches"].values()):
        if batch["status"] in ("validating", "in_progress"):
            _process_batch(state, batch, outcome, done_lines)
            count += 1
    return count


def batch_post(state: dict[str, Any], path: str, raw: bytes, content_type: str) -> tuple[int, Any]:
    """POST /v1/files, /v1/batches, /v1/batches/{id}/cancel."""
    if path == "/v1/files":
        fields = _parse_multipart(raw, content_type)
        filename, data = fields.get("file", ("upload.jsonl", b""))
        state["batch_calls"]["files.create"] += 1
        return 200, _add_file(state, filename or "upload.jsonl", data, fields.get("purpose", ""))
    if path == "/v1/batches":
        payload = json.loads(raw or b"{}")
        state["batch_calls"]["batches.create"] += 1
        if payload.get("input_file_id") not in state["files"]:
            return 400, _error_body(f"file {payload.get('input_file_id')} not found", "invalid_request_error")
        now = int(time.time())
        with state["lock"]:
            batch_id = _new_id(state, "batch")
            batch = {
                "id": batch_id,
                "object": "batch",
                "endpoint": payload.get("endpoint"),
                "errors": None,
                "input_file_id": payload["input_file_id"],
                "completion_window": payload.get("completion_window"),
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "expires_at": now + 86400,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "metadata": payload.get("metadata"),
            }
            state["batches"][batch_id] = batch
        return 200, batch
    parts = path.split("/")
    if len(parts) == 5 and parts[2] == "batches" and parts[4] == "cancel":
        batch = state["batches"].get(parts[3])
        state["batch_calls"]["batches.cancel"] += 1
        if batch is None:
            return 404, _error_body("no such batch", "invalid_request_error")
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
        return 200, batch
    return 404, _error_body(f"unknown path {path}")


def batch_get(state: dict[str, Any], path: str, full_path: str) -> tuple[int, Any]:
    """GET /v1/files (lista), /v1/files/{id}[/content], /v1/batches, /v1/batches/{id}."""
    parts = path.split("/")
    if path == "/v1/files":
        state["batch_calls"]["files.list"] += 1
        query = urllib.parse.parse_qs(urllib.parse.urlparse(full_path).query)
        purpose = query.get("purpose", [None])[0]
        data = [
            f["info"] for f in reversed(state["files"].values()) if purpose in (None, f["info"]["purpose"])
        ]
        return 200, {"object": "list", "data": data, "has_more": False}
    if len(parts) >= 4 and parts[2] == "files":
        stored = state["files"].get(parts[3])
        if stored is None:
            return 404, _error_body("no such file", "invalid_request_error")
        if len(parts) == 5 and parts[4] == "content":
            state["batch_calls"]["files.content"] += 1
            return 200, stored["data"]
        return 200, stored["info"]
    if path == "/v1/batches":
        state["batch_calls"]["batches.list"] += 1
        query = urllib.parse.parse_qs(urllib.parse.urlparse(full_path).query)
        limit = int(query.get("limit", ["20"])[0])
        after = query.get("after", [None])[0]
        newest_first = list(reversed(state["batches"].values()))
        if after is not None:
            ids = [b["id"] for b in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        page = newest_first[:limit]
        return 200, {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(newest_first) > limit,
        }
    if len(parts) == 4 and parts[2] == "batches":
        batch = state["batches"].get(parts[3])
        state["batch_calls"]["batches.retrieve"] += 1
        if batch is None:
            return 404, _error_body("no such batch", "invalid_request_error")
        if batch["status"] == "cancelling":
            _process_batch(state, batch, "cancelled", state["cancel_done_lines"])
        elif batch["status"] in ("validating", "in_progress"):
            if state["batch_mode"] == "complete":
                _process_batch(state, batch, state["batch_outcome"], state["batch_done_lines"])
            else:
                batch["status"] = "in_progress"
        return 200, batch
    return 404, _error_body(f"unknown path {path}")


def _make_handler(state: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Nagłówki i ciało idą osobnymi zapisami: bez TCP_NODELAY Nagle + opóźniony ACK dokładają ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # serwer testowy milczy
            return

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers = dict(headers or {})
            try:
                self.send_response(code)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _error(
            self, code: int, message: str, headers: dict[str, str] | None = None, kind: str = "error"
        ) -> None:
            self._send(code, {"error": {"message": message, "type": kind, "code": None}}, headers)

        def do_GET(self) -> None:  # noqa: N802 - API http.server
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/_stats":
                # Liczniki dla procesu benchmarku, gdy serwer działa w osobnym procesie.
                with state["lock"]:
                    body = {
                        "total": state["total"],
                        "distinct": len(state["per_text"]),
                        "max_per_text": max(state["per_text"].values(), default=0),
                        "texts_sent": sum(state["per_text"].values()),
                        "packs": state["packs"],
                        "prompt_tokens": state["prompt_tokens"],
                        "completion_tokens": state["completion_tokens"],
                    }
                self._send(200, body)
                return
            code, body = batch_get(state, path, self.path)
            if isinstance(body, bytes):
                self._send(code, body, {"Content-Type": "application/octet-stream"})
            else:
                self._send(code, body)

        def do_DELETE(self) -> None:  # noqa: N802 - API http.server
            parts = self.path.split("?", 1)[0].rstrip("/").split("/")
            if len(parts) == 4 and parts[2] == "files" and parts[3] in state["files"]:
                state["batch_calls"]["files.delete"] += 1
                del state["files"][parts[3]]
                self._send(200, {"id": parts[3], "object": "file", "deleted": True})
                return
            self._error(404, f"unknown path {self.path}")

        def do_POST(self) -> None:  # noqa: N802 - API http.server
            # Zapytania w toku naraz (od przyjęcia do wysłania odpowiedzi) - limit AI_MODEL_CONCURRENCY.
            with state["lock"]:
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            try:
                self._handle_post()
            finally:
                with state["lock"]:
                    state["in_flight"] -= 1

        def _handle_post(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            path = self.path.split("?", 1)[0].rstrip("/")
            if path.startswith("/v1/files") or path.startswith("/v1/batches"):
                code, body = batch_post(state, path, raw, self.headers.get("Content-Type") or "")
                self._send(code, body)
                return
            payload = json.loads(raw or b"{}")
            if path not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"unknown path {self.path}")
                return
            code, body, headers = chat_answer(state, payload, self.headers)
            self._send(code, body, headers)

    return Handler


def start_server(latency: float = 0.0) -> tuple[ThreadingHTTPServer, dict[str, Any]]:
    """Uruchamia serwer w wątku na 127.0.0.1 (port losowy); zwraca serwer i jego stan."""
    state = make_state()
    state["latency"] = latency
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state), bind_and_activate=False)
    server.daemon_threads = True
    server.request_queue_size = 256  # kolejka listen() przy 32+ równoległych połączeniach
    server.server_bind()
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["base_url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return server, state


def serve_forever_main(latency: float) -> None:
    """Uruchamia serwer w bieżącym procesie (dla benchmarku): wypisuje base_url i czeka."""
    server, state = start_server(latency)
    state["keep_requests"] = False
    print(state["base_url"], flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        stop_server(server)


def stop_server(server: ThreadingHTTPServer) -> None:
    """Zatrzymuje serwer."""
    server.shutdown()
    server.server_close()


@pytest.fixture(name="fake_openai")
def fake_openai_fixture():
    """Serwer zgodny z OpenAI na czas testu; zwraca słownik stanu (``base_url``, liczniki, błędy)."""
    server, state = start_server()
    yield state
    stop_server(server)
