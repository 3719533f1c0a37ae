"""Which file each Planck-sky input comes from (mock, download or local), for rules/sky.smk.

No Snakemake import: the rules file builds one :class:`SkyPaths` from ``config["planck"]``
and exposes its methods as the input functions of later stages.
"""

from __future__ import annotations

from collections.abc import Callable

from skydetect.sky.instrument import channel

CATALOG_NAMES = ("psz2", "mcxc", "redmapper", "sources")
MOCK_CATALOGS = {
    "psz2": "results/sky/catalogs/psz2_union.fits",
    "mcxc": "results/sky/catalogs/mcxc.fits",
    "redmapper": "results/sky/catalogs/redmapper.fits",
    "sources": "results/sky/catalogs/sources.ecsv",
}
TRUTH = "results/sky/truth_clusters.ecsv"


class SkyPaths:
    """Paths of the raw maps, checked maps and catalogues for ``planck.source``.

    ``downloaded_map(band)`` / ``downloaded_catalog(name)`` are the download stage's path
    functions (only called when ``source`` is ``download``).
    """

    def __init__(
        self,
        planck_cfg: dict,
        downloaded_map: Callable[[str], str] | None = None,
        downloaded_catalog: Callable[[str], str] | None = None,
    ):
        self.cfg = planck_cfg
        self.source = planck_cfg["source"]
        self._downloaded_map = downloaded_map
        self._downloaded_catalog = downloaded_catalog

    @staticmethod
    def mock_map(band: str) -> str:
        return f"results/sky/maps/{channel(band).filename}"

    @staticmethod
    def checked_map(band: str) -> str:
        return f"results/sky/checked/{band}.fits"

    @staticmethod
    def checked_report(band: str) -> str:
        return f"results/sky/checked/{band}.json"

    def raw_map(self, band: str) -> str:
        """The map file that rule check_map reads for ``band``."""
        band = str(band)
        if self.source == "simulate":
            return self.mock_map(band)
        if self.source == "download":
            return self._downloaded_map(band)
        path = self.cfg.get("local", {}).get(band)
        if not path:
            raise ValueError(
                f"config key 'planck.local.{band}' is missing: planck.source is 'local', so "
                "every band in planck.bands needs a local map path"
            )
        return path

    def catalog(self, name: str) -> str:
        """Catalogue ``name`` (psz2, mcxc, redmapper, sources) of the configured source."""
        if name not in CATALOG_NAMES:
            raise ValueError(
                f"unknown catalogue {name!r}: expected one of {', '.join(CATALOG_NAMES)}"
            )
        if self.source == "simulate":
            return MOCK_CATALOGS[name]
        if self.source == "download":
            return self._downloaded_catalog(name)
        path = self.cfg.get("local", {}).get("catalogs", {}).get(name)
        if not path:
            raise ValueError(
                f"config key 'planck.local.catalogs.{name}' is missing: planck.source is 'local'"
            )
        return path

    @property
    def map_nside(self) -> int:
        """nside of the maps check_map reads (real PR3 maps are 2048)."""
        return int(self.cfg["nside"]) if self.source == "simulate" else 2048
