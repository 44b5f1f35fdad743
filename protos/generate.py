"""Regenerate the Python gRPC modules from the .proto files beside this script (`make proto`).

Generated modules are committed, so a plain `pip install .` needs no protoc. Two rewrites make
them live inside the `forestgate.protos` package:
- imports of our own proto packages (`from inference import ...`) become absolute
  (`from forestgate.protos.inference import ...`), so no generic top-level name leaks;
- descriptors go into ForestGate's private pool (`forestgate.protos.pool.POOL`), not protobuf's
  default one: `inference.*` is also defined by tritonclient's copy of the protocol, and two
  definitions of one name in the default pool refuse to load in the same process.

`python protos/generate.py --check` exits 1 when the committed modules are stale.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
# Top-level proto packages defined here: their generated imports are made absolute.
OWN_PACKAGES = ("inference", "forestgate")


def generate(out: Path) -> list[Path]:
    sources = sorted(p.relative_to(HERE) for p in HERE.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
        f"--grpc_python_out={out}", *map(str, sources),
    ]  # fmt: skip
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted(out.rglob("*_pb2*.py*")):
        text = path.read_text(encoding="utf-8")
        text = re.sub(
            rf"^from ({'|'.join(OWN_PACKAGES)})((?:\.\w+)*) import",
            r"from forestgate.protos.\1\2 import",
            text,
            flags=re.M,
        )
        text = text.replace(
            "_descriptor_pool.Default().AddSerializedFile",
            "_forestgate_pool.POOL.AddSerializedFile",
        ).replace(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n",
            "from google.protobuf import descriptor_pool as _descriptor_pool\n"
            "from forestgate.protos import pool as _forestgate_pool\n",
        )
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = []
        for path in fresh:
            target = HERE / path.relative_to(tmp)
            if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                stale.append(target)
                if not args.check:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
    for target in stale:
        print(f"{'stale' if args.check else 'wrote'}: {target.relative_to(HERE.parent)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
