"""PrepareData's functions: reading, contract validation, rejects and the split."""

import csv
import logging
from pathlib import Path

import pandas as pd
import pytest

from pipeline import task as task_module
from pipeline.data import PrepareData, check_reject_share, normalise_column, prepare, read_raw, split, validate
from pipeline.errors import DataError
from pipeline.task import UNREADABLE
from tests.support.paths import RAW_DATA

HEADER = "Serial No.,GRE Score,TOEFL Score,University Rating,SOP,LOR ,CGPA,Research,Chance of Admit \r\n"
GOOD = "1,337,118,4,4.5,4.5,9.65,1,0.92\r\n"


def write(tmp_path: Path, text: str | bytes, name: str = "raw.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Serial No.", "serial_no"), ("LOR ", "lor"), ("Chance of Admit ", "chance_of_admit"), ("GRE Score", "gre_score")],
)
def test_column_names_are_normalised(raw: str, expected: str) -> None:
    assert normalise_column(raw) == expected


def test_read_raw_drops_the_serial_number_and_numbers_lines_from_two() -> None:
    raw = read_raw(RAW_DATA)
    assert "serial_no" not in raw.columns
    assert list(raw.columns)[-1] == "chance_of_admit"
    assert raw.index[0] == 2
    assert raw.loc[2, "gre_score"] == "337"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a UTF-8 CSV"),
        (HEADER.replace("LOR ,", "") + GOOD.replace("4.5,9.65", "9.65"), "lacks column(s): LOR"),
        ('"unterminated\n1,2\n', "not a readable CSV"),
    ],
)
def test_unusable_files_give_one_clear_error(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_raw(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_raw(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2,250,118,4,4.5,4.5,9.65,1,0.92", "gre_score: Input should be greater than or equal to 260"),
        ("2,337,121,4,4.5,4.5,9.65,1,0.92", "toefl_score: Input should be less than or equal to 120"),
        ("2,337,118,6,4.5,4.5,9.65,1,0.92", "university_rating: Input should be less than or equal to 5"),
        ("2,337,118,4,4.2,4.5,9.65,1,0.92", "sop: Input should be a multiple of 0.5"),
        ("2,337,118,4,4.5,4.5,10.5,1,0.92", "cgpa: Input should be less than or equal to 10"),
        ("2,337,118,4,4.5,4.5,9.65,2,0.92", "research: Input should be less than or equal to 1"),
        ("2,337,118,4,4.5,4.5,9.65,1,1.2", "chance_of_admit: Input should be less than or equal to 1"),
        ("2,337,,4,4.5,4.5,9.65,1,0.92", "toefl_score: missing value"),
        ("2,337,abc,4,4.5,4.5,9.65,1,0.92", "toefl_score: Input should be a valid"),
        (",316.472,,,,,,,", "cgpa: missing value"),
    ],
)
def test_bad_rows_are_rejected_with_their_reason(tmp_path: Path, row: str, reason: str) -> None:
    valid, rejects = validate(read_raw(write(tmp_path, HEADER + GOOD + row + "\r\n")))
    assert len(valid) == 1
    assert rejects.index.tolist() == [3]
    assert reason in rejects.loc[3, "reason"]


def test_cells_keep_their_text_when_every_one_reads_as_a_number(tmp_path: Path) -> None:
    # read_raw reads the contract's columns as categoricals, whose categories pandas turns into numbers
    # when all of them read as numbers: "4.20" must stay "4.20", and "300.0" and "300" two texts.
    rows = GOOD + "2,300.0,118,4,4.20,4.5,9.65,1,0.92\r\n" + "3,300,118,4,4.5,4.5,9.65,1,0.92\r\n"
    raw = read_raw(write(tmp_path, HEADER + rows))
    assert raw["gre_score"].tolist() == ["337", "300.0", "300"]
    assert raw.astype(float)["sop"].tolist() == [4.5, 4.2, 4.5]  # the header is no category of its column
    _, rejects = validate(raw)
    assert rejects["reason"].to_dict() == {3: "sop: Input should be a multiple of 0.5 (got '4.20')"}


def test_a_repeated_header_line_is_a_rejected_row(tmp_path: Path) -> None:
    valid, rejects = validate(read_raw(write(tmp_path, HEADER + GOOD + HEADER)))
    assert len(valid) == 1
    assert rejects.loc[3, "reason"].startswith("gre_score: Input should be a valid integer, unable to parse string")
    assert rejects.loc[3, "gre_score"] == "GRE Score"


def test_duplicate_rows_are_rejected_naming_the_first(tmp_path: Path) -> None:
    _, rejects = validate(read_raw(write(tmp_path, HEADER + GOOD + GOOD.replace("1,", "2,", 1))))
    assert rejects.loc[3, "reason"] == "duplicate of line 2"


def test_too_many_rejects_fail_naming_the_rows(tmp_path: Path) -> None:
    rejects = pd.DataFrame({"reason": ["gre_score: missing value", "duplicate of line 2"]}, index=[7, 9])
    with pytest.raises(DataError, match=r"2 of 10 rows .* line 7: gre_score: missing value; line 9: duplicate"):
        check_reject_share(rejects, 10, 0.05, tmp_path / "raw.csv")
    check_reject_share(rejects, 100, 0.05, tmp_path / "raw.csv")  # 2% is within the threshold


def test_failed_preparation_keeps_every_reject(tmp_path: Path) -> None:
    bad_rows = "".join(f"{i},200,118,4,4.5,4.5,9.65,1,0.92\r\n" for i in range(2, 6))
    path = write(tmp_path, HEADER + GOOD + bad_rows)
    kept = tmp_path / "kept.csv"
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match=str(kept)):
        prepare(path, out, test_size=0.2, max_reject_share=0.05, seed=1, kept_rejects=kept)
    assert len(pd.read_csv(kept)) == 4


def test_split_is_seeded_and_disjoint() -> None:
    valid, _ = validate(read_raw(RAW_DATA))
    train, test = split(valid, 0.2, seed=7)
    again_train, _ = split(valid, 0.2, seed=7)
    other_train, _ = split(valid, 0.2, seed=8)
    assert len(test) == 100
    assert not set(train.index) & set(test.index)
    assert train.index.equals(again_train.index)
    assert not train.index.equals(other_train.index)


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (HEADER.replace("CGPA,", "CGPA,gre_score,"), "column 2 ('GRE Score') and column 8 ('gre_score')"),
        (HEADER.replace("Research,", "Research,GRE Score,"), "column 2 ('GRE Score') and column 9 ('GRE Score')"),
        (HEADER.replace("SOP,", "SOP,sop ,"), "column 5 ('SOP') and column 6 ('sop ')"),
        (HEADER.replace("Serial No.,", "Serial No.,serial-no,"), "column 1 ('Serial No.') and column 2 ('serial-no')"),
    ],
)
def test_an_ambiguous_header_fails_naming_the_columns(tmp_path: Path, header: str, named: str) -> None:
    # The extra column holds valid values, the original impossible ones: whichever is trained on, it must fail.
    row = GOOD.replace("1,337,", "1,-4999,").rstrip("\r\n") + ",337\r\n"
    path = write(tmp_path, header + row)
    with pytest.raises(DataError, match="ambiguous header") as info:
        read_raw(path)
    assert named in str(info.value)
    assert str(path) in str(info.value)


def test_a_header_without_rows_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"has a header but no rows"):
        read_raw(write(tmp_path, HEADER))


def test_an_unreadable_file_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, who may read anything: refuse the read itself, as the kernel would for others.
    path = write(tmp_path, HEADER + GOOD)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_csv", refuse)
    with pytest.raises(DataError, match=r"cannot be read: Permission denied") as info:
        read_raw(path)
    assert str(path) in str(info.value)


def test_rejects_file_neutralises_spreadsheet_formulas(tmp_path: Path) -> None:
    formulas = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"]
    quoted = [cell.replace('"', '""') for cell in formulas]
    rows = "".join(f'{i},"{cell}",118,4,4.5,4.5,9.65,1,0.92\r\n' for i, cell in enumerate(quoted, 600))
    path = write(tmp_path, RAW_DATA.read_text() + rows)
    out = tmp_path / "out"
    out.mkdir()
    prepare(path, out, test_size=0.2, max_reject_share=0.05, seed=1, kept_rejects=tmp_path / "kept.csv")
    with open(out / "rejects.csv", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")] == []
    for formula in formulas:  # still readable: the raw value behind one quote
        assert "'" + formula in cells


def test_rejects_within_the_threshold_are_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_bytes(RAW_DATA.read_bytes() + b",316.472,,,,,,,\r\n")
    task = PrepareData(raw_data=str(raw), artefacts_dir=str(tmp_path / "artefacts"))
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        task.produce(out)
    assert "1 of 501 rows" in caplog.text
    assert str(Path(task.output().path) / "rejects.csv") in caplog.text


def test_prepare_data_on_an_unreadable_file_fails_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, HEADER + GOOD)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(task_module, "sha256_file", refuse)  # what the task id is computed with
    monkeypatch.setattr(pd, "read_csv", refuse)
    task = PrepareData(raw_data=str(path), artefacts_dir=str(tmp_path / "artefacts"))
    assert task.data_sha256 == UNREADABLE
    with pytest.raises(DataError, match=rf"raw data file {path} cannot be read: Permission denied"):
        task.produce(tmp_path)
