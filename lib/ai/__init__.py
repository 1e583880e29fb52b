"""Silnik AI: run online, klient modelu, koszty, paczki, prompty, limit modelu."""
