"""Mały serwer HTTP zgodny z OpenAI (``/v1/chat/completions``) do testów i benchmarku.

Deterministyczna "korekta": poprawia kilka znanych błędów (``bląd`` -> ``błąd``,
``wogóle`` -> ``w ogóle``, ``napewno`` -> ``na pewno``) i zwraca listę poprawek; tłumaczenie
zwraca ``[<target>] <tekst>``. Odpowiedź to JSON zgodny ze schematem z ``lib/prompts.py``.

Paczki (``lib/ai_pack.py``): gdy prompt systemowy mówi o "JSON array", a wiadomość użytkownika
jest tablicą ``[{"id", "text"}]``, serwer odpowiada ``{"items": [{"id", "text", "edits"}]}`` -
każdy tekst poprawiony tak samo jak pojedynczy. Licznik ``per_text`` liczy każdy tekst paczki.

``usage`` jest realistyczne: ``prompt_tokens`` = znaki wszystkich wiadomości / 4 + 3 na
wiadomość (więc prompt systemowy kosztuje przy każdym zapytaniu, a paczka rozkłada go na teksty),
``completion_tokens`` = znaki odpowiedzi / 4 + 1.

Konfiguracja per test (bezpieczna wątkowo): stałe opóźnienie, kolejka wstrzykiwanych błędów
(429 z ``Retry-After``, 500, opóźnienie dłuższe niż timeout klienta, zepsuty JSON, odpowiedź
nie-JSON, 401, 404; dla paczek także błędy jednej pozycji: ``pack_drop`` - brak wpisu,
``pack_duplicate`` - wpis dwa razy, ``pack_unknown_id`` - wpis z nieznanym id zamiast właściwego,
``pack_invalid`` - wpis bez tekstu), tryb odrzucania ``response_format`` (jak llama.cpp), liczniki
zapytań (łącznie i per tekst wejściowy), zapis zapytań, bramkę (``gate``): zapytania czekają,
aż nadejdzie ich łącznie tyle, ile ustawiono — np. by dowieść, że pracują dwa procesy naraz — oraz
największą liczbę zapytań w toku naraz (``max_in_flight``).
"""

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FIXES = {"bląd": "błąd", "wogóle": "w ogóle", "napewno": "na pewno"}

_TARGET_RE = re.compile(r"target language:\s*([\w-]+)", re.IGNORECASE)


PACK_FAULTS = ("pack_drop", "pack_duplicate", "pack_unknown_id", "pack_invalid")


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


def _answer(text: str, target: str | None) -> tuple[str, list[dict[str, str]]]:
    """Odpowiedź modelu dla jednego tekstu: tłumaczenie ``[target] tekst`` albo korekta."""
    if target:
        return f"[{target}] {text}", []
    return correct_text(text)


def _pack_content(entries: list[dict[str, Any]], target: str | None, fault: dict[str, Any] | None) -> str:
    """Treść odpowiedzi na paczkę, z ewentualnym błędem jednej pozycji."""
    kind = fault["kind"] if fault else None
    victim = None
    if fault is not None:
        victim = next((e["id"] for e in entries if fault["text"] in (None, e["text"])), None)
    items = []
    for entry in entries:
        answer_text, edits = _answer(entry["text"], target)
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
        items.append(item)
    return json.dumps({"items": items}, ensure_ascii=False)


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _make_handler(state: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Nagłówki i ciało idą osobnymi zapisami: bez TCP_NODELAY Nagle + opóźniony ACK dokładają ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # serwer testowy milczy
            return

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
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
            # Liczniki dla procesu benchmarku, gdy serwer działa w osobnym procesie.
            if self.path.rstrip("/") != "/_stats":
                self._error(404, f"unknown path {self.path}")
                return
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
            payload = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"unknown path {self.path}")
                return
            messages = payload.get("messages") or []
            text = _first_user_text(messages)
            entries = _pack_entries(messages, text)
            texts = [e["text"] for e in entries] if entries is not None else [text]
            record: dict[str, Any] = {
                "payload": payload,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "time": time.monotonic(),
                "texts": texts,
            }
            with state["lock"]:
                state["total"] += 1
                state["packs"] += entries is not None
                for one in texts:
                    state["per_text"][one] += 1
                if state["keep_requests"]:
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
                self._error(500, "late answer after timeout")
                return
            if latency:
                time.sleep(latency)
            if kind == "429":
                self._error(
                    429, "Rate limit reached", {"Retry-After": str(fault.get("retry_after", 1))}, "rate_limit"
                )
                return
            if kind == "500":
                self._error(500, "internal server error")
                return
            if kind == "401":
                self._error(401, "Incorrect API key provided", kind="invalid_request_error")
                return
            if kind == "404" or (models is not None and payload.get("model") not in models):
                self._error(
                    404, f"The model `{payload.get('model')}` does not exist", kind="invalid_request_error"
                )
                return
            if kind == "non_json":
                self._send(200, b"<html>bad gateway</html>")
                return
            response_format = (payload.get("response_format") or {}).get("type")
            if response_format == "json_schema" and state["reject_json_schema"]:
                self._error(
                    500, 'response_format type must be one of "text" or "json_object", but got: json_schema'
                )
                return
            if response_format == "json_object" and state["reject_json_object"]:
                self._error(400, "response_format json_object is not supported by this server")
                return
            system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
            match = _TARGET_RE.search(system)
            target = match.group(1) if match else None
            if entries is not None:
                content = _pack_content(entries, target, fault)
            else:
                answer_text, edits = _answer(text, target)
                if kind == "drop_placeholder":
                    answer_text = re.sub(r"\{\w+\}", "", answer_text)
                content = json.dumps({"text": answer_text, "edits": edits}, ensure_ascii=False)
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
            self._send(200, body)

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
