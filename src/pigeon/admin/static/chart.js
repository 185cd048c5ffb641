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

// The scales of a chart: time over the selected range, values from 0 to a round top.
function scales(lines) {
  const now = Date.now(), span = state.range, t0 = now - span * 1000;
  const values = lines.flatMap((l) => l.points.filter((p) => p[0] >= t0).map((p) => p[1]));
  const step = niceStep(Math.max(4, ...values));
  const top = step * Math.ceil(Math.max(4, ...values) / step);
  return { now, span, t0, step, top,
    x: (t) => LEFT + ((t - t0) / (now - t0)) * (W - LEFT - RIGHT),
    y: (v) => H - BOTTOM - (v / top) * (H - TOP - BOTTOM),
    time: (px) => t0 + ((px - LEFT) / (W - LEFT - RIGHT)) * (now - t0) };
}

function axes(svg, s) {
  for (let v = 0; v <= s.top + 1e-9; v += s.step) {
    svg.append(el("line", { class: "grid", x1: LEFT, x2: W - RIGHT, y1: s.y(v), y2: s.y(v) }),
      el("text", { class: "tick", x: LEFT - 6, y: s.y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = s.t0 + (i / 4) * (s.now - s.t0);
    svg.append(el("line", { class: "axis", x1: s.x(t), x2: s.x(t), y1: H - BOTTOM, y2: H - BOTTOM + 4 }),
      el("text", { class: "tick", x: s.x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
        timeLabel(t, s.span)));
  }
  svg.append(el("line", { class: "axis", x1: LEFT, x2: W - RIGHT, y1: H - BOTTOM, y2: H - BOTTOM }));
}

function plot(svg, lines, s) {
  lines.forEach((line, i) => {
    const shown = line.points.filter((p) => p[0] >= s.t0);
    if (!shown.length) return;
    const d = shown.map((p, j) => `${j ? "L" : "M"}${s.x(p[0]).toFixed(1)},${s.y(p[1]).toFixed(1)}`).join("");
    const [lt, lv] = shown[shown.length - 1];
    svg.append(el("path", { class: `line s${i}`, d }),
      el("circle", { class: `dot s${i}`, cx: s.x(lt).toFixed(1), cy: s.y(lv).toFixed(1), r: 3 }));
  });
}

// The tooltip: a dashed cursor and the values at the nearest sample time, moved by the
// pointer or by the arrow keys; returns the tip element.
function tooltip(svg, lines, s, unit) {
  const cursor = el("line", { class: "cursor", y1: TOP, y2: H - BOTTOM, visibility: "hidden" });
  svg.append(cursor);
  const tip = h("div", { class: "tip", role: "status", hidden: true });
  const times = [...new Set(lines.flatMap((l) => l.points.map((p) => p[0])))].filter((t) => t >= s.t0).sort();
  let at = -1;
  const place = (left, ...content) => { tip.replaceChildren(...content); tip.hidden = false; tip.style.left = left; };
  const show = (index) => {
    if (!times.length) return place("50%", "No samples in this range yet");
    at = Math.max(0, Math.min(times.length - 1, index));
    const t = times[at], px = s.x(t);
    cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
    return place(`${(px / W) * 100}%`, h("b", {}, fullTime(t)), ...lines.map((l, i) => {
      const p = l.points.find((q) => q[0] === t);
      return h("div", {}, h("span", { class: `swatch s${i}` }), `${l.label}: ${p ? fmt(p[1]) : "–"}${unit}`);
    }));
  };
  const hide = () => { tip.hidden = true; cursor.setAttribute("visibility", "hidden"); };
  svg.addEventListener("pointermove", (event) => {
    const box = svg.getBoundingClientRect();
    const t = s.time(((event.clientX - box.left) / box.width) * W);
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
  return tip;
}

// lines: [{label, points: [[ms, value]]}]; colours come from the stylesheet (.s0, .s1...).
export function chart(id, title, lines, unit = "") {
  const s = scales(lines);
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", tabindex: "0",
    "aria-label": `${title}, ${RANGE_TEXT()}: ` + lines.map((l) => `${l.label} ${latest(l)}${unit}`).join(", ") });
  axes(svg, s);
  plot(svg, lines, s);
  const tip = tooltip(svg, lines, s, unit);
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
