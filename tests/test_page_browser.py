"""The read-only page (`GET /`) in a real browser.

Headless Chromium (Debian's `chromium` package, which `tools/dev.py test` installs) loads the
page from a real `store-sql serve` over a seeded database: the bundled sample state plus one
session made here with two branches, a label and a compaction. The checks read the DOM the
page built; a screenshot is kept in `test-artifacts/` (gitignored) for people to look at.
The browser is driven over the DevTools protocol on a pipe (tests/devtools.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from devtools import Browser, find_chromium

from store_sql import Store, import_path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = find_chromium()

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `python3 tools/dev.py test` installs Debian's package "
    "with apt-get, which was not possible here",
)

KEY = "agent:main:browser-check"
SESSION_ID = "5e7b1c7e-0000-4000-8000-b20e5e7b1c7e"
NEEDLE = "xylophone-42"


@dataclass(frozen=True)
class Seeded:
    db: Path
    ids: dict[str, str]
    """Entry ids of the made session by role in the story: u1, a1, u2, a2, u3, a3, ..."""
    main_sessions: int


async def _seed(db: Path) -> Seeded:
    async with await Store.open(db) as store:
        await import_path(store, ROOT / "samples" / "state")
        await store.transcripts.create("main", SESSION_ID, cwd="/home/gardener")
        t = store.transcripts
        ids: dict[str, str] = {}

        async def say(name: str, role: str, text: str, parent: str | None = None) -> None:
            message = {"role": role, "content": [{"type": "text", "text": text}]}
            if parent is None:
                done = await t.append_message("main", SESSION_ID, message)
            else:
                entry = {"type": "message", "message": message}
                done = (await t.append("main", SESSION_ID, [entry], parent_id=parent))[0]
            ids[name] = done.id

        await say("u1", "user", "Plan the garden layout for the spring.")
        await say("a1", "assistant", "A plan: tomatoes by the south fence, lettuce in the shade.")
        await say("u2", "user", "What about peppers?")
        await say("a2", "assistant", "Peppers want the warmest bed; swap them with the lettuce.")
        await say("u3", "user", "Let us do herbs instead.", parent=ids["a1"])
        await say("a3", "assistant", f"Basil, thyme and parsley; the code word is {NEEDLE}.")
        ids["label"] = (await t.append_label("main", SESSION_ID, ids["a1"], "the plan")).id
        compaction = await t.append_compaction(
            "main", SESSION_ID, "Garden planning so far: herbs chosen.", ids["a3"], 12345
        )
        ids["compaction"] = compaction.id
        await say("u4", "user", "Thanks, that settles it.")
        now = int(time.time() * 1000)
        await store.sessions.patch(
            "main", KEY, {"sessionId": SESSION_ID, "updatedAt": now, "label": "garden"}
        )
        count = await store.sessions.count_entries("main")
    return Seeded(db, ids, count)


@dataclass(frozen=True)
class Served:
    url: str
    token: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    db = tmp_path_factory.mktemp("page") / "store.sqlite"
    return asyncio.run(_seed(db))


@pytest.fixture(scope="module")
def served(seeded: Seeded) -> Iterator[Served]:
    store_sql = Path(sys.executable).with_name("store-sql")
    token_file = seeded.db.with_name("store.token")
    log = seeded.db.with_name("serve.log").open("wb")
    command = [str(store_sql), "serve", "--db", str(seeded.db), "--host", "127.0.0.1"]
    command += ["--port", "0", "--token-file", str(token_file)]
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    discovery = seeded.db.with_name(seeded.db.name + ".serve")
    try:
        url = _wait_until_serving(child, discovery, seeded.db.with_name("serve.log"))
        yield Served(url, token_file.read_text().strip())
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def _wait_until_serving(child: subprocess.Popen[bytes], discovery: Path, log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError(f"store-sql serve exited {child.returncode}:\n{log.read_text()}")
        if discovery.exists():
            record = json.loads(discovery.read_text())
            url = f"http://127.0.0.1:{record['port']}"
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        return url
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"store-sql serve did not answer in 60 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    assert CHROMIUM is not None
    with Browser(CHROMIUM, tmp_path_factory.mktemp("chromium") / "profile") as opened:
        yield opened


@pytest.fixture(scope="module")
def page(browser: Browser, served: Served) -> Browser:
    """The page opened with the token in the fragment, the seeded session shown."""
    browser.goto(f"{served.url}/#token={served.token}")
    browser.wait_for("document.body.dataset.ready === 'true'")
    assert browser.console_errors() == []
    return browser


def _ids(page: Browser, selector: str) -> list[str]:
    found: list[str] = page.evaluate(
        f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.dataset.id)"
    )
    return found


def test_the_token_leaves_the_address_bar_and_stays_in_session_storage(
    page: Browser, served: Served
) -> None:
    assert served.token not in page.evaluate("location.href")
    assert page.evaluate("sessionStorage.getItem('store-sql-token')") == served.token
    assert page.evaluate("document.getElementById('login').hidden") is True


def test_sessions_are_listed_newest_first(page: Browser, seeded: Seeded) -> None:
    rows = page.evaluate(
        "[...document.querySelectorAll('#sessions li.session')]"
        ".map(li => [li.dataset.key, Number(li.querySelector('time').dataset.updatedAt)])"
    )
    assert len(rows) == seeded.main_sessions
    assert rows[0][0] == KEY
    stamps = [stamp for _, stamp in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert page.evaluate("document.querySelector('#sessions li.selected').dataset.key") == KEY


def test_the_transcript_shows_every_entry_with_the_active_path_marked(
    page: Browser, seeded: Seeded
) -> None:
    ids = seeded.ids
    page.wait_for(f"document.getElementById('entry-{ids['u4']}')")
    shown = _ids(page, "#transcript .entry")
    assert sorted(shown) == sorted(ids.values())
    on_path = _ids(page, "#transcript .entry.on-path")
    order = ["u1", "a1", "u3", "a3", "label", "compaction", "u4"]
    assert on_path == [ids[name] for name in order]
    assert set(_ids(page, "#transcript .entry.off-path")) == {ids["u2"], ids["a2"]}
    assert _ids(page, "#transcript .entry.leaf") == [ids["u4"]]


def test_branches_are_blocks_and_the_active_one_is_marked(page: Browser, seeded: Seeded) -> None:
    branches = page.evaluate(
        "[...document.querySelectorAll('#transcript .branch')].map(b => "
        "[b.classList.contains('on-path'), b.querySelector('.entry').dataset.id])"
    )
    assert branches == [[False, seeded.ids["u2"]], [True, seeded.ids["u3"]]]


def test_labels_and_compaction_points_are_shown(page: Browser, seeded: Seeded) -> None:
    chip = page.evaluate(
        f"document.querySelector('#entry-{seeded.ids['a1']} .label-chip')?.textContent"
    )
    assert chip == "the plan"
    compaction = page.evaluate(
        f"document.getElementById('entry-{seeded.ids['compaction']}').className"
    )
    assert "compaction" in compaction.split()
    text = page.evaluate(f"document.getElementById('entry-{seeded.ids['compaction']}').innerText")
    assert "12345" in text
    assert "herbs chosen" in text


def test_search_finds_the_entry_and_opens_it(page: Browser, seeded: Seeded) -> None:
    page.evaluate(
        f"document.getElementById('search').value = {json.dumps(NEEDLE.upper())};"
        "document.getElementById('search-form').requestSubmit()"
    )
    page.wait_for("document.querySelector('#search-results li.hit')")
    hits = page.evaluate(
        "[...document.querySelectorAll('#search-results li.hit')]"
        ".map(li => [li.dataset.key, li.dataset.entry, li.querySelector('mark')?.textContent])"
    )
    assert hits == [[KEY, seeded.ids["a3"], NEEDLE]]
    snippet = page.evaluate("document.querySelector('#search-results .snippet').textContent")
    assert f"is {NEEDLE}." in snippet
    page.evaluate("document.querySelector('#search-results li.hit').click()")
    page.wait_for(f"document.querySelector('#entry-{seeded.ids['a3']}.highlight')")
    assert page.console_errors() == []


def test_every_session_of_both_agents_opens_without_a_page_error(
    page: Browser, served: Served
) -> None:
    opened = 0
    for agent in ("ops", "main"):
        _open(page, agent, "agent:ops:main" if agent == "ops" else KEY)
        keys = page.evaluate(
            "[...document.querySelectorAll('#sessions li.session')].map(li => li.dataset.key)"
        )
        for key in keys:
            _open(page, agent, key)
            rows = page.evaluate("document.querySelectorAll('#transcript .entry').length")
            nodes = _tree_size(served, agent, key)
            assert rows == nodes, key
            opened += 1
    assert page.console_errors() == []
    assert opened >= 10


def _tree_size(served: Served, agent: str, key: str) -> int:
    auth = {"Authorization": f"Bearer {served.token}"}
    base = f"{served.url}/v1/agents/{agent}"
    quoted = urllib.parse.quote(key, safe="")
    with urllib.request.urlopen(
        urllib.request.Request(f"{base}/sessions/{quoted}", headers=auth), timeout=5
    ) as answer:
        session_id = json.loads(answer.read())["sessionId"]
    tree = urllib.request.Request(
        f"{base}/transcripts/{urllib.parse.quote(session_id, safe='')}/tree", headers=auth
    )
    try:
        with urllib.request.urlopen(tree, timeout=5) as answer:
            return len(json.loads(answer.read())["nodes"])
    except urllib.error.HTTPError as missing:
        if missing.code != 404:
            raise
        return 0


def test_screenshots_of_the_page_are_kept(page: Browser, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for agent, key, name in (
        ("main", "agent:main:main", "page-sample.png"),
        ("main", KEY, "page.png"),
    ):
        _open(page, agent, key)
        shot = page.screenshot(tmp_path / name)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        shutil.copyfile(shot, ARTIFACTS / name)
        print(f"screenshot: {ARTIFACTS / name}")


def _open(page: Browser, agent: str, key: str) -> None:
    """Shows `key` of `agent` the way a person does: pick the agent, click the session."""
    if page.evaluate("document.getElementById('agent').value") != agent:
        page.evaluate(
            f"document.getElementById('agent').value = {json.dumps(agent)};"
            "document.getElementById('agent').dispatchEvent(new Event('change'))"
        )
        # The new list, and the first session the page opens by itself, are in first.
        page.wait_for(
            f"document.getElementById('sessions').dataset.agent === {json.dumps(agent)} && "
            "document.getElementById('transcript').dataset.key === "
            "document.querySelector('#sessions li.session')?.dataset.key"
        )
    page.evaluate(
        f"document.querySelector('#sessions li.session[data-key={json.dumps(key)}]').click()"
    )
    page.wait_for(f"document.getElementById('transcript').dataset.key === {json.dumps(key)}")


def test_a_wrong_token_asks_for_the_token_again(
    served: Served, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert CHROMIUM is not None
    profile = tmp_path_factory.mktemp("chromium-wrong") / "profile"
    with Browser(CHROMIUM, profile) as other:
        other.goto(f"{served.url}/#token=not-the-token")
        other.wait_for("!document.getElementById('login').hidden")
        message = other.evaluate("document.getElementById('login-error').textContent")
        assert "refused" in message
        assert other.evaluate("sessionStorage.getItem('store-sql-token')") is None
        assert other.evaluate("document.getElementById('main').hidden") is True


def test_the_page_needs_no_token_but_the_api_does(served: Served) -> None:
    with urllib.request.urlopen(served.url + "/", timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert b"<title>store-sql</title>" in answer.read()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(served.url + "/v1/agents", timeout=5)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(served.url + "/page/../../etc/passwd", timeout=5)
    assert missing.value.code == 404
    assert json.loads(missing.value.read())["error"]["code"] == "NOT_FOUND"


def test_the_page_is_not_part_of_the_api_document(served: Served) -> None:
    request = urllib.request.Request(
        served.url + "/openapi.json", headers={"Authorization": f"Bearer {served.token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        paths = json.loads(answer.read())["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/page/") for path in paths)


def _api(served: Served, method: str, path: str, body: object) -> object:
    request = urllib.request.Request(
        served.url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {served.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _say(text: str) -> dict[str, object]:
    return {
        "type": "message",
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
    }


def test_the_open_transcript_and_the_session_list_follow_writes_live(
    page: Browser, served: Served, seeded: Seeded
) -> None:
    """Writes made through the API while the page is open appear without a reload: an entry
    (the new leaf), a branch (the active path moves to it), a label, a new session at the
    top of the list, and its removal."""
    _open(page, "main", KEY)
    page.wait_for(
        "document.getElementById('transcript').dataset.live === 'open' && "
        "document.getElementById('sessions').dataset.live === 'open'"
    )
    entries = f"/v1/agents/main/transcripts/{SESSION_ID}/entries"
    text = "live-entry-quetzal"
    (one,) = _api(served, "POST", entries, {"entries": [_say(text)]})  # type: ignore[misc]
    assert one["parentId"] == seeded.ids["u4"]
    page.wait_for(f"document.querySelector('#entry-{one['id']}.leaf.on-path')")
    assert text in page.evaluate(f"document.getElementById('entry-{one['id']}').innerText")
    assert _ids(page, "#transcript .entry.leaf") == [one["id"]]

    body = {"entries": [_say("a branch from the plan")], "parentId": seeded.ids["a1"]}
    (branch,) = _api(served, "POST", entries, body)  # type: ignore[misc]
    page.wait_for(f"document.querySelector('#entry-{branch['id']}.leaf.on-path')")
    page.wait_for(f"document.querySelector('#entry-{one['id']}.off-path')")
    assert _ids(page, "#transcript .entry.on-path")[:3] == [
        seeded.ids["u1"],
        seeded.ids["a1"],
        branch["id"],
    ]

    label = {"type": "label", "targetId": branch["id"], "label": "added live"}
    _api(served, "POST", entries, {"entries": [label]})
    page.wait_for(
        f"document.querySelector('#entry-{branch['id']} .label-chip')?.textContent === 'added live'"
    )

    new_key = "agent:main:arrived-live"
    now = int(time.time() * 1000) + 60_000
    patch = {"sessionId": "live-session", "updatedAt": now, "label": "arrived live"}
    _api(served, "PATCH", f"/v1/agents/main/sessions/{urllib.parse.quote(new_key, safe='')}", patch)
    page.wait_for(
        f"document.querySelector('#sessions li.session').dataset.key === {json.dumps(new_key)}"
    )
    assert page.evaluate("document.querySelector('#sessions li.session .name').textContent") == (
        "arrived live"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    shot = page.screenshot(ARTIFACTS / "page-live.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")

    _api(served, "DELETE", f"/v1/agents/main/sessions/{urllib.parse.quote(new_key, safe='')}", {})
    page.wait_for(
        f"!document.querySelector('#sessions li.session[data-key={json.dumps(new_key)}]')"
    )
    assert page.evaluate("document.getElementById('transcript').dataset.key") == KEY
    assert page.console_errors() == []
