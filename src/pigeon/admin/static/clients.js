// Connections and channels: lists, a page for each, with their message rates and a chart
// of them over the selected time range.
import { api, dangerButton, duration, enc, facts, fmt, h, historyQuery, inVhost, json, live, queueHref, rate, table,
  tiles } from "./lib.js";
import { ratesChart } from "./chart.js";

const connHref = (name) => "#/connections/" + enc(name);
const chanHref = (name) => "#/channels/" + enc(name);
const vhostPath = () => (inVhost() ? `/vhosts${inVhost()}` : "");
const isMqtt = (c) => String(c.protocol || "").includes("MQTT"); // "Web MQTT 5.0" too
const yesNo = (value) => (value ? "yes" : "no");

const CHARTED = [["publish", "Publish"], ["deliver_get", "Deliver"], ["ack", "Ack"], ["redeliver", "Redeliver"]];

const RATE_COLUMNS = [
  { key: "publish", label: "Publish /s", num: true, value: (r) => rate(r.message_stats, "publish") },
  { key: "deliver", label: "Deliver /s", num: true, value: (r) => rate(r.message_stats, "deliver_get") },
  { key: "ack", label: "Ack /s", num: true, value: (r) => rate(r.message_stats, "ack") },
];

function channelTable(rows) {
  return table("channels", [
    { key: "name", label: "Channel", render: (r) => h("a", { href: chanHref(r.name) }, r.name) },
    { key: "user", label: "User" }, { key: "vhost", label: "Virtual host" },
    { key: "mode", label: "Mode", value: (r) => [r.confirm && "confirm", r.transactional && "transactional"]
      .filter(Boolean).join(", ") },
    { key: "consumer_count", label: "Consumers", num: true },
    { key: "prefetch_count", label: "Prefetch", num: true },
    { key: "messages_unacknowledged", label: "Unacked", num: true }, ...RATE_COLUMNS], rows, { caption: "Channels" });
}

const closeButton = (name, id) => dangerButton(id, "Close", `Close connection ${name}?`,
  () => api("DELETE", "/connections/" + enc(name)), "Connection closed");

export async function connectionsPage() {
  return [h("h2", {}, "Connections"), live(async () => {
    const rows = await api("GET", vhostPath() + "/connections");
    return table("connections", [
      { key: "name", label: "Name", render: (r) => h("a", { href: connHref(r.name) }, r.name) },
      { key: "user", label: "User" }, { key: "vhost", label: "Virtual host" },
      { key: "protocol", label: "Protocol" },
      { key: "client", label: "Client", value: (r) => {
        const p = r.client_properties || {};
        return [p.product, p.version].filter(Boolean).join(" ");
      } },
      { key: "client_id", label: "Client id", value: (r) => (isMqtt(r) ? r.client_id : "") },
      { key: "channels", label: "Channels", num: true },
      { key: "connected_at", label: "Connected for", value: (r) => Date.now() - r.connected_at,
        render: (r) => duration(Date.now() - r.connected_at) },
      { key: "close", label: "Action", sortable: false, render: (r) => closeButton(r.name, null) }],
    rows, { caption: "Connections" });
  }, { id: "connection-list" })];
}

export async function connectionPage(name) {
  const c = await api("GET", "/connections/" + enc(name));
  if (isMqtt(c)) return mqttConnectionPage(name, c);
  return [
    h("h2", {}, `Connection ${name}`),
    live(async () => {
      const now = await api("GET", `/connections/${enc(name)}?` + historyQuery());
      const channels = await api("GET", `/connections/${enc(name)}/channels`);
      const s = now.message_stats || {};
      return [tiles([["Channels", channels.length], ["Publish /s", rate(s, "publish")],
        ["Deliver /s", rate(s, "deliver_get")], ["Ack /s", rate(s, "ack")]]),
      h("div", { class: "charts" }, ratesChart("chart-connection-rates", s, CHARTED)), channelTable(channels)];
    }, { id: "connection-summary" }),
    facts([["User", c.user], ["Virtual host", c.vhost], ["Protocol", c.protocol],
      ["Client", `${c.peer_host}:${c.peer_port}`], ["Heartbeat", `${c.timeout} s`],
      ["Frame max", fmt(c.frame_max)], ["Channel max", fmt(c.channel_max)],
      ["Client properties", json(c.client_properties)]]),
    h("p", {}, closeButton(name, "close-connection")),
  ];
}

// An MQTT connection: its session (client id, keep-alive, clean session and expiry, will),
// what is in flight and queued for it, and its subscription queue.
function mqttConnectionPage(name, c) {
  const queue = `mqtt-subscription-${c.client_id}qos1`;
  return [
    h("h2", {}, `Connection ${name}`),
    live(async () => {
      const now = await api("GET", `/connections/${enc(name)}`);
      return tiles([["Subscriptions", now.subscriptions], ["In flight", now.messages_unacknowledged],
        ["Queued", now.messages_queued], ["Inflight limit", now.prefetch]]);
    }, { id: "connection-summary" }),
    facts([["Client id", c.client_id], ["Protocol", c.protocol], ["User", c.user], ["Virtual host", c.vhost],
      ["Client", `${c.peer_host}:${c.peer_port}`], ["Keep-alive", `${c.keepalive} s`],
      ["Clean session", yesNo(c.clean_sess)], ["Session expiry", `${fmt(c.session_expiry_interval)} s`],
      ["Will", yesNo(c.will_msg)], ["Exchange", c.exchange], ["TLS", yesNo(c.ssl)],
      ["Subscription queue", c.subscriptions ? h("a", { href: queueHref(c.vhost, queue) }, queue) : "–"]]),
    h("p", {}, closeButton(name, "close-connection")),
  ];
}

export async function channelsPage() {
  return [h("h2", {}, "Channels"), live(async () => channelTable(await api("GET", vhostPath() + "/channels")),
    { id: "channel-list" })];
}

export async function channelPage(name) {
  return [h("h2", {}, `Channel ${name}`), live(async () => {
    const ch = await api("GET", "/channels/" + enc(name) + "?" + historyQuery());
    const s = ch.message_stats || {};
    const conn = (ch.connection_details || {}).name;
    return [
      tiles([["Publish /s", rate(s, "publish")], ["Deliver /s", rate(s, "deliver_get")],
        ["Ack /s", rate(s, "ack")], ["Unacked", ch.messages_unacknowledged], ["Consumers", ch.consumer_count]]),
      h("div", { class: "charts" }, ratesChart("chart-channel-rates", s, CHARTED)),
      facts([["Connection", conn ? h("a", { href: connHref(conn) }, conn) : "–"], ["User", ch.user],
        ["Virtual host", ch.vhost], ["Prefetch", fmt(ch.prefetch_count)],
        ["Global prefetch", fmt(ch.global_prefetch_count)], ["Confirm mode", String(ch.confirm)],
        ["Transactional", String(ch.transactional)],
        ["Published", fmt(s.publish ?? 0)], ["Delivered", fmt(s.deliver_get ?? 0)], ["Acked", fmt(s.ack ?? 0)]]),
      h("h3", {}, "Consumers"),
      table("channel-consumers", [{ key: "consumer_tag", label: "Tag" },
        { key: "queue", label: "Queue", value: (c) => c.queue.name,
          render: (c) => h("a", { href: queueHref(c.queue.vhost, c.queue.name) }, c.queue.name) }],
      (await api("GET", "/consumers")).filter((c) => (c.channel_details || {}).name === name)),
    ];
  }, { id: "channel-summary" })];
}
