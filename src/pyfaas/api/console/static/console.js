// pyfaas console: the few things pages do in the browser. The data calls use the API itself
// under /console/api/v1/... (the server turns the session cookie into the API's token).
"use strict";

const API = "/console/api/v1";

async function api(path, options = {}) {
  const response = await fetch(API + path, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      if (body.error) message = `${body.error.code}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    if (response.status === 401) location.assign(`/console/login?expired=1&next=${encodeURIComponent(location.pathname)}`);
    throw new Error(message);
  }
  return response;
}

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

// --- tables: sort by a header, filter rows by a search box ----------------------------------

function sortable(table) {
  const headers = [...table.tHead.rows[0].cells];
  headers.forEach((th, column) => {
    if (!th.dataset.sort) return;
    th.tabIndex = 0;
    const sort = () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const numeric = th.dataset.sort === "num";
      const key = (row) => {
        const raw = row.cells[column].dataset.value ?? row.cells[column].textContent;
        return numeric ? parseFloat(raw) : raw.toLowerCase();
      };
      const body = table.tBodies[0];
      const rows = [...body.rows].sort((a, b) => {
        const x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
      });
      body.append(...rows);
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
  });
}

function searchable(input, table) {
  const noMatch = document.getElementById("no-match");
  const count = document.getElementById("count");
  input.addEventListener("input", () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      const match = words.every((w) => row.dataset.search.includes(w));
      row.hidden = !match;
      if (match) shown += 1;
    }
    if (count) count.textContent = shown;
    if (noMatch) noMatch.hidden = shown > 0;
  });
}

// --- the function page: invoke, live logs, charts, versions ---------------------------------

function invokeForm(name) {
  const form = document.getElementById("invoke-form");
  if (!form) return;
  const payload = document.getElementById("payload");
  const error = document.getElementById("payload-error");
  const button = document.getElementById("invoke-button");
  document.getElementById("format-payload").addEventListener("click", () => {
    try {
      payload.value = JSON.stringify(JSON.parse(payload.value || "{}"), null, 2);
      show(error, "");
    } catch (e) { show(error, `not JSON: ${e.message}`); }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = payload.value.trim() || "{}";
    try { JSON.parse(text); } catch (e) { show(error, `The event is not JSON: ${e.message}`); return; }
    show(error, "");
    button.disabled = true;
    try {
      const response = await api(`/functions/${encodeURIComponent(name)}/invoke`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Pyfaas-Log-Type": "Tail" },
        body: text,
      });
      const body = await response.text();
      const failed = response.headers.get("x-pyfaas-function-error");
      const status = document.getElementById("result-status");
      status.textContent = failed ? `error (${failed})` : "ok";
      status.className = `status ${failed ? "bad" : "running"}`;
      let pretty = body;
      try { pretty = JSON.stringify(JSON.parse(body), null, 2); } catch (_) { /* as is */ }
      document.getElementById("result-body").textContent = pretty;
      const tail = response.headers.get("x-pyfaas-log-result");
      const log = tail ? new TextDecoder().decode(Uint8Array.from(atob(tail), (c) => c.charCodeAt(0))) : "";
      const report = log.split("\n").filter((line) => line.startsWith("REPORT")).pop() || "";
      document.getElementById("result-report").textContent = report;
      document.getElementById("invoke-result").hidden = false;
      refreshCharts(name);
    } catch (e) {
      show(error, e.message);
    } finally {
      button.disabled = false;
    }
  });
}

function logLine(record) {
  const item = document.createElement("div");
  item.className = "record";
  item.dataset.requestId = record.request_id;
  const head = document.createElement("div");
  head.className = "head";
  const when = new Date(record.timestamp * 1000).toISOString().replace("T", " ").slice(0, 23);
  const link = document.createElement("a");
  link.href = "#logs";
  link.textContent = record.request_id;
  link.addEventListener("click", (e) => {
    e.preventDefault();
    const input = document.getElementById("log-request-id");
    input.value = record.request_id;
    input.dispatchEvent(new Event("change"));
  });
  head.append(`${when} UTC  `, link);
  const text = document.createElement("pre");
  text.textContent = record.text;
  item.append(head, text);
  return item;
}

function liveLogs(name) {
  const box = document.getElementById("log-lines");
  const state = document.getElementById("log-state");
  const requestId = document.getElementById("log-request-id");
  const filter = document.getElementById("log-filter");
  const follow = document.getElementById("log-follow");
  let source = null;
  let generation = 0;

  const params = () => {
    const p = new URLSearchParams();
    if (requestId.value.trim()) p.set("request_id", requestId.value.trim());
    if (filter.value) p.set("filter", filter.value);
    return p;
  };
  const append = (record) => {
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    box.append(logLine(record));
    while (box.childElementCount > 500) box.firstElementChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  };
  const start = async () => {
    const mine = ++generation;
    if (source) { source.close(); source = null; }
    box.replaceChildren();
    state.textContent = "loading";
    const p = params();
    p.set("limit", "50");
    let last = 0;
    try {
      const page = await (await api(`/functions/${encodeURIComponent(name)}/logs?${p}`)).json();
      if (mine !== generation) return;
      page.records.forEach(append);
      last = page.last_id;
    } catch (e) { state.textContent = e.message; return; }
    if (!follow.checked) { state.textContent = "paused"; return; }
    const q = params();
    q.set("after", String(last));
    source = new EventSource(`${API}/functions/${encodeURIComponent(name)}/logs/stream?${q}`);
    source.addEventListener("open", () => { state.textContent = "live"; state.classList.add("on"); });
    source.addEventListener("log", (e) => append(JSON.parse(e.data)));
    source.addEventListener("error", () => { state.textContent = "reconnecting"; state.classList.remove("on"); });
  };
  let timer = null;
  const restart = () => { clearTimeout(timer); timer = setTimeout(start, 250); };
  requestId.addEventListener("input", restart);
  requestId.addEventListener("change", start);
  filter.addEventListener("input", restart);
  follow.addEventListener("change", start);
  start();
}

let chartsBusy = false;
async function refreshCharts(name) {
  if (chartsBusy) return;
  chartsBusy = true;
  try {
    const range = new URLSearchParams(location.search).get("range") || "1h";
    const response = await fetch(`/console/functions/${encodeURIComponent(name)}/charts?range=${encodeURIComponent(range)}`, { credentials: "same-origin" });
    if (response.ok) document.getElementById("charts").innerHTML = await response.text();
  } finally { chartsBusy = false; }
}

async function versions() {
  const section = document.getElementById("versions");
  if (!section) return;
  const body = document.getElementById("versions-body");
  const table = (title, items) => {
    const wrap = document.createElement("div");
    const h = document.createElement("h3");
    h.textContent = title;
    wrap.append(h);
    if (!items.length) { const p = document.createElement("p"); p.className = "empty"; p.textContent = "None."; wrap.append(p); return wrap; }
    const t = document.createElement("table");
    const keys = Object.keys(items[0]).filter((k) => typeof items[0][k] !== "object" || k.includes("weight") || k.includes("routing"));
    const head = t.createTHead().insertRow();
    keys.forEach((k) => { const th = document.createElement("th"); th.textContent = k; head.append(th); });
    const tb = t.createTBody();
    items.forEach((item) => {
      const row = tb.insertRow();
      keys.forEach((k) => { row.insertCell().textContent = typeof item[k] === "object" ? JSON.stringify(item[k]) : String(item[k] ?? ""); });
    });
    wrap.append(t);
    return wrap;
  };
  const list = (data) => Object.values(data).find(Array.isArray) || [];
  try {
    const [v, a] = await Promise.all([api(section.dataset.versions.slice(API.length)), api(section.dataset.aliases.slice(API.length)).catch(() => null)]);
    body.className = "";
    body.replaceChildren(table("Versions", list(await v.json())), table("Aliases (with canary weights)", a ? list(await a.json()) : []));
  } catch (e) { body.textContent = e.message; }
}

// --- the async page: redrive ---------------------------------------------------------------

function redrive() {
  const error = document.getElementById("redrive-error");
  document.querySelectorAll("button.redrive").forEach((button) => {
    button.addEventListener("click", async () => {
      const body = button.dataset.requestId ? { request_ids: [button.dataset.requestId] }
        : button.dataset.function ? { function: button.dataset.function } : { all: true };
      button.disabled = true;
      try {
        const moved = (await (await api("/dlq/redrive", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        })).json()).redriven;
        moved.forEach((id) => {
          const row = document.querySelector(`tr[data-request-id="${CSS.escape(id)}"]`);
          if (row) { row.classList.add("redriven"); row.lastElementChild.textContent = "redriven"; }
        });
        if (!button.dataset.requestId) location.reload();
      } catch (e) { show(error, e.message); button.disabled = false; }
    });
  });
}

// --- login -----------------------------------------------------------------------------------

function login() {
  const form = document.getElementById("login");
  if (!form) return;
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    const response = await fetch("/console/session", {
      method: "POST", credentials: "same-origin", headers: { Authorization: `Bearer ${token}` },
    });
    if (response.ok) { location.assign(form.dataset.next); return; }
    let message = `HTTP ${response.status}`;
    try { const body = await response.json(); message = body.error.message; } catch (_) { /* as is */ }
    show(error, message);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach(sortable);
  const search = document.getElementById("search");
  const functions = document.getElementById("functions");
  if (search && functions) searchable(search, functions);
  const more = document.getElementById("more-rows");
  if (functions && more) {
    // The first rows paint alone; the others join the table right after that paint.
    requestAnimationFrame(() => setTimeout(() => {
      functions.tBodies[0].append(...more.content.querySelector("tbody").rows);
      more.remove();
      functions.dataset.complete = "true";
    }, 0));
  } else if (functions) {
    functions.dataset.complete = "true";
  }
  const fn = document.getElementById("function");
  if (fn) {
    invokeForm(fn.dataset.name);
    liveLogs(fn.dataset.name);
    versions();
  }
  redrive();
  login();
});
