"""Biblioteki ailexia worker: cała logika biznesowa, bez zależności od Dagstera."""
