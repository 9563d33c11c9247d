"""The bundled sample state directory is exactly what tools/make_sample_state.py writes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "state"
SCRIPT = ROOT / "tools" / "make_sample_state.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_state", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_committed_sample_equals_a_fresh_run_of_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    committed, fresh = _tree(SAMPLE), _tree(out)
    assert sorted(committed) == sorted(fresh), (
        "samples/state is stale: run `python tools/make_sample_state.py samples/state --force`"
    )
    differing = [name for name in committed if committed[name] != fresh[name]]
    assert differing == [], f"regenerate samples/state; these files differ: {differing}"


def test_the_generator_is_deterministic() -> None:
    generator = _generator()
    assert generator.generate() == generator.generate()
    assert generator.generate(seed=1) == generator.generate(seed=1)
    assert generator.generate(seed=1) != generator.generate()


def test_the_sample_holds_the_shapes_import_must_keep() -> None:
    names = sorted(_tree(SAMPLE))
    sessions = "agents/main/sessions/"
    assert any(".jsonl.reset." in n for n in names)
    assert any("-topic-" in n for n in names)
    assert any(".checkpoint." in n for n in names)
    assert any("/skills-prompts/sha256/" in n for n in names)
    assert any(".bak." in n for n in names)
    index = (SAMPLE / sessions / "sessions.json").read_bytes()
    assert index.startswith(b'{\n  "7": {')  # integer-like keys first, as JavaScript lists them
    assert not index.endswith(b"\n")
    tree = _tree(SAMPLE)
    damaged = [n for n in names if n.endswith(".jsonl") and not tree[n].endswith(b"\n")]
    assert len(damaged) == 1, damaged
    assert sum(len(data) for data in tree.values()) < 300_000


def test_node_json_stringify_reproduces_every_json_text() -> None:
    generator = _generator()
    if not generator.shutil.which("node"):
        pytest.skip("node is not installed: the JSON.stringify oracle is unavailable")
    files = {name: b"" for name in _tree(SAMPLE)}
    assert generator.verify_with_node(SAMPLE, files) == []
