"""Property-based fuzzing of batch task files (issue 18): arbitrary output names and task lines.
Properties: a name is refused with its field named, or it is a printable plain file name that stays
inside the output folder and can be created there; every task line is parsed into an item or an
error, in order; a real run (real synthesis) writes only inside its output folder, never a name with
a control character, and text_compare.jsonl has one row per task line.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedtts.app.batch import BatchConfig, BatchError, ItemError, parse_tasks, run_batch, safe_name
from fedtts.pipeline import SynthesisOptions, Synthesizer

SCALE = max(1, int(os.environ.get("FEDTTS_FUZZ_SCALE", "1")))
NASTY = [
    "../x",
    "..",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "a\nb",
    "a\rb",
    "x\x00y",
    "\u202eevil",
    "a\u2028b",
    ".hidden",
    " spaced ",
    "名字",
    "a" * 300,
    "é" * 130,
    "ok.wav",
    "CON",
    "-rf",
    "$(rm)",
    "~",
]
names = st.one_of(st.text(max_size=20), st.sampled_from(NASTY), st.integers(), st.none(), st.lists(st.text()))


def _printable(name: str) -> bool:
    return not any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in name)


@settings(max_examples=300 * SCALE, deadline=None, database=None)
@given(names)
def test_names_are_refused_or_stay_inside_the_output_folder(name):
    try:
        safe = safe_name(name, "output_name")
    except ItemError as e:
        assert "output_name" in str(e) and e.field == "output_name"
        return
    assert _printable(safe) and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        target = out / f"{safe}.wav"
        assert target.resolve().parent == out.resolve()
        target.write_bytes(b"")  # the file system accepts it (length, encoding)
        assert [p.name for p in out.iterdir()] == [target.name]


value = st.one_of(st.text(max_size=12), st.sampled_from(NASTY), st.integers(), st.none(), st.booleans())
task_obj = st.fixed_dictionaries(
    {},
    optional={
        "input_text": st.one_of(st.sampled_from(["Hi.", "你好。", ""]), value),
        "output_name": names,
        "prompt_audio": value,
        "uttid": names,
        "syn_text": value,
        "prompt_speech": value,
        "prompt_text": value,
    },
)
task_line = st.one_of(
    task_obj.map(lambda o: json.dumps(o, ensure_ascii=False)),
    st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t),
    st.just(""),
    st.just("[1, 2]"),
)


@settings(max_examples=150 * SCALE, deadline=None, database=None)
@given(st.lists(task_line, min_size=1, max_size=8))
def test_every_task_line_is_an_item_or_an_error(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            items = parse_tasks(path)
        except BatchError as e:
            assert str(path) in str(e)
            assert not any(x.strip() for x in lines) or any("\x00" in x for x in lines)
            return
        got = [x.line if not isinstance(x, tuple) else x[0] for x in items]
        assert got == [i for i, x in enumerate(lines, 1) if x.strip()]
        for x in items:
            if isinstance(x, tuple):
                assert isinstance(x[1], ItemError) and str(x[1])
            else:
                assert _printable(x.name) and (Path(tmp) / "out" / f"{x.name}.wav").parent.name == "out"


@pytest.fixture(scope="module")
def synth(engine) -> Synthesizer:
    return Synthesizer(engine=engine)


run_line = st.builds(
    lambda n, t: json.dumps({"input_text": t, "output_name": n}, ensure_ascii=False),
    st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=8)),
    st.sampled_from(["Hi.", "你好。", "", "★"]),
)


@pytest.mark.slow
@settings(
    max_examples=6 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(run_line, min_size=1, max_size=4))
def test_real_batch_writes_only_inside_its_folder(synth, lines):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tasks = root / "t.jsonl"
        tasks.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = root / "deep" / "out"
        cfg = BatchConfig(tasks=tasks, out_dir=out, options=SynthesisOptions(seed=1), progress=False)
        rep = run_batch(cfg, synthesizer=synth)
        written = {p for p in root.rglob("*") if p.is_file()} - {tasks}
        assert all(p.parent == out for p in written), written
        assert all(_printable(p.name) for p in written)
        rows = [json.loads(x) for x in (out / "text_compare.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [r["line"] for r in rows] == list(range(1, len(lines) + 1))
        assert rep.ok == all(r["status"] in ("done", "skipped", "redone") for r in rows)
        wavs = {p.name for p in written if p.suffix == ".wav"}
        assert wavs == {r["wav"] for r in rows if r["status"] in ("done", "redone", "skipped")}
