// Keyboard-first review: j/k or arrows move, space selects, a approve, x reject (reason), r reroll, ? shortcuts.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const page = document.body.dataset.page;
  const status = document.getElementById("status");
  const items = () => Array.from(document.querySelectorAll(".item"));
  let at = 0;

  const say = (text) => { status.textContent = text; };
  const post = async (url, body) => {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({ error: response.statusText }));
    return { ok: response.ok, status: response.status, data };
  };
  const count = (state, change) => {
    const node = document.querySelector(`.count[data-state="${state}"]`);
    if (node) node.textContent = String(Number(node.textContent) + change);
  };
  const show = (card, summary) => {
    if (card.dataset.state !== summary.state) { count(card.dataset.state, -1); count(summary.state, +1); }
    card.dataset.version = summary.version;
    card.dataset.state = summary.state;
    const badge = card.querySelector(".badge.state");
    badge.textContent = summary.state.replace("_", " ");
    badge.className = `badge state state-${summary.state}`;
  };
  const focus = (index) => {
    const all = items();
    if (!all.length) return;
    at = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((card, i) => card.classList.toggle("focused", i === at));
    if (page !== "grid") return;
    all[at].focus({ preventScroll: true });
    all[at].scrollIntoView({ block: "nearest" });
  };
  const current = () => items()[at];

  const decide = async (card, decision, reason, note) => {
    if (!card) return;
    const { ok, status: code, data } = await post(`/i/${card.dataset.id}/decide`,
      { decision, version: card.dataset.version, reason, note });
    if (ok) {
      show(card, data);
      document.dispatchEvent(new CustomEvent("brandbatch:decided", { detail: { card, state: data.state } }));
      say(`${decision === "reroll" ? "Reroll requested" : decision === "approve" ? "Approved" : "Rejected"}: ${card.querySelector("strong, h1").textContent.trim()}`);
      if (page === "grid") focus(at + 1);
      else if (decision !== "reroll") {  // on to the next item waiting (or back to the queue after the last)
        const next = document.body.dataset.nextQueued;
        window.setTimeout(() => window.location.assign(next ? `/i/${next}` : `/c/${document.body.dataset.campaign}`), 600);
      }
    } else {
      say(code === 409 ? `Conflict: ${data.error}` : `Error ${code}: ${data.error}`);
    }
  };

  const dialog = document.getElementById("reject-dialog");
  let rejecting = null;
  const askReject = (card) => {
    if (!card || !dialog) return;
    rejecting = card;
    document.getElementById("reject-note").value = "";
    dialog.showModal();
    document.getElementById("reject-reason").focus();
  };
  if (dialog) {
    document.getElementById("reject-form").addEventListener("submit", (event) => {
      event.preventDefault();
      dialog.close();
      decide(rejecting, "reject", document.getElementById("reject-reason").value,
        document.getElementById("reject-note").value);
    });
    document.getElementById("reject-cancel").addEventListener("click", () => dialog.close());
  }

  const go = (id) => { if (id) window.location.assign(`/i/${id}`); };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, dialog")) return;
    const card = current();
    const key = event.key;
    const next = ["j", "ArrowDown", "ArrowRight"].includes(key);
    const prev = ["k", "ArrowUp", "ArrowLeft"].includes(key);
    if (page === "detail" && (next || prev)) go(document.body.dataset[next ? "next" : "prev"]);
    else if (next) focus(at + 1);
    else if (prev) focus(at - 1);
    else if (key === "?") { const keys = document.getElementById("keys-dialog"); if (keys) keys.showModal(); }
    else if (key === "a" && document.getElementById("why-no-approve")) say(document.getElementById("why-no-approve").textContent);
    else if (key === "a") decide(card, "approve");
    else if (key === "x") askReject(card);
    else if (key === "r") decide(card, "reroll");
    else if (key === " " && page === "grid" && card) {
      const box = card.querySelector(".pick");
      box.checked = !box.checked;
      card.classList.toggle("picked", box.checked);
    } else if ((key === "Enter" || key === "o") && page === "grid" && card) go(card.dataset.id);
    else return;
    event.preventDefault();
  });

  document.querySelectorAll("[data-decision]").forEach((button) => button.addEventListener("click", () => {
    const card = button.closest(".item");
    if (button.dataset.decision === "reject") askReject(card);
    else decide(card, button.dataset.decision);
  }));
  document.querySelectorAll(".pick").forEach((box) => box.addEventListener("change", () =>
    box.closest(".item").classList.toggle("picked", box.checked)));
  items().forEach((card, i) => card.addEventListener("click", (event) => {
    if (!event.target.closest("a, input, button")) focus(i);
  }));

  const bulk = document.getElementById("bulk-approve");
  if (bulk) bulk.addEventListener("click", async () => {
    const picked = items().filter((card) => card.querySelector(".pick").checked);
    if (!picked.length) { say("Select items first (space or the checkbox)."); return; }
    const wanted = Object.fromEntries(picked.map((card) => [card.dataset.id, card.dataset.version]));
    const { data } = await post(`/c/${document.body.dataset.campaign}/approve`, { items: wanted });
    (data.approved || []).forEach((summary) => {
      const card = picked.find((c) => c.dataset.id === summary.id);
      show(card, summary);
      card.querySelector(".pick").checked = false;
      card.classList.remove("picked");
    });
    say(`Approved ${(data.approved || []).length}` +
      ((data.conflicts || []).length ? `; ${data.conflicts.length} changed meanwhile (reload)` : "") +
      (data.error ? `; ${data.error}` : ""));
  });
  // Publish runs on the server; the campaign page polls its status and reloads with the result.
  const progress = document.getElementById("publish-progress");
  const watchPublish = () => {
    const campaign = document.body.dataset.campaign;
    const poll = async () => {
      const response = await fetch(`/c/${campaign}/publish/status`, { credentials: "same-origin", headers: { "Accept": "application/json" } });
      const record = response.ok ? await response.json() : null;
      if (record && record.state === "running") {
        const seconds = Math.max(0, Math.round((Date.now() - Date.parse(record.started)) / 1000));
        progress.textContent = `Publishing (started by ${record.by}, ${seconds} s ago): exporting ${record.approved} approved variant(s)…`;
        window.setTimeout(poll, 1000);
      } else if (record) {
        progress.textContent = record.state === "failed" ? `Publish failed: ${record.error}` :
          `Published: ${record.written} files written or current, ${record.failures.length} failures.`;
        if (document.body.dataset.publishing) window.location.reload();  // the page was rebuilt with the result
      }
    };
    poll();
  };
  const publish = document.getElementById("publish");
  if (publish) publish.addEventListener("click", async () => {
    const campaign = document.body.dataset.campaign;
    const { ok, data } = await post(`/c/${campaign}/publish`, {});
    if (!ok) { say(`Error: ${data.error}`); return; }
    if (page !== "report") { window.location.assign(`/c/${campaign}/report`); return; }
    document.body.dataset.publishing = "1";
    say(`Publishing ${data.approved} approved item(s)…`);
    watchPublish();
  });
  if (page === "report" && document.body.dataset.publishing) watchPublish();

  // Zoom: click a picture for its full-size view; Esc (or a click) closes it.
  const zoom = document.getElementById("zoom-dialog");
  if (zoom) {
    document.addEventListener("click", (event) => {
      const picture = event.target.closest(".renders img, img[data-zoom]");
      if (!picture || zoom.open) return;
      event.preventDefault();
      const image = document.getElementById("zoom-image");
      image.src = picture.currentSrc || picture.src;
      image.alt = picture.alt;
      document.getElementById("zoom-caption").textContent =
        `${picture.alt} · ${picture.naturalWidth}×${picture.naturalHeight} px`;
      zoom.showModal();
    });
    zoom.addEventListener("click", () => zoom.close());
  }

  // A reroll in progress: poll the item until its new renders arrive, then show them (before / after).
  const watchReroll = (card) => {
    const poll = async () => {
      const response = await fetch(`/i/${card.dataset.id}/status`, { credentials: "same-origin", headers: { "Accept": "application/json" } });
      const now = response.ok ? await response.json() : null;
      if (now && now.state !== "reroll_requested") {
        say("The reroll's new renders arrived.");
        window.location.reload();
      } else window.setTimeout(poll, 2000);
    };
    window.setTimeout(poll, 2000);
  };
  document.addEventListener("brandbatch:decided", (event) => {
    if (page === "detail" && event.detail.state === "reroll_requested") watchReroll(event.detail.card);
  });
  if (page === "detail" && current() && current().dataset.state === "reroll_requested") watchReroll(current());

  if (page === "grid" || page === "detail") focus(0);
})();
