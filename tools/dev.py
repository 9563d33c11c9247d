#!/usr/bin/env python3
"""One entry point for developers and CI: set up the virtualenv, then run a job.

    python3 tools/dev.py demo    # set up, import the bundled sample state, export, verify
    python3 tools/dev.py test    # set up, then lint, types, import layers, the Node client's
                                 # tests, pytest (with the Chromium page test)
    python3 tools/dev.py setup   # only set up (.venv with the pinned dependencies)
    python3 tools/dev.py bench   # set up with the `bench` group (peer stores), run tools/bench

Extra arguments after `bench` go to tools/bench/run (e.g. `--quick`, `--only peers`).

Extra arguments after `test` go to pytest (e.g. `python3 tools/dev.py test --long`).
Needs only Python >= 3.11 and access to the package registry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import pg_server  # tools/pg_server.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".store_sql-installed"


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _run(*args: str | Path, cwd: Path = ROOT) -> None:
    _say(" ".join(str(a) for a in args))
    subprocess.run([str(a) for a in args], cwd=cwd, check=True)


def setup() -> None:
    """Create .venv and install the project with its pinned dev dependencies (once per
    change of pyproject.toml)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script is what tells users so
        sys.exit(f"store_sql needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        _say(f"creating virtualenv {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


BENCH_STAMP = VENV / ".store_sql-bench-installed"


def setup_bench() -> None:
    """Install the optional `bench` group (the peers of tools/bench/bench_peers.py) into
    .venv, once per change of pyproject.toml. Without the registry the peers' rows say they
    were skipped and the rest of the benchmarks run."""
    setup()
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if BENCH_STAMP.exists() and BENCH_STAMP.read_text() == wanted:
        return
    try:
        _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev,bench]")
    except subprocess.CalledProcessError:
        _say("could not install the bench group (no registry?): peer rows will be skipped")
        return
    BENCH_STAMP.write_text(wanted)


def bench(run_args: list[str]) -> None:
    """The benchmarks, with the peer stores installed."""
    setup_bench()
    _run(BIN / "python", ROOT / "tools" / "bench" / "run", *run_args)


def demo() -> None:
    """The main job on bundled sample data: import it, show it, export it, prove the bytes."""
    setup()
    sample = ROOT / "samples" / "state"
    work = ROOT / "demo-out"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    db = work / "store.sqlite"
    cli = BIN / "store-sql"
    _run(cli, "import", sample, "--db", db)
    _run(cli, "stats", "--db", db)
    _run(cli, "sessions", "list", "--db", db, "--agent", "main", "--limit", "5")
    _run(cli, "export", work / "export", "--db", db)
    _run(cli, "verify", sample, "--db", db)
    different = _compare_trees(sample, work / "export")
    if different:
        sys.exit(f"round trip FAILED for: {', '.join(different)}")
    count = sum(1 for p in sample.rglob("*") if p.is_file())
    _say(f"round trip OK: {count} files exported byte for byte identical (database: {db})")


def _compare_trees(left: Path, right: Path) -> list[str]:
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    names |= {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    return sorted(
        str(n)
        for n in names
        if not (left / n).is_file()
        or not (right / n).is_file()
        or (left / n).read_bytes() != (right / n).read_bytes()
    )


def install_openclaw_oracle() -> None:
    """The real OpenClaw CLI and its Node.js 24 (npm, pinned in tools/oracles/openclaw), which
    the tests of today's gateway state run; installed once into a cache shared by every run on
    the machine. Where it cannot be installed (npm or the registry unreachable) this says so
    and goes on: those tests then skip with the same reason."""
    _say("tools/oracles/openclaw (the real OpenClaw and its Node.js, from npm; cached)")
    _install_oracle("OpenClaw", "openclaw", "--install")


def _install_oracle(name: str, script: str, *args: str) -> None:
    """Run `tools/oracles/<script>`, which prints where the oracle is installed, or exits 3
    (and says why on stderr) where it cannot be installed: its tests then skip."""
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "oracles" / script), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        _say(f"{name} oracle ready in {done.stdout.strip()}")
    elif done.returncode == 3:
        _say(f"{name} oracle unavailable, its tests will skip: {done.stderr.strip()}")
    else:
        sys.exit(f"installing the {name} oracle failed ({done.returncode}): {done.stderr.strip()}")


NODE_CLIENT = ROOT / "clients" / "node"
NODE_MAJOR = 20


def install_chromium() -> None:
    """Debian's `chromium` package, for the page test (tests/test_page_browser.py): installed
    with apt when missing (once; later runs find the binary). Where it cannot be installed the
    test skips and says why."""
    if any(shutil.which(name) for name in ("chromium", "chromium-browser")):
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        _say("chromium: not installed and no root apt-get here; the browser test will skip")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Fonts are named: without recommended packages nothing else brings one, and the
    # screenshot would show boxes for text.
    packages = ["chromium", "fonts-liberation", "fonts-dejavu-core"]
    install = [apt, "install", "-y", "--no-install-recommends", *packages]
    for args in ([apt, "update"], install):
        _say(" ".join(args))
        done = subprocess.run(args, env=env, check=False)
        if done.returncode != 0:
            _say(f"chromium: `{' '.join(args)}` failed; the browser test will skip")
            return


def install_node_client_tools() -> None:
    """The Node client's pinned dev tools (TypeScript, to check index.d.ts): `npm ci` in
    clients/node, again only when its package-lock.json changes. Where npm or the registry
    is missing, the type check skips and says why."""
    npm = shutil.which("npm")
    lock = NODE_CLIENT / "package-lock.json"
    stamp = NODE_CLIENT / "node_modules" / ".store_sql-installed"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if npm is None:
        _say("npm: not installed; the client's type check will skip")
        return
    _say("npm ci (clients/node: typescript for the type check)")
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(command, cwd=NODE_CLIENT, check=False)
    if done.returncode != 0:
        _say("npm ci failed (registry unreachable?); the client's type check will skip")
        return
    stamp.write_text(wanted)


def node_client_tests() -> None:
    """The Node client's own tests (clients/node/test, Node's test runner) against a real
    `store-sql serve` they start from this virtualenv."""
    node = shutil.which("node")
    if node is None:
        _say("node: not installed; SKIPPED the Node client's tests (clients/node needs Node 20+)")
        return
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    if major < NODE_MAJOR:
        _say(f"node: {version.stdout.strip()} is older than {NODE_MAJOR}; SKIPPED the client tests")
        return
    install_node_client_tools()
    tests = sorted(
        str(p.relative_to(NODE_CLIENT)) for p in (NODE_CLIENT / "test").glob("*.test.js")
    )
    env = {**os.environ, "STORE_SQL_BIN": str(BIN / "store-sql")}
    _say(f"node --test ({len(tests)} files in {NODE_CLIENT.relative_to(ROOT)})")
    subprocess.run(
        [node, "--test", "--test-reporter=spec", *tests], cwd=NODE_CLIENT, env=env, check=True
    )


def install_pi_oracle() -> None:
    """The real pi (npm, pinned in tools/oracles/pi) that the tests compare the store with,
    installed once into a cache shared by every run on the machine. Where npm or the
    registry cannot be reached this says so and goes on: the tests that need pi then skip
    with the same reason."""
    _say("tools/oracles/pi (the real pi, from the npm registry; cached)")
    _install_oracle("pi", "pi")


def install_postgres() -> None:
    """PostgreSQL's server programs (Debian's `postgresql`), which the tests run a throwaway
    server of; installed with apt-get where missing. Where they cannot be installed (not
    root, no apt-get, the registry unreachable) this says so and goes on: the PostgreSQL
    tests then skip, saying why."""
    if pg_server.find_bin_dir() is not None:
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        _say("PostgreSQL is not installed and apt-get cannot install it here: its tests will skip")
        return
    _say("installing PostgreSQL (Debian's postgresql) with apt-get")
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "postgresql"]):
        done = subprocess.run(args, env=quiet, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            _say(f"apt-get failed, the PostgreSQL tests will skip: {' '.join(tail)}")
            return


def _stop_on_sigterm() -> None:
    """SIGTERM ends the run through the normal exits, so `finally` stops the test server."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


TEST_WORKERS = 2
"""pytest-xdist worker processes of a default run: most of the suite's time is waiting (child
processes starting, fsyncs, PostgreSQL round trips), so two workers keep two cores busy."""


def _with_workers(pytest_args: list[str]) -> list[str]:
    """`pytest_args` with the default workers and distribution, unless they choose their own
    (`-n N`, `-n 0` or `-p no:xdist` for one process, `--dist ...`)."""
    chosen = any(
        arg.startswith(("-n", "--numprocesses", "--dist", "-pno:xdist")) or arg == "no:xdist"
        for arg in pytest_args
    )
    if chosen:
        return pytest_args
    return ["-n", str(TEST_WORKERS), "--dist", "loadfile", *pytest_args]


def test(pytest_args: list[str]) -> None:
    """Everything CI checks: lint, format, types, tests (with a throwaway PostgreSQL server
    for the tests that need one, stopped at the end whatever happens)."""
    setup()
    install_openclaw_oracle()
    install_pi_oracle()
    install_postgres()
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "ruff", "format", "--check", ".")
    _run(BIN / "mypy")
    _run(BIN / "lint-imports")
    node_client_tests()
    install_chromium()
    _stop_on_sigterm()
    server = pg_server.ThrowawayPostgres()
    env = dict(os.environ)
    try:
        env[pg_server.URL_ENV] = server.start()
        _say(f"throwaway PostgreSQL at {env[pg_server.URL_ENV]}")
    except pg_server.Unavailable as exc:
        _say(f"no PostgreSQL server, its tests will skip: {exc}")
    try:
        pytest_args = _with_workers(pytest_args)
        _say(f"{BIN / 'python'} -m pytest {' '.join(pytest_args)}")
        subprocess.run([BIN / "python", "-m", "pytest", *pytest_args], env=env, check=True)
    finally:
        server.stop()


def main(argv: list[str]) -> None:
    job = argv[0] if argv else "test"
    try:
        if job == "setup":
            setup()
        elif job == "demo":
            demo()
        elif job == "test":
            test(argv[1:])
        elif job == "bench":
            bench(argv[1:])
        else:
            sys.exit(__doc__)
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode or 1)


if __name__ == "__main__":
    main(sys.argv[1:])
