// Strona przeglądu ailexia: decyzje bez przeładowania strony i skróty klawiszowe.
// j/k - następna/poprzednia pozycja, a - akceptuj, r - odrzuć, e - edytuj, u - cofnij ostatnią decyzję.
(function () {
  "use strict";

  // Token z adresu nie zostaje w pasku adresu ani w historii (sesja jest już w ciasteczku).
  const here = new URL(window.location.href);
  const page = document.getElementById("page");
  if (here.searchParams.has("token")) {
    here.searchParams.delete("token");
    const target = page && page.dataset.canonical ? page.dataset.canonical : here.pathname + here.search;
    window.history.replaceState(null, "", target);
  }

  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const flash = document.getElementById("flash");

  function say(message, ok) {
    flash.textContent = message || "";
    flash.className = ok ? "ok" : "problem";
  }

  async function post(url, body) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
      });
    } catch (error) {
      return { ok: false, message: "brak połączenia z serwerem przeglądu" };
    }
    try {
      return await response.json();
    } catch (error) {
      return { ok: false, message: "błąd serwera (HTTP " + response.status + ")" };
    }
  }

  const box = document.getElementById("items");
  if (!box) {
    return;
  }
  let current = 0;

  function cards() {
    return Array.from(box.querySelectorAll("article.item"));
  }

  function focusCard(index) {
    const list = cards();
    if (!list.length) {
      return;
    }
    current = Math.max(0, Math.min(index, list.length - 1));
    list.forEach(function (card, n) { card.classList.toggle("current", n === current); });
    list[current].focus({ preventScroll: true });
    list[current].scrollIntoView({ block: "nearest" });
  }

  function currentCard() {
    return cards()[current];
  }

  function replaceCard(card, html) {
    const holder = document.createElement("div");
    holder.innerHTML = html.trim();
    const fresh = holder.firstElementChild;
    card.replaceWith(fresh);
    return fresh;
  }

  // Numery zmian do przyjęcia albo null, gdy przyjęte są wszystkie (zwykła akceptacja).
  function chosenHunks(card) {
    const hunks = Array.from(card.querySelectorAll(".hunk[data-hunk]"));
    const chosen = hunks.filter(function (h) { return h.getAttribute("aria-checked") === "true"; })
      .map(function (h) { return parseInt(h.dataset.hunk, 10); });
    return chosen.length === hunks.length ? null : chosen;
  }

  function toggleHunk(hunk) {
    const on = hunk.getAttribute("aria-checked") !== "true";
    hunk.setAttribute("aria-checked", on ? "true" : "false");
    hunk.classList.toggle("off", !on);
    const card = hunk.closest("article.item");
    const button = card.querySelector(".act-accept");
    const chosen = chosenHunks(card);
    button.firstChild.textContent = chosen === null ? "Akceptuj " : "Akceptuj wybrane (" + chosen.length + "/" +
      card.dataset.hunks + ") ";
  }

  function finish(card, data) {
    say(data.message, data.ok);
    if (!data.html) {
      delete card.dataset.busy;
      return;
    }
    const fresh = replaceCard(card, data.html);
    const result = fresh.querySelector(".result");
    result.textContent = data.message || "";
    result.className = "result " + (data.ok ? "ok" : "problem");
    const index = cards().indexOf(fresh);
    focusCard(data.ok && data.changed ? index + 1 : index);
  }

  async function decide(card, decision) {
    if (!card || card.dataset.decidable !== "1" || card.dataset.busy) {
      return;
    }
    card.dataset.busy = "1";
    const body = { decision: decision, version: card.dataset.version };
    if (decision === "accepted") {
      const chosen = chosenHunks(card);
      if (chosen !== null) {
        body.hunks = chosen;
      }
    }
    finish(card, await post("/api/items/" + card.dataset.id + "/decide", body));
  }

  function openEditor(card) {
    if (!card || card.dataset.decidable !== "1") {
      return;
    }
    const editor = card.querySelector(".editor");
    editor.hidden = false;
    const area = editor.querySelector("textarea");
    area.focus();
  }

  function closeEditor(card) {
    const editor = card.querySelector(".editor");
    editor.hidden = true;
    card.focus({ preventScroll: true });
  }

  async function saveEdit(card) {
    if (card.dataset.busy) {
      return;
    }
    card.dataset.busy = "1";
    const text = card.querySelector(".editor textarea").value;
    finish(card, await post("/api/items/" + card.dataset.id + "/edit", { text: text, version: card.dataset.version }));
  }

  async function undo() {
    const data = await post("/api/tasks/" + page.dataset.task + "/undo", {});
    say(data.message, data.ok);
    if (data.html && data.id) {
      const card = document.getElementById("item-" + data.id);
      if (card) {
        const fresh = replaceCard(card, data.html);
        focusCard(cards().indexOf(fresh));
      }
    }
  }

  box.addEventListener("click", function (event) {
    const card = event.target.closest("article.item");
    if (!card) {
      return;
    }
    const index = cards().indexOf(card);
    if (index !== current) {
      focusCard(index);
    }
    const hunk = event.target.closest(".hunk[data-hunk]");
    if (hunk) {
      toggleHunk(hunk);
    } else if (event.target.closest(".act-accept")) {
      decide(card, "accepted");
    } else if (event.target.closest(".act-reject")) {
      decide(card, "rejected");
    } else if (event.target.closest(".act-edit")) {
      openEditor(card);
    } else if (event.target.closest(".act-save")) {
      saveEdit(card);
    } else if (event.target.closest(".act-cancel")) {
      closeEditor(card);
    }
  });

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (target.tagName === "TEXTAREA") {
      const card = target.closest("article.item");
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        saveEdit(card);
      } else if (event.key === "Escape") {
        event.preventDefault();
        closeEditor(card);
      }
      return;
    }
    if (target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    if (target.classList && target.classList.contains("hunk") && (event.key === " " || event.key === "Enter")) {
      event.preventDefault();
      toggleHunk(target);
      return;
    }
    const actions = {
      j: function () { focusCard(current + 1); },
      k: function () { focusCard(current - 1); },
      a: function () { decide(currentCard(), "accepted"); },
      r: function () { decide(currentCard(), "rejected"); },
      e: function () { openEditor(currentCard()); },
      u: undo,
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  const bulk = document.getElementById("accept-shown");
  if (bulk) {
    bulk.addEventListener("click", async function () {
      bulk.disabled = true;
      const data = await post("/api/tasks/" + page.dataset.task + "/accept-shown", { shown: bulk.dataset.shown });
      let message = data.message;
      if (data.refused && data.refused.length) {
        message += ": " + data.refused.map(function (r) { return "#" + r.id + " " + r.reason; }).join("; ");
      }
      say(message, data.ok);
      if (data.ok) {
        window.setTimeout(function () { window.location.reload(); }, 1200);
      } else {
        bulk.disabled = false;
      }
    });
  }
  const undoButton = document.getElementById("undo");
  if (undoButton) {
    undoButton.addEventListener("click", undo);
  }

  focusCard(0);
})();
