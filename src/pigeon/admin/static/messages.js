// Messages: the publish form (any exchange, routing key, properties, headers) and how a
// message got from a queue is shown (properties, headers, routing key, redelivered).
import { api, card, enc, facts, field, flash, form, h, json, refreshAll } from "./lib.js";

const PROPERTIES = [["content_type", "Content type"], ["content_encoding", "Content encoding"],
  ["correlation_id", "Correlation id"], ["reply_to", "Reply to"],
  ["expiration", "Expiration (ms)"], ["message_id", "Message id"], ["type", "Type"],
  ["user_id", "User id"], ["app_id", "App id"], ["priority", "Priority", "number"]];

// Header rows: a name, a value and its type; "Add header" adds one, each can be removed.
function headerRows(prefix) {
  const rows = h("div", { class: "header-rows" });
  let count = 0;
  const add = () => {
    const n = count++;
    const row = h("fieldset", { class: "header-row" }, h("legend", { class: "sr-only" }, `Header ${n + 1}`),
      field("Header name", { name: `h-name-${n}`, id: `${prefix}-h-name-${n}` }),
      field("Value", { name: `h-value-${n}`, id: `${prefix}-h-value-${n}` }),
      field("Type", { name: `h-type-${n}`, options: [["string", "String"], ["number", "Number"],
        ["boolean", "Boolean"]] }),
      h("button", { type: "button", class: "small", onclick: () => row.remove() }, "Remove header"));
    rows.append(row);
  };
  add();
  return [rows, h("button", { type: "button", class: "small", id: `${prefix}-add-header`, onclick: add }, "Add header")];
}

function headersFrom(data) {
  const headers = {};
  for (const [key, name] of data.entries()) {
    const m = key.match(/^h-name-(\d+)$/);
    if (!m || !name) continue;
    const raw = data.get(`h-value-${m[1]}`), type = data.get(`h-type-${m[1]}`);
    headers[name] = type === "number" ? Number(raw) : type === "boolean" ? raw === "true" : raw;
  }
  return headers;
}

// exchange: a fixed exchange name, or null for a field to type one.
export function publishForm(id, vhost, exchange, routingKey = "") {
  const fields = [
    exchange === null ? field("Exchange (empty: the default exchange)", { name: "exchange", id: `${id}-exchange` }) : null,
    field("Routing key", { name: "routing_key", value: routingKey, id: `${id}-routing-key` }),
    field("Delivery mode", { name: "delivery_mode", value: "1", options: [["1", "1 - non-persistent"],
      ["2", "2 - persistent"]] }),
    h("details", {}, h("summary", {}, "Headers"), headerRows(id)),
    h("details", {}, h("summary", {}, "Properties"), h("div", { class: "grid2" },
      PROPERTIES.map(([name, label, type]) => field(label, { name, type: type || "text", id: `${id}-${name}` })))),
    field("Payload", { name: "payload", rows: 4, id: `${id}-payload` }),
    field("Payload encoding", { name: "payload_encoding", value: "string",
      options: [["string", "String"], ["base64", "Base64"]] }),
  ];
  return form(id, "Publish message", fields, "Publish message", async (data) => {
    const target = exchange === null ? data.get("exchange") || "amq.default" : exchange || "amq.default";
    const properties = { delivery_mode: Number(data.get("delivery_mode")) };
    for (const [name, , type] of PROPERTIES) {
      const value = data.get(name);
      if (value) properties[name] = type === "number" ? Number(value) : value;
    }
    const headers = headersFrom(data);
    if (Object.keys(headers).length) properties.headers = headers;
    const answer = await api("POST", `/exchanges/${enc(vhost)}/${enc(target)}/publish`, {
      routing_key: data.get("routing_key"), payload: data.get("payload"),
      payload_encoding: data.get("payload_encoding"), properties });
    flash(answer.routed ? "Message published" : "Message published, but not routed to any queue");
    await refreshAll();
  });
}

export const ACK_MODES = [["ack_requeue_true", "Nack, requeue: true"],
  ["ack_requeue_false", "Automatic ack (remove)"], ["reject_requeue_true", "Reject, requeue: true"],
  ["reject_requeue_false", "Reject, requeue: false (dead-letter)"]];

export function messageView(m, i) {
  const { headers, ...properties } = m.properties || {};
  return h("article", { class: "message", "aria-labelledby": `msg-${i}` },
    h("h4", { id: `msg-${i}` }, `Message ${i + 1}`),
    facts([["Exchange", m.exchange || "(AMQP default)"], ["Routing key", m.routing_key],
      ["Redelivered", String(m.redelivered)], ["Messages left in the queue", String(m.message_count)],
      ["Payload", `${m.payload_bytes} bytes, encoding: ${m.payload_encoding}`]]),
    h("h5", {}, "Properties"),
    Object.keys(properties).length ? facts(Object.entries(properties).map(([k, v]) =>
      [k, typeof v === "object" ? json(v) : String(v)])) : h("p", { class: "muted" }, "None"),
    h("h5", {}, "Headers"),
    headers && Object.keys(headers).length ? facts(Object.entries(headers).map(([k, v]) =>
      [k, typeof v === "object" ? json(v) : String(v)])) : h("p", { class: "muted" }, "None"),
    h("h5", {}, "Payload"), h("pre", { class: "payload" }, m.payload));
}

export function getForm(vhost, name) {
  const output = h("div", { id: "got", "aria-live": "polite" });
  const node = form("get", "Get messages", [
    h("p", { class: "muted" }, "Getting messages is destructive when the mode does not requeue them."),
    field("Ack mode", { name: "ackmode", value: "ack_requeue_true", options: ACK_MODES, id: "get-ackmode" }),
    field("Encoding", { name: "encoding", value: "auto", options: [["auto", "Auto string / base64"],
      ["base64", "Base64"]] }),
    field("Messages", { name: "count", type: "number", value: 1, min: 1, id: "get-count" }),
    field("Truncate payload at (bytes)", { name: "truncate", type: "number", value: 50000, min: 1 }),
  ], "Get messages", async (data) => {
    const got = await api("POST", `/queues/${enc(vhost)}/${enc(name)}/get`, {
      count: Number(data.get("count")), ackmode: data.get("ackmode"),
      encoding: data.get("encoding"), truncate: Number(data.get("truncate")) });
    output.replaceChildren(...(got.length ? got.map(messageView) : [h("p", {}, "Queue is empty")]));
    await refreshAll();
  });
  return card(node, output);
}
