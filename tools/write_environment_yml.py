"""Write environment.yml from requirements.lock, so conda users get the same pins."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    pins = [
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    lines = [
        "# Conda environment with the same pinned versions as requirements.lock.",
        "# Written by tools/write_environment_yml.py; a test checks the two agree.",
        "# Create it with: conda env create -f environment.yml",
        "# then, inside it: pip install --no-deps -e .",
        "name: autotask-repro",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        *[f"      - {pin}" for pin in pins],
    ]
    (ROOT / "environment.yml").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
