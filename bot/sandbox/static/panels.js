// The sandbox's own controls: the demo-call form, the clock, and what the stand-ins received.
"use strict";

(function () {
  const BK = window.BlockKit;
  const { view, $, send, render, choose, person, note, flash, changed } = window.Sandbox;
  let built = false;

  function renderPanels(state) {
    if (!built) {
      buildDemoForm(state);
      built = true;
    }
    renderClock(state);
    renderLog(state);
  }

  function renderClock(state) {
    const now = new Date(state.clock.now);
    $("clock-now").textContent = now.toLocaleString(undefined, {
      weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    });
    $("clock-now").dateTime = state.clock.now;
    const ahead = state.clock.offset_seconds;
    $("clock-offset").textContent = ahead ? `(${span(ahead)} ahead)` : "(real time)";
  }

  function span(seconds) {
    const days = Math.floor(seconds / 86400);
    const hours = Math.floor((seconds % 86400) / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    return [days && `${days} d`, hours && `${hours} h`, minutes && `${minutes} min`].filter(Boolean).join(" ") || `${seconds} s`;
  }

  function renderLog(state) {
    const lines = state.logs[view.log] || [];
    if (!changed("log", [view.log, lines])) return;
    const box = $("log");
    box.replaceChildren();
    if (!lines.length) {
      box.append(note({
        activity: "What the sandbox sent Countersign (signed webhooks, clicks, commands) shows here.",
        polygon: "Requests Polygon.io would receive show here once a ticker or filing request is approved.",
        outcome: "Decision records the outcome receiver gets show here once a billing request is decided.",
        slack: "Every Slack Web API call Countersign makes shows here.",
      }[view.log]));
      return;
    }
    for (const line of lines) box.append(logLine(view.log, line));
  }

  function time(iso) {
    const d = new Date(iso);
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function logLine(kind, line) {
    const item = document.createElement("details");
    item.className = "log-line";
    const summary = document.createElement("summary");
    const status = (code, good) => `<span class="status ${good ? "ok" : "bad"}">${BK.escapeHtml(code ?? "…")}</span>`;
    let detail = line;
    if (kind === "activity") {
      const who = line.user ? ` · ${BK.escapeHtml(person(line.user)?.real_name || line.user)}` : "";
      summary.innerHTML = `${status(line.status, line.status < 300)} <b>${BK.escapeHtml(line.kind)}</b> ${BK.escapeHtml(line.summary)}${who} <time>${time(line.at)}</time>`;
      detail = line.answer || "(empty answer)";
    } else if (kind === "polygon") {
      const query = new URLSearchParams(line.query).toString();
      summary.innerHTML = `${status(line.status, line.status < 300)} <b>${BK.escapeHtml(line.method)}</b> ${BK.escapeHtml(line.path)}${query ? "?" + BK.escapeHtml(query) : ""} <time>${time(line.at)}</time>`;
    } else if (kind === "outcome") {
      const signature = line.signature_valid ? "signature ✓" : "signature ✗";
      summary.innerHTML = `${status(line.status, line.status < 300)} <b>POST</b> ${BK.escapeHtml(line.path)} · ${BK.escapeHtml(signature)} · key ${BK.escapeHtml(line.idempotency_key || "none")} <time>${time(line.at)}</time>`;
      detail = line.body;
    } else {
      const ok = line.ok ? "ok" : (line.error || "error");
      summary.innerHTML = `${status(ok, line.ok)} <b>${BK.escapeHtml(line.method)}</b> ${BK.escapeHtml(line.channel || "")} <time>${time(line.at)}</time>`;
    }
    item.append(summary);
    const pre = document.createElement("pre");
    pre.textContent = typeof detail === "string" ? detail : JSON.stringify(detail, null, 2);
    item.append(pre);
    return item;
  }

  function buildDemoForm(state) {
    const intents = $("demo-intent");
    for (const intent of state.workspace.intents) {
      const option = document.createElement("option");
      option.value = intent.value;
      option.textContent = intent.label;
      option.dataset.channel = intent.channel || "";
      intents.append(option);
    }
    const owners = $("demo-owner");
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "(as the call says)";
    owners.append(none);
    for (const p of state.workspace.people) {
      const option = document.createElement("option");
      option.value = p.id;
      option.textContent = p.real_name;
      owners.append(option);
    }
    const soon = new Date(new Date(state.clock.now).getTime() + 30 * 3600 * 1000);
    soon.setMinutes(0, 0, 0);
    const pad = (n) => String(n).padStart(2, "0");
    $("demo-deadline").value = `${soon.getFullYear()}-${pad(soon.getMonth() + 1)}-${pad(soon.getDate())}T${pad(soon.getHours())}:00`;
    intents.addEventListener("change", showIntentFields);
    showIntentFields();
  }

  function showIntentFields() {
    const intent = $("demo-intent").value;
    document.querySelector(".only-ticker").hidden = intent !== "ticker_events_lookup";
    document.querySelector(".only-filing").hidden = intent !== "filing_files_request";
  }

  function demoBody() {
    const deadline = $("demo-deadline").value;
    return {
      intent: $("demo-intent").value,
      amount: $("demo-amount").value,
      currency: $("demo-currency").value,
      customer_name: $("demo-customer").value,
      vip: $("demo-vip").checked,
      email_verified: $("demo-verified").checked,
      follow_up_deadline: deadline ? new Date(deadline).toISOString() : null,
      card_number: $("demo-card").value,
      finance_owner: $("demo-owner").value,
      ticker: $("demo-ticker").value,
      filing_id: $("demo-filing").value,
    };
  }

  function showResult(answer) {
    const result = $("demo-result");
    if (!answer) return;
    const text = answer.answer && typeof answer.answer === "object" ? answer.answer.status || JSON.stringify(answer.answer) : answer.answer;
    result.textContent = `DialNexa delivery of ${answer.call_id || "the call"}: HTTP ${answer.status} ${text || ""}`;
    result.className = `result ${answer.status && answer.status < 300 ? "ok" : "bad"}`;
  }

  async function sendDemo(event) {
    event.preventDefault();
    const button = $("demo-send");
    button.disabled = true;
    try {
      const intent = $("demo-intent").selectedOptions[0];
      showResult(await send("/sandbox/api/calls", demoBody()));
      if (intent && intent.dataset.channel) choose(intent.dataset.channel);
    } finally {
      button.disabled = false;
    }
  }


  $("clock-hour").addEventListener("click", () => send("/sandbox/api/clock", { seconds: 3600 }));
  $("clock-day").addEventListener("click", () => send("/sandbox/api/clock", { seconds: 86400 }));
  $("demo-form").addEventListener("submit", sendDemo);
  $("demo-again").addEventListener("click", async () => showResult(await send("/sandbox/api/calls/again", {})));
  for (const tab of document.querySelectorAll("[data-log]")) {
    tab.addEventListener("click", () => {
      view.log = tab.dataset.log;
      for (const other of document.querySelectorAll("[data-log]")) other.classList.toggle("active", other === tab);
      render();
    });
  }

  window.Sandbox.register({ render: renderPanels });
})();
