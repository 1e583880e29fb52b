"""Jakość odpowiedzi AI: ocena poprawek, zestawy ewaluacyjne i zabezpieczenia (guardrails)."""
