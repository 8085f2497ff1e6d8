// AkiDB console: a small single-page app over the gateway's own HTTP API. No build step, no CDN.
"use strict";

const view = document.getElementById("view");
const errorBox = document.getElementById("error");
let timer = null; // the workers page's refresh, stopped when leaving it

// --- HTTP, with the API key kept in sessionStorage and asked for on a 401
function askKey() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => { sessionStorage.setItem("akidb-key", input.value); resolve(); }, { once: true });
    dialog.showModal();
  });
}

async function api(method, path, body) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem("akidb-key");
    if (key) headers.Authorization = "Bearer " + key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 401) { await askKey(); continue; }
    const text = await res.text();
    const data = res.headers.get("Content-Type")?.includes("json") && text ? JSON.parse(text) : text;
    if (!res.ok) {
      const err = data && data.error ? `${data.error.code}: ${data.error.message}` : `HTTP ${res.status}`;
      throw new Error(err);
    }
    return data;
  }
  throw new Error("unauthorized: the API key was refused");
}

// --- DOM helpers (text always set as text, never parsed as HTML)
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) el.append(c instanceof Node ? c : String(c ?? ""));
  return el;
}
function table(headers, rows, attrs = {}) {
  return h("table", attrs, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))), h("tbody", {}, rows));
}
const num = (x, digits = 4) => (typeof x === "number" ? x.toFixed(digits) : "");
const snippet = (s, n = 120) => (s && s.length > n ? s.slice(0, n - 1) + "…" : s || "");
const json = (v) => (v === null || v === undefined ? "" : JSON.stringify(v));
const enc = encodeURIComponent;

function show(...nodes) { view.replaceChildren(...nodes); }
function fail(err) { errorBox.textContent = String(err.message || err); errorBox.hidden = false; }
async function guarded(fn) {
  errorBox.hidden = true;
  try { await fn(); } catch (err) { fail(err); }
}

// --- pages
async function collectionsPage() {
  const { collections } = await api("GET", "/collections");
  const rows = collections.map((c) => h("tr", { "data-collection": c.name },
    h("td", {}, h("a", { href: `#/collection/${enc(c.name)}` }, c.name)),
    h("td", { class: "num" }, c.dimension), h("td", {}, c.metric), h("td", {}, c.model),
    h("td", { class: "num" }, c.document_count),
    h("td", {}, h("button", { class: "danger", onclick: () => guarded(async () => {
      if (!confirm(`Delete collection "${c.name}" and its ${c.document_count} documents?`)) return;
      await api("DELETE", `/collections/${enc(c.name)}`);
      await collectionsPage();
    }) }, "Delete"))));
  const name = h("input", { id: "new-name", placeholder: "name", required: true });
  const model = h("input", { id: "new-model", placeholder: "model (default)" });
  const metric = h("select", { id: "new-metric" }, ["cosine", "l2", "ip"].map((m) => h("option", {}, m)));
  const form = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); guarded(async () => {
    const body = { name: name.value, metric: metric.value };
    if (model.value) body.model = model.value;
    await api("POST", "/collections", body);
    await collectionsPage();
  }); } }, name, model, metric, h("button", { id: "create" }, "Create collection"));
  show(h("h2", {}, "Collections"), form,
    table(["name", "dimension", "metric", "model", "documents", ""], rows, { id: "collections" }));
}

async function collectionPage(name, cursors = [null]) {
  const after = cursors[cursors.length - 1];
  const info = await api("GET", `/collections/${enc(name)}`);
  const page = await api("GET", `/collections/${enc(name)}/documents?limit=20${after ? "&after=" + enc(after) : ""}`);
  const detail = h("div", { id: "doc-detail" });
  const rows = page.documents.map((d) => h("tr", {},
    h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); guarded(() => openDoc(name, d.id, detail, cursors)); } }, d.id)),
    h("td", {}, snippet(d.text, 100)), h("td", {}, snippet(json(d.metadata), 80))));
  const nav = h("div", { class: "row" },
    h("button", { class: "plain", disabled: cursors.length <= 1, onclick: () => guarded(() => collectionPage(name, cursors.slice(0, -1))) }, "← Previous"),
    h("span", { class: "muted" }, `page ${cursors.length} · ${page.total} documents`),
    h("button", { class: "plain", disabled: !page.next, onclick: () => guarded(() => collectionPage(name, [...cursors, page.next])) }, "Next →"));
  show(h("h2", {}, `Collection ${info.name}`),
    h("p", { class: "muted" }, `${info.id} · ${info.dimension}-d ${info.metric} · model ${info.model} · ${info.document_count} documents`),
    table(["id", "text", "metadata"], rows, { id: "documents" }), nav, detail);
}

async function openDoc(name, id, box, cursors) {
  const d = await api("GET", `/collections/${enc(name)}/documents/${enc(id)}?include_vector=true`);
  const norm = Math.sqrt((d.vector || []).reduce((s, x) => s + x * x, 0));
  box.replaceChildren(h("h3", {}, `Document ${d.id}`),
    h("p", { class: "muted" }, `vector norm ${norm.toFixed(4)} · ${d.vector ? d.vector.length : 0} dimensions · ${d.vector_generated ? "embedded by the server" : "vector given"}`),
    h("pre", { id: "doc-text" }, d.text ?? "(no text)"), h("pre", {}, JSON.stringify(d.metadata, null, 2)),
    h("button", { class: "danger", onclick: () => guarded(async () => {
      if (!confirm(`Delete document "${d.id}"?`)) return;
      await api("DELETE", `/collections/${enc(name)}/documents/${enc(d.id)}`);
      await collectionPage(name, cursors);
    }) }, "Delete document"));
}

// One table of search hits; `plain` (id → place in the plain ordering) adds where a reranked hit was before.
function hitsTable(results, id, plain) {
  const headers = plain ? ["#", "rerank score", "retrieval score", "was", "id", "text"] : ["#", "score", "id", "text", "metadata"];
  const rows = results.map((r, i) => {
    const cells = [h("td", { class: "num" }, i + 1), h("td", { class: "num" }, num(r.score))];
    if (plain) {
      const was = plain.get(r.id);
      const moved = was === undefined ? "beyond k" : was === i + 1 ? "=" : `#${was} ${was > i + 1 ? "↑" : "↓"}`;
      cells.push(h("td", { class: "num" }, num(r.retrieval_score)), h("td", { class: "moved" }, moved));
    }
    cells.push(h("td", { class: "hit-id" }, r.id), h("td", {}, snippet(r.text, plain ? 80 : 120)));
    if (!plain) cells.push(h("td", {}, snippet(json(r.metadata), 80)));
    return h("tr", {}, cells);
  });
  return table(headers, rows, { id });
}

async function searchPage() {
  const [{ collections }, { models }] = await Promise.all([api("GET", "/collections"), api("GET", "/models")]);
  const col = h("select", { id: "search-collection" }, collections.map((c) => h("option", {}, c.name)));
  const mode = h("select", { id: "search-mode" }, h("option", { value: "text" }, "text"), h("option", { value: "vector" }, "vector (JSON array)"));
  const retrieval = h("select", { id: "search-retrieval" }, ["dense", "keyword", "hybrid"].map((m) => h("option", {}, m)));
  const query = h("textarea", { id: "search-query", rows: 2, placeholder: "What is machine learning?" });
  const k = h("input", { id: "search-k", type: "number", value: 10, min: 1, max: 1000, style: "width:5rem" });
  const filter = h("textarea", { id: "search-filter", rows: 2, placeholder: '{"topic": "ai"}  (optional)' });
  // Reranking reads the query's text: the switch asks the search for both orderings and shows them side by side.
  const rerank = h("input", { id: "search-rerank", type: "checkbox" });
  const rerankers = models.filter((m) => m.kind === "rerank").map((m) => h("option", { value: m.name }, m.name));
  const reranker = h("select", { id: "search-reranker" }, h("option", { value: "" }, "default reranker"), rerankers);
  const candidates = h("input", { id: "search-candidates", type: "number", value: 50, min: 1, max: 1000, style: "width:5rem" });
  const out = h("div", { id: "search-results" });
  const run = () => guarded(async () => {
    const body = { k: Number(k.value), include: ["text", "metadata"] };
    if (mode.value === "text") body.query = query.value; else body.vector = JSON.parse(query.value);
    if (retrieval.value !== "dense") body.mode = retrieval.value;
    if (filter.value.trim()) body.filter = JSON.parse(filter.value);
    const path = `/collections/${enc(col.value)}/search`;
    if (!rerank.checked) {
      const res = await api("POST", path, body);
      out.replaceChildren(
        h("p", { class: "muted", id: "search-meta" }, `${res.results.length} results · took ${res.took_ms} ms · query embedded: ${res.query_embedded}`),
        hitsTable(res.results, "search-hits"));
      return;
    }
    const option = { candidates: Number(candidates.value) };
    if (reranker.value) option.model = reranker.value;
    const [plain, reranked] = await Promise.all([
      api("POST", path, body),
      api("POST", path, { ...body, include: ["text", "ranks"], rerank: option }),
    ]);
    const places = new Map(plain.results.map((r, i) => [r.id, i + 1]));
    out.replaceChildren(
      h("p", { class: "muted", id: "search-meta" }, `${retrieval.value} search: ${plain.took_ms} ms · reranked (${option.model || "default reranker"}, ${option.candidates} candidates): ${reranked.took_ms} ms`),
      h("div", { class: "side-by-side" },
        h("section", {}, h("h3", {}, `${retrieval.value}`), hitsTable(plain.results, "search-plain")),
        h("section", {}, h("h3", {}, "reranked"), hitsTable(reranked.results, "search-reranked", places))));
  });
  show(h("h2", {}, "Search playground"),
    h("div", { class: "row" }, "collection", col, "query as", mode, "search", retrieval, "k", k), query,
    h("div", { class: "muted" }, "filter (JSON, optional)"), filter,
    h("div", { class: "row" }, h("label", {}, rerank, " rerank"), reranker, "candidates", candidates),
    h("div", { class: "row" }, h("button", { id: "search-run", onclick: run }, "Search")), out);
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / (Math.sqrt(na * nb) || 1);
}

async function embedPage() {
  const texts = h("textarea", { id: "embed-texts", rows: 5 },
    "Machine learning is a subset of artificial intelligence\nWhat is machine learning?\nParis is the capital of France");
  const out = h("div", { id: "embed-results" });
  const run = () => guarded(async () => {
    const lines = texts.value.split("\n").map((s) => s.trim()).filter(Boolean);
    const res = await api("POST", "/embed", { texts: lines });
    const v = res.embeddings;
    const heat = lines.map((t, i) => h("tr", {}, h("th", {}, snippet(t, 40)), v.map((_, j) => {
      const s = cosine(v[i], v[j]);
      const light = 100 - Math.round(Math.max(0, s) * 55);
      return h("td", { style: `background: hsl(222 70% ${light}%); color: ${light < 65 ? "#fff" : "#1d2330"}`, title: `${i + 1}·${j + 1}` }, s.toFixed(2));
    })));
    out.replaceChildren(
      h("div", { class: "cards" },
        h("div", { class: "card" }, h("div", { class: "muted" }, "dimension"), h("div", { class: "big", id: "embed-dim" }, res.dimension)),
        h("div", { class: "card" }, h("div", { class: "muted" }, "tokens"), h("div", { class: "big" }, res.usage.total_tokens)),
        h("div", { class: "card" }, h("div", { class: "muted" }, "time"), h("div", { class: "big" }, `${res.usage.duration_ms} ms`)),
        h("div", { class: "card" }, h("div", { class: "muted" }, "model"), h("div", { class: "big" }, res.model))),
      h("h3", {}, "Cosine similarity"),
      table(["", ...lines.map((_, i) => i + 1)], heat, { class: "heat", id: "embed-heat" }));
  });
  show(h("h2", {}, "Embed playground"), h("p", { class: "muted" }, "One text per line."), texts,
    h("div", { class: "row" }, h("button", { id: "embed-run", onclick: run }, "Embed")), out);
}

// --- workers & models, with texts/s and p95 over the last minute from GET /metrics
function parseMetrics(text) {
  let texts = 0;
  const buckets = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-z_]+)(\{[^}]*\})?\s+([^\s]+)/);
    if (!m) continue;
    const value = Number(m[3]);
    if (m[1] === "akidb_embedding_texts_total") texts += value;
    if (m[1] === "akidb_embedding_latency_seconds_bucket") {
      const le = (m[2] || "").match(/le="([^"]+)"/)[1];
      buckets.set(le, (buckets.get(le) || 0) + value);
    }
  }
  return { t: Date.now() / 1000, texts, buckets };
}

function p95(now, then) {
  const les = [...now.buckets.keys()].sort((a, b) => Number(a) - Number(b));
  const counts = les.map((le) => now.buckets.get(le) - (then.buckets.get(le) || 0));
  const total = counts[counts.length - 1] || 0;
  if (total <= 0) return 0;
  const rank = 0.95 * total;
  let prevLe = 0, prevCount = 0;
  for (let i = 0; i < les.length; i++) {
    const le = les[i] === "+Inf" ? prevLe : Number(les[i]);
    if (counts[i] >= rank) return (prevLe + (le - prevLe) * ((rank - prevCount) / ((counts[i] - prevCount) || 1))) * 1000;
    prevLe = le; prevCount = counts[i];
  }
  return prevLe * 1000;
}

function spark(values, id) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("id", id);
  svg.setAttribute("viewBox", "0 0 280 70");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(ns, "polyline");
  const max = Math.max(...values, 1e-9);
  line.setAttribute("points", values.map((v, i) => `${(i / Math.max(values.length - 1, 1)) * 280},${66 - (v / max) * 62}`).join(" "));
  svg.append(line);
  return svg;
}

const history = { samples: [], rate: [], p95: [] };

async function workersPage() {
  const box = h("div", { id: "workers-live" });
  show(h("h2", {}, "Workers & models"), box);
  const refresh = () => guarded(async () => {
    // A key limited to some collections may not read /metrics (its labels name every collection): the charts
    // then stay flat, and the workers and models are still shown.
    const metrics = api("GET", "/metrics").catch(() => "");
    const [models, workers, metricsText] = await Promise.all([api("GET", "/models"), api("GET", "/workers"), metrics]);
    const sample = parseMetrics(metricsText);
    history.samples.push(sample);
    history.samples = history.samples.filter((s) => sample.t - s.t <= 60);
    const first = history.samples[0];
    const dt = sample.t - first.t;
    history.rate.push(dt > 0 ? (sample.texts - first.texts) / dt : 0);
    history.p95.push(p95(sample, first));
    history.rate = history.rate.slice(-40); history.p95 = history.p95.slice(-40);
    const rateChart = spark(history.rate, "chart-rate"), p95Chart = spark(history.p95, "chart-p95");
    box.replaceChildren(
      h("div", { class: "cards" },
        h("div", { class: "card" }, h("div", { class: "muted" }, "texts/s, last minute"), h("div", { class: "big", id: "rate" }, history.rate.at(-1).toFixed(1)), rateChart),
        h("div", { class: "card" }, h("div", { class: "muted" }, "p95 latency, last minute"), h("div", { class: "big", id: "p95" }, `${history.p95.at(-1).toFixed(1)} ms`), p95Chart),
        h("div", { class: "card" }, h("div", { class: "muted" }, "queue depth (texts)"), h("div", { class: "big", id: "queue-depth" }, workers.queue_depth))),
      h("h3", {}, "Workers"),
      table(["worker", "host", "pid", "models", "backend", "device", "precision", "in flight / capacity"],
        workers.workers.map((w) => h("tr", { class: "worker" }, h("td", {}, w.worker_id), h("td", {}, w.host), h("td", { class: "num" }, w.pid),
          h("td", {}, w.models.join(", ")), h("td", {}, w.backend), h("td", {}, w.device), h("td", {}, w.precision),
          h("td", { class: "num" }, `${w.inflight} / ${w.capacity}`))), { id: "workers" }),
      h("h3", {}, "Models"),
      table(["model", "dimension", "max tokens", "pooling", "backend", "device", "precision", "workers"],
        models.models.map((m) => h("tr", {}, h("td", {}, m.name + (m.default ? " (default)" : "")), h("td", { class: "num" }, m.dimension),
          h("td", { class: "num" }, m.max_tokens), h("td", {}, m.pooling), h("td", {}, m.backend), h("td", {}, m.device),
          h("td", {}, m.precision), h("td", { class: "num" }, m.workers))), { id: "models" }));
  });
  await refresh();
  timer = setInterval(refresh, 3000);
}

// --- routing: #/collections, #/collection/NAME, #/search, #/embed, #/workers
function route() {
  clearInterval(timer);
  const [, page, arg] = (location.hash || "#/collections").split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page || (page === "collection" && a.dataset.page === "collections"));
  const pages = { collections: collectionsPage, collection: () => collectionPage(decodeURIComponent(arg)), search: searchPage, embed: embedPage, workers: workersPage };
  guarded(pages[page] || collectionsPage);
}
window.addEventListener("hashchange", route);
route();
