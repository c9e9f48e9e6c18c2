// The creative as it ships (templates/review/creative.html): safe-zone guides (s), reject or
// restore one placement with a reason, edit the headline / CTA / alt text. Each change reloads
// the page, whose previews the export code draws again for the new copy.
"use strict";
(() => {
  const section = document.querySelector("section.creative");
  if (!section) return;
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const card = document.querySelector("article.item");
  const status = document.getElementById("status");
  const say = (text) => { status.textContent = text; };
  const post = async (path, body) => {
    const response = await fetch(`/i/${section.dataset.id}/${path}`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ ...body, version: card.dataset.version }),
    });
    const data = await response.json().catch(() => ({ error: response.statusText }));
    return { ok: response.ok, status: response.status, data };
  };
  const done = (text) => { say(text); window.setTimeout(() => window.location.reload(), 300); };
  const failed = (code, data) => say(code === 409 ? `Conflict: ${data.error}` : `Error ${code}: ${data.error}`);

  // Safe zones: the placement's insets, as shares of its sides, drawn over each preview.
  document.querySelectorAll(".safe-zone").forEach((zone) => {
    zone.style.top = `${100 * Number(zone.dataset.top)}%`;
    zone.style.right = `${100 * Number(zone.dataset.right)}%`;
    zone.style.bottom = `${100 * Number(zone.dataset.bottom)}%`;
    zone.style.left = `${100 * Number(zone.dataset.left)}%`;
  });
  const toggle = document.getElementById("safe-toggle");
  const showZones = () => document.querySelectorAll(".safe-zone").forEach((zone) => { zone.hidden = !toggle.checked; });
  toggle.addEventListener("change", showZones);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "s" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, dialog")) return;
    toggle.checked = !toggle.checked;
    showZones();
    event.preventDefault();
  });

  // One placement: reject with a reason, or restore.
  const dialog = document.getElementById("placement-dialog");
  let placement = null;
  document.querySelectorAll("[data-reject-placement]").forEach((button) => button.addEventListener("click", () => {
    placement = button.dataset.rejectPlacement;
    document.getElementById("placement-name").textContent = placement;
    document.getElementById("placement-note").value = "";
    dialog.showModal();
    document.getElementById("placement-reason").focus();
  }));
  document.getElementById("placement-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("placement-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    dialog.close();
    const { ok, status: code, data } = await post("placement", {
      placement, action: "reject", reason: document.getElementById("placement-reason").value,
      note: document.getElementById("placement-note").value,
    });
    if (ok) done(`Rejected ${placement}; the other placements ship`); else failed(code, data);
  });
  document.querySelectorAll("[data-restore-placement]").forEach((button) => button.addEventListener("click", async () => {
    const { ok, status: code, data } = await post("placement", { placement: button.dataset.restorePlacement, action: "restore" });
    if (ok) done(`Restored ${button.dataset.restorePlacement}`); else failed(code, data);
  }));

  // Copy edits: checked like the sheet (length, banned terms, fonts); problems are listed here.
  const errors = document.getElementById("copy-errors");
  document.querySelectorAll("[data-copy-field]").forEach((button) => button.addEventListener("click", async () => {
    const field = button.dataset.copyField;
    const { ok, status: code, data } = await post("copy", { field, value: document.getElementById(`copy-${field}`).value });
    if (ok) { errors.textContent = ""; done(`Saved ${field}; previews redrawn`); return; }
    errors.textContent = (data.problems || [data.error]).join("\n");
    failed(code, data);
  }));
})();
