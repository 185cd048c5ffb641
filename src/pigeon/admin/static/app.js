// Pigeon's web UI: plain JavaScript modules on top of the management HTTP API; no build
// step, no external assets. This module routes, logs in and owns the header controls
// (vhost, time range, refresh interval, theme).
import { RANGES, api, h, refreshAll, state } from "./lib.js";
import { overviewPage } from "./overview.js";
import { queuePage, queuesPage } from "./queues.js";
import { exchangePage, exchangesPage } from "./exchanges.js";
import { channelPage, channelsPage, connectionPage, connectionsPage } from "./clients.js";
import { definitionsPage, limitsPage, policiesPage, userPage, usersPage, vhostsPage } from "./admin.js";

const arg = (m, i) => decodeURIComponent(m[i]);
const PAGES = [
  [/^#\/queues\/([^/]+)\/([^/]+)$/, (m) => queuePage(arg(m, 1), arg(m, 2))],
  [/^#\/exchanges\/([^/]+)\/([^/]+)$/, (m) => exchangePage(arg(m, 1), arg(m, 2))],
  [/^#\/connections\/([^/]+)$/, (m) => connectionPage(arg(m, 1))],
  [/^#\/channels\/([^/]+)$/, (m) => channelPage(arg(m, 1))],
  [/^#\/users\/([^/]+)$/, (m) => userPage(arg(m, 1))],
  [/^#\/queues$/, queuesPage], [/^#\/exchanges$/, exchangesPage],
  [/^#\/connections$/, connectionsPage], [/^#\/channels$/, channelsPage],
  [/^#\/users$/, usersPage], [/^#\/vhosts$/, vhostsPage], [/^#\/policies$/, policiesPage],
  [/^#\/limits$/, limitsPage], [/^#\/definitions$/, definitionsPage],
  [/^(#\/?)?$/, overviewPage],
];
// Which menu entry a page belongs to.
const SECTIONS = [["#/queues", "#/queues"], ["#/exchanges", "#/exchanges"],
  ["#/connections", "#/connections"], ["#/channels", "#/channels"],
  ["#/users", "#/admin"], ["#/vhosts", "#/admin"], ["#/policies", "#/admin"],
  ["#/limits", "#/admin"], ["#/definitions", "#/admin"]];
const ADMIN_LINK = () => document.querySelector("#nav a.admin");

const main = () => document.getElementById("main");
let timer = null;
let routing = 0;

// A menu choice or link moves focus to the new page, as a page load would.
async function navigate() {
  await route();
  main().focus();
}

async function route() {
  if (!state.auth) return showLogin();
  if (location.hash === "#/admin") { location.replace("#/users"); return; }
  const hash = location.hash || "#/";
  const section = (SECTIONS.find(([prefix]) => hash.startsWith(prefix)) || ["", "#/"])[1];
  for (const link of document.querySelectorAll("#nav a")) {
    const here = link === ADMIN_LINK() ? section === "#/admin" : link.getAttribute("href") === section;
    link.classList.toggle("active", here);
    if (here) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const found = PAGES.find(([pattern]) => pattern.test(hash)) || PAGES[PAGES.length - 1];
  const mine = ++routing;
  state.regions = [];
  try {
    const content = [await found[1](hash.match(found[0]))].flat();
    await Promise.all(content.flatMap((n) => regionsIn(n)));
    if (mine !== routing) return;
    main().replaceChildren(...content);
    main().dataset.page = hash;
    const heading = main().querySelector("h2");
    document.title = `${heading ? heading.textContent + " · " : ""}Pigeon`;
  } catch (error) {
    main().replaceChildren(h("p", { class: "error" }, "Error: " + error.message));
  }
  schedule();
}

// The first render of every live region inside a node.
function regionsIn(node) {
  if (!(node instanceof Element)) return [];
  const all = [node, ...node.querySelectorAll("[data-live]")];
  return all.filter((n) => n.ready).map((n) => n.ready);
}

function schedule() {
  clearTimeout(timer);
  if (!state.refresh) return;
  timer = setTimeout(async () => {
    // Never under an open dialog; forms are not live regions, so typing is safe.
    if (!document.querySelector("dialog[open]")) await refreshAll();
    schedule();
  }, state.refresh);
}

function remember(key, value) { localStorage.setItem("pigeon." + key, value); }

function controls() {
  const vhost = h("select", { id: "vhost-select", onchange: () => {
    state.vhost = vhost.value; remember("vhost", state.vhost); route(); } },
  h("option", { value: "" }, "All"), state.vhosts.map((v) =>
    h("option", { value: v, selected: v === state.vhost }, v)));
  const range = h("select", { id: "range-select", onchange: () => {
    state.range = Number(range.value); remember("range", state.range); refreshAll(); } },
  RANGES.map(([seconds, label]) => h("option", { value: seconds, selected: seconds === state.range }, label)));
  const every = h("select", { id: "refresh-select", onchange: () => {
    state.refresh = Number(every.value); remember("refresh", state.refresh); schedule(); } },
  [[5000, "Every 5 s"], [10000, "Every 10 s"], [30000, "Every 30 s"], [60000, "Every minute"],
    [0, "Paused"]].map(([ms, label]) => h("option", { value: ms, selected: ms === state.refresh }, label)));
  return [h("label", {}, "Virtual host ", vhost), h("label", {}, "Charts ", range),
    h("label", {}, "Refresh ", every)];
}

// Light or dark: the system's choice until the toggle is used, then the user's.
function applyTheme(theme) {
  const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  const toggle = document.getElementById("theme-toggle");
  toggle.setAttribute("aria-pressed", String(dark));
}

function setUpTheme() {
  applyTheme(localStorage.getItem("pigeon.theme"));
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme !== "dark";
    localStorage.setItem("pigeon.theme", dark ? "dark" : "light");
    applyTheme(dark ? "dark" : "light");
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () =>
    applyTheme(localStorage.getItem("pigeon.theme")));
}

function showLogin() {
  document.getElementById("nav").hidden = true;
  const form = document.getElementById("login");
  if (!form) { location.reload(); return; }
  form.querySelector("input[name=user]").focus();
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
  state.me = me;
  state.vhosts = (await api("GET", "/vhosts")).map((v) => v.name);
  if (state.vhost && !state.vhosts.includes(state.vhost)) state.vhost = "";
  const who = document.getElementById("who");
  who.replaceChildren(`${me.name} (${me.tags.join(", ") || "no tags"}) `, h("button", { type: "button",
    id: "logout", onclick: () => { sessionStorage.removeItem("pigeon.auth"); location.hash = ""; location.reload(); } },
  "Log out"));
  document.getElementById("controls").replaceChildren(...controls());
  // Admin pages need the administrator tag (policies: policymaker); others see no link.
  const admin = ADMIN_LINK();
  admin.hidden = !me.tags.includes("administrator") && !me.tags.includes("policymaker");
  if (!me.tags.includes("administrator")) admin.setAttribute("href", "#/policies");
  document.getElementById("nav").hidden = false;
  window.addEventListener("hashchange", navigate);
  window.addEventListener("pigeon:vhosts", () => {
    if (state.vhost && !state.vhosts.includes(state.vhost)) state.vhost = "";
    document.getElementById("controls").replaceChildren(...controls());
  });
  await route();
}

setUpTheme();
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();  // "#main" is not a page
  main().focus();
});
if (state.auth) start().catch(() => { state.auth = null; sessionStorage.removeItem("pigeon.auth"); showLogin(); });
else showLogin();
