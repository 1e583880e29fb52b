-- Przejęcie bazy założonej przed migracjami (stary ``lib/schema.py`` i tabela ``schema_version``).
--
-- Uruchamiany tylko raz, gdy baza ma tabele projektu, a nie ma ``schema_migrations``, i tylko
-- wtedy, gdy jej schemat różni się od 0001_initial. Najpierw runner stosuje 0001_initial
-- (``CREATE TABLE IF NOT EXISTS`` zakłada brakujące tabele), potem ten plik podnosi tabele, które
-- już były: od DDL specyfikacji i pierwszego wydania aż do ostatniego schematu sprzed migracji.
-- Każda instrukcja jest idempotentna (``IF [NOT] EXISTS`` MariaDB), więc przerwany plik można
-- uruchomić ponownie. Plik jest zamrożony: nowe zmiany schematu idą do nowych migracji.

-- DDL specyfikacji: literówka w nazwie kolumny.
ALTER TABLE `task` CHANGE COLUMN IF EXISTS `id_database_connectione` `id_database_connection` INT UNSIGNED NOT NULL COMMENT 'Źródłowa baza danych (z tabeli database_connection)';

-- Kolumny, których definicja się zmieniła (szersze typy i listy ENUM, zestaw znaków hashy, opisy).
ALTER TABLE `task`
  MODIFY COLUMN IF EXISTS `key_column` VARCHAR(255) DEFAULT NULL COMMENT 'Kolumny klucza po przecinku (NULL = klucz główny albo indeks unikalny)',
  MODIFY COLUMN IF EXISTS `last_processed_id` BIGINT DEFAULT NULL COMMENT 'ID ostatniego przetworzonego rekordu (do wznawiania; klucz całkowity)',
  MODIFY COLUMN IF EXISTS `status` ENUM('new','queued','in_progress','paused','resync','verifying','completed','error','cancelled','archived') DEFAULT 'new' COMMENT 'Etap przetwarzania zadania',
  MODIFY COLUMN IF EXISTS `table_name` VARCHAR(128) NOT NULL COMMENT 'Nazwa tabeli źródłowej (schema.tabela dla pgsql/mssql)';

ALTER TABLE `task_item`
  MODIFY COLUMN IF EXISTS `local_hash` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL COMMENT 'Hash text_corrected',
  MODIFY COLUMN IF EXISTS `operation_uuid` CHAR(36) DEFAULT NULL COMMENT 'Operacja AI, która wytworzyła zapisany wynik (run_log.operation_uuid)',
  MODIFY COLUMN IF EXISTS `original_hash` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL COMMENT 'Hash tekstu źródłowego w momencie pobrania',
  MODIFY COLUMN IF EXISTS `remote_id` BIGINT DEFAULT NULL COMMENT 'Identyfikator w tabeli źródłowej (gdy klucz to jedna liczba całkowita)';

-- Kolumny dodane od DDL specyfikacji i pierwszego wydania, na swoich miejscach (jak w 0001).
ALTER TABLE `database_connection`
  ADD COLUMN IF NOT EXISTS `id_user` INT NOT NULL AFTER `id_database_connection`,
  ADD COLUMN IF NOT EXISTS `alias` VARCHAR(64) NOT NULL COMMENT 'np. HR, CRM, Magazyn' AFTER `id_user`,
  ADD COLUMN IF NOT EXISTS `description` TEXT DEFAULT NULL AFTER `alias`,
  ADD COLUMN IF NOT EXISTS `db_type` ENUM('mysql','mssql','pgsql','sqlite') DEFAULT 'mysql' AFTER `description`,
  ADD COLUMN IF NOT EXISTS `host` VARCHAR(128) NOT NULL AFTER `db_type`,
  ADD COLUMN IF NOT EXISTS `port` INT UNSIGNED DEFAULT 3306 AFTER `host`,
  ADD COLUMN IF NOT EXISTS `db_name` VARCHAR(255) NOT NULL COMMENT 'nazwa bazy; dla sqlite ścieżka pliku' AFTER `port`,
  ADD COLUMN IF NOT EXISTS `db_user` VARCHAR(128) NOT NULL AFTER `db_name`,
  ADD COLUMN IF NOT EXISTS `db_password` CHAR(128) DEFAULT NULL COMMENT 'haslo jawnie' AFTER `db_user`,
  ADD COLUMN IF NOT EXISTS `use_ssl` TINYINT(1) DEFAULT 0 AFTER `db_password`,
  ADD COLUMN IF NOT EXISTS `status` ENUM('active','disabled','error') DEFAULT 'disabled' AFTER `use_ssl`,
  ADD COLUMN IF NOT EXISTS `last_error` TEXT DEFAULT NULL COMMENT 'ostatni błąd połączenia (bez hasła)' AFTER `status`,
  ADD COLUMN IF NOT EXISTS `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP AFTER `last_error`,
  ADD COLUMN IF NOT EXISTS `updated_at` DATETIME DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP AFTER `created_at`;

ALTER TABLE `ai_model`
  ADD COLUMN IF NOT EXISTS `name` VARCHAR(64) NOT NULL COMMENT 'alias modelu' AFTER `id_ai_model`,
  ADD COLUMN IF NOT EXISTS `model` VARCHAR(128) NOT NULL COMMENT 'np. gpt-4o-mini' AFTER `name`,
  ADD COLUMN IF NOT EXISTS `base_url` VARCHAR(255) DEFAULT NULL COMMENT 'NULL = OpenAI; inaczej serwer zgodny z OpenAI' AFTER `model`,
  ADD COLUMN IF NOT EXISTS `api_key_env` VARCHAR(64) DEFAULT 'OPENAI_API_KEY' COMMENT 'nazwa zmiennej środowiska z kluczem' AFTER `base_url`,
  ADD COLUMN IF NOT EXISTS `price_input_per_mtok` DECIMAL(10,4) DEFAULT 0.0000 COMMENT 'USD za milion tokenów wejściowych' AFTER `api_key_env`,
  ADD COLUMN IF NOT EXISTS `price_cached_input_per_mtok` DECIMAL(10,4) DEFAULT NULL COMMENT 'USD za milion tokenów z cache (NULL = jak wejściowe)' AFTER `price_input_per_mtok`,
  ADD COLUMN IF NOT EXISTS `price_output_per_mtok` DECIMAL(10,4) DEFAULT 0.0000 COMMENT 'USD za milion tokenów wyjściowych' AFTER `price_cached_input_per_mtok`,
  ADD COLUMN IF NOT EXISTS `temperature` DECIMAL(3,2) DEFAULT 0.00 AFTER `price_output_per_mtok`,
  ADD COLUMN IF NOT EXISTS `max_output_tokens` INT UNSIGNED DEFAULT 4096 AFTER `temperature`,
  ADD COLUMN IF NOT EXISTS `pack_items` INT UNSIGNED DEFAULT NULL COMMENT 'Najwięcej tekstów w zapytaniu (NULL = AI_PACK_ITEMS, 1 = bez paczek)' AFTER `max_output_tokens`,
  ADD COLUMN IF NOT EXISTS `pack_chars` INT UNSIGNED DEFAULT NULL COMMENT 'Najwięcej znaków tekstów w zapytaniu (NULL = AI_PACK_CHARS)' AFTER `pack_items`,
  ADD COLUMN IF NOT EXISTS `system_prompt` TEXT DEFAULT NULL COMMENT 'NULL = wbudowany prompt' AFTER `pack_chars`,
  ADD COLUMN IF NOT EXISTS `status` ENUM('active','disabled') DEFAULT 'active' AFTER `system_prompt`,
  ADD COLUMN IF NOT EXISTS `batch_mode` TINYINT(1) DEFAULT 0 COMMENT '1 = OpenAI Batch API (taniej, wyniki do 24 h)' AFTER `status`,
  ADD COLUMN IF NOT EXISTS `response_format` VARCHAR(16) CHARACTER SET ascii DEFAULT NULL COMMENT 'Format odpowiedzi wykryty u serwera i modelu (json_schema/json_object/text); NULL = wykryj w następnym runie' AFTER `batch_mode`,
  ADD COLUMN IF NOT EXISTS `price_batch_input_per_mtok` DECIMAL(10,4) DEFAULT NULL COMMENT 'USD za milion tokenów wejściowych w batchu (NULL = połowa ceny)' AFTER `response_format`,
  ADD COLUMN IF NOT EXISTS `price_batch_output_per_mtok` DECIMAL(10,4) DEFAULT NULL COMMENT 'USD za milion tokenów wyjściowych w batchu (NULL = połowa ceny)' AFTER `price_batch_input_per_mtok`,
  ADD COLUMN IF NOT EXISTS `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP AFTER `price_batch_output_per_mtok`;

ALTER TABLE `task`
  ADD COLUMN IF NOT EXISTS `id_user` INT NOT NULL COMMENT 'Użytkownik, który zainicjował zadanie' AFTER `id_task`,
  ADD COLUMN IF NOT EXISTS `id_database_connection` INT UNSIGNED NOT NULL COMMENT 'Źródłowa baza danych (z tabeli database_connection)' AFTER `id_user`,
  ADD COLUMN IF NOT EXISTS `id_ai_model` INT UNSIGNED DEFAULT NULL COMMENT 'Model AI używany w zadaniu (jeśli dotyczy)' AFTER `id_database_connection`,
  ADD COLUMN IF NOT EXISTS `table_name` VARCHAR(128) NOT NULL COMMENT 'Nazwa tabeli źródłowej (schema.tabela dla pgsql/mssql)' AFTER `id_ai_model`,
  ADD COLUMN IF NOT EXISTS `column_name` VARCHAR(64) NOT NULL COMMENT 'Nazwa kolumny tekstowej do synchronizacji' AFTER `table_name`,
  ADD COLUMN IF NOT EXISTS `key_column` VARCHAR(255) DEFAULT NULL COMMENT 'Kolumny klucza po przecinku (NULL = klucz główny albo indeks unikalny)' AFTER `column_name`,
  ADD COLUMN IF NOT EXISTS `export_column` VARCHAR(64) DEFAULT NULL COMMENT 'Kolumna zapisu eksportu (NULL = column_name)' AFTER `key_column`,
  ADD COLUMN IF NOT EXISTS `ai_action` ENUM('correct','translate') DEFAULT 'correct' AFTER `export_column`,
  ADD COLUMN IF NOT EXISTS `source_lang` VARCHAR(16) DEFAULT NULL AFTER `ai_action`,
  ADD COLUMN IF NOT EXISTS `target_lang` VARCHAR(16) DEFAULT NULL AFTER `source_lang`,
  ADD COLUMN IF NOT EXISTS `ai_batch_mode` TINYINT(1) DEFAULT NULL COMMENT 'Tryb batch AI: NULL = jak model (ai_model.batch_mode), 0/1 = nadpisanie' AFTER `target_lang`,
  ADD COLUMN IF NOT EXISTS `status` ENUM('new','queued','in_progress','paused','resync','verifying','completed','error','cancelled','archived') DEFAULT 'new' COMMENT 'Etap przetwarzania zadania' AFTER `ai_batch_mode`,
  ADD COLUMN IF NOT EXISTS `pause_reason` ENUM('manual','time_limit','signal') DEFAULT NULL COMMENT 'Powód wstrzymania' AFTER `status`,
  ADD COLUMN IF NOT EXISTS `records_total` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba rekordów w tabeli źródłowej w momencie rozpoczęcia' AFTER `pause_reason`,
  ADD COLUMN IF NOT EXISTS `records_fetched` INT UNSIGNED DEFAULT 0 COMMENT 'Ilość rekordów pobranych ze źródła' AFTER `records_total`,
  ADD COLUMN IF NOT EXISTS `records_processed` INT UNSIGNED DEFAULT 0 COMMENT 'Ilość rekordów przetworzonych / zhashowanych' AFTER `records_fetched`,
  ADD COLUMN IF NOT EXISTS `records_new` INT UNSIGNED DEFAULT 0 COMMENT 'Nowe rekordy dodane lokalnie' AFTER `records_processed`,
  ADD COLUMN IF NOT EXISTS `records_updated` INT UNSIGNED DEFAULT 0 COMMENT 'Rekordy zaktualizowane po zmianie hash' AFTER `records_new`,
  ADD COLUMN IF NOT EXISTS `records_deleted` INT UNSIGNED DEFAULT 0 COMMENT 'Rekordy usunięte w źródle' AFTER `records_updated`,
  ADD COLUMN IF NOT EXISTS `records_approved` INT UNSIGNED DEFAULT 0 COMMENT 'Zatwierdzone przez użytkownika' AFTER `records_deleted`,
  ADD COLUMN IF NOT EXISTS `records_rejected` INT UNSIGNED DEFAULT 0 COMMENT 'Odrzucone przez użytkownika' AFTER `records_approved`,
  ADD COLUMN IF NOT EXISTS `records_exported` INT UNSIGNED DEFAULT 0 COMMENT 'Wyeksportowane z powrotem do źródła' AFTER `records_rejected`,
  ADD COLUMN IF NOT EXISTS `last_processed_id` BIGINT DEFAULT NULL COMMENT 'ID ostatniego przetworzonego rekordu (do wznawiania; klucz całkowity)' AFTER `records_exported`,
  ADD COLUMN IF NOT EXISTS `last_processed_key` TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL COMMENT 'Klucz ostatniego przetworzonego rekordu (JSON, do wznawiania)' AFTER `last_processed_id`,
  ADD COLUMN IF NOT EXISTS `scan_ord` BIGINT DEFAULT NULL COMMENT 'source_ord ostatniego przetworzonego rekordu (do wznawiania)' AFTER `last_processed_key`,
  ADD COLUMN IF NOT EXISTS `sync_progress` DECIMAL(5,2) DEFAULT 0.00 COMMENT 'Procent synchronizacji (0–100)' AFTER `scan_ord`,
  ADD COLUMN IF NOT EXISTS `sync_stage` ENUM('init','fetch','compare','update','verify','done') DEFAULT 'init' COMMENT 'Aktualny etap procesu synchronizacji' AFTER `sync_progress`,
  ADD COLUMN IF NOT EXISTS `resume_marker` VARCHAR(128) DEFAULT NULL COMMENT 'Znacznik operacji synchronizacji w toku (do wznawiania)' AFTER `sync_stage`,
  ADD COLUMN IF NOT EXISTS `hash_method` VARCHAR(32) DEFAULT 'sha256' COMMENT 'Algorytm hashujący treść tekstową' AFTER `resume_marker`,
  ADD COLUMN IF NOT EXISTS `description` TEXT DEFAULT NULL COMMENT 'Opis zadania / kontekst użytkownika' AFTER `hash_method`,
  ADD COLUMN IF NOT EXISTS `error_log` TEXT DEFAULT NULL COMMENT 'Log błędów podczas przetwarzania' AFTER `description`,
  ADD COLUMN IF NOT EXISTS `queued_at` DATETIME DEFAULT NULL COMMENT 'Kiedy sensor zlecił run (wykrywanie zgubionych runów)' AFTER `error_log`,
  ADD COLUMN IF NOT EXISTS `run_id` VARCHAR(64) DEFAULT NULL COMMENT 'Ostatni run Dagstera zadania' AFTER `queued_at`,
  ADD COLUMN IF NOT EXISTS `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP AFTER `run_id`,
  ADD COLUMN IF NOT EXISTS `updated_at` DATETIME DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP AFTER `created_at`,
  ADD COLUMN IF NOT EXISTS `started_at` DATETIME DEFAULT NULL AFTER `updated_at`,
  ADD COLUMN IF NOT EXISTS `finished_at` DATETIME DEFAULT NULL AFTER `started_at`,
  ADD COLUMN IF NOT EXISTS `total_time_ms` BIGINT UNSIGNED DEFAULT 0 COMMENT 'Czas pracy w milisekundach' AFTER `finished_at`;

ALTER TABLE `task_item`
  ADD COLUMN IF NOT EXISTS `id_task` INT UNSIGNED NOT NULL COMMENT 'Powiązanie z tabelą task' AFTER `id_task_item`,
  ADD COLUMN IF NOT EXISTS `remote_id` BIGINT DEFAULT NULL COMMENT 'Identyfikator w tabeli źródłowej (gdy klucz to jedna liczba całkowita)' AFTER `id_task`,
  ADD COLUMN IF NOT EXISTS `remote_key` VARCHAR(700) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL COMMENT 'Klucz w źródle: JSON wartości kolumn klucza, porównywany bajtowo' AFTER `remote_id`,
  ADD COLUMN IF NOT EXISTS `source_ord` BIGINT DEFAULT NULL COMMENT 'Pozycja wiersza w porządku źródła (porównanie stron skanu)' AFTER `remote_key`,
  ADD COLUMN IF NOT EXISTS `text_original` MEDIUMTEXT COMMENT 'Tekst pobrany z bazy źródłowej' AFTER `source_ord`,
  ADD COLUMN IF NOT EXISTS `text_corrected` MEDIUMTEXT COMMENT 'Tekst po korekcie / tłumaczeniu AI' AFTER `text_original`,
  ADD COLUMN IF NOT EXISTS `change_summary` TEXT COMMENT 'JSON: lista poprawek i liczniki kategorii' AFTER `text_corrected`,
  ADD COLUMN IF NOT EXISTS `original_hash` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL COMMENT 'Hash tekstu źródłowego w momencie pobrania' AFTER `change_summary`,
  ADD COLUMN IF NOT EXISTS `local_hash` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL COMMENT 'Hash text_corrected' AFTER `original_hash`,
  ADD COLUMN IF NOT EXISTS `is_changed` TINYINT(1) DEFAULT 0 COMMENT '1 = tekst w źródle uległ zmianie od ostatniej synchronizacji' AFTER `local_hash`,
  ADD COLUMN IF NOT EXISTS `status` ENUM('pending','processed','accepted','rejected','exported','conflict','outdated') DEFAULT 'pending' COMMENT 'Stan pozycji' AFTER `is_changed`,
  ADD COLUMN IF NOT EXISTS `fetched_at` DATETIME DEFAULT CURRENT_TIMESTAMP COMMENT 'Data pobrania rekordu z bazy źródłowej' AFTER `status`,
  ADD COLUMN IF NOT EXISTS `processed_at` DATETIME DEFAULT NULL COMMENT 'Data przetworzenia przez AI' AFTER `fetched_at`,
  ADD COLUMN IF NOT EXISTS `verified_at` DATETIME DEFAULT NULL COMMENT 'Data ostatniej zmiany wykrytej przy resync' AFTER `processed_at`,
  ADD COLUMN IF NOT EXISTS `approved_at` DATETIME DEFAULT NULL COMMENT 'Data zatwierdzenia użytkownika' AFTER `verified_at`,
  ADD COLUMN IF NOT EXISTS `approved_by` VARCHAR(64) DEFAULT NULL COMMENT 'Kto zatwierdził rekord' AFTER `approved_at`,
  ADD COLUMN IF NOT EXISTS `exported_at` DATETIME DEFAULT NULL COMMENT 'Data zapisu do źródła' AFTER `approved_by`,
  ADD COLUMN IF NOT EXISTS `export_error` TEXT DEFAULT NULL COMMENT 'Powód konfliktu eksportu' AFTER `exported_at`,
  ADD COLUMN IF NOT EXISTS `deleted_at` DATETIME DEFAULT NULL COMMENT 'Wiersz zniknął ze źródła' AFTER `export_error`,
  ADD COLUMN IF NOT EXISTS `operation_uuid` CHAR(36) DEFAULT NULL COMMENT 'Operacja AI, która wytworzyła zapisany wynik (run_log.operation_uuid)' AFTER `deleted_at`,
  ADD COLUMN IF NOT EXISTS `claim_uuid` CHAR(36) CHARACTER SET ascii COLLATE ascii_bin DEFAULT NULL COMMENT 'Rezerwacja AI: operacja, która trzyma pozycję (blokada ailexia_ai_op_<uuid>)' AFTER `operation_uuid`,
  ADD COLUMN IF NOT EXISTS `claimed_at` DATETIME DEFAULT NULL COMMENT 'Kiedy pozycja została zarezerwowana przez run AI' AFTER `claim_uuid`,
  ADD COLUMN IF NOT EXISTS `id_ai_batch` BIGINT UNSIGNED DEFAULT NULL COMMENT 'Batch OpenAI, w którym pozycja czeka na wynik (ai_batch)' AFTER `claimed_at`,
  ADD COLUMN IF NOT EXISTS `ai_error` TEXT DEFAULT NULL COMMENT 'Ostatni błąd AI' AFTER `id_ai_batch`,
  ADD COLUMN IF NOT EXISTS `ai_attempts` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba nieudanych prób AI' AFTER `ai_error`,
  ADD COLUMN IF NOT EXISTS `tokens_input` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba tokenów wejściowych (AI)' AFTER `ai_attempts`,
  ADD COLUMN IF NOT EXISTS `tokens_output` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba tokenów wyjściowych (AI)' AFTER `tokens_input`,
  ADD COLUMN IF NOT EXISTS `cost_usd` DECIMAL(10,6) DEFAULT 0 COMMENT 'Koszt przetworzenia AI dla tego rekordu' AFTER `tokens_output`,
  ADD COLUMN IF NOT EXISTS `row_updated_at` DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) COMMENT 'Wersja wiersza' AFTER `cost_usd`,
  ADD COLUMN IF NOT EXISTS `hash_missing` TINYINT(1) AS (`text_original` IS NOT NULL AND `original_hash` IS NULL) STORED COMMENT '1 = tekst bez hasha (weryfikacja)' AFTER `row_updated_at`,
  ADD COLUMN IF NOT EXISTS `result_hash` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin AS (IF(`status` IN ('processed','accepted','exported'), RTRIM(`original_hash`), NULL)) STORED COMMENT 'original_hash pozycji z wynikiem AI do ponownego użycia (task_item.REUSABLE_STATUSES), inaczej NULL; RTRIM: MariaDB nie przyjmuje kolumny CHAR wprost' AFTER `hash_missing`;

ALTER TABLE `run_log`
  ADD COLUMN IF NOT EXISTS `id_task` INT UNSIGNED NOT NULL AFTER `id_run_log`,
  ADD COLUMN IF NOT EXISTS `kind` ENUM('sync','ai','export') NOT NULL AFTER `id_task`,
  ADD COLUMN IF NOT EXISTS `run_id` VARCHAR(64) DEFAULT NULL COMMENT 'Run Dagstera' AFTER `kind`,
  ADD COLUMN IF NOT EXISTS `operation_uuid` CHAR(36) DEFAULT NULL COMMENT 'Operacja runu AI (blokada ailexia_ai_op_<uuid>)' AFTER `run_id`,
  ADD COLUMN IF NOT EXISTS `status` ENUM('running','completed','paused','cancelled','resync','error') DEFAULT 'running' AFTER `operation_uuid`,
  ADD COLUMN IF NOT EXISTS `started_at` DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3) AFTER `status`,
  ADD COLUMN IF NOT EXISTS `finished_at` DATETIME(3) DEFAULT NULL AFTER `started_at`,
  ADD COLUMN IF NOT EXISTS `duration_ms` BIGINT UNSIGNED DEFAULT 0 AFTER `finished_at`,
  ADD COLUMN IF NOT EXISTS `stats` TEXT DEFAULT NULL COMMENT 'JSON z licznikami runu' AFTER `duration_ms`,
  ADD COLUMN IF NOT EXISTS `message` TEXT DEFAULT NULL AFTER `stats`;

-- ai_batch (od pierwszej wersji trybu batch) dostał licznik przejęć później.
ALTER TABLE `ai_batch`
  ADD COLUMN IF NOT EXISTS `attempts` INT UNSIGNED DEFAULT 0 COMMENT 'Ile razy run przejął batch (dokończenie wysyłki, odbiór wyników)' AFTER `cancel_requested`;

-- Uzupełnienie nowych kolumn w istniejących wierszach (dotyka tylko wierszy jeszcze bez wartości).
UPDATE `task_item` SET `remote_key`=CONCAT('[', `remote_id`, ']'), `source_ord`=`remote_id`
WHERE `remote_key` IS NULL AND `remote_id` IS NOT NULL;

UPDATE `task` SET `last_processed_key`=CONCAT('[', `last_processed_id`, ']'), `scan_ord`=`last_processed_id`
WHERE `last_processed_key` IS NULL AND `last_processed_id` IS NOT NULL;

-- Starszy schemat trzymał rezerwację AI w operation_uuid; rezerwacja (claimed_at) przechodzi do claim_uuid.
UPDATE `task_item` SET `claim_uuid`=`operation_uuid`, `operation_uuid`=NULL
WHERE `claim_uuid` IS NULL AND `claimed_at` IS NOT NULL AND `operation_uuid` IS NOT NULL;

-- Indeksy starszych schematów, których nie czyta żadne zapytanie albo które zastąpiły inne
-- (każdy indeks kosztuje przy wstawianiu pozycji pierwszej synchronizacji).
ALTER TABLE `task_item`
  DROP INDEX IF EXISTS `idx_task_item_fingerprint`,
  DROP INDEX IF EXISTS `idx_task_item_remote`,
  DROP INDEX IF EXISTS `idx_task_item_status`,
  DROP INDEX IF EXISTS `idx_task_item_changed`,
  DROP INDEX IF EXISTS `idx_task_item_hash`;

-- Indeksy, których kolumny się zmieniły: zakładane na nowo niżej.
ALTER TABLE `task_item`
  DROP INDEX IF EXISTS `idx_task_item_task_status`,
  DROP INDEX IF EXISTS `idx_task_item_result`;

-- Indeksy 0001_initial, których brakuje.
ALTER TABLE `database_connection`
  ADD UNIQUE KEY IF NOT EXISTS `idx_database_alias` (`alias`);

ALTER TABLE `ai_model`
  ADD UNIQUE KEY IF NOT EXISTS `idx_ai_model_name` (`name`);

ALTER TABLE `task`
  ADD KEY IF NOT EXISTS `idx_task_status` (`status`),
  ADD KEY IF NOT EXISTS `idx_task_progress` (`sync_progress`),
  ADD KEY IF NOT EXISTS `idx_task_stage` (`sync_stage`),
  ADD KEY IF NOT EXISTS `idx_task_connection` (`id_database_connection`),
  ADD KEY IF NOT EXISTS `idx_task_status_finished` (`status`,`finished_at`);

ALTER TABLE `task_item`
  ADD UNIQUE KEY IF NOT EXISTS `idx_task_item_key` (`id_task`,`remote_key`),
  ADD KEY IF NOT EXISTS `idx_task_item_order` (`id_task`,`source_ord`,`deleted_at`,`status`,`remote_key`,`original_hash`,`local_hash`,`hash_missing`),
  ADD KEY IF NOT EXISTS `idx_task_item_task_status` (`id_task`,`status`,`deleted_at`),
  ADD KEY IF NOT EXISTS `idx_task_item_result` (`id_task`,`result_hash`,`deleted_at`,`hash_missing`),
  ADD KEY IF NOT EXISTS `idx_task_item_batch` (`id_ai_batch`);

ALTER TABLE `run_log`
  ADD KEY IF NOT EXISTS `idx_run_log_task` (`id_task`,`started_at`);
