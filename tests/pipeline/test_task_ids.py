"""Lineage reaches the task ids: the raw file's content and the code version are parameters."""

from pathlib import Path

from pipeline.data import PrepareData
from pipeline.provenance import code_version, sha256_file, sha256_tree
from pipeline.task import UNREADABLE
from tests.support.paths import RAW_DATA


def test_data_hash_and_code_version_are_filled_in() -> None:
    task = PrepareData(raw_data=str(RAW_DATA))
    assert task.data_sha256 == sha256_file(RAW_DATA)
    assert task.code_version == code_version()


def test_changed_raw_content_changes_the_task_id(tmp_path: Path) -> None:
    copy = tmp_path / "raw.csv"
    copy.write_bytes(RAW_DATA.read_bytes())
    same = PrepareData(raw_data=str(copy))
    assert same.task_id == PrepareData(raw_data=str(RAW_DATA)).task_id  # the path alone does not matter
    copy.write_bytes(RAW_DATA.read_bytes().replace(b"0.92", b"0.93", 1))
    assert PrepareData(raw_data=str(copy)).task_id != same.task_id


def test_changed_code_version_changes_the_task_id() -> None:
    assert PrepareData(code_version="aaaa").task_id != PrepareData(code_version="bbbb").task_id


def test_an_unreadable_raw_file_is_left_for_the_task_to_report(tmp_path: Path) -> None:
    assert PrepareData(raw_data=str(tmp_path / "missing.csv")).data_sha256 == UNREADABLE


def test_tree_hash_covers_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("1")
    first = sha256_tree(tmp_path)
    (tmp_path / "a.txt").write_text("2")
    second = sha256_tree(tmp_path)
    (tmp_path / "a.txt").rename(tmp_path / "b.txt")
    assert len({first, second, sha256_tree(tmp_path)}) == 3
