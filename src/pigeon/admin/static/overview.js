// The overview: totals, the node panel, queue depth and message rate charts.
import { api, bytes, duration, facts, fmt, h, historyQuery, live, rate, state, table, tiles } from "./lib.js";
import { depthChart, ratesChart } from "./chart.js";

export async function overviewPage() {
  return [
    h("h2", {}, "Overview"),
    live(async () => {
      const o = await api("GET", "/overview?" + historyQuery());
      const q = o.queue_totals, s = o.message_stats || {}, t = o.object_totals;
      return [
        tiles([["Ready", q.messages_ready], ["Unacked", q.messages_unacknowledged],
          ["Publish /s", rate(s, "publish")], ["Deliver /s", rate(s, "deliver_get")],
          ["Ack /s", rate(s, "ack")], ["Connections", t.connections], ["Channels", t.channels],
          ["Exchanges", t.exchanges], ["Queues", t.queues], ["Consumers", t.consumers]]),
        h("div", { class: "charts" }, depthChart("chart-depth", q),
          ratesChart("chart-rates", s, [["publish", "Publish"], ["deliver_get", "Deliver"],
            ["ack", "Ack"], ["redeliver", "Redeliver"]])),
        h("p", { class: "muted" }, `${o.product_name} ${o.product_version} (${o.erlang_full_version}), `
          + `cluster ${o.cluster_name}`),
        o.cluster ? clusterFacts(o.cluster) : null,
      ];
    }, { id: "overview" }),
    live(nodePanel, { id: "node" }),
  ];
}

// One resource against its limit: a <meter> (announced by screen readers) and the numbers.
function gauge(label, used, limit, show, lowIsBad = false, alarm = false) {
  const ratio = limit ? used / limit : 0;
  return h("div", { class: "gauge" + (alarm ? " alarm" : "") },
    h("span", { class: "gauge-label" }, label, alarm ? h("strong", { class: "bad" }, " alarm") : null),
    h("meter", { min: 0, max: limit || 1, value: Math.min(used, limit || used), "aria-label": label,
      low: lowIsBad ? undefined : (limit || 1) * 0.7, high: lowIsBad ? undefined : (limit || 1) * 0.9,
      optimum: lowIsBad ? limit || 1 : 0 }),
    h("span", { class: "gauge-text" }, `${show(used)} of ${show(limit)}`,
      lowIsBad ? "" : ` (${(ratio * 100).toFixed(0)}%)`));
}

async function nodePanel() {
  const tags = (state.me || {}).tags || [];
  if (!tags.includes("administrator") && !tags.includes("monitoring")) {
    return h("p", { class: "muted" }, "The node panel needs the monitoring tag.");
  }
  const nodes = await api("GET", "/nodes");
  if (nodes.length === 1 && nodes[0].heartbeat_age === undefined) return [h("h2", {}, "Node"), nodeCard(nodes[0])];
  const running = nodes.filter((n) => n.running).length;
  return [h("h2", {}, `Nodes (${running} of ${nodes.length} running)`), nodeTable(nodes),
    ...nodes.map((n) => (n.running && n.mem_used !== undefined ? nodeCard(n) : stoppedCard(n)))];
}

// Cluster mode (docs/cluster.md): what this node sees of NATS JetStream.
function clusterFacts(c) {
  return h("section", { class: "card", id: "cluster" }, h("h3", {}, "Cluster (NATS JetStream)"),
    facts([["Connected to NATS", c.connected ? "yes" : h("strong", { class: "bad" }, "no")],
      ["JetStream servers", (c.jetstream_servers || []).join(", ")],
      ["nats-server", c.nats_server_version], ["Durability", c.durability],
      ["Pigeon nodes running", `${fmt(c.nodes_running)} (not running: ${fmt(c.nodes_stopped)})`]]));
}

function nodeTable(nodes) {
  return table("nodes", [{ key: "name", label: "Node" },
    { key: "running", label: "State", render: (n) => (n.running ? "running" : h("strong", { class: "bad" }, "not running")) },
    { key: "uptime", label: "Uptime", num: true, render: (n) => (n.running ? duration(n.uptime) : "–") },
    { key: "mem_used", label: "Memory", num: true, render: (n) => bytes(n.mem_used) },
    { key: "connections", label: "Connections", num: true },
    { key: "heartbeat_age", label: "Last heartbeat", num: true, render: (n) => `${fmt(n.heartbeat_age)} s ago` }],
  nodes, { caption: "Nodes of the cluster" });
}

// A node not running (or starting: its heartbeats name it before its numbers).
function stoppedCard(n) {
  return h("section", { class: "card node" + (n.running ? "" : " stopped"), id: "node-" + n.name },
    h("h3", {}, n.name, n.running ? h("span", { class: "muted" }, " starting")
      : h("strong", { class: "bad" }, " not running")),
    n.running ? null : h("p", { class: "muted" },
      `No heartbeat for ${fmt(n.heartbeat_age)} s; last pid ${n.os_pid ?? "–"}.`));
}

function nodeCard(n) {
  const count = (v) => fmt(v);
  return h("section", { class: "card node", id: "node-" + n.name },
    h("h3", {}, n.name, h("span", { class: "muted" }, ` up ${duration(n.uptime)}, pid ${n.os_pid}`)),
    h("div", { class: "gauges" },
      gauge("Memory (alarm threshold)", n.mem_used, n.mem_limit, bytes, false, n.mem_alarm),
      h("div", { class: "gauge" + (n.disk_free_alarm ? " alarm" : "") },
        h("span", { class: "gauge-label" }, "Disk free (limit)",
          n.disk_free_alarm ? h("strong", { class: "bad" }, " alarm") : null),
        h("meter", { min: 0, max: Math.max(n.disk_free, n.disk_free_limit * 4) || 1, value: n.disk_free,
          low: n.disk_free_limit * 2, optimum: Math.max(n.disk_free, n.disk_free_limit * 4),
          "aria-label": "Disk free" }),
        h("span", { class: "gauge-text" }, `${bytes(n.disk_free)} free, alarm under ${bytes(n.disk_free_limit)}`)),
      gauge("File descriptors", n.fd_used, n.fd_total, count),
      gauge("Sockets", n.sockets_used, n.sockets_total, count)),
    facts([["Connections", fmt(n.connections)], ...storeFacts(n), ["Processors", fmt(n.processors)]]),
    listeners(n));
}

// The store's figures, or that there is none (no data folder: nothing to size or time).
function storeFacts(n) {
  if (n.db_dir == null) return [["Store", "no data folder: messages in memory only"]];
  return [["Data folder", n.db_dir], ["Store size on disk", bytes(n.store_bytes)],
    ["Store write latency (average of the last 60 commits)", `${fmt(n.io_sync_avg_time)} ms`],
    ["Store write latency (max of the last 60 commits)", `${fmt(n.io_sync_max_time)} ms`],
    ["Store commits timed", fmt(n.io_sync_count)]];
}

const listeners = (n) => table("listeners", [{ key: "protocol", label: "Protocol" },
  { key: "ip_address", label: "Bound to" }, { key: "port", label: "Port", num: true, render: (row) => String(row.port) }],
n.listeners || [], { caption: "Listeners" });
