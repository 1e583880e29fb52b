"""Strona przeglądu (Starlette): aplikacja, szablony, pliki statyczne."""
