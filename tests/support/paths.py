"""Where the checkout and its vendored data are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RAW_DATA = ROOT / "data" / "Admission_Predict_Ver1.1.csv"
