"""Strona operatora i przeglądu (Starlette): warstwa nad silnikami, jak CLI; szablony, pliki statyczne."""
