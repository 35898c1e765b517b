// The operator console's components (Alpine.js, CSP build: no eval, no inline script).
//
// Every piece of data comes from the service's /v1 API, called with the admin
// token from sessionStorage as "Authorization: Bearer"; nothing uses a cookie.
// Keys and values are untrusted: they are only ever put on the page as text
// (x-text, textContent) or as a blob: image, never as HTML.
// One closure: top-level functions would be globals, which the CSP build refuses to call.
(() => {
"use strict";

const TOKEN = "pluginkv.admin-token";
const UI = document.body.dataset.ui;
const API = document.body.dataset.api;
const PAGE = document.body.dataset.page;
const KEYS_PER_PAGE = 50;
const BROWSE_TOKEN_SECONDS = 900;
const SAMPLE_MS = 1000; // the charts read /metrics once a second
const SAMPLES = 30; // half a minute on each chart
// The key browser follows the change feed with long polls (GET /v1/changes?wait=):
const LONG_POLL_SECONDS = 25; // under the idle timeout of common proxies
const CHANGES_PER_READ = 1000; // or the store's PLUGINKV_MAX_PAGE_SIZE, if lower
const REFRESH_GAP_MS = 1000; // at most one re-read of the listing a second
const RETRY_MS = [1000, 2000, 4000, 8000, 15000, 30000]; // after the 1st, 2nd, ... failure
const HIDDEN_STOP_MS = 60000; // a tab hidden this long stops following until shown again

function adminToken() {
  return sessionStorage.getItem(TOKEN);
}

class ApiError extends Error {
  constructor(status, code, message, etag) {
    super(message);
    this.status = status;
    this.code = code;
    this.etag = etag;
  }
}

// One call of the API; JSON in and out unless `raw` (bytes) is given or asked for.
async function api(method, path, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = options.token || adminToken();
  headers.set("Authorization", "Bearer " + token);
  let body;
  if (options.raw !== undefined) {
    body = options.raw;
    if (!headers.has("Content-Type")) headers.set("Content-Type", "application/octet-stream");
  } else if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers.set("Content-Type", "application/json");
  }
  const response = await fetch(API + path, {
    method, headers, body, cache: "no-store", credentials: "omit", redirect: "error",
    signal: options.signal,
  });
  if (!response.ok) {
    let code = "http_" + response.status;
    let message = response.status + " " + response.statusText;
    try {
      const error = (await response.json()).error;
      code = error.code;
      message = error.message;
    } catch (ignored) { /* not the service's JSON error */ }
    if (response.status === 401 && !options.token) {
      signOut();
    }
    throw new ApiError(response.status, code, message, versionOf(response));
  }
  if (options.bytes) {
    return { bytes: new Uint8Array(await response.arrayBuffer()), version: versionOf(response),
             expires: response.headers.get("X-Expires-At"), response };
  }
  if (response.status === 204) {
    return { version: versionOf(response) };
  }
  return response.json();
}

function versionOf(response) {
  const etag = response.headers.get("ETag");
  return etag ? Number(etag.replaceAll('"', "")) : null;
}

function signOut() {
  sessionStorage.removeItem(TOKEN);
  window.location.assign(UI + "/signin");
}

function showError(error) {
  Alpine.store("console").error = error instanceof Error ? error.message : String(error);
}

function bytesText(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
}

function durationText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return d + " d " + h + " h";
  if (h) return h + " h " + m + " min";
  if (m) return m + " min " + (s % 60) + " s";
  return s + " s";
}

function timeText(unixSeconds) {
  return new Date(unixSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function textCell(text, className) {
  const cell = document.createElement("td");
  if (className) cell.className = className;
  cell.textContent = text;
  return cell;
}

function keyPath(key) {
  return "/v1/kv/" + key.split("/").map(encodeURIComponent).join("/");
}

// The key browser's change feed (one key browser a page), kept out of Alpine's reactive
// data: a generation number that every start and stop bumps (a poll of an older one
// ends quietly), the position to resume from, the poll in flight, the timers, and the
// changes read but not yet acted on.
const FEED = {
  generation: 0, since: null, controller: null, timer: null, hiddenTimer: null, expiry: null,
  paused: false, failures: 0, pending: new Map(), listeners: [],
};

// Keys in the store's order, by code point (JavaScript's < compares UTF-16 units).
function keyOrder(a, b) {
  let i = 0;
  while (i < a.length && i < b.length) {
    const x = a.codePointAt(i), y = b.codePointAt(i);
    if (x !== y) return x < y ? -1 : 1;
    i += x > 0xffff ? 2 : 1;
  }
  return a.length === b.length ? 0 : (a.length < b.length ? -1 : 1);
}

// -- values: text, JSON, images, or hex -----------------------------------------------------
const IMAGE_TYPES = [
  [[0x89, 0x50, 0x4e, 0x47], "image/png"],
  [[0xff, 0xd8, 0xff], "image/jpeg"],
  [[0x47, 0x49, 0x46, 0x38], "image/gif"],
  [[0x52, 0x49, 0x46, 0x46], "image/webp"],
];

function imageType(bytes) {
  for (const [magic, type] of IMAGE_TYPES) {
    if (magic.every((b, i) => bytes[i] === b)) return type;
  }
  return null;
}

function hexDump(bytes) {
  const lines = [];
  const shown = Math.min(bytes.length, 64 * 1024);
  for (let offset = 0; offset < shown; offset += 16) {
    const row = Array.from(bytes.subarray(offset, offset + 16));
    const hex = row.map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(offset.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + "  " + ascii);
  }
  if (shown < bytes.length) lines.push("… " + (bytes.length - shown) + " more bytes");
  return lines.join("\n");
}

// -- small live charts from /metrics ---------------------------------------------------------
function apiTotals(text) {
  let count = 0, seconds = 0;
  for (const line of text.split("\n")) {
    if (!line.includes('route="/v1/')) continue;
    // A long poll or an event stream lasts as long as it waits: not a request's latency.
    if (line.includes('route="/v1/changes"')) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("pluginkv_http_request_duration_seconds_count{")) count += value;
    else if (line.startsWith("pluginkv_http_request_duration_seconds_sum{")) seconds += value;
  }
  return { count, seconds, at: performance.now() / 1000 };
}

// The last SAMPLES values as an SVG polyline in a 240 x 60 box, newest at the right.
function points(values) {
  if (values.length === 0) return "";
  const top = Math.max(...values, 1e-9);
  const step = 240 / (SAMPLES - 1);
  const shown = values.length === 1 ? [values[0], values[0]] : values;
  const start = SAMPLES - shown.length;
  return shown.map((v, i) => ((start + i) * step).toFixed(1) + "," + (58 - (v / top) * 54).toFixed(1))
    .join(" ");
}

// The key browser's first page is asked for as soon as this script runs, while
// Alpine starts: the scope token and the listing do not wait for the components.
function firstPageEarly() {
  const params = new URLSearchParams(window.location.search);
  const workspace = params.get("workspace");
  const plugin = params.get("plugin");
  if (PAGE !== "/keys" || !adminToken() || !workspace || !plugin) return null;
  const prefix = params.get("prefix") || "";
  const token = api("POST", "/v1/admin/tokens", {
    json: { workspace, plugin, ttl: BROWSE_TOKEN_SECONDS },
  });
  const query = new URLSearchParams({ prefix, limit: String(KEYS_PER_PAGE) });
  const page = token.then((issued) => api("GET", "/v1/keys?" + query, { token: issued.token }));
  token.catch(() => {}); // reported where it is used
  page.catch(() => {});
  return { workspace, plugin, prefix, token, page };
}

const EARLY = firstPageEarly();

// The store's description, read once per page: the bar and the key browser's limits.
const INFO = PAGE !== "/signin" && adminToken() ? api("GET", "/v1/admin/info") : null;
if (INFO) INFO.catch(() => {}); // reported where it is used

document.addEventListener("alpine:init", () => {
  Alpine.store("console", { readOnly: false, info: null, error: "" });

  Alpine.data("shell", () => ({
    async init() {
      if (PAGE === "/signin") return;
      if (!adminToken()) {
        window.location.assign(UI + "/signin");
        return;
      }
      try {
        const info = await INFO;
        Alpine.store("console").info = info;
        Alpine.store("console").readOnly = info.read_only;
      } catch (error) {
        showError(error);
      }
    },
    signOut,
  }));

  Alpine.data("signin", () => ({
    token: "",
    message: "",
    busy: false,
    async submit() {
      this.busy = true;
      this.message = "";
      try {
        await api("GET", "/v1/admin/info", { token: this.token.trim() });
        sessionStorage.setItem(TOKEN, this.token.trim());
        window.location.assign(UI + "/");
      } catch (error) {
        this.message = error.status === 403
          ? "This is not an admin token: " + error.message
          : error.message;
      } finally {
        this.busy = false;
      }
    },
  }));

  Alpine.data("overview", () => ({
    info: {},
    totals: { scopes: "", keys: "", size: "", plugins: "" },
    uptime: "",
    mode: "",
    rates: [],
    latencies: [],
    rateText: "…",
    latencyText: "…",
    ratePoints: "",
    latencyPoints: "",
    last: null,
    async init() {
      if (!adminToken()) return;
      await this.load();
      await this.sample();
      this.timer = setInterval(() => this.sample(), SAMPLE_MS);
      this.clock = setInterval(() => this.tick(), 1000);
    },
    destroy() {
      clearInterval(this.timer);
      clearInterval(this.clock);
    },
    async load() {
      try {
        const [info, scopes, plugins] = await Promise.all([
          api("GET", "/v1/admin/info"),
          api("GET", "/v1/admin/scopes"),
          api("GET", "/v1/admin/plugins"),
        ]);
        this.info = info;
        this.startedAt = Date.now() / 1000 - info.uptime_seconds;
        this.mode = info.read_only ? "read-only" : "read and write";
        this.tick();
        const list = scopes.scopes;
        this.totals = {
          scopes: list.length,
          keys: list.reduce((n, s) => n + s.keys, 0),
          size: bytesText(list.reduce((n, s) => n + s.bytes_used, 0)),
          plugins: plugins.plugins.length,
        };
      } catch (error) {
        showError(error);
      }
    },
    tick() {
      if (this.startedAt) this.uptime = durationText(Date.now() / 1000 - this.startedAt);
    },
    async sample() {
      let now;
      try {
        const response = await fetch(API + "/metrics", { cache: "no-store", credentials: "omit" });
        now = apiTotals(await response.text());
      } catch (error) {
        return; // the next sample tries again
      }
      const last = this.last;
      this.last = now;
      if (last === null) return;
      const requests = Math.max(0, now.count - last.count);
      const rate = requests / Math.max(now.at - last.at, 1e-3);
      const latency = requests ? ((now.seconds - last.seconds) / requests) * 1000 : 0;
      this.rates = [...this.rates, rate].slice(-SAMPLES);
      this.latencies = [...this.latencies, latency].slice(-SAMPLES);
      this.rateText = rate.toFixed(1) + " /s";
      this.latencyText = requests ? latency.toFixed(2) + " ms" : "no requests";
      this.ratePoints = points(this.rates);
      this.latencyPoints = points(this.latencies);
    },
  }));

  Alpine.data("scopes", () => ({
    rows: [],
    filter: "",
    sort: "fill",
    purging: { id: "" },
    purgeText: "",
    async init() {
      if (adminToken()) await this.load();
    },
    async load() {
      try {
        const listed = await api("GET", "/v1/admin/scopes");
        this.rows = listed.scopes.map((s) => this.describe(s));
      } catch (error) {
        showError(error);
      }
    },
    // Not named "row": methods share a namespace with the x-for variable.
    describe(s) {
      const id = s.workspace + "/" + s.plugin;
      const fill = s.quota_bytes > 0 ? s.bytes_used / s.quota_bytes : 0;
      const query = new URLSearchParams({ workspace: s.workspace, plugin: s.plugin });
      return {
        ...s,
        id,
        fill,
        high: s.quota_bytes * 0.9,
        quotaInput: "",
        usageText: bytesText(s.bytes_used) + " of " + bytesText(s.quota_bytes)
          + " (" + (fill * 100).toFixed(fill < 0.01 && fill > 0 ? 2 : 0) + "%)",
        keysHref: UI + "/keys?" + query.toString(),
      };
    },
    get shown() {
      const needle = this.filter.trim().toLowerCase();
      const rows = this.rows.filter((r) => !needle || r.id.toLowerCase().includes(needle));
      const by = this.sort;
      if (by === "name") return rows.sort((a, b) => a.id.localeCompare(b.id));
      return rows.sort((a, b) => b[by] - a[by] || a.id.localeCompare(b.id));
    },
    get empty() {
      return this.rows.length === 0;
    },
    async saveQuota(row) {
      const text = String(row.quotaInput).trim();
      try {
        await api("PUT", "/v1/admin/quota", {
          json: { workspace: row.workspace, plugin: row.plugin,
                  quota_bytes: text === "" ? null : Number(text) },
        });
        await this.load();
      } catch (error) {
        showError(error);
      }
    },
    askPurge(row) {
      this.purging = row;
      this.purgeText = "";
      this.$refs.purgeDialog.showModal();
    },
    closePurge() {
      this.$refs.purgeDialog.close();
    },
    get cannotPurge() {
      return this.purgeText !== this.purging.id;
    },
    async purge() {
      if (this.cannotPurge) return;
      try {
        await api("POST", "/v1/admin/purge",
                  { json: { workspace: this.purging.workspace, plugin: this.purging.plugin } });
        this.closePurge();
        await this.load();
      } catch (error) {
        this.closePurge();
        showError(error);
      }
    },
  }));

  Alpine.data("keys", () => ({
    workspace: "",
    plugin: "",
    prefix: "",
    // What the listing shows: the scope and prefix of the last search, not the inputs
    // being typed.
    listedScope: { workspace: "", plugin: "" },
    listedPrefix: "",
    scopeToken: null,
    listed: false,
    entries: [],
    cursors: [],   // the cursor of each page shown so far; null for the first
    floors: [],    // the last key before each page shown so far; null for the first
    nextCursor: null,
    current: null,
    currentKey: "",
    currentVersion: null,
    currentMeta: "",
    currentExpires: null,
    // The shown entry's metadata and content type, as headers: a save keeps them (a PUT
    // stores only what it sends).
    keptHeaders: {},
    bytes: null,
    kind: "",
    editText: "",
    loadedText: "",
    imageUrl: "",
    hexText: "",
    ttlInput: "",
    loadedTtl: "",
    conflict: "",
    notice: "",
    underneath: "",
    confirmingDelete: false,
    writing: 0,
    liveText: "",
    liveClass: "live",
    async init() {
      const params = new URLSearchParams(window.location.search);
      this.workspace = params.get("workspace") || "";
      this.plugin = params.get("plugin") || "";
      this.prefix = params.get("prefix") || "";
      if (!adminToken()) return;
      this.watchVisibility();
      if (!this.workspace || !this.plugin) {
        await this.offerScopes();
        return;
      }
      if (EARLY && EARLY.workspace === this.workspace && EARLY.plugin === this.plugin
          && EARLY.prefix === this.prefix) {
        this.listedScope = { workspace: this.workspace, plugin: this.plugin };
        this.listedPrefix = this.prefix;
        this.cursors = [null];
        this.floors = [null];
        try {
          const issued = await EARLY.token;
          this.scopeToken = { scope: this.workspace + "/" + this.plugin, token: issued.token,
                              until: issued.expires_at };
          this.showPage(await EARLY.page);
        } catch (error) {
          showError(error);
        }
        this.follow(null);
        return;
      }
      await this.search();
    },
    destroy() {
      this.stopFollowing();
      for (const [target, name, handler] of FEED.listeners) {
        target.removeEventListener(name, handler);
      }
    },
    choices: [],
    get choosing() { return !this.listed && this.choices.length > 0; },
    async offerScopes() {
      try {
        const listed = await api("GET", "/v1/admin/scopes");
        this.choices = listed.scopes.map((s) => ({
          id: s.workspace + "/" + s.plugin,
          href: UI + "/keys?" + new URLSearchParams({ workspace: s.workspace, plugin: s.plugin }),
          keysText: s.keys + (s.keys === 1 ? " key" : " keys"),
        }));
      } catch (error) {
        showError(error);
      }
    },
    // The admin token reads no keys: the console takes a short-lived token of
    // the scope and browses with it, through the routes a plugin uses.
    async tokenFor() {
      const { workspace, plugin } = this.listedScope;
      if (this.scopeToken && this.scopeToken.scope === workspace + "/" + plugin
          && this.scopeToken.until > Date.now() / 1000 + 30) {
        return this.scopeToken.token;
      }
      const issued = await api("POST", "/v1/admin/tokens", {
        json: { workspace, plugin, ttl: BROWSE_TOKEN_SECONDS },
      });
      this.scopeToken = { scope: workspace + "/" + plugin, token: issued.token,
                          until: issued.expires_at };
      return issued.token;
    },
    async scoped(method, path, options = {}) {
      try {
        return await api(method, path, { ...options, token: await this.tokenFor() });
      } catch (error) {
        if (error.status !== 401) throw error;
        this.scopeToken = null; // revoked since: take a new one, once
        return api(method, path, { ...options, token: await this.tokenFor() });
      }
    },
    async search() {
      const query = new URLSearchParams({ workspace: this.workspace, plugin: this.plugin });
      if (this.prefix) query.set("prefix", this.prefix);
      window.history.replaceState(null, "", UI + "/keys?" + query.toString());
      this.listedScope = { workspace: this.workspace, plugin: this.plugin };
      this.listedPrefix = this.prefix;
      this.cursors = [null];
      this.floors = [null];
      this.stopFollowing();
      await this.loadPage();
      this.follow(null);
    },
    async loadPage() {
      const query = new URLSearchParams({ prefix: this.listedPrefix,
                                          limit: String(KEYS_PER_PAGE) });
      const cursor = this.cursors[this.cursors.length - 1];
      if (cursor) query.set("cursor", cursor);
      try {
        this.showPage(await this.scoped("GET", "/v1/keys?" + query.toString()));
      } catch (error) {
        showError(error);
      }
    },
    showPage(page) {
      const now = Date.now() / 1000;
      this.entries = page.entries.map((e) => ({
        ...e,
        sizeText: bytesText(e.size),
        ttlText: e.expires_at ? durationText(e.expires_at - now) : "none",
        updatedText: timeText(e.updated_at),
      }));
      this.renderRows();
      this.nextCursor = page.next_cursor;
      this.listed = true;
      Alpine.store("console").error = "";
      this.expireLater();
      // For benchmarks/bench_console.py: when the page's keys are on the screen.
      this.$nextTick(() => performance.mark("pluginkv:keys-shown"));
    },
    // The rows in plain DOM, each cell as text: Alpine's x-for evaluated eight
    // expressions a row through the CSP build's interpreter, which took longer
    // than fetching the page (bench_console.py).
    renderRows() {
      const selected = this.current ? this.currentKey : null;
      const rows = this.entries.map((entry) => {
        const row = document.createElement("tr");
        if (entry.key === selected) row.className = "selected";
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link mono";
        button.dataset.testid = "key";
        button.textContent = entry.key;
        button.addEventListener("click", () => this.open(entry));
        const keyCell = document.createElement("td");
        keyCell.className = "key";
        keyCell.append(button);
        row.append(keyCell, textCell(entry.sizeText, "num"), textCell(String(entry.version), "num"),
                   textCell(entry.ttlText), textCell(entry.updatedText));
        return row;
      });
      // By id, not $refs: a click in the value view, which x-if may have removed, calls this.
      document.getElementById("key-rows").replaceChildren(...rows);
    },
    // An entry leaves the listing when its TTL passes, without a request: the store
    // no longer answers it, though its `expire` change comes only when it is reclaimed.
    expireLater() {
      clearTimeout(FEED.expiry);
      const ends = this.entries.filter((e) => e.expires_at).map((e) => e.expires_at);
      if (this.current && this.currentExpires) ends.push(this.currentExpires);
      if (ends.length === 0) return;
      const wait = Math.min(Math.max(0, Math.min(...ends) * 1000 - Date.now()) + 50, 2 ** 31 - 1);
      FEED.expiry = setTimeout(() => this.expireNow(), wait);
    },
    expireNow() {
      const now = Date.now() / 1000;
      const kept = this.entries.filter((e) => !e.expires_at || e.expires_at > now);
      if (kept.length !== this.entries.length) {
        this.entries = kept;
        this.renderRows();
      }
      if (this.current && this.currentExpires && this.currentExpires <= now && !this.writing) {
        this.underneath = "This key expired at " + timeText(this.currentExpires)
          + ": the store no longer holds it.";
        this.currentExpires = null;
      }
      this.expireLater();
    },
    get noKeys() { return this.listed && this.entries.length === 0; },
    get atStart() { return this.cursors.length <= 1; },
    get atEnd() { return !this.nextCursor; },
    get pageText() { return "page " + this.cursors.length; },
    async nextPage() {
      if (!this.nextCursor) return;
      const last = this.entries.length ? this.entries[this.entries.length - 1].key : null;
      this.cursors = [...this.cursors, this.nextCursor];
      this.floors = [...this.floors, last];
      await this.loadPage();
    },
    async previousPage() {
      this.cursors = this.cursors.slice(0, -1);
      this.floors = this.floors.slice(0, -1);
      await this.loadPage();
    },
    async firstPage() {
      this.cursors = [null];
      this.floors = [null];
      await this.loadPage();
    },
    // -- following the change feed ----------------------------------------------------
    // One long poll at a time, from `since` (null: the oldest change kept, which the
    // listing already shows), each resumed from the `next` of the last.
    follow(since) {
      this.stopFollowing();
      FEED.since = since;
      FEED.paused = false;
      FEED.failures = 0;
      FEED.pending = new Map();
      this.poll(FEED.generation);
    },
    stopFollowing() {
      FEED.generation += 1;
      if (FEED.controller) FEED.controller.abort();
      FEED.controller = null;
      clearTimeout(FEED.timer);
    },
    // A pause that a stop cuts short; false when the feed stopped meanwhile.
    pause(generation, ms) {
      return new Promise((resolve) => {
        FEED.timer = setTimeout(() => resolve(generation === FEED.generation), ms);
      }).then((going) => going && generation === FEED.generation);
    },
    async poll(generation) {
      let limit, wait;
      try {
        const info = await INFO;
        limit = Math.min(CHANGES_PER_READ, info.max_page_size);
        wait = Math.min(LONG_POLL_SECONDS, info.max_changes_wait_seconds);
      } catch (error) {
        this.showLive("Not live: " + error.message, "live off");
        return;
      }
      let more = false; // the last page was full: the next read does not wait
      while (generation === FEED.generation) {
        const query = new URLSearchParams({ prefix: this.listedPrefix, limit: String(limit),
                                            wait: String(more ? 0 : wait) });
        if (FEED.since !== null) query.set("since", String(FEED.since));
        FEED.controller = new AbortController();
        if (FEED.failures === 0) this.showLive("Live", "live on");
        let page;
        try {
          page = await this.scoped("GET", "/v1/changes?" + query,
                                   { signal: FEED.controller.signal });
        } catch (error) {
          if (generation !== FEED.generation) return; // stopped: the poll was cut
          if (error.status === 410) { // the log no longer holds our position: re-read
            this.showLive("Re-reading: changes were missed", "live");
            FEED.since = null;
            FEED.pending = new Map();
            await this.loadPage();
            continue;
          }
          if (error.status === 400 || error.status === 403) {
            this.showLive("Not live: " + error.message, "live off");
            return;
          }
          const ms = RETRY_MS[Math.min(FEED.failures, RETRY_MS.length - 1)];
          FEED.failures += 1;
          this.showLive("Reconnecting in " + Math.round(ms / 1000) + " s (" + error.message + ")",
                        "live off");
          if (!(await this.pause(generation, ms * (0.5 + Math.random() / 2)))) return;
          continue;
        }
        if (generation !== FEED.generation) return;
        FEED.failures = 0;
        FEED.since = page.next;
        for (const change of page.changes) FEED.pending.set(change.key, change);
        more = page.changes.length === limit;
        if (more) continue; // more may be waiting: read on at once
        const changes = FEED.pending;
        FEED.pending = new Map();
        this.changedUnderneath(changes);
        if (this.listingStale(changes)) {
          await this.loadPage();
          if (!(await this.pause(generation, REFRESH_GAP_MS))) return;
        }
      }
    },
    showLive(text, className) {
      this.liveText = text;
      this.liveClass = className;
    },
    // Whether a key's last change is not yet what the listing shows, for the keys of
    // this page's range: a set key absent or older, a deleted or expired one still there.
    listingStale(changes) {
      const shown = new Map(this.entries.map((e) => [e.key, e.version]));
      const floor = this.floors[this.floors.length - 1];
      const ceiling = this.nextCursor && this.entries.length
        ? this.entries[this.entries.length - 1].key : null;
      for (const change of changes.values()) {
        if (floor !== null && floor !== undefined && keyOrder(change.key, floor) <= 0) continue;
        if (ceiling !== null && keyOrder(change.key, ceiling) > 0) continue;
        const version = shown.get(change.key);
        if (change.kind === "set" ? version === undefined || version < change.version
          : version !== undefined && version <= change.version) {
          return true;
        }
      }
      return false;
    },
    // The open key changed elsewhere: an untouched view shows the new value; an edit
    // in progress is kept, and told (its save names the version it started from).
    changedUnderneath(changes) {
      const change = this.current ? changes.get(this.currentKey) : undefined;
      if (!change || this.writing) return;
      if (change.kind === "set") {
        if (change.version <= this.currentVersion) return;
        if (!this.editing) {
          this.show(this.currentKey).then(() => {
            if (this.current) {
              this.notice = "Changed elsewhere: now at version " + change.version + ".";
            }
          });
          return;
        }
        this.underneath = "Changed elsewhere while open: version " + this.currentVersion
          + " is now at version " + change.version + ". Your edit is kept; saving it "
          + "would be refused, as it names version " + this.currentVersion + ".";
      } else if (change.version >= this.currentVersion) {
        this.underneath = (change.kind === "expire" ? "This key expired" : "Deleted elsewhere")
          + " while open (at version " + change.version + "): the store no longer holds it.";
      }
    },
    get editing() {
      return (this.isText && this.editText !== this.loadedText) || this.confirmingDelete
        || String(this.ttlInput) !== this.loadedTtl;
    },
    async reopen() {
      await this.open({ key: this.currentKey });
    },
    // The feed pauses while the tab is hidden for long, and while the page is away
    // (the back-forward cache); it resumes from where it was, or re-reads.
    watchVisibility() {
      const listen = (target, name, handler) => {
        target.addEventListener(name, handler);
        FEED.listeners.push([target, name, handler]);
      };
      const resume = () => {
        clearTimeout(FEED.hiddenTimer);
        if (!FEED.paused) return;
        FEED.paused = false;
        this.follow(FEED.since);
      };
      const halt = (text) => {
        if (FEED.paused || !this.listed) return;
        this.stopFollowing();
        FEED.paused = true;
        this.showLive(text, "live off");
      };
      listen(document, "visibilitychange", () => {
        if (document.visibilityState === "visible") {
          resume();
        } else {
          FEED.hiddenTimer = setTimeout(() => halt("Paused while the tab is hidden"),
                                        HIDDEN_STOP_MS);
        }
      });
      listen(window, "pagehide", () => halt("Paused"));
      listen(window, "pageshow", (event) => { if (event.persisted) resume(); });
    },
    // -- the open value --------------------------------------------------------------
    async open(entry) {
      this.conflict = "";
      this.notice = "";
      await this.show(entry.key);
    },
    async show(key) {
      this.confirmingDelete = false;
      try {
        const read = await this.scoped("GET", keyPath(key), { bytes: true });
        this.present(key, read);
      } catch (error) {
        if (error.status === 404) {
          this.current = null;
          this.notice = "";
          showError("The key " + key + " no longer exists.");
        } else {
          showError(error);
        }
      }
    },
    present(key, read) {
      if (this.imageUrl) URL.revokeObjectURL(this.imageUrl);
      this.imageUrl = "";
      this.current = key;
      this.currentKey = key;
      this.currentVersion = read.version;
      this.underneath = "";
      this.bytes = read.bytes;
      this.keptHeaders = { "Content-Type": read.response.headers.get("Content-Type") };
      const metadata = read.response.headers.get("Pluginkv-Metadata");
      if (metadata !== null) this.keptHeaders["Pluginkv-Metadata"] = metadata;
      const expires = read.expires ? Number(read.expires) : null;
      this.currentExpires = expires;
      this.currentMeta = bytesText(read.bytes.length) + ", version " + read.version
        + (expires ? ", expires " + timeText(expires) : ", no TTL");
      this.ttlInput = expires ? String(Math.max(1, Math.round(expires - Date.now() / 1000))) : "";
      this.loadedTtl = this.ttlInput;
      let text = null;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(read.bytes);
      } catch (ignored) { /* not UTF-8 */ }
      const image = imageType(read.bytes);
      if (image) {
        this.kind = "image";
        this.imageUrl = URL.createObjectURL(new Blob([read.bytes], { type: image }));
      } else if (text !== null) {
        try {
          this.editText = JSON.stringify(JSON.parse(text), null, 2);
          this.kind = "json";
        } catch (ignored) {
          this.editText = text;
          this.kind = "text";
        }
      } else {
        this.kind = "hex";
        this.hexText = hexDump(read.bytes);
      }
      this.loadedText = this.editText;
      this.renderRows();
      this.expireLater();
    },
    get isImage() { return this.kind === "image"; },
    get isHex() { return this.kind === "hex"; },
    get isText() { return this.kind === "text" || this.kind === "json"; },
    get kindText() {
      return this.kind === "json" ? "JSON, shown formatted; saved as shown." : "UTF-8 text.";
    },
    // Every write names the version this page showed: a key changed since is
    // a conflict, shown, never overwritten.
    async write(bytes, ttl, done) {
      this.conflict = "";
      this.notice = "";
      this.underneath = "";
      const path = keyPath(this.currentKey) + (ttl ? "?ttl=" + encodeURIComponent(ttl) : "");
      this.writing += 1; // its own change, when the feed brings it, is no news
      try {
        const result = await this.scoped("PUT", path, {
          raw: bytes,
          headers: { ...this.keptHeaders, "If-Match": '"' + this.currentVersion + '"' },
        });
        await this.show(this.currentKey);
        this.notice = done + " (version " + result.version + ").";
        await this.loadPage();
      } catch (error) {
        this.reportConflict(error);
      } finally {
        this.writing -= 1;
      }
    },
    reportConflict(error) {
      if (error.code === "version_conflict") {
        this.conflict = "Not saved: the key changed since this page showed version "
          + this.currentVersion + (error.etag ? " (it is now at version " + error.etag + ")" : "")
          + ". Nothing was overwritten.";
      } else {
        showError(error);
      }
    },
    async save() {
      await this.write(new TextEncoder().encode(this.editText), this.ttlKept(), "Saved");
    },
    ttlKept() {
      const entry = this.entries.find((e) => e.key === this.currentKey);
      return entry && entry.expires_at
        ? String(Math.max(1, entry.expires_at - Date.now() / 1000)) : "";
    },
    async setTtl() {
      const ttl = String(this.ttlInput).trim();
      await this.write(this.bytes, ttl, ttl ? "TTL set" : "TTL removed");
    },
    askDelete() { this.confirmingDelete = true; },
    cancelDelete() { this.confirmingDelete = false; },
    async remove() {
      this.conflict = "";
      this.underneath = "";
      this.writing += 1;
      try {
        await this.scoped("DELETE", keyPath(this.currentKey),
                          { headers: { "If-Match": '"' + this.currentVersion + '"' } });
        this.notice = "";
        this.current = null;
        this.confirmingDelete = false;
        await this.loadPage();
      } catch (error) {
        this.confirmingDelete = false;
        this.reportConflict(error);
      } finally {
        this.writing -= 1;
      }
    },
  }));

  Alpine.data("plugins", () => ({
    rows: [],
    detail: null,
    detailName: "",
    tools: [],
    endpoints: [],
    log: "",
    tokenWorkspace: "",
    tokenPlugin: "",
    tokenDays: "30",
    tokenReadOnly: false,
    created: "",
    revokeWorkspace: "",
    revokePlugin: "",
    revoked: "",
    async init() {
      if (!adminToken()) return;
      try {
        const listed = await api("GET", "/v1/admin/plugins");
        this.rows = listed.plugins.map((p, i) => ({
          ...p,
          id: i + ":" + p.plugin,
          workspaceText: p.workspaces.join(", "),
          errorText: p.error || "",
        }));
      } catch (error) {
        showError(error);
      }
    },
    get empty() { return this.rows.length === 0; },
    get noTools() { return this.tools.length === 0; },
    get noEndpoints() { return this.endpoints.length === 0; },
    async show(row) {
      this.detail = row;
      this.detailName = row.plugin + (row.version ? " " + row.version : "");
      const path = "/v1/admin/plugins/" + row.plugin.split("/").map(encodeURIComponent).join("/");
      try {
        const offer = await api("GET", path);
        this.tools = offer.providers.flatMap((p) => p.tools.map((t) => p.name + " / " + t.name));
        this.endpoints = offer.endpoints.flatMap((g) => g.endpoints.map((e) => e.method + " " + e.path));
      } catch (error) {
        showError(error);
      }
      try {
        const log = await api("GET", path + "/logs?lines=100");
        this.log = log.text || "(empty)";
      } catch (error) {
        this.log = error.status === 404 ? "No log is kept for this plugin." : error.message;
      }
    },
    async createToken() {
      this.created = "";
      try {
        const issued = await api("POST", "/v1/admin/tokens", {
          json: { workspace: this.tokenWorkspace, plugin: this.tokenPlugin,
                  ttl: Number(this.tokenDays) * 86400, read_only: this.tokenReadOnly },
        });
        this.created = issued.token;
      } catch (error) {
        showError(error);
      }
    },
    async revoke() {
      try {
        const done = await api("POST", "/v1/admin/tokens/revoke", {
          json: { workspace: this.revokeWorkspace, plugin: this.revokePlugin },
        });
        this.revoked = "Revoked every token of " + done.workspace + "/" + done.plugin
          + " issued up to " + timeText(done.revoked_at) + ".";
      } catch (error) {
        showError(error);
      }
    },
  }));
});
})();
