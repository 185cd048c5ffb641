// Line charts in hand-written SVG: a y axis with round ticks, a time axis over the
// selected range, a legend with the latest values, and a tooltip that follows the
// pointer or the arrow keys (the chart is focusable).
import { fmt, h, state } from "./lib.js";

const W = 640, H = 200, LEFT = 52, RIGHT = 12, TOP = 10, BOTTOM = 26;

// Samples come newest first; a rate is the slope between neighbouring counter samples.
export function series(details, asRate) {
  const points = [...((details || {}).samples || [])].reverse().map((p) => [p.timestamp, p.sample]);
  if (!asRate) return points;
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = (points[i][0] - points[i - 1][0]) / 1000;
    if (dt > 0) out.push([points[i][0], Math.max(0, (points[i][1] - points[i - 1][1]) / dt)]);
  }
  return out;
}

function niceStep(top) {
  const rough = top / 4, power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough) || power * 10;
}

function timeLabel(ms, span) {
  const d = new Date(ms), pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return span <= 600 ? `${hm}:${pad(d.getSeconds())}` : hm;
}
const fullTime = (ms) => timeLabel(ms, 0);

const el = (tag, attrs, ...kids) => h("svg:" + tag, attrs, ...kids);

// lines: [{label, points: [[ms, value]]}]; colours come from the stylesheet (.s0, .s1...).
export function chart(id, title, lines, unit = "") {
  const now = Date.now(), span = state.range, t0 = now - span * 1000;
  const values = lines.flatMap((l) => l.points.filter((p) => p[0] >= t0).map((p) => p[1]));
  const step = niceStep(Math.max(4, ...values));
  const top = step * Math.ceil(Math.max(4, ...values) / step);
  const x = (t) => LEFT + ((t - t0) / (now - t0)) * (W - LEFT - RIGHT);
  const y = (v) => H - BOTTOM - (v / top) * (H - TOP - BOTTOM);
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", tabindex: "0",
    "aria-label": `${title}, ${RANGE_TEXT()}: ` + lines.map((l) => `${l.label} ${latest(l)}${unit}`).join(", ") });
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(el("line", { class: "grid", x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v) }),
      el("text", { class: "tick", x: LEFT - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (i / 4) * (now - t0);
    svg.append(el("line", { class: "axis", x1: x(t), x2: x(t), y1: H - BOTTOM, y2: H - BOTTOM + 4 }),
      el("text", { class: "tick", x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
        timeLabel(t, span)));
  }
  svg.append(el("line", { class: "axis", x1: LEFT, x2: W - RIGHT, y1: H - BOTTOM, y2: H - BOTTOM }));
  lines.forEach((line, i) => {
    const shown = line.points.filter((p) => p[0] >= t0);
    if (!shown.length) return;
    const d = shown.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    const [lt, lv] = shown[shown.length - 1];
    svg.append(el("path", { class: `line s${i}`, d }),
      el("circle", { class: `dot s${i}`, cx: x(lt).toFixed(1), cy: y(lv).toFixed(1), r: 3 }));
  });
  const cursor = el("line", { class: "cursor", y1: TOP, y2: H - BOTTOM, visibility: "hidden" });
  svg.append(cursor);
  const tip = h("div", { class: "tip", role: "status", hidden: true });
  const times = [...new Set(lines.flatMap((l) => l.points.map((p) => p[0])))].filter((t) => t >= t0).sort();
  let at = -1;
  const show = (index) => {
    if (!times.length) {
      tip.replaceChildren("No samples in this range yet");
      tip.hidden = false;
      tip.style.left = "50%";
      return;
    }
    at = Math.max(0, Math.min(times.length - 1, index));
    const t = times[at], px = x(t);
    cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
    tip.replaceChildren(h("b", {}, fullTime(t)), ...lines.map((l, i) => {
      const p = l.points.find((q) => q[0] === t);
      return h("div", {}, h("span", { class: `swatch s${i}` }), `${l.label}: ${p ? fmt(p[1]) : "–"}${unit}`);
    }));
    tip.hidden = false;
    tip.style.left = `${(px / W) * 100}%`;
  };
  const hide = () => { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); };
  svg.addEventListener("pointermove", (event) => {
    const box = svg.getBoundingClientRect();
    const t = t0 + (((event.clientX - box.left) / box.width) * W - LEFT) / (W - LEFT - RIGHT) * (now - t0);
    let best = 0;
    times.forEach((u, i) => { if (Math.abs(u - t) < Math.abs(times[best] - t)) best = i; });
    show(best);
  });
  svg.addEventListener("pointerleave", hide);
  svg.addEventListener("blur", hide);
  svg.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") show(at < 0 ? times.length - 1 : at - 1);
    else if (event.key === "ArrowRight") show(at + 1);
    else if (event.key === "Escape") hide();
    else return;
    event.preventDefault();
  });
  return h("figure", { class: "card chart-card", id },
    h("figcaption", {}, title, unit ? h("span", { class: "muted" }, ` (${unit.trim()})`) : null),
    h("div", { class: "plot" }, svg, tip),
    h("div", { class: "legend" }, lines.map((l, i) =>
      h("span", {}, h("span", { class: `swatch s${i}` }), `${l.label}: ${latest(l)}`))));
}

const latest = (l) => (l.points.length ? fmt(l.points[l.points.length - 1][1]) : 0);
const RANGE_TEXT = () => {
  const s = state.range;
  return s >= 3600 ? `last ${s / 3600} h` : `last ${s / 60} min`;
};

// The two charts every object with message stats shows.
export function depthChart(id, q) {
  return chart(id, "Queued messages", [
    { label: "Ready", points: series(q.messages_ready_details) },
    { label: "Unacked", points: series(q.messages_unacknowledged_details) }]);
}

export function ratesChart(id, stats, keys) {
  return chart(id, "Message rates", keys.map(([key, label]) =>
    ({ label, points: series((stats || {})[key + "_details"], true) })), " /s");
}
