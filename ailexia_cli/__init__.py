"""Polecenie konsoli ``ailexia`` (cienkie drzwi do ``lib.admin``)."""
