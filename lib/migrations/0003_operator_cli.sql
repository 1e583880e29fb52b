-- 0003: polecenie ailexia (issue 27) - hasła źródeł w spoczynku.
-- db_password mieści szyfrogram Fernet z przedrostkiem "fernet:" (hasło 100 znaków -> ~190 znaków);
-- password_env to nazwa zmiennej środowiska z hasłem (w bazie nie ma wtedy hasła w żadnej postaci).
ALTER TABLE `database_connection`
  MODIFY COLUMN `db_password` VARCHAR(512) DEFAULT NULL COMMENT 'hasło zaszyfrowane (fernet:..., klucz AILEXIA_SECRET_KEY); bez przedrostka = jawne ze starszej wersji',
  ADD COLUMN `password_env` VARCHAR(64) DEFAULT NULL COMMENT 'nazwa zmiennej środowiska z hasłem (wtedy db_password jest NULL)' AFTER `db_password`;
