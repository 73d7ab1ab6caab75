// Block Kit and mrkdwn, drawn as Slack draws them (the parts Countersign uses).
//
// Everything that comes from a message is escaped before it reaches the page: mrkdwn is turned
// into HTML from escaped text, and every <…> token becomes markup built here. Nothing is loaded
// from elsewhere: an image block shows its alt text.
"use strict";

(function () {
  const EMOJI = {
    white_check_mark: "✅", ballot_box_with_check: "☑️", heavy_check_mark: "✔️", x: "❌",
    no_entry: "⛔", warning: "⚠️", rotating_light: "🚨", lock: "🔒", star: "⭐",
    moneybag: "💰", robot_face: "🤖", hourglass: "⌛", hourglass_flowing_sand: "⏳",
    repeat: "🔁", ledger: "📒", arrow_heading_up: "⤴️", busts_in_silhouette: "👥",
    inbox_tray: "📥", link: "🔗", memo: "📝", zzz: "💤", grey_question: "❔", jigsaw: "🧩",
    alarm_clock: "⏰", point_right: "👉", calendar: "📅", mag: "🔍", label: "🏷️",
    bell: "🔔", eyes: "👀", information_source: "ℹ️", telephone_receiver: "📞",
    page_facing_up: "📄", tada: "🎉", clipboard: "📋",
  };

  const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
  }

  // Slack escapes exactly these three in message text.
  function slackDecode(text) {
    return String(text).replace(/&(amp|lt|gt);/g, (m, name) => ({ amp: "&", lt: "<", gt: ">" })[name]);
  }

  function emojify(html) {
    return html.replace(/:([a-z0-9_+-]+):/g, (whole, name) =>
      EMOJI[name] ? `<span class="emoji" title=":${name}:">${EMOJI[name]}</span>` : whole);
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  // <!date^1700000000^{date_short_pretty} {time}|fallback>: shown in the reader's time zone.
  function formatDate(target, fallback, ctx) {
    const parts = target.split("^");
    const seconds = Number(parts[1]);
    if (!Number.isFinite(seconds)) return fallback || "";
    const when = new Date(seconds * 1000);
    const now = ctx.now ? ctx.now() : new Date();
    const short = when.toLocaleDateString(undefined, { month: "short", day: "numeric", year: "numeric" });
    const long = when.toLocaleDateString(undefined, { weekday: "long", month: "long", day: "numeric", year: "numeric" });
    const plain = when.toLocaleDateString(undefined, { month: "long", day: "numeric", year: "numeric" });
    const pretty = (otherwise) => {
      const day = 24 * 3600 * 1000;
      if (sameDay(when, now)) return "Today";
      if (sameDay(when, new Date(now.getTime() - day))) return "Yesterday";
      if (sameDay(when, new Date(now.getTime() + day))) return "Tomorrow";
      return otherwise;
    };
    const values = {
      date_num: `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`,
      date: plain, date_short: short, date_long: long,
      date_pretty: pretty(plain), date_short_pretty: pretty(short), date_long_pretty: pretty(long),
      time: `${pad(when.getHours())}:${pad(when.getMinutes())}`,
      time_secs: `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`,
    };
    return (parts[2] || "{date_short} {time}").replace(/\{(\w+)\}/g, (whole, key) => values[key] ?? fallback ?? whole);
  }

  function linkable(url) {
    try {
      return ["http:", "https:", "mailto:"].includes(new URL(url).protocol);
    } catch (_) {
      return false;
    }
  }

  function renderToken(token, ctx) {
    const bar = token.indexOf("|");
    const target = bar === -1 ? token : token.slice(0, bar);
    const label = bar === -1 ? "" : slackDecode(token.slice(bar + 1));
    if (target.startsWith("@")) {
      const name = label || ctx.personName(target.slice(1));
      return `<span class="mention">@${escapeHtml(name)}</span>`;
    }
    if (target.startsWith("#")) {
      const id = target.slice(1);
      const name = label || ctx.channelName(id);
      return `<a href="#" class="mention" data-channel="${escapeHtml(id)}">#${escapeHtml(name)}</a>`;
    }
    if (target.startsWith("!subteam^")) {
      const name = label ? label.replace(/^@/, "") : ctx.groupName(target.slice(9));
      return `<span class="mention group">@${escapeHtml(name)}</span>`;
    }
    if (target.startsWith("!date^")) {
      return `<time>${escapeHtml(formatDate(target, label, ctx))}</time>`;
    }
    if (/^!(here|channel|everyone)$/.test(target)) {
      return `<span class="mention group">@${escapeHtml(target.slice(1))}</span>`;
    }
    const url = slackDecode(target);
    if (linkable(url)) {
      const local = ctx.archiveLink ? ctx.archiveLink(url) : null;
      const text = escapeHtml(label || url);
      if (local) {
        return `<a href="#" data-channel="${escapeHtml(local.channel)}" data-ts="${escapeHtml(local.ts)}">${text}</a>`;
      }
      return `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${text}</a>`;
    }
    return escapeHtml(label || url);
  }

  // mrkdwn -> HTML: code first (its content is literal), then <…> tokens, then *bold*,
  // _italic_, ~strike~, emoji and line breaks on the escaped rest.
  function mrkdwn(text, ctx) {
    const kept = [];
    const keep = (html) => { kept.push(html); return `\uE000${kept.length - 1}\uE001`; };
    let s = String(text ?? "");
    s = s.replace(/```([\s\S]*?)```/g, (m, code) => keep(`<pre>${escapeHtml(slackDecode(code))}</pre>`));
    s = s.replace(/`([^`\n]+)`/g, (m, code) => keep(`<code>${escapeHtml(slackDecode(code))}</code>`));
    s = s.replace(/<([^<>\n]+)>/g, (m, token) => keep(renderToken(token, ctx)));
    s = emojify(escapeHtml(slackDecode(s)));
    const before = "(^|[\\s(\\[{\"'\\uE001>])";
    const after = "(?=$|[\\s.,;:!?)\\]}\"'<\\uE000])";
    s = s.replace(new RegExp(`${before}\\*([^*\\n]+?)\\*${after}`, "gm"), "$1<strong>$2</strong>");
    s = s.replace(new RegExp(`${before}_([^_\\n]+?)_${after}`, "gm"), "$1<em>$2</em>");
    s = s.replace(new RegExp(`${before}~([^~\\n]+?)~${after}`, "gm"), "$1<del>$2</del>");
    s = s.replace(/\n/g, "<br>");
    return s.replace(/\uE000(\d+)\uE001/g, (m, i) => kept[Number(i)]);
  }

  function el(tag, className, html) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (html !== undefined) node.innerHTML = html;
    return node;
  }

  function textHtml(object, ctx) {
    if (!object) return "";
    if (typeof object === "string") return escapeHtml(object);
    if (object.type === "mrkdwn") return mrkdwn(object.text, ctx);
    const plain = escapeHtml(object.text ?? "");
    return object.emoji === false ? plain : emojify(plain);
  }

  function plainText(object) {
    return object && typeof object === "object" ? String(object.text ?? "") : String(object ?? "");
  }

  function options(element) {
    const found = [...(element.options || [])];
    for (const group of element.option_groups || []) found.push(...(group.options || []));
    return found;
  }

  function selectFor(element) {
    const select = el("select", "sk-select");
    const placeholder = el("option");
    placeholder.value = "";
    placeholder.textContent = plainText(element.placeholder) || "Select an item";
    select.append(placeholder);
    const add = (parent, option) => {
      const node = el("option");
      node.value = option.value;
      node.textContent = plainText(option.text);
      parent.append(node);
    };
    for (const option of element.options || []) add(select, option);
    for (const group of element.option_groups || []) {
      const node = el("optgroup");
      node.label = plainText(group.label);
      for (const option of group.options || []) add(node, option);
      select.append(node);
    }
    const initial = element.initial_option && element.initial_option.value;
    select.value = initial || "";
    return select;
  }

  function localInput(seconds) {
    if (seconds === undefined || seconds === null) return "";
    const d = new Date(Number(seconds) * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  // An interactive element. In a message every element acts; in a modal, elements of input
  // blocks only hold state until the modal is submitted.
  function renderElement(element, block, index, ctx, holdsState) {
    const where = { block, element: index };
    const act = async (chosen, reset) => {
      if (element.confirm && !(await ctx.confirm(element.confirm))) {
        if (reset) reset();
        return;
      }
      await ctx.act(where, chosen);
    };
    switch (element.type) {
      case "button": {
        const button = el("button", `sk-button${element.style ? ` ${element.style}` : ""}`);
        button.type = "button";
        button.innerHTML = textHtml(element.text, ctx);
        button.dataset.actionId = element.action_id || "";
        button.addEventListener("click", async () => {
          button.disabled = true;
          try { await act(null); } finally { button.disabled = false; }
        });
        return button;
      }
      case "static_select":
      case "overflow":
      case "radio_buttons": {
        const select = selectFor(element);
        select.dataset.actionId = element.action_id || "";
        if (!holdsState) {
          select.addEventListener("change", () => {
            if (select.value) act(select.value, () => { select.value = ""; });
          });
        }
        return select;
      }
      case "plain_text_input": {
        const input = element.multiline ? el("textarea", "sk-input") : el("input", "sk-input");
        if (element.multiline) input.rows = 4;
        if (element.placeholder) input.placeholder = plainText(element.placeholder);
        if (element.max_length) input.maxLength = element.max_length;
        if (element.initial_value) input.value = element.initial_value;
        input.dataset.actionId = element.action_id || "";
        return input;
      }
      case "datetimepicker": {
        const input = el("input", "sk-input");
        input.type = "datetime-local";
        input.value = localInput(element.initial_date_time);
        if (!holdsState) input.addEventListener("change", () => act(Math.floor(new Date(input.value).getTime() / 1000)));
        return input;
      }
      case "datepicker":
      case "timepicker": {
        const input = el("input", "sk-input");
        input.type = element.type === "datepicker" ? "date" : "time";
        input.value = element.initial_date || element.initial_time || "";
        if (!holdsState) input.addEventListener("change", () => act(input.value));
        return input;
      }
      case "image":
        return el("span", "sk-image", `[${escapeHtml(element.alt_text || "image")}]`);
      default:
        return el("span", "sk-unknown", `[${escapeHtml(element.type)} not shown in the sandbox]`);
    }
  }

  function renderBlock(block, index, ctx) {
    switch (block.type) {
      case "header":
        return el("div", "b-header", textHtml(block.text, ctx));
      case "divider":
        return el("hr", "b-divider");
      case "section": {
        const node = el("div", "b-section");
        const main = el("div", "b-main");
        if (block.text) main.append(el("div", "b-text", textHtml(block.text, ctx)));
        if (block.fields && block.fields.length) {
          const fields = el("div", "b-fields");
          for (const field of block.fields) fields.append(el("div", "b-field", textHtml(field, ctx)));
          main.append(fields);
        }
        node.append(main);
        if (block.accessory) {
          const side = el("div", "b-accessory");
          side.append(renderElement(block.accessory, index, null, ctx, false));
          node.append(side);
        }
        return node;
      }
      case "context": {
        const node = el("div", "b-context");
        for (const element of block.elements || []) {
          node.append(element.type === "image"
            ? el("span", "sk-image", `[${escapeHtml(element.alt_text || "image")}]`)
            : el("span", "b-context-item", textHtml(element, ctx)));
        }
        return node;
      }
      case "actions": {
        const node = el("div", "b-actions");
        (block.elements || []).forEach((element, i) => node.append(renderElement(element, index, i, ctx, false)));
        return node;
      }
      case "input": {
        const node = el("div", "b-input");
        node.dataset.blockIndex = String(index);
        node.dataset.blockId = block.block_id || `sbx${index}`;
        const label = el("label", "b-label", textHtml(block.label, ctx));
        if (block.optional) label.append(el("span", "muted", " (optional)"));
        node.append(label);
        const control = renderElement(block.element || {}, index, null, ctx, !block.dispatch_action);
        control.classList.add("b-control");
        node.append(control);
        if (block.hint) node.append(el("div", "b-hint", textHtml(block.hint, ctx)));
        node.append(el("div", "b-error"));
        return node;
      }
      case "image":
        return el("div", "b-image", `[image: ${escapeHtml(block.alt_text || "")}]`);
      case "rich_text":
        return el("div", "b-text", escapeHtml(JSON.stringify(block.elements || []).slice(0, 200)));
      default:
        return el("div", "b-unknown", `[${escapeHtml(block.type)} block not shown in the sandbox]`);
    }
  }

  function renderBlocks(blocks, ctx) {
    const node = el("div", "blocks");
    (blocks || []).forEach((block, index) => {
      const drawn = renderBlock(block, index, ctx);
      if (drawn) node.append(drawn);
    });
    return node;
  }

  // What a person entered in a modal's inputs, by block index, as the bridge expects it.
  function inputValues(container) {
    const values = {};
    for (const node of container.querySelectorAll(".b-input")) {
      const control = node.querySelector(".b-control");
      if (!control || control.value === undefined) continue;
      let value = control.value;
      if (control.type === "datetime-local") {
        value = value ? Math.floor(new Date(value).getTime() / 1000) : null;
      }
      values[node.dataset.blockIndex] = value === "" ? null : value;
    }
    return values;
  }

  window.BlockKit = { mrkdwn, renderBlocks, textHtml, plainText, inputValues, escapeHtml, options };
})();
