"""Batch OpenAI: wysyłka zapytań i odbiór wyników."""
