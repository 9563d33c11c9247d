"""Node programs that write and read sessions.d directories the way the gateway does.

The tests build their fixtures with these (never with store_sql's own code), so a rule the
store gets wrong cannot hide behind the same mistake in the fixture. Each program follows
the directory-backed store of the seed PR: ``JSON.stringify(..., null, 2)``, names
``session-<base64url(utf8 key)>.json`` or ``session-hash-<base64url(sha256)>.json`` past 120
bytes, keys trimmed, and a loader that ignores what the gateway's loader ignores.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from conftest import run_node

COMMON = r"""
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const KIND = 'openclaw-session-store-directory';
function encode(key) {
  const k = key.trim();
  if (!k) throw new Error('blank key');
  if (Buffer.byteLength(k, 'utf8') > 120)
    return `session-hash-${crypto.createHash('sha256').update(k, 'utf8').digest('base64url')}.json`;
  return `session-${Buffer.from(k, 'utf8').toString('base64url')}.json`;
}
function decode(name) {
  if (name.startsWith('session-hash-') && name.endsWith('.json')) return null;
  if (name.startsWith('.') || !name.startsWith('session-') || !name.endsWith('.json')) return null;
  const enc = name.slice('session-'.length, -'.json'.length);
  if (!enc) return null;
  try {
    const d = Buffer.from(enc, 'base64url').toString('utf8');
    if (!d || encode(d) !== name) return null;
    return d;
  } catch { return null; }
}
function isRecord(v) { return !!v && typeof v === 'object' && !Array.isArray(v); }
function readEntry(file, expected) {
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.isSymbolicLink()) return null;
    const raw = fs.readFileSync(file, 'utf-8');
    if (!raw.trim()) return null;
    const parsed = JSON.parse(raw);
    if (!isRecord(parsed)) return null;
    if (typeof parsed.sessionKey === 'string' && isRecord(parsed.entry)) {
      const k = parsed.sessionKey.trim();
      if (!k) return null;
      if (expected && expected !== k) return null;
      return { sessionKey: k, entry: parsed.entry };
    }
    if (!expected || !isRecord(parsed)) return null;
    return { sessionKey: expected, entry: parsed };
  } catch { return null; }
}
function load(root) {
  const store = Object.create(null);
  const dir = path.join(root, 'entries');
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!d.isFile() || d.isSymbolicLink()) continue;
    const r = readEntry(path.join(dir, d.name), decode(d.name) ?? undefined);
    if (!r || ['__proto__', 'constructor', 'prototype'].includes(r.sessionKey)) continue;
    if (encode(r.sessionKey) !== d.name) continue;
    store[r.sessionKey] = r.entry;
  }
  return store;
}
function writeState(root, version, updatedAt) {
  fs.writeFileSync(path.join(root, 'state.json'),
    JSON.stringify({ kind: KIND, layoutVersion: 1, version, updatedAt }, null, 2), { mode: 0o600 });
}
"""

_WRITE = r"""
const { root, version, updatedAt, entries, files, symlinks, noState } = input;
fs.mkdirSync(path.join(root, 'entries'), { recursive: true, mode: 0o700 });
const names = [];
for (const e of entries) {
  const text = e.shape === 'bare' ? JSON.stringify(e.entry, null, 2)
    : JSON.stringify({ sessionKey: e.key.trim(), entry: e.entry }, null, 2);
  const name = e.name ?? encode(e.key);
  fs.writeFileSync(path.join(root, 'entries', name), text, { mode: 0o600 });
  names.push(name);
}
for (const f of files ?? []) {
  const name = f.rawName ? Buffer.from(f.rawName, 'base64') : f.name;
  const target = Buffer.concat([Buffer.from(path.join(root, 'entries') + '/'), Buffer.from(name)]);
  fs.writeFileSync(target, Buffer.from(f.base64, 'base64'));
}
for (const s of symlinks ?? []) fs.symlinkSync(s.target, path.join(root, 'entries', s.name));
if (!noState) writeState(root, version, updatedAt);
process.stdout.write(JSON.stringify(names));
"""

_LOAD = r"""
const store = load(input.root);
const json = JSON.stringify(store, null, 2);
process.stdout.write(JSON.stringify({ keys: Object.keys(store), json }));
"""

_MIGRATE = r"""
// The PR's migration of a sessions.json: every entry to its file, state version 1.
const store = JSON.parse(fs.readFileSync(input.index, 'utf-8'));
fs.mkdirSync(path.join(input.root, 'entries'), { recursive: true, mode: 0o700 });
for (const [key, entry] of Object.entries(store)) {
  fs.writeFileSync(path.join(input.root, 'entries', encode(key)),
    JSON.stringify({ sessionKey: key.trim(), entry }, null, 2), { mode: 0o600 });
}
writeState(input.root, 1, Date.now());
"""

_NAMES = r"""
process.stdout.write(JSON.stringify(input.keys.map((k) => {
  let name = null; try { name = encode(k); } catch {}
  return { name, decoded: name === null ? null : decode(name) };
})));
"""

_STATES = r"""
process.stdout.write(JSON.stringify(input.texts.map((t) => {
  try {
    const p = JSON.parse(Buffer.from(t, 'base64').toString('utf-8'));
    return p.kind === KIND && p.layoutVersion === 1 && typeof p.version === 'number'
      && Number.isInteger(p.version) && p.version >= 1 && typeof p.updatedAt === 'number'
      && Number.isFinite(p.updatedAt) ? p.version : null;
  } catch { return null; }
})));
"""

_RENDER = r"""
process.stdout.write(JSON.stringify(input.docs.map(
  (d) => JSON.stringify({ sessionKey: d.key, entry: d.entry }, null, 2))));
"""


def write_directory(
    root: Path,
    entries: list[dict[str, Any]],
    *,
    version: int = 7,
    updated_at: int = 1_760_000_000_000,
    files: list[tuple[str | bytes, bytes]] | None = None,
    symlinks: list[tuple[str, str]] | None = None,
    state: bool = True,
) -> list[str]:
    """Write a sessions.d at `root` with Node; returns the entry file names in order.

    `entries` are ``{"key", "entry", "shape": "document"|"bare", "name"?}``; `files` are
    extra files of entries/ (a bytes name is written as raw bytes); `symlinks` are
    ``(name, target)``."""
    payload = {
        "root": str(root),
        "version": version,
        "updatedAt": updated_at,
        "entries": entries,
        "noState": not state,
        "files": [
            {"name": n, "base64": base64.b64encode(d).decode()}
            if isinstance(n, str)
            else {"rawName": base64.b64encode(n).decode(), "base64": base64.b64encode(d).decode()}
            for n, d in files or []
        ],
        "symlinks": [{"name": n, "target": t} for n, t in symlinks or []],
    }
    return list(json.loads(run_node(COMMON + _WRITE, payload)))


def load_directory(root: Path) -> tuple[list[str], str]:
    """The keys the gateway's loader reads from `root`, and the store as sessions.json text
    (``JSON.stringify(store, null, 2)``: what its rollback writes)."""
    out = json.loads(run_node(COMMON + _LOAD, {"root": str(root)}))
    return out["keys"], out["json"]


def migrate_index(index: Path, root: Path) -> None:
    """The gateway's migration of `index` (a sessions.json) into a new sessions.d at `root`."""
    run_node(COMMON + _MIGRATE, {"index": str(index), "root": str(root)})


def names_of(keys: list[str]) -> list[dict[str, str | None]]:
    """Node's file name of each key (None for a blank key) and what that name decodes to."""
    return list(json.loads(run_node(COMMON + _NAMES, {"keys": keys})))


def render_documents(docs: list[tuple[str, Any]]) -> list[str]:
    """``JSON.stringify({sessionKey, entry}, null, 2)`` of each (key, entry)."""
    payload = {"docs": [{"key": k, "entry": e} for k, e in docs]}
    return list(json.loads(run_node(COMMON + _RENDER, payload)))


def state_versions(texts: list[bytes]) -> list[int | None]:
    """The version the gateway reads from each state.json text, None when it rejects it."""
    payload = {"texts": [base64.b64encode(t).decode() for t in texts]}
    return list(json.loads(run_node(COMMON + _STATES, payload)))
