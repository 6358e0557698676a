"""How many guesses a JWT secret would cost an attacker, in bits: the check behind "too weak".

An HS256 token is an offline oracle: anyone holding one token can test candidate secrets at GPU speed
without ever talking to the server. So a secret is judged by the cheapest way to guess it, never by
how it looks (distinct bytes: 64 random hex characters often use fewer than 16 symbols).

The patterns come from zxcvbn (Dropbox's estimator, maintained on PyPI): dictionary words from its
frequency lists (passwords, English, names) also reversed and in l33t, keyboard runs, sequences
(``abcdef``, ``0123``), repeated chunks and dates. zxcvbn's own total does not fit a 256-bit key: it
prices every unmatched character at 10 guesses whatever the alphabet (64 hex characters of 16
symbols look like 213 bits, 32 lowercase words-and-hyphens as much as random base64) and it accepts
at most 72 characters. So only its matches are used; the cheapest cover of the secret by matches and
unmatched characters is computed here, each unmatched character costing log2 of the alphabet the
secret uses (16 for hex; 26 per letter case and 10 for digits when used; each punctuation mark used).
"""

from __future__ import annotations

import math
import string

from zxcvbn import matching, scoring

MIN_BITS = 128.0  # a guess space no one can search; the recipes' 32 random bytes estimate 185+ bits
WINDOW = 128  # zxcvbn's matching is quadratic: each window is judged alone (and stays fast)
MIN_MATCH = 3  # one- and two-character "words" are in every random string: pricing them cheap was unfair
MAX_JUDGED = 512  # characters judged; any beyond add nothing (a long tail cannot hide a weak start)
_CLASSES = (frozenset(string.ascii_lowercase), frozenset(string.ascii_uppercase), frozenset(string.digits))
_HEX = (frozenset("0123456789abcdef"), frozenset("0123456789ABCDEF"))
# Words an attacker tries first on this service: its name, the usual placeholders, and the documented
# recipe itself (in a compose .env file, `$(python3 -c ...)` is not run: the command becomes the secret).
_PROJECT_WORDS = [
    "admissions", "admission", "jwt", "secret", "key", "token", "signing", "hs256", "bentoml", "changeme",
    "change-me", "replace-me", "your-secret-key", "supersecret", "python3", "python", "import", "secrets",
    "print", "token_urlsafe", "token_hex", "openssl", "rand", "base64",
]  # fmt: skip
_DICTIONARIES = {**matching.RANKED_DICTIONARIES, "project": matching.build_ranked_dict(_PROJECT_WORDS)}


def estimated_bits(secret: str) -> float:
    """log2 of the guesses the cheapest known way of guessing ``secret`` needs (a low estimate)."""
    judged = secret[:MAX_JUDGED]
    per_char = math.log2(alphabet_size(judged)) if judged else 0.0
    return sum(_window_bits(judged[start : start + WINDOW], per_char) for start in range(0, len(judged), WINDOW))


def alphabet_size(secret: str) -> int:
    """The symbols an attacker would try per character: the whole of each class of letters and digits the
    secret draws from, and the punctuation it uses (``-`` and ``_`` for urlsafe, ``+/=`` for base64, the
    separators of a passphrase: a guesser tries those, not all 33)."""
    chars = set(secret)
    if any(chars <= hex_digits for hex_digits in _HEX):
        return 16
    size = sum(len(group) for group in _CLASSES if chars & group)
    others = chars.difference(*_CLASSES)
    return size + len(others)


def _window_bits(text: str, per_char: float) -> float:
    """The cheapest cover of ``text`` by zxcvbn's matches and unmatched characters (dynamic programming
    over end positions; a match's cost is log2 of zxcvbn's guesses for it)."""
    ending: list[list[tuple[int, float]]] = [[] for _ in text]
    for match in matching.omnimatch(text, _DICTIONARIES):
        if match["j"] - match["i"] + 1 >= MIN_MATCH:
            guesses = max(1.0, float(scoring.estimate_guesses(match, text)))
            ending[match["j"]].append((match["i"], math.log2(guesses)))
    best = [0.0] * (len(text) + 1)
    for end, matches in enumerate(ending):
        best[end + 1] = min([best[end] + per_char, *(best[start] + cost for start, cost in matches)])
    return best[-1]
