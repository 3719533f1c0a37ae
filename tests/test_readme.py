"""The README's stage table names exactly the rules of the workflow.

Every rule defined in the Snakefile or rules/*.smk (except the target rule `all`) appears in
the table's `rules` column, and every name there is a rule: a renamed or added rule shows
up here until the table is updated.
"""

from __future__ import annotations

import re

from conftest import ROOT


def workflow_rules() -> set[str]:
    files = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
    names = set()
    for path in files:
        text = path.read_text()
        names |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M))
        names |= set(re.findall(r"^use rule \w+ as (\w+) with:", text, flags=re.M))
    return names - {"all"}


def readme_table_rules() -> set[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| stage | rules | outputs |")
    names = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 3, f"README stage table: malformed row {line!r}"
        names |= set(re.findall(r"`([^`]+)`", cells[1]))
    return names


def test_rule_parser_finds_the_known_rules():
    rules = workflow_rules()
    assert {"simulate_planck_sky", "train_segmentation", "mmf_tile", "train_ssd"} <= rules
    assert "all" not in rules


def test_every_rule_is_in_the_readme_table():
    missing = workflow_rules() - readme_table_rules()
    assert not missing, f"rules missing from the README stage table: {sorted(missing)}"


def test_every_rule_in_the_readme_table_exists():
    unknown = readme_table_rules() - workflow_rules()
    assert not unknown, f"the README stage table names rules that do not exist: {sorted(unknown)}"


def readme_block(marker: str) -> str:
    """The README text between ``<!-- marker -->`` and ``<!-- end -->``."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"<!-- {marker} -->\n") + len(f"<!-- {marker} -->\n")
    return text[start : text.index("<!-- end -->", start)].strip()


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_readme_scorecard_is_the_generated_table():
    """The README quotes results/evaluation/scorecard.md verbatim: its header as the scorecard
    rule writes it, and, after a default run in this checkout, the whole file."""
    from astropy.table import Table

    from skydetect.clusters.scorecard_table import scorecard_markdown

    command = "snakemake --cores all results/evaluation/scorecard.md"
    block = readme_block("results/evaluation/scorecard.md")
    written = scorecard_markdown(Table(), command).splitlines()
    assert block.splitlines()[:2] == written[:2]
    assert block.splitlines()[-1] == written[-1] == f"Regenerate: `{command}`"
    generated = ROOT / "results/evaluation/scorecard.md"
    if generated.exists():
        assert block == generated.read_text().strip()
