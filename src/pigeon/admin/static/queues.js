// Queues: the list (filtered, sorted and paged by the server, so 10,000 queues stay
// quick), and a queue's page (charts, policy, bindings, consumers, messages, danger).
import {
  act, api, card, dangerButton, enc, exchangeHref, facts, field, flash, fmt, form, h, historyQuery,
  inVhost, json, live, mqttQueue, mqttTag, pairs, queueHref, rate, refreshAll, state, table, tiles,
} from "./lib.js";
import { depthChart, ratesChart } from "./chart.js";
import { getForm, publishForm } from "./messages.js";

const list = { page: 1, size: 50, name: "", regex: false, sort: { key: "name", reverse: false } };

// RabbitMQ's feature letters, with their meaning for screen readers and tooltips.
const FEATURES = [["x-message-ttl", "TTL", "message TTL"], ["x-expires", "Exp", "auto-expire"],
  ["x-max-length", "Lim", "max length"], ["x-max-length-bytes", "Lim B", "max length bytes"],
  ["x-overflow", "Ovfl", "overflow mode"], ["x-dead-letter-exchange", "DLX", "dead letter exchange"],
  ["x-dead-letter-routing-key", "DLK", "dead letter routing key"], ["x-max-priority", "Pri", "max priority"],
  ["x-single-active-consumer", "SAC", "single active consumer"], ["x-delivery-limit", "DL", "delivery limit"]];

export function features(q) {
  const args = q.arguments || {};
  const tags = [];
  if (q.durable) tags.push(["D", "durable"]);
  if (q.auto_delete) tags.push(["AD", "auto-delete"]);
  if (q.exclusive) tags.push(["Excl", "exclusive"]);
  for (const [key, short, long] of FEATURES) if (key in args) tags.push([short, `${long}: ${json(args[key])}`]);
  const known = new Set(["x-queue-type", ...FEATURES.map((f) => f[0])]);
  if (Object.keys(args).some((k) => !known.has(k))) tags.push(["Args", "other arguments"]);
  return h("span", { class: "features" }, tags.map(([short, long]) =>
    h("abbr", { class: "tag", title: long, "aria-label": long }, short)));
}

export const policyNames = (r) => [r.policy, r.operator_policy && `${r.operator_policy} (operator)`]
  .filter(Boolean).join(", ");

const COLUMNS = [
  { key: "vhost", label: "Virtual host" },
  { key: "name", label: "Name", render: (r) => {
    const mqtt = mqttTag(r.name);
    return [h("a", { href: queueHref(r.vhost, r.name) }, r.name), mqtt && [" ", mqtt]];
  } },
  { key: "type", label: "Type" },
  { key: "features", label: "Features", sortable: false, render: features },
  { key: "policy", label: "Policy", value: policyNames },
  { key: "consumers", label: "Consumers", num: true },
  { key: "messages_ready", label: "Ready", num: true },
  { key: "messages_unacknowledged", label: "Unacked", num: true },
  { key: "messages", label: "Total", num: true },
  { key: "message_stats.publish_details.rate", label: "Incoming /s", num: true, value: (r) => rate(r.message_stats, "publish") },
  { key: "message_stats.deliver_get_details.rate", label: "Deliver /s", num: true, value: (r) => rate(r.message_stats, "deliver_get") },
  { key: "message_stats.ack_details.rate", label: "Ack /s", num: true, value: (r) => rate(r.message_stats, "ack") },
];

async function queueList() {
  const query = new URLSearchParams({ page: list.page, page_size: list.size, name: list.name,
    use_regex: String(list.regex), sort: list.sort.key, sort_reverse: String(list.sort.reverse) });
  const page = await api("GET", `/queues${inVhost()}?${query}`);
  if (page.page_count < list.page && list.page > 1) { list.page = page.page_count; return queueList(); }
  const go = (n) => { list.page = n; refreshAll(); };
  const shown = page.filtered_count === page.total_count ? fmt(page.total_count)
    : `${fmt(page.filtered_count)} matching of ${fmt(page.total_count)}`;
  return [
    table("queues", COLUMNS, page.items, { sort: list.sort, caption: `Queues: ${shown}`,
      onSort: (next) => { list.sort = next; list.page = 1; refreshAll(); } }),
    h("nav", { class: "pager", "aria-label": "Queue pages" },
      h("button", { type: "button", id: "page-prev", disabled: page.page <= 1, onclick: () => go(page.page - 1) }, "Previous"),
      h("span", { id: "page-of" }, `Page ${page.page} of ${page.page_count}`),
      h("button", { type: "button", id: "page-next", disabled: page.page >= page.page_count,
        onclick: () => go(page.page + 1) }, "Next")),
  ];
}

function filterForm() {
  const node = h("form", { id: "queue-filter", class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(node);
    list.name = data.get("name"); list.regex = data.get("regex") === "on";
    list.size = Number(data.get("size")); list.page = 1;
    refreshAll();
  } },
  field("Filter by name", { name: "name", value: list.name, id: "queue-filter-name", type: "search" }),
  field("Regular expression", { name: "regex", type: "checkbox", checked: list.regex }),
  field("Per page", { name: "size", value: String(list.size), options: ["20", "50", "100", "500"] }),
  h("button", { type: "submit" }, "Filter"));
  return node;
}

function addQueueForm() {
  return h("div", { class: "forms" }, card(form("add-queue", "Add a queue", [
    field("Virtual host", { name: "vhost", value: state.vhost || "/", options: state.vhosts }),
    field("Name", { name: "name", required: true }),
    field("Type", { name: "type", value: "classic", options: ["classic", "quorum"] }),
    field("Durable", { name: "durable", type: "checkbox", checked: true }),
    field("Arguments (JSON)", { name: "arguments", rows: 2, placeholder: '{"x-message-ttl": 60000}' }),
  ], "Add queue", async (data) => {
    const args = data.get("arguments") ? JSON.parse(data.get("arguments")) : {};
    if (data.get("type") !== "classic") args["x-queue-type"] = data.get("type");
    await act(() => api("PUT", `/queues/${enc(data.get("vhost"))}/${enc(data.get("name"))}`,
      { durable: data.get("durable") === "on", arguments: args }), "Queue declared");
  })));
}

export async function queuesPage() {
  return [h("h2", {}, "Queues"), filterForm(), live(queueList, { id: "queue-list" }), addQueueForm()];
}

// -- one queue ------------------------------------------------------------------------

function policySection(q) {
  return h("div", { class: "forms", id: "policy" },
    h("div", {}, h("h3", {}, "Policy"), h("p", {}, policyNames(q) || "None"),
      table("effective", [{ key: "key", label: "Effective policy definition" },
        { key: "value", label: "Value" }], pairs(q.effective_policy_definition))),
    h("div", {}, h("h3", {}, "Arguments"), table("arguments", [{ key: "key", label: "Argument" },
      { key: "value", label: "Value" }], pairs(q.arguments))));
}

async function queueSummary(base) {
  const q = await api("GET", base + "?" + historyQuery());
  const latency = q.latency || {}, ms = (v) => (v === null || v === undefined ? "–" : v + " ms");
  return [
    tiles([["Ready", q.messages_ready], ["Unacked", q.messages_unacknowledged], ["Total", q.messages],
      ["Consumers", q.consumers], ["Incoming /s", rate(q.message_stats, "publish")],
      ["Deliver /s", rate(q.message_stats, "deliver_get")], ["Ack /s", rate(q.message_stats, "ack")],
      ["Publish→deliver p50", ms((latency.publish_to_deliver || {}).p50_ms)],
      ["Publish→ack p99", ms((latency.publish_to_ack || {}).p99_ms)]]),
    h("div", { class: "charts" }, depthChart("chart-queue-depth", q),
      ratesChart("chart-queue-rates", q.message_stats, [["publish", "Incoming"], ["deliver_get", "Deliver"], ["ack", "Ack"]])),
    facts([["Type", q.type], ["State", q.state], ["Features", features(q)], ["Node", q.node],
      // Quorum queues and cluster mode's streams: where the replicas are (RabbitMQ's fields).
      q.leader ? ["Leader", q.leader] : null, q.members ? ["Members", q.members.join(", ")] : null,
      q.online ? ["Online", q.online.join(", ")] : null,
      ["Bytes ready", fmt(q.message_bytes_ready)], ["Paged out to disk", fmt(q.messages_paged_out)],
      ["Exclusive consumer", q.exclusive_consumer_tag], ["Single active consumer", q.single_active_consumer_tag],
      mqttQueue(q.name) && ["MQTT", mqttTag(q.name)]]),
    policySection(q),
  ];
}

async function queueBindings(vhost, name, base) {
  const rows = await api("GET", base + "/bindings");
  const remove = (b) => (b.source === "" ? h("span", { class: "muted" }, "implicit") : h("button", {
    type: "button", class: "danger small", onclick: () => act(() => api("DELETE",
      `/bindings/${enc(vhost)}/e/${enc(b.source)}/q/${enc(name)}/${enc(b.properties_key)}`), "Binding removed") },
  "Unbind"));
  return table("bindings", [
    { key: "source", label: "From", render: (b) => h("a", { href: exchangeHref(vhost, b.source) }, b.source || "(AMQP default)") },
    { key: "routing_key", label: "Routing key" },
    { key: "arguments", label: "Arguments", value: (b) => json(b.arguments) },
    { key: "unbind", label: "Action", sortable: false, render: remove }], rows, { caption: "Bindings" });
}

export function bindForm(id, vhost, destination, kind) {
  return form(id, kind === "q" ? "Add a binding to this queue" : "Add a binding from this exchange", [
    kind === "q" ? field("From exchange", { name: "other", required: true })
      : field("To", { name: "other", required: true }),
    kind === "q" ? null : field("Destination type", { name: "dtype", value: "q", options: [["q", "Queue"], ["e", "Exchange"]] }),
    field("Routing key", { name: "routing_key" }),
    field("Arguments (JSON)", { name: "arguments", rows: 2, placeholder: '{"x-match": "all"}' }),
  ], "Bind", async (data) => {
    const body = { routing_key: data.get("routing_key"),
      arguments: data.get("arguments") ? JSON.parse(data.get("arguments")) : {} };
    const path = kind === "q"
      ? `/bindings/${enc(vhost)}/e/${enc(data.get("other"))}/q/${enc(destination)}`
      : `/bindings/${enc(vhost)}/e/${enc(destination)}/${data.get("dtype")}/${enc(data.get("other"))}`;
    await act(() => api("POST", path, body), "Binding added");
  });
}

function moveForm(vhost, name) {
  return form("move", "Move messages", [
    h("p", { class: "muted" }, "Moves ready messages to another queue of this virtual host, one at a "
      + "time and atomically each (a Pigeon extension of the API)."),
    field("Destination queue", { name: "destination", required: true, id: "move-destination" }),
    field("How many (empty: all ready)", { name: "count", type: "number", min: 1 }),
  ], "Move messages", async (data) => {
    const body = { destination: data.get("destination") };
    if (data.get("count")) body.count = Number(data.get("count"));
    const answer = await api("POST", `/queues/${enc(vhost)}/${enc(name)}/move`, body);
    flash(`Moved ${answer.moved} messages`);
    await refreshAll();
  });
}

export async function queuePage(vhost, name) {
  const base = `/queues/${enc(vhost)}/${enc(name)}`;
  await api("GET", base);  // a missing queue is an error page, not a page of errors
  const consumers = live(async () => table("consumers", [
    { key: "consumer_tag", label: "Consumer tag" },
    { key: "channel", label: "Channel", value: (c) => (c.channel_details || {}).name || "",
      render: (c) => ((c.channel_details || {}).name ? h("a", { href: "#/channels/" + enc(c.channel_details.name) },
        c.channel_details.name) : "") },
    { key: "ack_required", label: "Ack required", value: (c) => String(c.ack_required) },
    { key: "prefetch_count", label: "Prefetch", num: true },
    { key: "active", label: "Active", value: (c) => String(c.active) }],
  (await api("GET", "/consumers/" + enc(vhost))).filter((c) => c.queue.name === name), { caption: "Consumers" }));
  return [
    h("h2", {}, `Queue ${name}`, h("small", { class: "muted" }, ` in virtual host ${vhost}`)),
    live(() => queueSummary(base), { id: "queue-summary" }),
    consumers,
    live(() => queueBindings(vhost, name, base)),
    h("div", { class: "forms" }, card(bindForm("bind", vhost, name, "q")),
      card(publishForm("publish", vhost, "", name)), getForm(vhost, name), card(moveForm(vhost, name)),
      card(h("h3", {}, "Purge and delete"),
        h("p", { class: "muted" }, "Both ask for a confirmation first."),
        h("div", { class: "row" },
          dangerButton("purge", "Purge", `Purge every ready message from queue ${name}?`,
            () => api("DELETE", base + "/contents"), "Queue purged"),
          dangerButton("delete", "Delete queue", `Delete queue ${name} and its messages?`, async () => {
            await api("DELETE", base); location.hash = "#/queues"; }, "Queue deleted")))),
  ];
}
