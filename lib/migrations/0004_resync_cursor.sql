-- Tryb kursora resyncu (issue 28): kolumna kursora zadania i wartość zapamiętana po ostatnim skanie.
ALTER TABLE task
  ADD COLUMN cursor_column VARCHAR(64) DEFAULT NULL COMMENT 'Kolumna kursora resyncu (np. updated_at); NULL = pełne porównanie' AFTER key_column,
  ADD COLUMN cursor_value VARCHAR(64) DEFAULT NULL COMMENT 'Największa wartość kursora na starcie ostatniego zakończonego skanu' AFTER cursor_column;
