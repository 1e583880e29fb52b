"""Silnik AI: korekta i tłumaczenie tekstów zadań."""
