// Exchanges: the list, add one, and an exchange's page (rates, bindings in and out,
// bind and unbind, publish, delete).
import {
  act, api, card, dangerButton, enc, exchangeHref, facts, field, form, h, historyQuery, inVhost,
  json, live, queueHref, rate, state, table,
} from "./lib.js";
import { chart, series } from "./chart.js";
import { publishForm } from "./messages.js";
import { bindForm, policyNames } from "./queues.js";

const display = (name) => name || "(AMQP default)";

export async function exchangesPage() {
  return [h("h2", {}, "Exchanges"), live(async () => table("exchanges", [
    { key: "vhost", label: "Virtual host" },
    { key: "name", label: "Name", value: (r) => display(r.name),
      render: (r) => h("a", { href: exchangeHref(r.vhost, r.name) }, display(r.name)) },
    { key: "type", label: "Type" },
    { key: "features", label: "Features", value: (r) => [r.durable && "D", r.auto_delete && "AD",
      r.internal && "I", Object.keys(r.arguments || {}).length && "Args"].filter(Boolean).join(" ") },
    { key: "policy", label: "Policy", value: policyNames },
    { key: "in", label: "In /s", num: true, value: (r) => rate(r.message_stats, "publish_in") },
    { key: "out", label: "Out /s", num: true, value: (r) => rate(r.message_stats, "publish_out") },
  ], await api("GET", "/exchanges" + inVhost()), { caption: "Exchanges" }), { id: "exchange-list" }),
  h("div", { class: "forms" }, card(form("add-exchange", "Add an exchange", [
    field("Virtual host", { name: "vhost", value: state.vhost || "/", options: state.vhosts }),
    field("Name", { name: "name", required: true }),
    field("Type", { name: "type", value: "direct", options: ["direct", "fanout", "topic", "headers"] }),
    field("Durable", { name: "durable", type: "checkbox", checked: true }),
    field("Auto delete", { name: "auto_delete", type: "checkbox" }),
    field("Internal", { name: "internal", type: "checkbox" }),
    field("Arguments (JSON)", { name: "arguments", rows: 2, placeholder: '{"alternate-exchange": "ae"}' }),
  ], "Add exchange", async (data) => {
    await act(() => api("PUT", `/exchanges/${enc(data.get("vhost"))}/${enc(data.get("name"))}`, {
      type: data.get("type"), durable: data.get("durable") === "on",
      auto_delete: data.get("auto_delete") === "on", internal: data.get("internal") === "on",
      arguments: data.get("arguments") ? JSON.parse(data.get("arguments")) : {} }), "Exchange declared");
  })))];
}

function bindingTable(id, caption, rows, vhost, outgoing) {
  const unbind = (b) => (b.source === "" ? h("span", { class: "muted" }, "implicit") : h("button", {
    type: "button", class: "danger small", onclick: () => act(() => api("DELETE", `/bindings/${enc(vhost)}/e/`
      + `${enc(b.source)}/${b.destination_type === "queue" ? "q" : "e"}/${enc(b.destination)}/${enc(b.properties_key)}`),
    "Binding removed") }, "Unbind"));
  const other = (b) => (outgoing
    ? h("a", { href: b.destination_type === "queue" ? queueHref(vhost, b.destination)
      : exchangeHref(vhost, b.destination) }, `${b.destination} (${b.destination_type})`)
    : h("a", { href: exchangeHref(vhost, b.source) }, display(b.source)));
  return table(id, [
    { key: outgoing ? "destination" : "source", label: outgoing ? "To" : "From", render: other },
    { key: "routing_key", label: "Routing key" },
    { key: "arguments", label: "Arguments", value: (b) => json(b.arguments) },
    { key: "unbind", label: "Action", sortable: false, render: unbind }], rows, { caption });
}

export async function exchangePage(vhost, name) {
  const real = name === "amq.default" ? "" : name;
  const base = `/exchanges/${enc(vhost)}/${enc(name)}`;
  await api("GET", base);
  return [
    h("h2", {}, `Exchange ${display(real)}`, h("small", { class: "muted" }, ` in virtual host ${vhost}`)),
    live(async () => {
      const x = await api("GET", base + "?" + historyQuery());
      const s = x.message_stats || {};
      return [h("div", { class: "charts" }, chart("chart-exchange-rates", "Message rates", [
        { label: "In", points: series(s.publish_in_details, true) },
        { label: "Out", points: series(s.publish_out_details, true) }], " /s")),
      facts([["Type", x.type], ["Durable", String(x.durable)], ["Auto delete", String(x.auto_delete)],
        ["Internal", String(x.internal)], ["Arguments", json(x.arguments)], ["Policy", policyNames(x) || "None"],
        ["Published in", String(s.publish_in ?? 0)], ["Routed out", String(s.publish_out ?? 0)]])];
    }, { id: "exchange-summary" }),
    live(async () => [
      bindingTable("bindings-out", "Bindings from this exchange", await api("GET", base + "/bindings/source"), vhost, true),
      bindingTable("bindings-in", "Bindings to this exchange", await api("GET", base + "/bindings/destination"), vhost, false),
    ], { id: "exchange-bindings" }),
    h("div", { class: "forms" },
      real ? card(bindForm("bind", vhost, real, "e")) : null,
      card(publishForm("publish", vhost, name)),
      real && !real.startsWith("amq.") ? card(h("h3", {}, "Delete"), dangerButton("delete", "Delete exchange",
        `Delete exchange ${real} and its bindings?`, async () => {
          await api("DELETE", base); location.hash = "#/exchanges"; }, "Exchange deleted")) : null),
  ];
}
