"""Jeden schemat nazw blokad ``GET_LOCK`` (``lib.runtime.locks.lock_name``): ``ailexia:<kind>:…``."""

import uuid

from lib.ai import operation as ai_operation
from lib.runtime.locks import MAX_LOCK_NAME, lock_name, model_slot_names


def test_names_share_one_scheme_and_fit_the_server_limit():
    assert lock_name("task", "7", "ailexia") == "ailexia:task:ailexia:7"
    long_db = "x" * 64
    hashed = lock_name("task", "7", long_db)
    assert hashed.startswith("ailexia:task:") and len(hashed) <= MAX_LOCK_NAME
    assert hashed != lock_name("task", "8", long_db)
    operation = str(uuid.uuid4())
    for prefix in ai_operation.LOCK_PREFIXES:
        # SQL rezerwacji dokleja UUID do prefiksu: to ta sama nazwa, którą trzyma run.
        assert prefix.startswith("ailexia:") and len(prefix + operation) <= MAX_LOCK_NAME
    assert ai_operation.LOCK_PREFIX + operation == lock_name("ai_op", operation)
    names = model_slot_names({"model": "m", "base_url": "http://x/v1"}, 32)
    assert len(set(names)) == 32 and all(n.startswith("ailexia:ai_slot:") and len(n) <= 64 for n in names)


def test_two_installations_on_one_server_do_not_share_task_locks():
    assert lock_name("task", "1", "install_a") != lock_name("task", "1", "install_b")
    assert lock_name("task", "1", "a" * 60) != lock_name("task", "1", "b" * 60)
