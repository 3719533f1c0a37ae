"""One version everywhere: pyproject.toml, the library and the newest CHANGELOG.md release."""

import re

import tomllib
from conftest import ROOT

import skydetect


def test_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    releases = re.findall(r"^## (\d+\.\d+\.\d+) - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert releases, "CHANGELOG.md lists no release (## <version> - <date>)"
    assert project == skydetect.__version__ == releases[0]
