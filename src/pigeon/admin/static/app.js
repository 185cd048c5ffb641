// Pigeon's web UI: plain JavaScript on top of the management HTTP API. No build step.
// Every name shown comes from the broker and may be anything, so the DOM is built with
// text nodes (h() below), never with innerHTML.
"use strict";

const state = { auth: sessionStorage.getItem("pigeon.auth"), timer: null, sort: {} };
const REFRESH_MS = 5000;
const HISTORY = "lengths_age=600&lengths_incr=5&msg_rates_age=600&msg_rates_incr=5";

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const enc = encodeURIComponent;
const main = () => document.getElementById("main");
function flash(text) {
  const el = document.getElementById("flash");
  el.textContent = text;
  setTimeout(() => { if (el.textContent === text) el.textContent = ""; }, 4000);
}

async function api(method, path, body) {
  const response = await fetch("api" + path, {
    method,
    headers: { "Authorization": "Basic " + state.auth, "Content-Type": "application/json",
               "X-Requested-With": "pigeon-ui" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path === "/whoami") throw new Error("login refused");
  if (!response.ok) {
    let reason = response.statusText;
    try { reason = (await response.json()).reason || reason; } catch (e) { /* no body */ }
    throw new Error(reason);
  }
  return response.status === 204 || response.status === 201 ? null : response.json();
}

// -- tables -----------------------------------------------------------------------

function table(id, columns, rows) {
  const sort = state.sort[id] || { key: columns[0].key, reverse: false };
  const value = (row, col) => (col.value ? col.value(row) : row[col.key]);
  const sorted = [...rows].sort((a, b) => {
    const col = columns.find((c) => c.key === sort.key) || columns[0];
    const x = value(a, col), y = value(b, col);
    const order = typeof x === "number" && typeof y === "number" ? x - y
      : String(x ?? "").localeCompare(String(y ?? ""));
    return sort.reverse ? -order : order;
  });
  const head = columns.map((col) => h("th", {
    class: col.num ? "num" : null, "data-key": col.key,
    onclick: () => {
      state.sort[id] = { key: col.key, reverse: sort.key === col.key && !sort.reverse };
      route();
    },
  }, col.label + (sort.key === col.key ? (sort.reverse ? " ▼" : " ▲") : "")));
  const body = sorted.map((row) => h("tr", {}, columns.map((col) => h("td",
    { class: col.num ? "num" : null }, col.render ? col.render(row) : value(row, col)))));
  return h("table", { id }, h("thead", {}, h("tr", {}, head)),
           h("tbody", {}, body.length ? body : h("tr", {}, h("td", {}, "None"))));
}

const rate = (stats, key) => ((stats || {})[key + "_details"] || {}).rate ?? 0;
const fmt = (n) => (typeof n === "number" ? (Number.isInteger(n) ? n.toLocaleString() : n.toFixed(1)) : n);

// -- charts -----------------------------------------------------------------------

function series(samples, asRate) {
  // Samples come newest first; a rate is the slope between neighbouring counter samples.
  const points = [...(samples || [])].reverse();
  if (!asRate) return points.map((p) => [p.timestamp, p.sample]);
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = (points[i].timestamp - points[i - 1].timestamp) / 1000;
    if (dt > 0) out.push([points[i].timestamp, (points[i].sample - points[i - 1].sample) / dt]);
  }
  return out;
}

function chart(title, lines) {
  const width = 600, height = 160, pad = 4;
  const all = lines.flatMap((l) => l.points);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (all.length) {
    const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
    const top = Math.max(1, ...all.map((p) => p[1]));
    for (const line of lines) {
      const d = line.points.map((p, i) => {
        const x = t1 === t0 ? width : ((p[0] - t0) / (t1 - t0)) * width;
        const y = height - pad - (p[1] / top) * (height - 2 * pad);
        return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      }).join("");
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", d || "M0,0");
      path.setAttribute("stroke", line.color);
      svg.append(path);
    }
  }
  const last = (l) => (l.points.length ? fmt(l.points[l.points.length - 1][1]) : 0);
  return h("div", { class: "card" }, h("h3", {}, title), svg, h("div", { class: "legend" },
    lines.map((l) => h("span", { style: `color:${l.color}` }, `${l.label}: ${last(l)}`))));
}

// -- pages --------------------------------------------------------------------------

async function overviewPage() {
  const o = await api("GET", "/overview?" + HISTORY);
  const totals = o.object_totals, q = o.queue_totals, s = o.message_stats || {};
  const tile = (label, value) => h("div", { class: "tile" }, h("b", {}, fmt(value)), h("span", {}, label));
  return [
    h("div", { class: "tiles" }, tile("Ready", q.messages_ready), tile("Unacked", q.messages_unacknowledged),
      tile("Publish /s", rate(s, "publish")), tile("Deliver /s", rate(s, "deliver_get")),
      tile("Ack /s", rate(s, "ack")), tile("Connections", totals.connections),
      tile("Channels", totals.channels), tile("Queues", totals.queues), tile("Consumers", totals.consumers)),
    h("div", { class: "charts" },
      chart("Queued messages", [
        { label: "Ready", color: "#2f6fde", points: series((q.messages_ready_details || {}).samples) },
        { label: "Unacked", color: "#e08a00", points: series((q.messages_unacknowledged_details || {}).samples) }]),
      chart("Message rates /s", [
        { label: "Publish", color: "#2f6fde", points: series((s.publish_details || {}).samples, true) },
        { label: "Deliver", color: "#37872d", points: series((s.deliver_get_details || {}).samples, true) },
        { label: "Ack", color: "#e08a00", points: series((s.ack_details || {}).samples, true) }])),
    h("p", { class: "muted" }, `${o.product_name} ${o.product_version} on ${o.node}`),
  ];
}

async function queuesPage() {
  const rows = await api("GET", "/queues");
  const link = (r) => h("a", { href: `#/queues/${enc(r.vhost)}/${enc(r.name)}` }, r.name);
  return [h("h2", {}, "Queues"), table("queues", [
    { key: "vhost", label: "Vhost" }, { key: "name", label: "Name", render: link },
    { key: "type", label: "Type" }, { key: "messages_ready", label: "Ready", num: true },
    { key: "messages_unacknowledged", label: "Unacked", num: true },
    { key: "messages", label: "Total", num: true }, { key: "consumers", label: "Consumers", num: true },
    { key: "policy", label: "Policy", value: policyNames },
    { key: "publish", label: "In /s", num: true, value: (r) => rate(r.message_stats, "publish") },
    { key: "deliver", label: "Out /s", num: true, value: (r) => rate(r.message_stats, "deliver_get") },
  ], rows), addQueueForm()];
}

// The policy and operator policy that apply to a queue or exchange, as one cell.
const policyNames = (r) => [r.policy, r.operator_policy && `${r.operator_policy} (operator)`]
  .filter(Boolean).join(", ");

function policySection(q) {
  const effective = Object.entries(q.effective_policy_definition || {});
  const args = Object.entries(q.arguments || {});
  const pairs = (rows) => rows.map(([key, value]) => ({ key, value: JSON.stringify(value) }));
  return h("div", { class: "forms", id: "policy" },
    h("div", {}, h("h3", {}, "Policy"), h("p", {}, policyNames(q) || "None"),
      table("effective", [{ key: "key", label: "Effective policy definition" },
        { key: "value", label: "Value" }], pairs(effective))),
    h("div", {}, h("h3", {}, "Arguments"), table("arguments", [{ key: "key", label: "Argument" },
      { key: "value", label: "Value" }], pairs(args))));
}

function addQueueForm() {
  const form = h("form", { id: "add-queue", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const type = data.get("type");
    await act(() => api("PUT", `/queues/${enc(data.get("vhost"))}/${enc(data.get("name"))}`,
                        { durable: data.get("durable") === "on",
                          arguments: type === "classic" ? {} : { "x-queue-type": type } }), "Queue declared");
  } }, h("h3", {}, "Add a queue"), h("label", {}, "Vhost ", h("input", { name: "vhost", value: "/" })),
  h("label", {}, "Name ", h("input", { name: "name", required: true })),
  h("label", {}, "Type ", h("select", { name: "type" },
    h("option", { value: "classic" }, "classic"), h("option", { value: "quorum" }, "quorum"))),
  h("label", {}, h("input", { type: "checkbox", name: "durable", checked: true }), " durable"),
  h("button", { class: "primary", type: "submit" }, "Add queue"));
  return h("div", { class: "card forms" }, form);
}

async function act(action, done) {
  try { await action(); flash(done); route(); } catch (error) { flash("Error: " + error.message); }
}

async function queuePage(vhost, name) {
  const base = `/queues/${enc(vhost)}/${enc(name)}`;
  const [q, bindings, consumers] = await Promise.all([
    api("GET", base + "?" + HISTORY), api("GET", base + "/bindings"), api("GET", "/consumers/" + enc(vhost))]);
  const latency = q.latency || {};
  const ms = (v) => (v === null || v === undefined ? "–" : v + " ms");
  const lat = (key) => latency[key] || {};
  const output = h("pre", { id: "got" });
  const publish = h("form", { id: "publish", onsubmit: async (event) => {
    event.preventDefault();
    const payload = new FormData(publish).get("payload");
    await act(() => api("POST", `/exchanges/${enc(vhost)}/amq.default/publish`,
      { routing_key: name, payload, payload_encoding: "string", properties: {} }), "Message published");
  } }, h("h3", {}, "Publish"), h("textarea", { name: "payload", rows: 3 }),
  h("button", { class: "primary", type: "submit" }, "Publish message"));
  const get = h("form", { id: "get", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(get);
    try {
      const got = await api("POST", base + "/get", { count: Number(data.get("count")),
        ackmode: data.get("ackmode"), encoding: "auto", truncate: 50000 });
      output.textContent = got.length ? got.map((m) => m.payload).join("\n---\n") : "Queue is empty";
    } catch (error) { flash("Error: " + error.message); }
  } }, h("h3", {}, "Get messages"), h("label", {}, "Count ", h("input", { name: "count", type: "number", value: 1, min: 1 })),
  h("select", { name: "ackmode" }, h("option", { value: "ack_requeue_true" }, "Requeue"),
    h("option", { value: "ack_requeue_false" }, "Ack (remove)")),
  h("button", { type: "submit" }, "Get messages"), output);
  return [
    h("h2", {}, `Queue ${name}`, h("small", {}, ` in ${vhost}, ${q.type}`)),
    h("div", { class: "tiles" }, [["Ready", q.messages_ready], ["Unacked", q.messages_unacknowledged],
      ["Consumers", q.consumers], ["Publish→deliver p50", ms(lat("publish_to_deliver").p50_ms)],
      ["Publish→ack p99", ms(lat("publish_to_ack").p99_ms)]].map(([label, value]) =>
      h("div", { class: "tile" }, h("b", {}, fmt(value)), h("span", {}, label)))),
    chart("Queue depth", [{ label: "Ready", color: "#2f6fde", points: series((q.messages_ready_details || {}).samples) }]),
    policySection(q),
    h("h3", {}, "Bindings"), table("bindings", [{ key: "source", label: "From", value: (b) => b.source || "(default)" },
      { key: "routing_key", label: "Routing key" }], bindings),
    h("h3", {}, "Consumers"), table("consumers", [{ key: "consumer_tag", label: "Tag" },
      { key: "prefetch_count", label: "Prefetch", num: true }, { key: "ack_required", label: "Ack" }],
      consumers.filter((c) => c.queue.name === name)),
    h("div", { class: "forms" }, h("div", { class: "card" }, publish), h("div", { class: "card" }, get),
      h("div", { class: "card" }, h("h3", {}, "Danger"),
        h("button", { id: "purge", class: "danger", onclick: () => act(() => api("DELETE", base + "/contents"), "Queue purged") }, "Purge"),
        " ", h("button", { id: "delete", class: "danger", onclick: () => act(async () => {
          await api("DELETE", base); location.hash = "#/queues"; }, "Queue deleted") }, "Delete queue"))),
  ];
}

async function exchangesPage() {
  const rows = await api("GET", "/exchanges");
  return [h("h2", {}, "Exchanges"), table("exchanges", [{ key: "vhost", label: "Vhost" },
    { key: "name", label: "Name", value: (r) => r.name || "(AMQP default)" }, { key: "type", label: "Type" },
    { key: "durable", label: "Durable" }, { key: "internal", label: "Internal" },
    { key: "policy", label: "Policy", value: policyNames }], rows)];
}

async function policiesPage() {
  const [policies, operator] = await Promise.all([api("GET", "/policies"), api("GET", "/operator-policies")]);
  const rows = [...policies.map((p) => ({ ...p, kind: "policies" })),
    ...operator.map((p) => ({ ...p, kind: "operator-policies" }))];
  const remove = (p) => h("button", { class: "danger", onclick: () => act(() =>
    api("DELETE", `/${p.kind}/${enc(p.vhost)}/${enc(p.name)}`), "Policy deleted") }, "Delete");
  const form = h("form", { id: "add-policy", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let definition;
    try { definition = JSON.parse(data.get("definition")); } catch (error) {
      flash("Error: the definition is not valid JSON"); return; }
    await act(() => api("PUT", `/${data.get("kind")}/${enc(data.get("vhost"))}/${enc(data.get("name"))}`, {
      pattern: data.get("pattern"), definition, priority: Number(data.get("priority")),
      "apply-to": data.get("apply-to") }), "Policy saved");
  } }, h("h3", {}, "Add or update a policy"),
  h("select", { name: "kind" }, h("option", { value: "policies" }, "Policy"),
    h("option", { value: "operator-policies" }, "Operator policy")),
  h("label", {}, "Vhost ", h("input", { name: "vhost", value: "/" })),
  h("label", {}, "Name ", h("input", { name: "name", required: true })),
  h("label", {}, "Pattern ", h("input", { name: "pattern", required: true, placeholder: "^orders\\." })),
  h("label", {}, "Apply to ", h("select", { name: "apply-to" }, ["all", "queues", "exchanges",
    "classic_queues", "quorum_queues"].map((t) => h("option", { value: t }, t)))),
  h("label", {}, "Priority ", h("input", { name: "priority", type: "number", value: 0 })),
  h("label", {}, "Definition (JSON) ", h("textarea", { name: "definition", rows: 3, required: true,
    placeholder: '{"message-ttl": 60000, "dead-letter-exchange": "dlx"}' })),
  h("button", { class: "primary", type: "submit" }, "Save policy"));
  return [h("h2", {}, "Policies"), table("policies", [{ key: "vhost", label: "Vhost" },
    { key: "name", label: "Name" }, { key: "kind", label: "Kind", value: (p) => (p.kind === "policies" ? "policy" : "operator") },
    { key: "pattern", label: "Pattern" }, { key: "apply-to", label: "Apply to" },
    { key: "definition", label: "Definition", value: (p) => JSON.stringify(p.definition) },
    { key: "priority", label: "Priority", num: true }, { key: "delete", label: "", render: remove }], rows),
  h("div", { class: "card forms" }, form)];
}

async function connectionsPage() {
  const rows = await api("GET", "/connections");
  const close = (r) => h("button", { class: "danger", onclick: () => act(() =>
    api("DELETE", "/connections/" + enc(r.name)), "Connection closed") }, "Close");
  return [h("h2", {}, "Connections"), table("connections", [{ key: "name", label: "Name" },
    { key: "user", label: "User" }, { key: "vhost", label: "Vhost" },
    { key: "client", label: "Client", value: (r) => (r.client_properties || {}).product || "" },
    { key: "channels", label: "Channels", num: true }, { key: "close", label: "", render: close }], rows)];
}

async function channelsPage() {
  const rows = await api("GET", "/channels");
  return [h("h2", {}, "Channels"), table("channels", [{ key: "name", label: "Channel" },
    { key: "user", label: "User" }, { key: "consumer_count", label: "Consumers", num: true },
    { key: "prefetch_count", label: "Prefetch", num: true },
    { key: "messages_unacknowledged", label: "Unacked", num: true }, { key: "confirm", label: "Confirm" }], rows)];
}

async function usersPage() {
  const [users, permissions] = await Promise.all([api("GET", "/users"), api("GET", "/permissions")]);
  const form = h("form", { id: "add-user", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    await act(() => api("PUT", "/users/" + enc(data.get("name")), { password: data.get("password"),
      tags: data.get("tags") }), "User saved");
  } }, h("h3", {}, "Add a user"), h("input", { name: "name", placeholder: "name", required: true }),
  h("input", { name: "password", type: "password", placeholder: "password", required: true }),
  h("select", { name: "tags" }, ["management", "monitoring", "administrator", ""].map((t) =>
    h("option", { value: t }, t || "(no tags)"))), h("button", { class: "primary", type: "submit" }, "Add user"));
  return [h("h2", {}, "Users"), table("users", [{ key: "name", label: "Name" },
    { key: "tags", label: "Tags", value: (u) => u.tags.join(", ") }], users),
  h("h2", {}, "Permissions"), table("permissions", [{ key: "user", label: "User" }, { key: "vhost", label: "Vhost" },
    { key: "configure", label: "Configure" }, { key: "write", label: "Write" }, { key: "read", label: "Read" }], permissions),
  h("div", { class: "card forms" }, form)];
}

// -- routing ------------------------------------------------------------------------

const PAGES = [
  [/^#\/queues\/([^/]+)\/([^/]+)$/, (m) => queuePage(decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/queues$/, queuesPage], [/^#\/exchanges$/, exchangesPage], [/^#\/policies$/, policiesPage],
  [/^#\/connections$/, connectionsPage], [/^#\/channels$/, channelsPage],
  [/^#\/users$/, usersPage], [/^(#\/?)?$/, overviewPage],
];

async function route() {
  if (!state.auth) return showLogin();
  const hash = location.hash;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === (hash || "#/"));
  }
  const found = PAGES.find(([pattern]) => pattern.test(hash)) || PAGES[PAGES.length - 1];
  try {
    const content = await found[1](hash.match(found[0]));
    if (location.hash !== hash) return;
    main().replaceChildren(...[content].flat());
    main().dataset.page = hash || "#/";
  } catch (error) {
    main().replaceChildren(h("p", { class: "error" }, "Error: " + error.message));
  }
  clearTimeout(state.timer);
  // Tables refresh themselves, but never under the user's cursor in a form.
  state.timer = setTimeout(() => { if (!main().contains(document.activeElement) ||
    document.activeElement === document.body) route(); }, REFRESH_MS);
}

function showLogin() {
  document.getElementById("nav").hidden = true;
  const form = document.getElementById("login") || h("form");
  if (!document.getElementById("login")) location.reload();
  form.onsubmit = async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    state.auth = btoa(unescape(encodeURIComponent(`${data.get("user")}:${data.get("password")}`)));
    try {
      await start();
      sessionStorage.setItem("pigeon.auth", state.auth);
    } catch (error) {
      state.auth = null;
      document.getElementById("login-error").textContent = "Login failed";
    }
  };
}

async function start() {
  const me = await api("GET", "/whoami");
  document.getElementById("who").textContent = `${me.name} (${me.tags.join(", ") || "no tags"}) `;
  document.getElementById("who").append(h("button", { onclick: () => {
    sessionStorage.removeItem("pigeon.auth"); location.reload(); } }, "Log out"));
  document.getElementById("nav").hidden = false;
  window.addEventListener("hashchange", route);
  await route();
}

if (state.auth) start().catch(() => { state.auth = null; sessionStorage.removeItem("pigeon.auth"); showLogin(); });
else showLogin();
