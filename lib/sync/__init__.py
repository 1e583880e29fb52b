"""Silnik synchronizacji: skan źródła, pierwsza synchronizacja, weryfikacja."""
