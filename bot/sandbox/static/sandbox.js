// The sandbox page: Slack's part, played in the browser (the sandbox's own controls are in
// panels.js, Block Kit in blockkit.js).
//
// The page keeps no state of its own worth keeping: it fetches what one person sees
// (/sandbox/api/state) whenever the server says something changed (server-sent events on
// /sandbox/api/events; polling if they drop), and sends every click, submission and command
// to the server, which signs it as Slack would and posts it to Countersign.
"use strict";

(function () {
  const BK = window.BlockKit;
  const $ = (id) => document.getElementById(id);
  const HOME = "home";

  const view = {
    state: null,
    user: localStorage.getItem("countersign.sandbox.user") || "U0ANA",
    channel: localStorage.getItem("countersign.sandbox.channel") || "C0REFUNDS",
    thread: null, // ts of the message whose thread is open
    log: "activity",
    modalKey: null,
    drawn: {}, // what each region was last drawn from, to redraw only on change
    seen: {}, // messages seen per channel, for the unread marks
    fetching: null,
    again: false,
  };

  // -- talking to the server --------------------------------------------------------------------

  async function api(path, body) {
    const init = body === undefined
      ? { method: "GET" }
      : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : response.statusText;
      throw new Error(`${response.status} ${detail}`);
    }
    return data;
  }

  async function refresh() {
    if (view.fetching) { view.again = true; return view.fetching; }
    view.fetching = (async () => {
      try {
        do {
          view.again = false;
          const state = await api(`/sandbox/api/state?user=${encodeURIComponent(view.user)}`);
          view.state = state;
          render();
        } while (view.again);
      } catch (error) {
        setLive(false, `Cannot reach the sandbox: ${error.message}`);
      } finally {
        view.fetching = null;
      }
    })();
    return view.fetching;
  }

  function listen() {
    let polling = null;
    const source = new EventSource("/sandbox/api/events");
    source.onopen = () => {
      setLive(true, "Live: updates arrive as they happen");
      if (polling) { clearInterval(polling); polling = null; }
    };
    source.onmessage = () => refresh();
    source.onerror = () => {
      setLive(false, "Reconnecting; checking every 2 seconds meanwhile");
      if (!polling) polling = setInterval(refresh, 2000);
    };
  }

  function setLive(ok, title) {
    const live = $("live");
    live.textContent = ok ? "live" : "offline";
    live.className = `live ${ok ? "on" : "off"}`;
    live.title = title;
  }

  // -- rendering --------------------------------------------------------------------------------

  function person(id) {
    return (view.state?.workspace.people || []).find((p) => p.id === id);
  }

  const ctxBase = {
    personName: (id) => person(id)?.real_name || id,
    channelName: (id) => view.state?.workspace.channel_names[id] || id,
    groupName: (id) => view.state?.workspace.usergroups[id] || id,
    now: () => (view.state ? new Date(view.state.clock.now) : new Date()),
    confirm: confirmDialog,
    // A link to a message of this workspace opens it here rather than in a new tab.
    archiveLink: (url) => {
      const domain = view.state?.workspace.team_domain;
      let parsed;
      try { parsed = new URL(url); } catch (_) { return null; }
      if (!domain || parsed.hostname !== `${domain}.slack.com`) return null;
      const match = parsed.pathname.match(/^\/archives\/([A-Z0-9]+)\/p(\d{10})(\d{6})$/);
      return match ? { channel: match[1], ts: `${match[2]}.${match[3]}` } : null;
    },
  };

  function changed(region, data) {
    const key = JSON.stringify(data);
    if (view.drawn[region] === key) return false;
    view.drawn[region] = key;
    return true;
  }

  function render() {
    const state = view.state;
    if (!state) return;
    renderTop(state);
    renderChannels(state);
    renderConversation(state);
    renderThread(state);
    renderModal(state);
    for (const panel of panels) panel.render(state);
  }

  function renderTop(state) {
    const select = $("person");
    if (!select.options.length) {
      for (const p of state.workspace.people) {
        const option = document.createElement("option");
        option.value = p.id;
        option.textContent = `${p.real_name} (${p.id})`;
        select.append(option);
      }
    }
    select.value = view.user;
    $("role").textContent = person(view.user)?.role || "";
  }

  function channelFor(state, id) {
    return state.channels.find((c) => c.id === id);
  }

  function renderChannels(state) {
    const counts = state.channels.map((c) => [c.id, c.name, c.kind, c.messages.length]);
    for (const [id, , , count] of counts) {
      if (view.seen[id] === undefined || id === view.channel) view.seen[id] = count;
    }
    if (!changed("channels", [counts, view.channel, view.seen])) return;
    const list = $("channels");
    const apps = $("apps");
    list.replaceChildren();
    apps.replaceChildren();
    const item = (id, label, count, parent) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "channel" + (id === view.channel ? " current" : "") + (count > (view.seen[id] ?? 0) ? " unread" : "");
      button.dataset.channel = id;
      button.textContent = label;
      if (count) {
        const badge = document.createElement("span");
        badge.className = "count";
        badge.textContent = String(count);
        button.append(badge);
      }
      li.append(button);
      parent.append(li);
    };
    for (const [id, name, kind, count] of counts) {
      if (kind === "channel") item(id, `# ${name}`, count, list);
    }
    item(HOME, "Countersign · Home", 0, apps);
    for (const [id, , kind, count] of counts) {
      if (kind === "dm") item(id, "Countersign · Messages", count, apps);
    }
  }

  function renderConversation(state) {
    const box = $("messages");
    const composer = $("composer");
    if (view.channel === HOME) {
      $("channel-title").textContent = "Countersign · Home";
      $("channel-note").textContent = "The App Home tab, as published for the person you act as";
      composer.hidden = true;
      if (!changed("conversation", [HOME, view.user, state.home, state.workspace])) return;
      box.replaceChildren();
      if (state.home) {
        const home = BK.renderBlocks(state.home.blocks, contextFor({ surface: "home" }));
        home.classList.add("home");
        box.append(home);
      } else {
        box.append(note("Nothing published yet. Countersign publishes the Home tab when it is opened; the Activity log shows how it answered."));
      }
      return;
    }
    const channel = channelFor(state, view.channel) || channelFor(state, "C0REFUNDS");
    if (channel && channel.id !== view.channel) view.channel = channel.id;
    composer.hidden = false;
    $("channel-title").textContent = channel ? (channel.kind === "dm" ? "Countersign · Messages" : `#${channel.name}`) : "";
    $("channel-note").textContent = channel && channel.kind === "dm" ? "Direct messages from Countersign to you" : "";
    if (!channel || !changed("conversation", [channel, view.user, state.workspace])) return;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    const switched = box.dataset.channel !== channel.id;
    box.dataset.channel = channel.id;
    box.replaceChildren();
    if (!channel.messages.length) {
      box.append(note("No messages yet. Send a demo call from the panel on the right."));
    }
    for (const message of channel.messages) box.append(messageNode(channel.id, message, true));
    if (atBottom || switched) box.scrollTop = box.scrollHeight;
  }

  function note(text) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = text;
    return p;
  }

  function messageNode(channel, message, inChannel) {
    const node = document.createElement("article");
    node.className = `msg ${message.kind}${message.everyone ? " everyone" : ""}`;
    node.dataset.ts = message.ts;
    const slackbot = message.kind === "reply" && message.source === "slack";
    const avatar = document.createElement("div");
    avatar.className = `avatar${slackbot ? " slackbot" : ""}`;
    avatar.textContent = slackbot ? "S" : "CS";
    node.append(avatar);
    const body = document.createElement("div");
    body.className = "msg-body";
    const head = document.createElement("div");
    head.className = "msg-head";
    head.innerHTML = `<span class="author">${slackbot ? "Slackbot" : "Countersign"}</span><span class="app-tag">APP</span>`;
    if (message.kind !== "message" && !message.everyone) {
      const only = document.createElement("span");
      only.className = "only-you";
      only.textContent = "Only visible to you";
      head.append(only);
    }
    if (message.edited) {
      const edited = document.createElement("span");
      edited.className = "muted";
      edited.textContent = "(edited)";
      head.append(edited);
    }
    body.append(head);
    const where = message.kind === "message" ? "message" : message.kind;
    const ctx = contextFor({ surface: "message", channel, ts: message.ts, where });
    if (message.blocks && message.blocks.length) {
      body.append(BK.renderBlocks(message.blocks, ctx));
    } else {
      const text = document.createElement("div");
      text.className = "b-text";
      text.innerHTML = BK.mrkdwn(message.text, ctx);
      body.append(text);
    }
    for (const attachment of message.attachments || []) {
      const part = document.createElement("div");
      part.className = "attachment";
      if (attachment.blocks) part.append(BK.renderBlocks(attachment.blocks, ctx));
      else part.innerHTML = BK.mrkdwn(attachment.text || attachment.fallback || "", ctx);
      body.append(part);
    }
    const replies = message.thread ? message.thread.length : 0;
    if (inChannel && replies) {
      const link = document.createElement("button");
      link.type = "button";
      link.className = "thread-link";
      link.dataset.thread = message.ts;
      link.textContent = `${replies} ${replies === 1 ? "reply" : "replies"}`;
      body.append(link);
    }
    node.append(body);
    return node;
  }

  function contextFor(where) {
    return {
      ...ctxBase,
      act: (element, chosen) => {
        if (where.surface === "modal") return modalAct(where.viewId, element, chosen);
        if (where.surface === "home") {
          return send("/sandbox/api/home/click", { user: view.user, block: element.block, element: element.element, chosen });
        }
        return act(where, element, chosen);
      },
    };
  }

  function renderThread(state) {
    const panel = $("thread");
    const channel = channelFor(state, view.channel);
    const parent = channel && view.thread ? channel.messages.find((m) => m.ts === view.thread) : null;
    panel.hidden = !parent;
    if (!parent || !changed("thread", [channel.id, parent, state.workspace])) return;
    const box = $("thread-messages");
    box.replaceChildren(messageNode(channel.id, { ...parent, thread: [] }, false));
    const divider = document.createElement("div");
    divider.className = "thread-divider";
    divider.textContent = `${parent.thread.length} ${parent.thread.length === 1 ? "reply" : "replies"}`;
    box.append(divider);
    for (const reply of parent.thread) box.append(messageNode(channel.id, reply, false));
    box.scrollTop = box.scrollHeight;
  }

  // -- modals and confirmations ------------------------------------------------------------------

  function renderModal(state) {
    const dialog = $("modal");
    const modal = state.modal;
    if (!modal) {
      if (dialog.open) dialog.close();
      view.modalKey = null;
      return;
    }
    const key = `${modal.id}:${modal.hash}`;
    if (key !== view.modalKey) {
      view.modalKey = key;
      $("modal-title").textContent = BK.plainText(modal.title) || "Countersign";
      const body = $("modal-body");
      body.replaceChildren(BK.renderBlocks(modal.blocks, contextFor({ surface: "modal", viewId: modal.id })));
      $("modal-submit").hidden = !modal.submit;
      $("modal-submit").textContent = BK.plainText(modal.submit) || "Submit";
      $("modal-close").textContent = BK.plainText(modal.close) || "Cancel";
      dialog.dataset.viewId = modal.id;
    }
    for (const node of dialog.querySelectorAll(".b-input")) {
      const error = (modal.errors || {})[node.dataset.blockId] || "";
      node.querySelector(".b-error").textContent = error;
      node.classList.toggle("has-error", Boolean(error));
    }
    const problem = $("modal-problem");
    problem.hidden = !modal.problem;
    problem.textContent = modal.problem ? `We had some trouble connecting: ${modal.problem}` : "";
    if (!dialog.open) dialog.showModal();
  }

  async function submitModal(event) {
    event.preventDefault();
    const dialog = $("modal");
    const button = $("modal-submit");
    button.disabled = true;
    try {
      await api("/sandbox/api/modal/submit", {
        user: view.user, view_id: dialog.dataset.viewId, values: BK.inputValues($("modal-body")),
      });
    } catch (error) {
      flash(error.message);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  async function closeModal() {
    const dialog = $("modal");
    try {
      await api("/sandbox/api/modal/close", { user: view.user, view_id: dialog.dataset.viewId });
    } catch (error) {
      flash(error.message);
    }
    refresh();
  }

  async function modalAct(viewId, element, chosen) {
    await send("/sandbox/api/modal/click", {
      user: view.user, view_id: viewId, block: element.block, element: element.element,
      chosen, values: BK.inputValues($("modal-body")),
    });
  }

  function confirmDialog(confirm) {
    const dialog = $("confirm");
    $("confirm-title").textContent = BK.plainText(confirm.title) || "Are you sure?";
    $("confirm-text").innerHTML = BK.textHtml(confirm.text, ctxBase);
    $("confirm-ok").textContent = BK.plainText(confirm.confirm) || "Yes";
    $("confirm-deny").textContent = BK.plainText(confirm.deny) || "Cancel";
    return new Promise((resolve) => {
      const done = (answer) => {
        $("confirm-ok").onclick = null;
        $("confirm-deny").onclick = null;
        dialog.oncancel = null;
        dialog.close();
        resolve(answer);
      };
      $("confirm-ok").onclick = () => done(true);
      $("confirm-deny").onclick = () => done(false);
      dialog.oncancel = (event) => { event.preventDefault(); done(false); };
      dialog.showModal();
    });
  }

  // -- what a person does -------------------------------------------------------------------------

  async function send(path, body) {
    try {
      return await api(path, body);
    } catch (error) {
      flash(error.message);
      return null;
    } finally {
      refresh();
    }
  }

  function act(where, element, chosen) {
    return send("/sandbox/api/click", {
      user: view.user, where: where.where, channel: where.channel, ts: where.ts,
      block: element.block, element: element.element, chosen,
    });
  }

  function flash(text) {
    const result = $("demo-result");
    result.textContent = text;
    result.className = "result bad";
  }

  function choose(channel) {
    view.channel = channel;
    view.thread = null;
    localStorage.setItem("countersign.sandbox.channel", channel);
    if (channel === HOME) send("/sandbox/api/home", { user: view.user });
    render();
  }

  async function sendCommand(event) {
    event.preventDefault();
    const input = $("command-text");
    let text = input.value.trim();
    let command = "/dialnexa";
    const match = text.match(/^(\/[a-z0-9_-]+)\s*(.*)$/i);
    if (match) { command = match[1].toLowerCase(); text = match[2]; }
    input.value = "";
    await send("/sandbox/api/command", { user: view.user, channel: view.channel, command, text });
  }

  function wire() {
    $("person").addEventListener("change", (event) => {
      view.user = event.target.value;
      localStorage.setItem("countersign.sandbox.user", view.user);
      view.thread = null;
      view.modalKey = null;
      view.drawn = {};
      if (view.channel === HOME) send("/sandbox/api/home", { user: view.user });
      refresh();
    });
    document.addEventListener("click", (event) => {
      const target = event.target.closest("[data-channel], [data-thread]");
      if (!target) return;
      if (target.dataset.thread) {
        view.thread = target.dataset.thread;
        render();
      } else if (target.dataset.channel) {
        event.preventDefault();
        choose(target.dataset.channel);
        if (target.dataset.ts) {
          const found = document.querySelector(`.msg[data-ts="${CSS.escape(target.dataset.ts)}"]`);
          if (found) found.scrollIntoView({ block: "center" });
        }
      }
    });
    $("thread-close").addEventListener("click", () => { view.thread = null; render(); });
    $("composer").addEventListener("submit", sendCommand);
    $("shortcut").addEventListener("click", () => send("/sandbox/api/shortcut", { user: view.user, callback_id: "lookup_call" }));
    $("modal-form").addEventListener("submit", submitModal);
    $("modal-close").addEventListener("click", closeModal);
    $("modal-x").addEventListener("click", closeModal);
    $("modal").addEventListener("cancel", (event) => { event.preventDefault(); closeModal(); });
  }

  const panels = [];
  // What the other scripts of the page use; they add themselves with `register`.
  window.Sandbox = {
    view, $, send, refresh, render, choose, person, note, flash, changed,
    register: (panel) => panels.push(panel),
  };

  // After every deferred script has run, so every panel has registered.
  document.addEventListener("DOMContentLoaded", () => {
    wire();
    listen();
    refresh();
  });
})();
