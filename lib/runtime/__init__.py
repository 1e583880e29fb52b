"""Rama runów: blokady, dziennik runów, sterowanie, postęp, harmonogram, status."""
