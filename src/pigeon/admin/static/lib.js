// What every page shares: DOM building, the API client, tables, forms, dialogs, live
// regions that refresh without touching the forms around them.
// Every name shown comes from the broker and may be anything, so the DOM is built with
// text nodes (h() below), never with innerHTML.

export const state = {
  auth: sessionStorage.getItem("pigeon.auth"),
  vhost: localStorage.getItem("pigeon.vhost") || "",
  range: Number(localStorage.getItem("pigeon.range")) || 600,
  refresh: Number(localStorage.getItem("pigeon.refresh") ?? 5000),
  sort: {},
  regions: [],
  vhosts: [],
  me: null,
};

export const enc = encodeURIComponent;
const SVG = "http://www.w3.org/2000/svg";

export function h(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function flash(text, bad = false) {
  const el = document.getElementById("flash");
  el.textContent = text;
  el.classList.toggle("bad", bad);
  setTimeout(() => { if (el.textContent === text) el.textContent = ""; }, 5000);
}

export async function api(method, path, body) {
  const response = await fetch("api" + path, {
    method,
    headers: { "Authorization": "Basic " + state.auth, "Content-Type": "application/json",
               "X-Requested-With": "pigeon-ui" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let reason = response.statusText;
    try { reason = (await response.json()).reason || reason; } catch (e) { /* no body */ }
    throw new Error(reason);
  }
  return response.status === 204 || response.status === 201 ? null : response.json();
}

// The vhost part of a list's path: "" for every vhost, "/%2F" for "/".
export const inVhost = () => (state.vhost ? "/" + enc(state.vhost) : "");

// RabbitMQ's history parameters for the selected time range: about 60 points a chart.
export const RANGES = [[60, "Last minute", 5], [600, "Last 10 minutes", 5],
  [3600, "Last hour", 60], [28800, "Last 8 hours", 600], [86400, "Last day", 1800]];
export function historyQuery() {
  const [age, , incr] = RANGES.find(([seconds]) => seconds === state.range) || RANGES[1];
  return `lengths_age=${age}&lengths_incr=${incr}&msg_rates_age=${age}&msg_rates_incr=${incr}`;
}

// -- formatting -------------------------------------------------------------------

export const rate = (stats, key) => ((stats || {})[key + "_details"] || {}).rate ?? 0;
export function fmt(n) {
  if (typeof n !== "number") return n ?? "";
  return Number.isInteger(n) ? n.toLocaleString("en") : n.toLocaleString("en", { maximumFractionDigits: 1 });
}
export function bytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const parts = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]].map(([size, unit]) => {
    const count = Math.floor(s / size); s -= count * size; return count ? `${count}${unit}` : "";
  }).filter(Boolean);
  return parts.slice(0, 2).join(" ") || "0s";
}
export const json = (value) => JSON.stringify(value);

// -- live regions: parts of a page that the refresh timer re-renders ----------------

export function live(render, attrs = {}) {
  const el = h("div", { ...attrs, "data-live": "" });
  const update = async () => {
    let content;
    try { content = await render(); } catch (error) {
      content = h("p", { class: "error" }, "Error: " + error.message);
    }
    if (!el.isConnected && el.dataset.rendered) return;
    const focused = document.activeElement;
    const focusId = focused && el.contains(focused) ? focused.id : null;
    el.replaceChildren(...[content].flat().filter((c) => c !== null && c !== undefined));
    el.dataset.rendered = "1";
    if (focusId) document.getElementById(focusId)?.focus();
  };
  state.regions.push(update);
  el.ready = update();
  return el;
}

export const refreshAll = () => Promise.all(state.regions.map((update) => update()));

// -- tables ---------------------------------------------------------------------------

// columns: {key, label, num, value(row), render(row)}. Sorting is client-side unless
// opts.onSort is given (the server sorts, as the queue list does).
export function table(id, columns, rows, opts = {}) {
  const sort = opts.sort || state.sort[id] || { key: opts.sortKey ?? columns[0].key, reverse: false };
  const value = (row, col) => (col.value ? col.value(row) : row[col.key]);
  let sorted = rows;
  if (!opts.onSort) {
    const col = columns.find((c) => c.key === sort.key) || columns[0];
    sorted = [...rows].sort((a, b) => {
      const x = value(a, col), y = value(b, col);
      const order = typeof x === "number" && typeof y === "number" ? x - y
        : String(x ?? "").localeCompare(String(y ?? ""));
      return sort.reverse ? -order : order;
    });
  }
  const head = columns.map((col) => {
    const active = sort.key === col.key;
    if (col.sortable === false) return h("th", { scope: "col", class: col.num ? "num" : null }, col.label);
    return h("th", { scope: "col", class: col.num ? "num" : null, "data-key": col.key,
      "aria-sort": active ? (sort.reverse ? "descending" : "ascending") : null },
    h("button", { type: "button", class: "sort", id: `${id}-sort-${col.key}`, onclick: () => {
      const next = { key: col.key, reverse: active && !sort.reverse };
      if (opts.onSort) opts.onSort(next); else { state.sort[id] = next; refreshAll(); }
    } }, col.label, h("span", { "aria-hidden": "true" }, active ? (sort.reverse ? " ▼" : " ▲") : "")));
  });
  const body = sorted.map((row) => h("tr", {}, columns.map((col) => h("td",
    { class: col.num ? "num" : null }, col.render ? col.render(row) : fmt(value(row, col))))));
  const empty = h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, opts.empty || "None"));
  return h("div", { class: "table-wrap" }, h("table", { id },
    opts.caption ? h("caption", {}, opts.caption) : null,
    h("thead", {}, h("tr", {}, head)), h("tbody", {}, body.length ? body : empty)));
}

export function pairs(object) {
  return Object.entries(object || {}).map(([key, value]) => ({ key, value: json(value) }));
}

// -- forms and dialogs ------------------------------------------------------------------

export function field(label, attrs) {
  const control = attrs.options
    ? h("select", { ...attrs, options: null }, attrs.options.map((o) => {
      const [value, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value, selected: value === attrs.value }, text);
    }))
    : attrs.rows ? h("textarea", attrs) : h("input", attrs);
  if (attrs.type === "checkbox") return h("label", { class: "check" }, control, " ", label);
  return h("label", {}, h("span", {}, label), control);
}

// A form whose submit runs onSubmit(data); errors are shown, not thrown.
export function form(id, title, fields, submit, onSubmit, attrs = {}) {
  const node = h("form", { id, ...attrs, onsubmit: async (event) => {
    event.preventDefault();
    const button = node.querySelector("button[type=submit]");
    button.disabled = true;
    try { await onSubmit(new FormData(node), node); } catch (error) {
      flash("Error: " + error.message, true);
    } finally { button.disabled = false; }
  } }, title ? h("h3", {}, title) : null, fields, h("button", { class: "primary", type: "submit" }, submit));
  return node;
}

export const card = (...children) => h("section", { class: "card" }, children);

// A modal confirmation; resolves true when the user confirms. Focus starts on Cancel.
export function confirmAction(text, confirmLabel = "Delete") {
  return new Promise((resolve) => {
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    const dialog = h("dialog", { id: "confirm", "aria-labelledby": "confirm-text" },
      h("p", { id: "confirm-text" }, text),
      h("div", { class: "row" },
        h("button", { type: "button", id: "confirm-no", autofocus: true, onclick: () => done(false) }, "Cancel"),
        h("button", { type: "button", id: "confirm-yes", class: "danger", onclick: () => done(true) }, confirmLabel)));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// Run a change, say so, and refresh what is shown.
export async function act(action, done) {
  const here = location.hash;
  try {
    await action();
    flash(done);
    if (location.hash === here) await refreshAll();  // else the router draws the next page
  } catch (error) {
    flash("Error: " + error.message, true);
  }
}

export function dangerButton(id, label, question, action, done) {
  return h("button", { type: "button", id, class: "danger", onclick: async () => {
    if (await confirmAction(question, label)) await act(action, done);
  } }, label);
}

export const link = (href, text) => h("a", { href }, text);
export const queueHref = (vhost, name) => `#/queues/${enc(vhost)}/${enc(name)}`;
export const exchangeHref = (vhost, name) => `#/exchanges/${enc(vhost)}/${enc(name || "amq.default")}`;

// The MQTT session a queue belongs to, by RabbitMQ's MQTT plugin's names:
// "mqtt-subscription-<client id>qos1" (a session), "mqtt-shared-<group>-<filter>" (shared).
export function mqttQueue(name) {
  const own = /^mqtt-subscription-(.*)qos1$/s.exec(name);
  if (own) return { client: own[1], text: own[1], title: `MQTT subscriptions of client ${own[1]}` };
  const shared = /^mqtt-shared-([^-]*)-(.*)$/s.exec(name);
  if (shared) return { client: null, text: `$share/${shared[1]}`, title: `MQTT shared subscription of group ${shared[1]}` };
  return null;
}

// An "MQTT" tag and the client id (or share group), for a queue that serves MQTT.
export function mqttTag(name) {
  const found = mqttQueue(name);
  if (!found) return null;
  return h("span", { class: "mqtt", title: found.title },
    h("abbr", { class: "tag", title: found.title, "aria-label": found.title }, "MQTT"), " ",
    h("span", { class: "mqtt-client" }, found.text));
}

export function tiles(items) {
  return h("div", { class: "tiles" }, items.map(([label, value, extra]) =>
    h("div", { class: "tile" }, h("b", {}, fmt(value)), h("span", {}, label), extra || null)));
}

// Key/value lines as a description list.
export function facts(items) {
  return h("dl", { class: "facts" }, items.filter(Boolean).map(([key, value]) =>
    [h("dt", {}, key), h("dd", {}, value ?? "–")]));
}
