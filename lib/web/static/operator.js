// Strony operatora ailexia: wybór tabeli i kolumny nowego zadania, postęp zadań na żywo.
// Bez skryptów strony działają dalej (formularze i przyciski), tylko bez podpowiedzi i odświeżania.
(function () {
  "use strict";

  // --- nowe zadanie: źródło -> tabele -> kolumny tekstowe i klucz workera ---
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.value) {
        select.form.submit();
      }
    });
  });

  const table = document.getElementById("t-table");
  const column = document.getElementById("t-column");
  const exportColumn = document.getElementById("t-export");
  const keyHint = document.getElementById("key-hint");

  function fill(select, names, keepFirst) {
    const previous = select.value;
    while (select.options.length > (keepFirst ? 1 : 0)) {
      select.remove(select.options.length - 1);
    }
    names.forEach(function (name) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      select.appendChild(option);
    });
    if (names.indexOf(previous) >= 0) {
      select.value = previous;
    }
  }

  function showKey(option) {
    keyHint.textContent = "";
    if (!option) {
      return;
    }
    if (option.dataset.key) {
      keyHint.appendChild(document.createTextNode("klucz workera: "));
      const bold = document.createElement("b");
      bold.textContent = option.dataset.key;
      keyHint.appendChild(bold);
    } else {
      const problem = document.createElement("span");
      problem.className = "problem";
      problem.textContent = "brak klucza: " + (option.dataset.problem || "?");
      keyHint.appendChild(problem);
      keyHint.appendChild(document.createTextNode(" - wpisz kolumny klucza po przecinku"));
    }
  }

  function tableChanged() {
    const option = table.options[table.selectedIndex];
    let names = [];
    try {
      names = option ? JSON.parse(option.dataset.columns || "[]") : [];
    } catch (error) {
      names = [];
    }
    fill(column, names, false);
    if (exportColumn) {
      fill(exportColumn, names, true);
    }
    showKey(option);
  }

  if (table && column && keyHint) {
    table.addEventListener("change", tableChanged);
  }

  // --- postęp zadań: odpytywanie /api/progress i podmiana wierszy tabeli ---
  const progress = document.getElementById("progress");
  if (!progress) {
    return;
  }
  const rows = document.getElementById("progress-rows");
  const updated = document.getElementById("progress-updated");
  const everyMs = Math.max(2, parseInt(progress.dataset.poll || "5", 10)) * 1000;

  async function refresh() {
    if (document.hidden) {
      return;
    }
    try {
      const response = await fetch("/api/progress", {
        credentials: "same-origin",
        headers: { "Accept": "application/json" },
      });
      const data = await response.json();
      if (data.ok) {
        rows.innerHTML = data.html;
        updated.textContent = "odświeżono " + new Date().toLocaleTimeString();
        updated.className = "hint";
      } else {
        updated.textContent = data.message || "błąd odświeżania (HTTP " + response.status + ")";
        updated.className = "problem";
      }
    } catch (error) {
      updated.textContent = "brak połączenia z serwerem strony";
      updated.className = "problem";
    }
  }

  // Następne pytanie dopiero po odpowiedzi: wolna baza nie dostaje kolejki zapytań.
  async function loop() {
    await refresh();
    window.setTimeout(loop, everyMs);
  }
  window.setTimeout(loop, everyMs);
})();
