"""Silnik przeglądu: decyzje, dziennik decyzji, strona przeglądu."""
