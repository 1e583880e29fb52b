"""Definicje Dagstera ailexia worker: partycje, assety, asset checki, sensory, joby, zasoby."""
