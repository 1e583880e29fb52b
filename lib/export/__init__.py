"""Silnik eksportu zaakceptowanych tekstów do źródła."""
