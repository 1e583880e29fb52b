"""Operacje operatora za poleceniem ``ailexia`` i (później) stronami operatora: źródła, modele, zadania, demo, sekrety."""
