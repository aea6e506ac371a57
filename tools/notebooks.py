"""Execute the notebooks; with no arguments, rewrite their saved outputs in place.

    .venv/bin/python tools/notebooks.py            # regenerate every notebook's outputs
    .venv/bin/python tools/notebooks.py NAME ...   # only these (file stems)
    .venv/bin/python tools/notebooks.py --check    # exit 1 if a saved output is stale

Regenerating also writes each notebook's last figure to docs/figures/<notebook>.png, the
figure the README shows beside its link.

The test suite runs the check (tests/test_notebooks.py), so a change that moves a number
shown in a notebook fails until the outputs are regenerated with this command.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIGURES = ROOT / "docs" / "figures"


def execute(path: Path):
    """The notebook at ``path``, executed from its own folder (outputs in memory)."""
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def text_outputs(nb) -> list[list[str]]:
    """Per code cell, its printed text and plain-text results (images are left out: their
    bytes vary with the plotting library's version)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts, stream = [], {"stdout": "", "stderr": ""}
        for o in cell.get("outputs", []):
            if o.output_type == "stream":  # joined: the kernel splits printed text into chunks at random
                stream[o.name] = stream.get(o.name, "") + o.text
            elif o.output_type in ("execute_result", "display_data") and "image/png" not in o.get("data", {}):
                texts.append(o.get("data", {}).get("text/plain", ""))
            elif o.output_type == "error":
                texts.append(f"{o.ename}: {o.evalue}")
        out.append([stream["stdout"], stream["stderr"], *texts])
    return out


def check(path: Path) -> tuple[list[str], list[int]]:
    """Run the notebook: (its errors, indices of code cells whose saved text is stale)."""
    nb = execute(path)
    errors = [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    saved, fresh = text_outputs(nbformat.read(path, as_version=4)), text_outputs(nb)
    stale = [i for i, (a, b) in enumerate(zip(saved, fresh)) if a != b]
    if len(saved) != len(fresh):
        stale.append(min(len(saved), len(fresh)))
    return errors, stale


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = {p.name: check(p) for p in NOTEBOOKS}
        bad = {k: v for k, v in bad.items() if v[0] or v[1]}
        for name, (errors, cells) in bad.items():
            print(f"{name}: errors {errors}, stale outputs in code cells {cells}; run: python tools/notebooks.py")
        return 1 if bad else 0
    chosen = [p for p in NOTEBOOKS if not argv or p.stem in argv]
    for path in chosen:
        nb = execute(path)
        nbformat.write(nb, path)
        images = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        if images:
            FIGURES.mkdir(parents=True, exist_ok=True)
            (FIGURES / f"{path.stem}.png").write_bytes(base64.b64decode(images[-1]))
        print(f"regenerated {path.relative_to(ROOT)}" + (f" and docs/figures/{path.stem}.png" if images else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
