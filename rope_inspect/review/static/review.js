// rope-inspect QA review: keyboard review and verdicts without page reloads.
// j/k move, d defect, f false alarm, u undo, o or Enter open, h heat map, Esc back.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const reviewer = document.getElementById("reviewer");
  const toast = document.getElementById("toast");
  const detail = document.getElementById("detail");
  const items = detail ? [detail] : Array.from(document.querySelectorAll(".card"));
  const undoStack = [];
  let current = -1;
  let toastTimer = 0;

  function say(text, isError) {
    toast.textContent = text;
    toast.className = "show" + (isError ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toast.className = ""; }, 2200);
  }

  function rememberReviewer() {
    const name = reviewer.value.trim();
    localStorage.setItem("ri-reviewer", name);
    document.cookie = "ri_reviewer=" + encodeURIComponent(name) + "; path=/; SameSite=Strict";
  }
  if (reviewer) {
    const saved = localStorage.getItem("ri-reviewer");
    if (saved && (!reviewer.value || reviewer.value === "reviewer")) reviewer.value = saved;
    reviewer.addEventListener("change", rememberReviewer);
  }

  function select(index) {
    if (!items.length || detail) return;
    current = Math.max(0, Math.min(items.length - 1, index));
    items.forEach(function (el, n) { el.classList.toggle("selected", n === current); });
    items[current].focus({ preventScroll: true });
    items[current].scrollIntoView({ block: "nearest", behavior: "auto" });
  }

  function updateCounts(counts) {
    Object.keys(counts).forEach(function (key) {
      document.querySelectorAll('[data-count="' + key + '"]').forEach(function (el) {
        el.textContent = counts[key];
      });
    });
  }

  async function send(el, verdict) {
    const response = await fetch("/api/verdict", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({
        id: el.dataset.id, verdict: verdict, reviewer: reviewer ? reviewer.value.trim() : null,
      }),
    });
    if (!response.ok) {
      say("Not saved (" + response.status + "): reload the page and try again", true);
      return false;
    }
    const data = await response.json();
    el.dataset.verdict = data.record.verdict || "";
    updateCounts(data.counts);
    return true;
  }

  const labels = { defect: "defect", false_alarm: "false alarm" };

  async function give(verdict) {
    const el = detail || items[current];
    if (!el) { say("Select a defect first (j / k)"); return; }
    const previous = el.dataset.verdict || null;
    if (await send(el, verdict)) {
      undoStack.push({ el: el, previous: previous });
      say(verdict ? "Marked " + labels[verdict] + " · u to undo" : "Verdict cleared");
      if (!detail && verdict) select(current + 1);
    }
  }

  async function undo() {
    const last = undoStack.pop();
    if (!last) { say("Nothing to undo"); return; }
    if (await send(last.el, last.previous)) {
      if (!detail) select(items.indexOf(last.el));
      say("Undone");
    }
  }

  function toggleHeat(on) {
    document.body.classList.toggle("show-heat", on);
    localStorage.setItem("ri-heat", on ? "1" : "");
    const box = document.getElementById("heat-toggle");
    if (box) box.checked = on;
  }

  document.querySelectorAll("form.verdict").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const el = form.closest(".card, .detail");
      if (!detail) select(items.indexOf(el));
      const value = event.submitter ? event.submitter.value : "";
      give(value || null);
    });
  });

  const heatBox = document.getElementById("heat-toggle");
  if (heatBox) heatBox.addEventListener("change", function () { toggleHeat(heatBox.checked); });
  toggleHeat(localStorage.getItem("ri-heat") === "1");
  items.forEach(function (el, n) {
    el.addEventListener("click", function (event) {
      if (!event.target.closest("a, button")) select(n);
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, select, textarea")) return;
    const key = event.key;
    if (key === "j") select(current + 1);
    else if (key === "k") select(current - 1);
    else if (key === "d") give("defect");
    else if (key === "f") give("false_alarm");
    else if (key === "u") undo();
    else if (key === "h") toggleHeat(!document.body.classList.contains("show-heat"));
    else if ((key === "o" || key === "Enter") && !detail && items[current]) {
      items[current].querySelector("a.thumb").click();
    } else if (key === "Escape" && detail) {
      window.location.href = detail.dataset.back || "/";
    } else return;
    event.preventDefault();
  });
})();
