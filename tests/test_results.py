"""Every result file the book reads is in ``results/``, parses, and names the run that made it.

The chapters plot and quote ``results/<experiment>-<profile>.json``; a missing or hand-edited file
would show up there as a gap or as a number no command reproduces.
"""

import json
import re
from pathlib import Path

import pytest

from sslbook.budget import TIMES_FILE
from sslbook.compare import EXPERIMENT_OF
from sslbook.experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def names_read_by_the_book() -> set[str]:
    """``<experiment>-<profile>[-amp]`` of every result file a chapter loads."""
    names = set()
    for path in (ROOT / "book").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            pattern = r'load_result\("(\w+)", "(\w+)"(, amp=True)?\)'
            for name, prof, amp in re.findall(pattern, source):
                names.add(f"{name}-{prof}" + ("-amp" if amp else ""))
            if 'comparison("cpu")' in source:  # the closing chapter reads every method's file
                names |= {f"{e}-cpu" for e in EXPERIMENT_OF.values()} | {"few_labels-cpu"}
            if 'batch_size_rows("cpu")' in source:  # the study and the runs it compares with
                names |= {"batch_size-cpu", "simclr-cpu", "moco-cpu"}
    return names


def parse(stem: str) -> tuple[str, str, bool]:
    """``simclr-cpu-amp`` -> ("simclr", "cpu", True): experiment, profile, mixed precision.

    A seed's file (``simclr-cpu-seed1``) parses as its seed-0 run's.
    """
    stem = re.sub(r"-seed\d+(?=(-amp)?$)", "", stem)
    amp = stem.endswith("-amp")
    if "-" not in stem:
        raise ValueError(f"{stem!r} is not <experiment>-<profile>[-seedN][-amp]")
    experiment, prof = stem.removesuffix("-amp").rsplit("-", 1)
    return experiment, prof, amp


def test_the_book_reads_every_experiment_at_the_cpu_profile():
    read = names_read_by_the_book()
    assert {f"{name}-cpu" for name in EXPERIMENTS} <= read
    assert all(parse(name)[0] in EXPERIMENTS for name in read), read


@pytest.mark.parametrize(
    "name", sorted(names_read_by_the_book() | {f"{e}-cpu" for e in EXPERIMENTS})
)
def test_result_file_exists_parses_and_names_its_command(name):
    path = RESULTS / f"{name}.json"
    experiment, prof, amp = parse(name)
    command = f"python -m sslbook.run {experiment} --profile {prof}" + (" --amp" if amp else "")
    assert path.exists(), f"{path.name} is missing: {command}"
    result = json.loads(path.read_text())
    assert result["experiment"] == experiment and result["profile"] == prof
    assert bool(result["settings"].get("amp")) == amp
    prov = result["provenance"]
    assert prov["command"] == command
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]), "made from committed code"
    assert prov["wall_time_s"] > 0 and prov["hardware"]["device"] in ("cpu", "cuda", "mps")
    assert result["scale_note"]


def test_no_stray_result_files():
    read = names_read_by_the_book()
    for path in RESULTS.glob("*.json"):
        if path.name == TIMES_FILE:  # every chapter's time table (python -m sslbook.budget)
            continue
        assert parse(path.stem)[0] in EXPERIMENTS, f"{path.name} names no experiment"
        seed0 = re.sub(r"-seed\d+(?=(-amp)?$)", "", path.stem)
        assert seed0 in read, f"{path.name} is read by no chapter"


def test_a_seed_file_parses_as_its_run():
    assert parse("simclr-cpu-seed2") == ("simclr", "cpu", False)
    assert parse("simclr-cpu-amp") == parse("simclr-cpu-seed1-amp") == ("simclr", "cpu", True)
    with pytest.raises(ValueError, match="is not <experiment>-<profile>"):
        parse("chapter_times")
