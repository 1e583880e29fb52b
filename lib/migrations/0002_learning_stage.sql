-- 0002: faza nauki (pilot, task.status 'in_learning'), wersja promptu i flagi zabezpieczeń
-- wyników AI, historia pilotów (ai_pilot) i przebiegów zestawów ewaluacyjnych (ai_eval).

ALTER TABLE `task`
  ADD COLUMN IF NOT EXISTS `ai_pilot_items` INT DEFAULT NULL COMMENT 'Pozycje pilota (faza nauki): NULL = AI_PILOT_ITEMS, 0 = bez pilota' AFTER `ai_batch_mode`,
  MODIFY COLUMN `status` ENUM('new','queued','in_progress','paused','resync','verifying','completed','error','cancelled','archived','in_learning') DEFAULT 'new' COMMENT 'Etap przetwarzania zadania (in_learning = pilot czeka na ocenę)';

ALTER TABLE `task_item`
  ADD COLUMN IF NOT EXISTS `prompt_version` CHAR(12) CHARACTER SET ascii DEFAULT NULL COMMENT 'Wersja promptu wyniku AI (hash promptu, schematu odpowiedzi i parametrów modelu)' AFTER `cost_usd`,
  ADD COLUMN IF NOT EXISTS `ai_flags` VARCHAR(255) CHARACTER SET ascii DEFAULT NULL COMMENT 'JSON: kody flag zabezpieczeń odpowiedzi AI (NULL = bez flag)' AFTER `prompt_version`,
  ADD COLUMN IF NOT EXISTS `id_ai_pilot` BIGINT UNSIGNED DEFAULT NULL COMMENT 'Pilot (ai_pilot), do którego należy pozycja' AFTER `ai_flags`;

ALTER TABLE `ai_batch`
  ADD COLUMN IF NOT EXISTS `prompt_version` CHAR(12) CHARACTER SET ascii DEFAULT NULL COMMENT 'Wersja promptu zapytań batcha (zapisywana przy wynikach)' AFTER `cost_usd`;

CREATE TABLE IF NOT EXISTS `ai_pilot` (
  `id_ai_pilot` BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  `id_task` INT UNSIGNED NOT NULL,
  `id_ai_model` INT UNSIGNED DEFAULT NULL COMMENT 'Model pilota',
  `prompt_version` CHAR(12) CHARACTER SET ascii DEFAULT NULL COMMENT 'Wersja promptu pilota',
  `status` ENUM('running','in_learning','approved','redone') DEFAULT 'running' COMMENT 'running = pozycje pilota w pracy, in_learning = czeka na ocenę',
  `items` INT UNSIGNED DEFAULT 0 COMMENT 'Pozycje pilota',
  `texts` INT UNSIGNED DEFAULT 0 COMMENT 'Różne teksty pilota (wysyłane do modelu)',
  `reviewed` INT UNSIGNED DEFAULT 0,
  `accepted` INT UNSIGNED DEFAULT 0 COMMENT 'Przyjęte bez zmian',
  `rejected` INT UNSIGNED DEFAULT 0,
  `edited` INT UNSIGNED DEFAULT 0 COMMENT 'Przyjęte po poprawce recenzenta',
  `flagged` INT UNSIGNED DEFAULT 0 COMMENT 'Pozycje z flagami zabezpieczeń',
  `precision` DECIMAL(6,4) DEFAULT NULL COMMENT 'Precyzja edycji modelu względem tekstów końcowych recenzentów',
  `cost_usd` DECIMAL(12,6) DEFAULT 0 COMMENT 'Koszt pilota',
  `projected_cost_usd` DECIMAL(14,6) DEFAULT NULL COMMENT 'Koszt pilota na tekst x pozostałe różne teksty',
  `started_at` DATETIME DEFAULT CURRENT_TIMESTAMP,
  `finished_at` DATETIME DEFAULT NULL COMMENT 'Pozycje pilota przetworzone (in_learning)',
  `approved_by` VARCHAR(64) DEFAULT NULL,
  `approved_at` DATETIME DEFAULT NULL,
  `redone_by` VARCHAR(64) DEFAULT NULL COMMENT 'Kto zlecił pilota od nowa',
  `redone_at` DATETIME DEFAULT NULL,
  KEY `idx_ai_pilot_task` (`id_task`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `ai_eval` (
  `id_ai_eval` BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  `set_name` VARCHAR(255) NOT NULL COMMENT 'Nazwa zestawu (plik bez .jsonl)',
  `set_path` VARCHAR(1024) DEFAULT NULL,
  `id_ai_model` INT UNSIGNED DEFAULT NULL,
  `model_name` VARCHAR(64) NOT NULL COMMENT 'ai_model.name',
  `model` VARCHAR(128) DEFAULT NULL COMMENT 'ai_model.model',
  `prompt_version` CHAR(12) CHARACTER SET ascii DEFAULT NULL,
  `items` INT UNSIGNED DEFAULT 0,
  `failed` INT UNSIGNED DEFAULT 0,
  `f05` DECIMAL(6,4) DEFAULT NULL,
  `chrf` DECIMAL(7,3) DEFAULT NULL,
  `cost_usd` DECIMAL(12,6) DEFAULT 0,
  `figures` TEXT DEFAULT NULL COMMENT 'JSON: wynik modelu (kształt pliku wyników ai.py)',
  `started_at` DATETIME(3) DEFAULT NULL,
  `finished_at` DATETIME(3) DEFAULT NULL,
  KEY `idx_ai_eval_model` (`model_name`,`started_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Baza sprzed migracji z wcześniejszą wersją tej tabeli (inny opis kolumny): opis jak wyżej.
ALTER TABLE `ai_eval`
  MODIFY COLUMN `figures` TEXT DEFAULT NULL COMMENT 'JSON: wynik modelu (kształt pliku wyników ai.py)';
