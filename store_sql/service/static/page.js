// The store's read-only page: agents and sessions newest first, one session's transcript as
// its tree of branches with the active path marked, labels and compaction points, search.
//
// It reads the JSON API like any client, with the server's bearer token. The token is asked
// for once per tab and kept in sessionStorage (gone when the tab closes, never in a cookie,
// so no other site can make this browser use it). A link may carry it as `#token=...`: the
// fragment is never sent to the server, and the page removes it from the address bar and
// history at once. Everything the store holds is put in the page as text (textContent),
// never as HTML.
//
// The page follows the store live over Server-Sent Events (EventSource, which cannot send
// headers, so its requests carry the token as `access_token`): the open transcript from the
// cursor its lines were read up to, so no entry is missed or shown twice, and the agent's
// session list. EventSource reconnects by itself and resumes with Last-Event-ID.

const TOKEN_KEY = "store-sql-token";
const $ = (id) => document.getElementById(id);

// --- token ----------------------------------------------------------------------------------

function takeTokenFromUrl() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const search = new URLSearchParams(location.search);
  const token = hash.get("token") ?? search.get("token");
  if (token === null) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  hash.delete("token");
  search.delete("token");
  const query = search.toString();
  const fragment = hash.toString();
  history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + (fragment ? "#" + fragment : ""));
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, {
    headers: { authorization: `Bearer ${token()}`, accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 401) throw new Unauthorized("the token was refused");
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      if (body?.error?.message) message = body.error.message;
    } catch {
      // not the documented error body: the status says enough
    }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return await response.json();
}

const seg = encodeURIComponent;

// --- view state in the fragment (#agent=...&session=...&q=...) --------------------------------

function viewState() {
  const hash = new URLSearchParams(location.hash.slice(1));
  return { agent: hash.get("agent"), session: hash.get("session"), q: hash.get("q"), entry: hash.get("entry") };
}

function setViewState(changes) {
  const hash = new URLSearchParams(location.hash.slice(1));
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") hash.delete(name);
    else hash.set(name, value);
  }
  history.replaceState(null, "", location.pathname + location.search + "#" + hash.toString());
}

// --- small DOM helpers ------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function status(text) {
  $("status").textContent = text;
}

function when(ms) {
  if (typeof ms !== "number") return "";
  const date = new Date(ms);
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** The server's snippet marks each match as `[match]`: shown as a <mark> without brackets. */
function snippetNode(snippet, needle) {
  const out = document.createDocumentFragment();
  const want = needle.toLowerCase();
  let from = 0;
  for (let at = snippet.indexOf("["); at !== -1; at = snippet.indexOf("[", at + 1)) {
    const inner = snippet.slice(at + 1, at + 1 + want.length);
    if (inner.toLowerCase() !== want || snippet[at + 1 + want.length] !== "]") continue;
    out.append(snippet.slice(from, at), el("mark", { text: inner }));
    from = at + want.length + 2;
    at = from - 1;
  }
  out.append(snippet.slice(from));
  return out;
}

function highlighted(text, needle) {
  const out = document.createDocumentFragment();
  if (!needle) {
    out.append(text);
    return out;
  }
  const lower = text.toLowerCase();
  const want = needle.toLowerCase();
  let from = 0;
  for (;;) {
    const at = lower.indexOf(want, from);
    if (at === -1) break;
    out.append(text.slice(from, at), el("mark", { text: text.slice(at, at + want.length) }));
    from = at + want.length;
  }
  out.append(text.slice(from));
  return out;
}

// --- what an entry says -----------------------------------------------------------------------

function contentText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((block) => {
      if (!block || typeof block !== "object") return "";
      if (block.type === "text") return block.text ?? "";
      if (block.type === "thinking") return `(thinking) ${block.thinking ?? ""}`;
      if (block.type === "toolCall") return `→ ${block.name ?? "tool"}(${JSON.stringify(block.arguments ?? {})})`;
      if (block.type === "image") return "[image]";
      return `[${block.type ?? "block"}]`;
    })
    .filter(Boolean)
    .join("\n");
}

function describeEntry(value) {
  if (!value || typeof value !== "object") return { kind: "damaged", text: String(value ?? "") };
  switch (value.type) {
    case "message": {
      const m = value.message ?? {};
      let text = contentText(m.content);
      if (m.role === "bashExecution") text = `$ ${m.command ?? ""}\n${m.output ?? ""}`;
      if (m.role === "toolResult") text = `${m.toolName ?? "tool"}: ${text}`;
      if (m.role === "compactionSummary" || m.role === "branchSummary") text = m.summary ?? text;
      return { kind: m.role ?? "message", role: m.role, text };
    }
    case "compaction":
      return {
        kind: "compaction",
        text:
          `tokens before: ${value.tokensBefore ?? "?"}; first kept entry: ${value.firstKeptEntryId ?? "?"}\n` +
          (value.summary ?? ""),
      };
    case "branch_summary":
      return { kind: "branch summary", text: value.summary ?? "" };
    case "model_change":
      return { kind: "model", text: `${value.provider ?? ""}/${value.modelId ?? ""}` };
    case "thinking_level_change":
      return { kind: "thinking", text: String(value.thinkingLevel ?? "") };
    case "label":
      return { kind: "label", text: `${value.targetId ?? "?"} ← ${value.label ?? "(cleared)"}` };
    case "session_info":
      return { kind: "name", text: String(value.name ?? "") };
    case "custom":
      return { kind: `custom`, text: `${value.customType ?? ""} ${JSON.stringify(value.data ?? null)}` };
    case "custom_message":
      return { kind: "custom message", text: contentText(value.content) };
    default:
      return { kind: String(value.type ?? "entry"), text: "" };
  }
}

// --- agents and sessions ------------------------------------------------------------------------

const state = { agent: null, sessions: [], total: 0, selected: null, loadToken: 0, view: null, sessionEvents: null };

async function loadAgents() {
  const { agents } = await api("/v1/agents");
  const select = $("agent");
  select.replaceChildren(...agents.map((a) => el("option", { value: a, text: a })));
  const wanted = viewState().agent;
  state.agent = agents.includes(wanted) ? wanted : agents.includes("main") ? "main" : agents[0] ?? null;
  if (state.agent) select.value = state.agent;
  return agents;
}

async function loadSessions() {
  const list = $("sessions");
  if (!state.agent) {
    list.replaceChildren(el("li", { class: "hint", text: "No agents in this store yet." }));
    return;
  }
  const agent = state.agent;
  const body = await api(`/v1/agents/${seg(agent)}/sessions?limit=${SESSIONS_SHOWN}&total=true`);
  if (agent !== state.agent) return;
  state.sessions = body.sessions;
  state.total = body.total ?? body.sessions.length;
  list.dataset.agent = agent;
  renderSessions();
  followSessions(agent);
}

const SESSIONS_SHOWN = 500;

function renderSessions() {
  const list = $("sessions");
  const shown = state.sessions;
  $("sessions-count").textContent = state.total > shown.length ? `${shown.length} of ${state.total}` : String(shown.length);
  list.replaceChildren(
    ...shown.map((s) =>
      el(
        "li",
        { class: "session", "data-key": s.key, "data-session-id": s.sessionId, tabindex: "0" },
        s.label || s.displayName ? el("div", { class: "name", text: s.label || s.displayName }) : null,
        el("div", { class: "key", text: s.key }),
        el(
          "div",
          { class: "meta" },
          el("time", { text: when(s.updatedAt), "data-updated-at": String(s.updatedAt) }),
          [s.chatType, s.channel, s.model].filter(Boolean).length
            ? " · " + [s.chatType, s.channel, s.model].filter(Boolean).join(" · ")
            : "",
        ),
      ),
    ),
  );
  for (const li of list.children) li.classList.toggle("selected", li.dataset.key === state.selected);
}

// --- live updates -------------------------------------------------------------------------------

/** An EventSource on an API route (the token as `access_token`: EventSource sends no headers). */
function eventSource(path, params = {}) {
  const query = new URLSearchParams({ ...params, access_token: token() });
  return new EventSource(`${path}?${query}`);
}

/** Calls `run` once, `ms` after the last of a burst of calls. */
function debounced(run, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      run();
    }, ms);
  };
}

/** A session entry (the `upsert` event's) as a row of the session list. */
function summaryOf(key, entry) {
  return {
    key,
    sessionId: entry.sessionId ?? null,
    updatedAt: typeof entry.updatedAt === "number" ? entry.updatedAt : null,
    label: entry.label ?? null,
    displayName: entry.displayName ?? null,
    chatType: entry.chatType ?? null,
    channel: entry.channel ?? entry.lastChannel ?? null,
    model: entry.model ?? null,
  };
}

/** Follows the agent's session-entry changes: upsert and delete in place; reload and resync list again. */
function followSessions(agent) {
  state.sessionEvents?.close();
  const source = eventSource(`/v1/agents/${seg(agent)}/sessions/events`);
  state.sessionEvents = source;
  const relist = debounced(() => {
    if (state.agent === agent) loadSessionsOnly().catch(fail);
  }, 100);
  source.addEventListener("open", () => ($("sessions").dataset.live = "open"));
  source.addEventListener("error", () => ($("sessions").dataset.live = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"));
  source.addEventListener("upsert", (event) => {
    const { key, entry } = JSON.parse(event.data);
    const at = state.sessions.findIndex((s) => s.key === key);
    if (at === -1) state.total += 1;
    else state.sessions.splice(at, 1);
    state.sessions.push(summaryOf(key, entry));
    state.sessions.sort((a, b) => (b.updatedAt ?? -Infinity) - (a.updatedAt ?? -Infinity));
    state.sessions.length = Math.min(state.sessions.length, SESSIONS_SHOWN);
    renderSessions();
    // The open session got a new transcript (a reset, a restore): show that one.
    if (key === state.selected && state.view && entry.sessionId !== state.view.sessionId) openSession(key).catch(fail);
  });
  source.addEventListener("delete", (event) => {
    const { key } = JSON.parse(event.data);
    const before = state.sessions.length;
    state.sessions = state.sessions.filter((s) => s.key !== key);
    if (state.sessions.length < before) state.total -= 1;
    renderSessions();
  });
  source.addEventListener("reload", relist);
  source.addEventListener("resync", relist);
}

/** The list again, without opening a session (after a reload or resync event). */
async function loadSessionsOnly() {
  const agent = state.agent;
  const body = await api(`/v1/agents/${seg(agent)}/sessions?limit=${SESSIONS_SHOWN}&total=true`);
  if (agent !== state.agent) return;
  state.sessions = body.sessions;
  state.total = body.total ?? body.sessions.length;
  renderSessions();
}

/**
 * Follows the open transcript from `cursor` (where its lines were read up to): each new line
 * is added to the view; the active path and leaf are read again once a burst of lines is in.
 * `replaced` (a migration, re-import, restore) and `gone` (a reset or delete archived it)
 * open the session again from its entry.
 */
function followTranscript(view, cursor) {
  const source = eventSource(`${view.base}/events`, cursor ? { cursor } : { from: "start" });
  view.source = source;
  const transcript = $("transcript");
  const refreshPath = debounced(() => refreshActivePath(view).catch(fail), 50);
  source.addEventListener("open", () => (transcript.dataset.live = "open"));
  source.addEventListener("error", () => {
    if (view === state.view) transcript.dataset.live = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
  });
  const line = (event, value) => {
    const pos = Number(event.lastEventId.split(".").pop());
    if (view.lines.has(pos)) return;
    view.lines.set(pos, value);
    if (value?.type === "session" || event.type === "header") return;
    view.nodes.push({
      pos,
      id: typeof value?.id === "string" ? value.id : null,
      parentId: typeof value?.parentId === "string" ? value.parentId : null,
      type: typeof value?.type === "string" ? value.type : null,
      role: value?.message?.role ?? null,
      timestamp: typeof value?.timestamp === "string" ? value.timestamp : null,
      label: null,
    });
    if (value?.type === "label" && typeof value.targetId === "string") {
      const target = view.nodes.find((node) => node.id === value.targetId);
      if (target) target.label = value.label || null;
    }
    refreshPath();
  };
  source.addEventListener("entry", (event) => line(event, JSON.parse(event.data)));
  source.addEventListener("header", (event) => line(event, JSON.parse(event.data)));
  source.addEventListener("damaged", (event) => {
    const { text } = JSON.parse(event.data);
    line(event, { type: "(damaged line)", text });
  });
  const reopen = () => {
    if (view === state.view) openSession(view.key).catch(fail);
  };
  source.addEventListener("replaced", reopen);
  source.addEventListener("gone", () => {
    source.close();
    reopen();
  });
}

async function refreshActivePath(view) {
  if (view !== state.view) return;
  const path = await api(`${view.base}/path`);
  if (view !== state.view) return;
  view.active = new Set(path.entries.map((e) => e.id).filter(Boolean));
  view.leafId = path.entries.at(-1)?.id ?? null;
  renderTranscript(view);
}

function stopFollowing() {
  state.view?.source?.close();
  state.view = null;
  delete $("transcript").dataset.live;
}

// --- one session's transcript -------------------------------------------------------------------

const PAGE_LINES = 5000;

/** Every line of the transcript by its position, read a page at a time from the change feed. */
async function linesByPos(base) {
  const byPos = new Map();
  let cursor = "";
  for (;;) {
    const page = await api(`${base}/changes?limit=${PAGE_LINES}${cursor ? "&cursor=" + seg(cursor) : ""}`);
    for (const line of page.lines) byPos.set(line.pos, line.value ?? { type: "(damaged line)", text: line.text });
    cursor = page.cursor;
    if (page.lines.length < PAGE_LINES) return { byPos, cursor };
  }
}

/** The server's flat tree (file order, each node naming its parent) as nested nodes. */
function forestOf(nodes) {
  const made = nodes.map((node) => ({ ...node, children: [] }));
  const byId = new Map();
  for (const node of made) if (node.id && !byId.has(node.id)) byId.set(node.id, node);
  const roots = [];
  for (const node of made) {
    const parent = node.parentId === null ? undefined : byId.get(node.parentId);
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  return roots;
}

function nodeValue(node, lines) {
  return lines.get(node.pos);
}

function entryRow(node, lines, active, leafId, needle) {
  const value = nodeValue(node, lines);
  const about = describeEntry(value);
  const onPath = node.id !== null && node.id !== undefined && active.has(node.id);
  const type = node.type ?? value?.type;
  const classes = ["entry", onPath ? "on-path" : "off-path"];
  if (type === "compaction") classes.push("compaction");
  if (node.id && node.id === leafId) classes.push("leaf");
  const text = el("div", { class: "text" }, highlighted(about.text ?? "", needle));
  text.addEventListener("click", () => text.classList.toggle("expanded"));
  return el(
    "div",
    {
      class: classes.join(" "),
      id: node.id ? `entry-${node.id}` : undefined,
      "data-id": node.id ?? undefined,
      "data-type": type ?? undefined,
      "data-on-path": onPath ? "true" : "false",
    },
    el(
      "div",
      { class: "head" },
      onPath ? el("span", { class: "marker", title: "on the active path", text: "●" }) : null,
      el("span", { class: `kind role-${about.role ?? ""}`, text: about.kind }),
      node.id === leafId ? el("span", { class: "marker", text: "leaf" }) : null,
      node.label ? el("span", { class: "label-chip", text: node.label }) : null,
      el("span", { class: "id", text: node.id ?? "" }),
      el("time", { text: node.timestamp ?? value?.timestamp ?? "" }),
    ),
    about.text ? text : null,
  );
}

/**
 * The forest as nested blocks: a chain of single children stays at one level; where an entry
 * has several children, each child's subtree is a `.branch` block (the active one first is
 * not assumed: file order, the active one marked). Iterative along chains, so a long
 * transcript does not exhaust the stack.
 */
function renderForest(roots, lines, active, leafId, needle) {
  const container = document.createDocumentFragment();
  const work = [{ nodes: roots, into: container }];
  while (work.length) {
    const { nodes, into } = work.pop();
    if (nodes.length === 1) {
      let node = nodes[0];
      for (;;) {
        into.append(entryRow(node, lines, active, leafId, needle));
        const children = node.children ?? [];
        if (children.length !== 1) {
          if (children.length > 1) work.push({ nodes: children, into, split: true });
          break;
        }
        node = children[0];
      }
      continue;
    }
    const blocks = [];
    nodes.forEach((child, index) => {
      const onPath = child.id && active.has(child.id);
      const block = el(
        "div",
        { class: "branch" + (onPath ? " on-path" : ""), "data-branch": String(index + 1) },
        el("div", {
          class: "branch-head",
          text: `branch ${index + 1} of ${nodes.length}${onPath ? " (active)" : ""}`,
        }),
      );
      into.append(block);
      blocks.push({ nodes: [child], into: block });
    });
    // Pushed in reverse so the first branch is rendered first (the stack is LIFO).
    for (let i = blocks.length - 1; i >= 0; i--) work.push(blocks[i]);
  }
  return container;
}

async function openSession(key, { entry } = {}) {
  const mine = ++state.loadToken;
  stopFollowing();
  state.selected = key;
  setViewState({ session: key });
  for (const li of $("sessions").children) li.classList.toggle("selected", li.dataset.key === key);
  const agent = state.agent;
  status("loading…");
  const session = await api(`/v1/agents/${seg(agent)}/sessions/${seg(key)}`);
  const sid = session.sessionId;
  const base = `/v1/agents/${seg(agent)}/transcripts/${seg(sid)}`;
  let tree, path, read;
  try {
    // The lines first: the tree and path read after them cover at least those lines.
    read = await linesByPos(base);
    [tree, path] = await Promise.all([api(`${base}/tree`), api(`${base}/path`)]);
  } catch (error) {
    if (error.status !== 404) throw error;
    tree = path = read = null;
  }
  if (mine !== state.loadToken) return;
  $("session-hint").hidden = true;
  $("session-head").hidden = false;
  $("session-title").textContent = session.label || session.displayName || key;
  const facts = [
    ["key", key],
    ["sessionId", sid],
    ["updatedAt", when(session.updatedAt)],
    ["model", [session.modelProvider, session.model].filter(Boolean).join("/")],
    ["compactions", session.compactionCount],
    ["tokens", session.totalTokens],
  ].filter(([, v]) => v !== undefined && v !== null && v !== "");
  $("session-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  const transcript = $("transcript");
  if (!tree) {
    transcript.replaceChildren(el("p", { class: "hint", text: "This session has no transcript in the store." }));
    transcript.dataset.key = key;
    status("");
    return;
  }
  // Lines the tree has that the read did not (appended in between) come from the stream.
  const view = {
    agent,
    key,
    sessionId: sid,
    base,
    nodes: tree.nodes.filter((node) => read.byPos.has(node.pos)),
    lines: read.byPos,
    active: new Set(path.entries.map((e) => e.id).filter(Boolean)),
    leafId: tree.leafId,
    source: null,
  };
  state.view = view;
  transcript.dataset.key = key;
  renderTranscript(view);
  followTranscript(view, read.cursor);
  if (entry) {
    const row = document.getElementById(`entry-${entry}`);
    if (row) {
      row.classList.add("highlight");
      row.scrollIntoView({ block: "center" });
    }
  }
}

function renderTranscript(view) {
  const transcript = $("transcript");
  transcript.replaceChildren(renderForest(forestOf(view.nodes), view.lines, view.active, view.leafId, viewState().q));
  const count = transcript.querySelectorAll(".entry").length;
  status(`${count} entries, ${view.active.size} on the active path`);
}

// --- search -------------------------------------------------------------------------------------

async function runSearch(text) {
  const pane = $("search-results-pane");
  setViewState({ q: text });
  if (!text) {
    pane.hidden = true;
    return;
  }
  status("searching…");
  const params = new URLSearchParams({ q: text, limit: "50" });
  if (state.agent) params.set("agent", state.agent);
  const result = await api(`/v1/search?${params}`);
  const hits = result.hits ?? [];
  const count = `${hits.length}${result.more ? "+" : ""}`;
  $("search-summary").textContent = `${count} ${count === "1" ? "hit" : "hits"} for “${text}”`;
  $("search-results").replaceChildren(
    ...hits.map((hit) => {
      const item = el(
        "li",
        { class: "hit", "data-key": hit.sessionKey ?? "", "data-entry": hit.entryId ?? "" },
        el("div", { class: "meta", text: `${hit.sessionKey ?? hit.fileName ?? ""} · ${hit.role ?? hit.type ?? ""} · ${hit.timestamp ?? ""}` }),
        el("div", { class: "snippet" }, snippetNode(hit.snippet ?? "", text)),
      );
      item.addEventListener("click", () => {
        if (item.dataset.key) openSession(item.dataset.key, { entry: item.dataset.entry }).catch(fail);
      });
      return item;
    }),
  );
  pane.hidden = false;
  status("");
}

// --- wiring ---------------------------------------------------------------------------------------

function showLogin(message) {
  $("main").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

function fail(error) {
  if (error instanceof Unauthorized) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("The server refused that token.");
    return;
  }
  status(`error: ${error.message}`);
  console.error(error);
}

async function start() {
  if (!token()) {
    showLogin();
    return;
  }
  $("login").hidden = true;
  $("main").hidden = false;
  $("forget").hidden = false;
  await loadAgents();
  await loadSessions();
  const view = viewState();
  if (view.q) {
    $("search").value = view.q;
    await runSearch(view.q);
  }
  const wanted = view.session && state.sessions.some((s) => s.key === view.session) ? view.session : state.sessions[0]?.key;
  if (wanted) await openSession(wanted, { entry: view.entry });
  document.body.dataset.ready = "true";
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  start().catch(fail);
});
$("forget").addEventListener("click", () => {
  stopFollowing();
  state.sessionEvents?.close();
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
});
$("agent").addEventListener("change", (event) => {
  stopFollowing();
  state.agent = event.target.value;
  setViewState({ agent: state.agent, session: null });
  loadSessions()
    .then(() => (state.sessions[0] ? openSession(state.sessions[0].key) : undefined))
    .catch(fail);
});
$("sessions").addEventListener("click", (event) => {
  const item = event.target.closest("li.session");
  if (item) openSession(item.dataset.key).catch(fail);
});
$("sessions").addEventListener("keydown", (event) => {
  const item = event.target.closest("li.session");
  if (item && event.key === "Enter") openSession(item.dataset.key).catch(fail);
});
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  runSearch($("search").value.trim()).catch(fail);
});

takeTokenFromUrl();
start().catch(fail);
