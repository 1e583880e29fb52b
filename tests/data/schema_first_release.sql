-- ailexia worker: schemat lokalnej bazy MySQL/MariaDB.
-- Wersja schematu: zobacz SCHEMA_VERSION w lib/schema.py (tabela schema_version).
-- Stosowany przez `python sync.py --init-db`: tworzy brakujące tabele, dodaje brakujące
-- kolumny i indeksy, poszerza listy ENUM. Nigdy nie usuwa danych.
-- Format (czytany przez lib/schema.py): jedna kolumna lub jeden klucz w linii.

CREATE TABLE IF NOT EXISTS `schema_version` (
  `version` INT UNSIGNED NOT NULL PRIMARY KEY,
  `applied_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `description` VARCHAR(255) DEFAULT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `database_connection` (
  `id_database_connection` INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  `id_user` INT NOT NULL,
  `alias` VARCHAR(64) NOT NULL COMMENT 'np. HR, CRM, Magazyn',
  `description` TEXT DEFAULT NULL,
  `db_type` ENUM('mysql','mssql','pgsql','sqlite') DEFAULT 'mysql',
  `host` VARCHAR(128) NOT NULL,
  `port` INT UNSIGNED DEFAULT 3306,
  `db_name` VARCHAR(255) NOT NULL COMMENT 'nazwa bazy; dla sqlite ścieżka pliku',
  `db_user` VARCHAR(128) NOT NULL,
  `db_password` CHAR(128) DEFAULT NULL COMMENT 'haslo jawnie',
  `use_ssl` TINYINT(1) DEFAULT 0,
  `status` ENUM('active','disabled','error') DEFAULT 'disabled',
  `last_error` TEXT DEFAULT NULL COMMENT 'ostatni błąd połączenia (bez hasła)',
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `updated_at` DATETIME DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY `idx_database_alias` (`alias`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `ai_model` (
  `id_ai_model` INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  `name` VARCHAR(64) NOT NULL COMMENT 'alias modelu',
  `model` VARCHAR(128) NOT NULL COMMENT 'np. gpt-4o-mini',
  `base_url` VARCHAR(255) DEFAULT NULL COMMENT 'NULL = OpenAI; inaczej serwer zgodny z OpenAI',
  `api_key_env` VARCHAR(64) DEFAULT 'OPENAI_API_KEY' COMMENT 'nazwa zmiennej środowiska z kluczem',
  `price_input_per_mtok` DECIMAL(10,4) DEFAULT 0.0000 COMMENT 'USD za milion tokenów wejściowych',
  `price_cached_input_per_mtok` DECIMAL(10,4) DEFAULT NULL COMMENT 'USD za milion tokenów z cache (NULL = jak wejściowe)',
  `price_output_per_mtok` DECIMAL(10,4) DEFAULT 0.0000 COMMENT 'USD za milion tokenów wyjściowych',
  `temperature` DECIMAL(3,2) DEFAULT 0.00,
  `max_output_tokens` INT UNSIGNED DEFAULT 4096,
  `system_prompt` TEXT DEFAULT NULL COMMENT 'NULL = wbudowany prompt',
  `status` ENUM('active','disabled') DEFAULT 'active',
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY `idx_ai_model_name` (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `task` (
  `id_task` INT UNSIGNED AUTO_INCREMENT PRIMARY KEY COMMENT 'Identyfikator zadania',
  `id_user` INT NOT NULL COMMENT 'Użytkownik, który zainicjował zadanie',
  `id_database_connection` INT UNSIGNED NOT NULL COMMENT 'Źródłowa baza danych (z tabeli database_connection)',
  `id_ai_model` INT UNSIGNED DEFAULT NULL COMMENT 'Model AI używany w zadaniu (jeśli dotyczy)',
  `table_name` VARCHAR(128) NOT NULL COMMENT 'Nazwa tabeli źródłowej (schema.tabela dla pgsql/mssql)',
  `column_name` VARCHAR(64) NOT NULL COMMENT 'Nazwa kolumny tekstowej do synchronizacji',
  `key_column` VARCHAR(64) DEFAULT NULL COMMENT 'Kolumna klucza (NULL = klucz główny z katalogu)',
  `export_column` VARCHAR(64) DEFAULT NULL COMMENT 'Kolumna zapisu eksportu (NULL = column_name)',
  `ai_action` ENUM('correct','translate') DEFAULT 'correct',
  `source_lang` VARCHAR(16) DEFAULT NULL,
  `target_lang` VARCHAR(16) DEFAULT NULL,
  `status` ENUM('new','queued','in_progress','paused','resync','verifying','completed','error','cancelled','archived') DEFAULT 'new' COMMENT 'Etap przetwarzania zadania',
  `pause_reason` ENUM('manual','time_limit','signal') DEFAULT NULL COMMENT 'Powód wstrzymania',
  `records_total` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba rekordów w tabeli źródłowej w momencie rozpoczęcia',
  `records_fetched` INT UNSIGNED DEFAULT 0 COMMENT 'Ilość rekordów pobranych ze źródła',
  `records_processed` INT UNSIGNED DEFAULT 0 COMMENT 'Ilość rekordów przetworzonych / zhashowanych',
  `records_new` INT UNSIGNED DEFAULT 0 COMMENT 'Nowe rekordy dodane lokalnie',
  `records_updated` INT UNSIGNED DEFAULT 0 COMMENT 'Rekordy zaktualizowane po zmianie hash',
  `records_deleted` INT UNSIGNED DEFAULT 0 COMMENT 'Rekordy usunięte w źródle',
  `records_approved` INT UNSIGNED DEFAULT 0 COMMENT 'Zatwierdzone przez użytkownika',
  `records_rejected` INT UNSIGNED DEFAULT 0 COMMENT 'Odrzucone przez użytkownika',
  `records_exported` INT UNSIGNED DEFAULT 0 COMMENT 'Wyeksportowane z powrotem do źródła',
  `last_processed_id` BIGINT DEFAULT NULL COMMENT 'ID ostatniego przetworzonego rekordu (do wznawiania)',
  `sync_progress` DECIMAL(5,2) DEFAULT 0.00 COMMENT 'Procent synchronizacji (0–100)',
  `sync_stage` ENUM('init','fetch','compare','update','verify','done') DEFAULT 'init' COMMENT 'Aktualny etap procesu synchronizacji',
  `resume_marker` VARCHAR(128) DEFAULT NULL COMMENT 'Znacznik operacji synchronizacji w toku (do wznawiania)',
  `hash_method` VARCHAR(32) DEFAULT 'sha256' COMMENT 'Algorytm hashujący treść tekstową',
  `description` TEXT DEFAULT NULL COMMENT 'Opis zadania / kontekst użytkownika',
  `error_log` TEXT DEFAULT NULL COMMENT 'Log błędów podczas przetwarzania',
  `queued_at` DATETIME DEFAULT NULL COMMENT 'Kiedy sensor zlecił run (wykrywanie zgubionych runów)',
  `run_id` VARCHAR(64) DEFAULT NULL COMMENT 'Ostatni run Dagstera zadania',
  `created_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `updated_at` DATETIME DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  `started_at` DATETIME DEFAULT NULL,
  `finished_at` DATETIME DEFAULT NULL,
  `total_time_ms` BIGINT UNSIGNED DEFAULT 0 COMMENT 'Czas pracy w milisekundach',
  KEY `idx_task_status` (`status`),
  KEY `idx_task_progress` (`sync_progress`),
  KEY `idx_task_stage` (`sync_stage`),
  KEY `idx_task_connection` (`id_database_connection`),
  KEY `idx_task_status_finished` (`status`,`finished_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `task_item` (
  `id_task_item` BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY COMMENT 'Identyfikator rekordu lokalnego',
  `id_task` INT UNSIGNED NOT NULL COMMENT 'Powiązanie z tabelą task',
  `remote_id` BIGINT DEFAULT NULL COMMENT 'Identyfikator w tabeli źródłowej (klucz główny)',
  `text_original` MEDIUMTEXT COMMENT 'Tekst pobrany z bazy źródłowej',
  `text_corrected` MEDIUMTEXT COMMENT 'Tekst po korekcie / tłumaczeniu AI',
  `change_summary` TEXT COMMENT 'JSON: lista poprawek i liczniki kategorii',
  `original_hash` CHAR(64) DEFAULT NULL COMMENT 'Hash tekstu źródłowego w momencie pobrania',
  `local_hash` CHAR(64) DEFAULT NULL COMMENT 'Hash text_corrected',
  `is_changed` TINYINT(1) DEFAULT 0 COMMENT '1 = tekst w źródle uległ zmianie od ostatniej synchronizacji',
  `status` ENUM('pending','processed','accepted','rejected','exported','conflict','outdated') DEFAULT 'pending' COMMENT 'Stan pozycji',
  `fetched_at` DATETIME DEFAULT CURRENT_TIMESTAMP COMMENT 'Data pobrania rekordu z bazy źródłowej',
  `processed_at` DATETIME DEFAULT NULL COMMENT 'Data przetworzenia przez AI',
  `verified_at` DATETIME DEFAULT NULL COMMENT 'Data ostatniej zmiany wykrytej przy resync',
  `approved_at` DATETIME DEFAULT NULL COMMENT 'Data zatwierdzenia użytkownika',
  `approved_by` VARCHAR(64) DEFAULT NULL COMMENT 'Kto zatwierdził rekord',
  `exported_at` DATETIME DEFAULT NULL COMMENT 'Data zapisu do źródła',
  `export_error` TEXT DEFAULT NULL COMMENT 'Powód konfliktu eksportu',
  `deleted_at` DATETIME DEFAULT NULL COMMENT 'Wiersz zniknął ze źródła',
  `operation_uuid` CHAR(36) DEFAULT NULL COMMENT 'Identyfikator operacji (rezerwacja AI)',
  `claimed_at` DATETIME DEFAULT NULL COMMENT 'Kiedy pozycja została zarezerwowana przez run AI',
  `ai_error` TEXT DEFAULT NULL COMMENT 'Ostatni błąd AI',
  `ai_attempts` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba nieudanych prób AI',
  `tokens_input` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba tokenów wejściowych (AI)',
  `tokens_output` INT UNSIGNED DEFAULT 0 COMMENT 'Liczba tokenów wyjściowych (AI)',
  `cost_usd` DECIMAL(10,6) DEFAULT 0 COMMENT 'Koszt przetworzenia AI dla tego rekordu',
  `row_updated_at` DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) COMMENT 'Wersja wiersza',
  `hash_missing` TINYINT(1) AS (`text_original` IS NOT NULL AND `original_hash` IS NULL) STORED COMMENT '1 = tekst bez hasha (weryfikacja)',
  UNIQUE KEY `idx_task_item_remote` (`id_task`,`remote_id`),
  KEY `idx_task_item_fingerprint` (`id_task`,`remote_id`,`deleted_at`,`status`,`original_hash`,`local_hash`,`hash_missing`),
  KEY `idx_task_item_task_status` (`id_task`,`status`),
  KEY `idx_task_item_hash` (`id_task`,`original_hash`),
  KEY `idx_task_item_status` (`status`),
  KEY `idx_task_item_changed` (`is_changed`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `run_log` (
  `id_run_log` BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  `id_task` INT UNSIGNED NOT NULL,
  `kind` ENUM('sync','ai','export') NOT NULL,
  `run_id` VARCHAR(64) DEFAULT NULL COMMENT 'Run Dagstera',
  `status` ENUM('running','completed','paused','cancelled','resync','error') DEFAULT 'running',
  `started_at` DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
  `finished_at` DATETIME(3) DEFAULT NULL,
  `duration_ms` BIGINT UNSIGNED DEFAULT 0,
  `stats` TEXT DEFAULT NULL COMMENT 'JSON z licznikami runu',
  `message` TEXT DEFAULT NULL,
  KEY `idx_run_log_task` (`id_task`,`started_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
