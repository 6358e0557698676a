"""Write the API's OpenAPI document (what /docs.json serves with the default settings) as YAML.

    python scripts/write_openapi.py docs/openapi.yaml      (make openapi)

It imports the service's declaration only: no trained model, users file or secret is needed. The
document is written beside the target and moved over it, so a failure never leaves it empty or cut.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/write_openapi.py <file.yaml>", file=sys.stderr)
        return 2
    import yaml

    from service.api import SERVICE
    from service.openapi import document

    target = Path(argv[0])
    text = yaml.safe_dump(document(SERVICE.openapi_spec.asdict()), sort_keys=False, width=120)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(partial, target)
    print(f"wrote {target} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
