// Admin: users (tags, permissions, topic permissions), virtual hosts, policies, limits,
// definitions export and import.
import {
  act, api, card, dangerButton, enc, field, flash, form, h, json, live, refreshAll, state, table,
} from "./lib.js";

const SECTIONS = [["#/users", "Users"], ["#/vhosts", "Virtual hosts"], ["#/policies", "Policies"],
  ["#/limits", "Limits"], ["#/definitions", "Definitions"]];
const TAGS = ["administrator", "monitoring", "policymaker", "management", "impersonator"];

function adminNav(here) {
  return h("nav", { class: "subnav", "aria-label": "Admin" }, SECTIONS.map(([href, label]) =>
    h("a", { href, "aria-current": href === here ? "page" : null, class: href === here ? "active" : null }, label)));
}

// The header's vhost selector lists the new set (app.js listens).
async function reloadVhosts() {
  state.vhosts = (await api("GET", "/vhosts")).map((v) => v.name);
  window.dispatchEvent(new Event("pigeon:vhosts"));
}

const vhostField = () => field("Virtual host", { name: "vhost", value: state.vhost || "/", options: state.vhosts });
const parseJson = (text, what) => {
  try { return JSON.parse(text); } catch (error) { throw new Error(`the ${what} is not valid JSON`); }
};

// -- users ------------------------------------------------------------------------------

function tagBoxes(selected) {
  return h("fieldset", { class: "tags" }, h("legend", {}, "Tags"), TAGS.map((t) =>
    field(t, { type: "checkbox", name: "tag", value: t, checked: selected.includes(t) })));
}

export async function usersPage() {
  return [adminNav("#/users"), h("h2", {}, "Users"),
    live(async () => table("users", [
      { key: "name", label: "Name", render: (u) => h("a", { href: "#/users/" + enc(u.name) }, u.name) },
      { key: "tags", label: "Tags", value: (u) => [u.tags].flat().join(", ") },
      { key: "password", label: "Can log in", value: (u) => (u.password_hash ? "yes" : "no") }],
    await api("GET", "/users"), { caption: "Users" }), { id: "user-list" }),
    live(async () => table("permissions", [{ key: "user", label: "User" }, { key: "vhost", label: "Virtual host" },
      { key: "configure", label: "Configure" }, { key: "write", label: "Write" }, { key: "read", label: "Read" }],
    await api("GET", "/permissions"), { caption: "Permissions" })),
    card(form("add-user", "Add a user", [
      field("Name", { name: "name", required: true }),
      field("Password", { name: "password", type: "password", required: true, autocomplete: "new-password" }),
      tagBoxes(["management"]),
    ], "Add user", async (data) => {
      await act(() => api("PUT", "/users/" + enc(data.get("name")), { password: data.get("password"),
        tags: data.getAll("tag").join(",") }), "User saved");
    }))];
}

function permissionForms(name) {
  const perm = form("set-permission", "Set permissions", [vhostField(),
    field("Configure (regex)", { name: "configure", value: ".*" }),
    field("Write (regex)", { name: "write", value: ".*" }), field("Read (regex)", { name: "read", value: ".*" }),
  ], "Set permission", async (data) => {
    await act(() => api("PUT", `/permissions/${enc(data.get("vhost"))}/${enc(name)}`, {
      configure: data.get("configure"), write: data.get("write"), read: data.get("read") }), "Permission set");
  });
  const topic = form("set-topic-permission", "Set topic permissions", [vhostField(),
    field("Exchange", { name: "exchange", value: "amq.topic", required: true }),
    field("Write (regex)", { name: "write", value: ".*" }), field("Read (regex)", { name: "read", value: ".*" }),
  ], "Set topic permission", async (data) => {
    await act(() => api("PUT", `/topic-permissions/${enc(data.get("vhost"))}/${enc(name)}`, {
      exchange: data.get("exchange"), write: data.get("write"), read: data.get("read") }), "Topic permission set");
  });
  return [card(perm), card(topic)];
}

export async function userPage(name) {
  const user = await api("GET", "/users/" + enc(name));
  const clear = (p) => h("button", { type: "button", class: "danger small", onclick: () => act(() =>
    api("DELETE", `/permissions/${enc(p.vhost)}/${enc(name)}`), "Permission cleared") }, "Clear");
  const clearTopic = (p) => h("button", { type: "button", class: "danger small", onclick: () => act(() =>
    api("DELETE", `/topic-permissions/${enc(p.vhost)}/${enc(name)}?exchange=${enc(p.exchange)}`),
  "Topic permission cleared") }, "Clear");
  return [adminNav("#/users"), h("h2", {}, `User ${name}`),
    live(async () => [
      table("user-permissions", [{ key: "vhost", label: "Virtual host" }, { key: "configure", label: "Configure" },
        { key: "write", label: "Write" }, { key: "read", label: "Read" },
        { key: "clear", label: "Action", sortable: false, render: clear }],
      await api("GET", `/users/${enc(name)}/permissions`), { caption: "Permissions" }),
      table("user-topic-permissions", [{ key: "vhost", label: "Virtual host" }, { key: "exchange", label: "Exchange" },
        { key: "write", label: "Write" }, { key: "read", label: "Read" },
        { key: "clear", label: "Action", sortable: false, render: clearTopic }],
      (await api("GET", "/topic-permissions")).filter((p) => p.user === name), { caption: "Topic permissions" }),
    ], { id: "user-permissions-region" }),
    h("div", { class: "forms" }, ...permissionForms(name),
      card(form("edit-user", "Update tags and password", [tagBoxes([user.tags].flat()),
        field("New password (empty: keep the current one)", { name: "password", type: "password",
          autocomplete: "new-password" })], "Update user", async (data) => {
        const body = { tags: data.getAll("tag").join(",") };
        if (data.get("password")) body.password = data.get("password");
        await act(() => api("PUT", "/users/" + enc(name), body), "User updated");
      })),
      card(h("h3", {}, "Delete"), dangerButton("delete-user", "Delete user", `Delete user ${name}?`,
        async () => { await api("DELETE", "/users/" + enc(name)); location.hash = "#/users"; }, "User deleted")))];
}

// -- virtual hosts ----------------------------------------------------------------------

export async function vhostsPage() {
  const remove = (v) => dangerButton(null, "Delete", `Delete virtual host ${v.name} and everything in it?`,
    async () => { await api("DELETE", "/vhosts/" + enc(v.name)); await reloadVhosts(); }, "Virtual host deleted");
  return [adminNav("#/vhosts"), h("h2", {}, "Virtual hosts"),
    live(async () => table("vhosts", [{ key: "name", label: "Name" },
      { key: "messages_ready", label: "Ready", num: true },
      { key: "messages_unacknowledged", label: "Unacked", num: true },
      { key: "delete", label: "Action", sortable: false, render: remove }],
    await api("GET", "/vhosts"), { caption: "Virtual hosts" })),
    card(form("add-vhost", "Add a virtual host", [field("Name", { name: "name", required: true })],
      "Add virtual host", async (data) => {
        await act(() => api("PUT", "/vhosts/" + enc(data.get("name")), {}), "Virtual host added");
        await reloadVhosts();
      }))];
}

// -- policies -------------------------------------------------------------------------------

export async function policiesPage() {
  const remove = (p) => dangerButton(null, "Delete", `Delete ${p.kind === "policies" ? "policy" : "operator policy"} ${p.name}?`,
    () => api("DELETE", `/${p.kind}/${enc(p.vhost)}/${enc(p.name)}`), "Policy deleted");
  return [adminNav("#/policies"), h("h2", {}, "Policies"), live(async () => {
    const [policies, operator] = await Promise.all([api("GET", "/policies"), api("GET", "/operator-policies")]);
    const rows = [...policies.map((p) => ({ ...p, kind: "policies" })),
      ...operator.map((p) => ({ ...p, kind: "operator-policies" }))];
    return table("policies", [{ key: "vhost", label: "Virtual host" }, { key: "name", label: "Name" },
      { key: "kind", label: "Kind", value: (p) => (p.kind === "policies" ? "policy" : "operator") },
      { key: "pattern", label: "Pattern" }, { key: "apply-to", label: "Apply to" },
      { key: "definition", label: "Definition", value: (p) => json(p.definition) },
      { key: "priority", label: "Priority", num: true },
      { key: "delete", label: "Action", sortable: false, render: remove }], rows, { caption: "Policies" });
  }),
  card(form("add-policy", "Add or update a policy", [
    field("Kind", { name: "kind", value: "policies", options: [["policies", "Policy"], ["operator-policies", "Operator policy"]] }),
    vhostField(), field("Name", { name: "name", required: true }),
    field("Pattern", { name: "pattern", required: true, placeholder: "^orders\\." }),
    field("Apply to", { name: "apply-to", value: "all", options: ["all", "queues", "exchanges", "classic_queues", "quorum_queues"] }),
    field("Priority", { name: "priority", type: "number", value: 0 }),
    field("Definition (JSON)", { name: "definition", rows: 3, required: true,
      placeholder: '{"message-ttl": 60000, "dead-letter-exchange": "dlx"}' }),
  ], "Save policy", async (data) => {
    const definition = parseJson(data.get("definition"), "definition");
    await act(() => api("PUT", `/${data.get("kind")}/${enc(data.get("vhost"))}/${enc(data.get("name"))}`, {
      pattern: data.get("pattern"), definition, priority: Number(data.get("priority")),
      "apply-to": data.get("apply-to") }), "Policy saved");
  }))];
}

// -- limits -------------------------------------------------------------------------------

export async function limitsPage() {
  const rows = (list, owner) => list.flatMap((r) => Object.entries(r.value).map(([name, value]) =>
    ({ owner: r[owner], name, value })));
  const clear = (path) => (r) => h("button", { type: "button", class: "danger small", onclick: () => act(() =>
    api("DELETE", `/${path}/${enc(r.owner)}/${enc(r.name)}`), "Limit cleared") }, "Clear");
  const limitForm = (id, title, ownerField, names, path) => card(form(id, title, [ownerField,
    field("Limit", { name: "name", value: names[0], options: names }),
    field("Value (-1: no limit)", { name: "value", type: "number", required: true })],
  "Set limit", async (data) => {
    await act(() => api("PUT", `/${path}/${enc(data.get("owner"))}/${enc(data.get("name"))}`,
      { value: Number(data.get("value")) }), "Limit set");
  }));
  const users = (await api("GET", "/users")).map((u) => u.name);
  return [adminNav("#/limits"), h("h2", {}, "Limits"), live(async () => [
    table("vhost-limits", [{ key: "owner", label: "Virtual host" }, { key: "name", label: "Limit" },
      { key: "value", label: "Value", num: true }, { key: "clear", label: "Action", sortable: false, render: clear("vhost-limits") }],
    rows(await api("GET", "/vhost-limits"), "vhost"), { caption: "Virtual host limits" }),
    table("user-limits", [{ key: "owner", label: "User" }, { key: "name", label: "Limit" },
      { key: "value", label: "Value", num: true }, { key: "clear", label: "Action", sortable: false, render: clear("user-limits") }],
    rows(await api("GET", "/user-limits"), "user"), { caption: "User limits" })]),
  h("div", { class: "forms" },
    limitForm("set-vhost-limit", "Set a virtual host limit", field("Virtual host",
      { name: "owner", value: state.vhost || "/", options: state.vhosts }), ["max-connections", "max-queues"], "vhost-limits"),
    limitForm("set-user-limit", "Set a user limit", field("User", { name: "owner", options: users }),
      ["max-connections", "max-channels"], "user-limits"))];
}

// -- definitions ----------------------------------------------------------------------------

export async function definitionsPage() {
  const exportLink = h("a", { id: "export-link", class: "button", href: "#/definitions", onclick: async (event) => {
    event.preventDefault();
    try {
      const data = await api("GET", "/definitions");
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const a = h("a", { href: URL.createObjectURL(blob), download: "pigeon-definitions.json" });
      document.body.append(a); a.click(); a.remove();
      flash("Definitions exported");
    } catch (error) { flash("Error: " + error.message, true); }
  } }, "Download definitions (JSON)");
  return [adminNav("#/definitions"), h("h2", {}, "Definitions"),
    h("div", { class: "forms" },
      card(h("h3", {}, "Export"), h("p", {}, "Users, virtual hosts, permissions, policies, limits, "
        + "exchanges, queues and bindings, as RabbitMQ's definitions JSON."), exportLink),
      card(form("import", "Import", [
        field("Definitions file", { name: "file", type: "file", accept: "application/json,.json" }),
        field("Or paste the JSON", { name: "text", rows: 6, id: "import-text" }),
      ], "Import definitions", async (data) => {
        const file = data.get("file");
        const text = file && file.size ? await file.text() : data.get("text");
        if (!text) throw new Error("choose a file or paste the definitions");
        await api("POST", "/definitions", parseJson(text, "file"));
        flash("Definitions imported");
        await reloadVhosts();
        await refreshAll();
      })))];
}
