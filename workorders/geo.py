"""The region of a work order, from the resident's address or from a WeChat location.

Dispatch rules route an order by region (town or development zone). Two sources give a region:

* the free-text address, matched against an offline gazetteer of keywords (region names, former
  town names, streets, landmarks);
* a WeChat latitude/longitude, located by point-in-polygon against the gazetteer's boundaries.

Both sit behind :class:`Geocoder`, so the utility's own GIS service can replace the packaged
gazetteer without touching the dispatch code. When the answer is not clear the geocoders return
``None``: a dispatcher then chooses the region, which is better than routing to the wrong crew.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import shapely
from shapely import STRtree
from shapely.geometry import Point, Polygon
from shapely.validation import explain_validity

DEFAULT_GAZETTEER = Path(__file__).with_name("data") / "districts.json"

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG); haversine with it is within about 0.5 % of the ellipsoid."""

_CODE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# Two polygons sharing a border intersect in a line (area 0); allow a sliver of about 100 m²
# (in square degrees at this latitude) so a digitised GIS layer with tiny slivers still loads.
_OVERLAP_TOLERANCE = 1e-8


@dataclass(frozen=True)
class Region:
    """A dispatch region: ``code`` is what dispatch rules refer to, ``name`` is for people."""

    code: str
    name: str


@runtime_checkable
class Geocoder(Protocol):
    """Finds the dispatch region of an address or a point.

    The methods are async because a real GIS service is remote. To plug one in (an ArcGIS or
    GeoServer layer of service areas, or a commercial geocoder), write a class with these two
    methods and hand it to whatever builds the dispatch rules instead of :class:`GazetteerGeocoder`:

    * return the same ``Region`` codes the dispatch rules use; map the service's district ids to
      them in the adapter, not in the rules;
    * return ``None`` when the service is unsure (several candidates, low score, no hit): a person
      then decides; raise ``ValueError`` for invalid coordinates, as the gazetteer does;
    * points are WGS-84 (WeChat ``wx.getLocation`` with ``type: 'wgs84'``). Chinese map services
      often use GCJ-02 or BD-09: convert before querying them;
    * use a short timeout; on network failure it is reasonable to fall back to the offline
      gazetteer rather than hold the work order.
    """

    @property
    def regions(self) -> tuple[Region, ...]:
        """Every region this geocoder can answer with (dispatch rules may name only these)."""
        ...

    async def region_for_address(self, address: str) -> Region | None:
        """The region an address is in, or ``None`` if unknown or ambiguous."""
        ...

    async def region_for_point(self, lat: float, lng: float) -> Region | None:
        """The region containing a WGS-84 point, or ``None`` if outside every region."""
        ...


def normalise_text(text: str) -> str:
    """Text reduced for keyword matching.

    NFKC turns full-width letters, digits and punctuation into their ASCII forms; then every
    space, punctuation mark, symbol and control character is dropped and letters are lower-cased,
    so "花桥镇 绿地大道（１号）" and "花桥镇绿地大道(1号)" compare equal.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "PSZC")


def check_coordinates(lat: float, lng: float) -> tuple[float, float]:
    """``(lat, lng)`` as floats; ``ValueError`` if not finite numbers in range.

    Swapped arguments (lng first) are caught for China, where longitudes exceed 90.
    """
    if isinstance(lat, bool) or isinstance(lng, bool):
        raise ValueError("coordinates must be numbers, not booleans")
    try:
        flat, flng = float(lat), float(lng)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"coordinates must be numbers: lat={lat!r}, lng={lng!r}") from exc
    if not (math.isfinite(flat) and math.isfinite(flng)):
        raise ValueError(f"coordinates must be finite: lat={lat!r}, lng={lng!r}")
    if not -90.0 <= flat <= 90.0:
        raise ValueError(f"latitude {flat} is outside [-90, 90] (latitude and longitude swapped?)")
    if not -180.0 <= flng <= 180.0:
        raise ValueError(f"longitude {flng} is outside [-180, 180]")
    return flat, flng


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle (haversine) distance in metres between two WGS-84 points.

    Used to spot duplicate reports of one burst: same category within a few hundred metres.
    """
    lat1, lng1 = check_coordinates(lat1, lng1)
    lat2, lng2 = check_coordinates(lat2, lng2)
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lng2 - lng1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class _Occurrence:
    start: int
    end: int
    keyword: str
    region: int


class GazetteerGeocoder:
    """:class:`Geocoder` backed by an offline JSON gazetteer (default: the packaged Kunshan demo).

    File format::

        {"source": "where the data comes from",
         "ignore": ["陆家嘴"],                      # optional: phrases blanked before matching
         "regions": [{"code": "huaqiao", "name": "花桥经济开发区",
                      "keywords": ["花桥", "绿地大道"],
                      "polygon": [[121.06, 31.30], [121.15, 31.32], ...]}]}   # [lng, lat], WGS-84

    ``ignore`` lists place names elsewhere that contain a keyword (Shanghai's 陆家嘴 contains
    陆家). The file is validated on load, since admins edit it: any problem raises
    ``ValueError`` naming the region.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else DEFAULT_GAZETTEER
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path}: not valid JSON: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self.path}: not UTF-8 text: {exc}") from exc
        regions, keywords, polygons, ignore = _parse_gazetteer(raw, str(self.path))
        self.source: str = raw.get("source", "")
        self._regions: tuple[Region, ...] = tuple(regions)
        self._ignore: tuple[str, ...] = tuple(ignore)
        # Longest first: the matcher then meets a long keyword before the shorter ones inside it.
        self._keywords: tuple[tuple[str, int], ...] = tuple(
            sorted(((kw, i) for i, kws in enumerate(keywords) for kw in kws), key=lambda e: (-len(e[0]), e[1]))
        )
        self._polygons: tuple[Polygon, ...] = tuple(polygons)
        for polygon in self._polygons:
            shapely.prepare(polygon)
        self._tree = STRtree(list(self._polygons))

    @property
    def regions(self) -> tuple[Region, ...]:
        """All regions, in file order."""
        return self._regions

    def polygon(self, code: str) -> Polygon:
        """The boundary of a region (``KeyError`` if no region has this code)."""
        for region, polygon in zip(self._regions, self._polygons, strict=True):
            if region.code == code:
                return polygon
        raise KeyError(code)

    async def region_for_address(self, address: str) -> Region | None:
        return self.match_address(address)

    async def region_for_point(self, lat: float, lng: float) -> Region | None:
        return self.locate(lat, lng)

    def match_address(self, address: str) -> Region | None:
        """Synchronous :meth:`region_for_address`.

        Rules, in order:

        1. a keyword occurrence lying inside a longer matched keyword is ignored ("花桥经济开发区"
           is not also a match of 开发区);
        2. the longest matched keyword decides ("花桥镇绿地大道" → 花桥: 花桥镇 is longer than 花桥);
        3. if several regions share that longest length, the one matching strictly more distinct
           keywords wins; otherwise the address is ambiguous and the answer is ``None``.
        """
        text = normalise_text(address)
        for phrase in self._ignore:
            # A separator no keyword contains, so blanking cannot join two halves into a new match.
            text = text.replace(phrase, "\x00")
        found: list[_Occurrence] = []
        for keyword, region in self._keywords:
            start = text.find(keyword)
            while start != -1:
                end = start + len(keyword)
                # ``found`` holds only keywords at least as long, so containment means a longer one.
                if not any(o.start <= start and end <= o.end and len(o.keyword) > len(keyword) for o in found):
                    found.append(_Occurrence(start, end, keyword, region))
                start = text.find(keyword, start + 1)
        if not found:
            return None
        longest = max(len(o.keyword) for o in found)
        candidates = {o.region for o in found if len(o.keyword) == longest}
        if len(candidates) > 1:
            distinct = {c: len({o.keyword for o in found if o.region == c}) for c in candidates}
            best = max(distinct.values())
            candidates = {c for c, n in distinct.items() if n == best}
        if len(candidates) != 1:
            return None
        return self._regions[candidates.pop()]

    def locate(self, lat: float, lng: float) -> Region | None:
        """Synchronous :meth:`region_for_point`.

        A point on a shared border belongs to the region listed first in the file, so the answer
        is deterministic; with coarse polygons a border point carries no real information anyway.
        """
        lat, lng = check_coordinates(lat, lng)
        point = Point(lng, lat)
        hits = [int(i) for i in self._tree.query(point) if self._polygons[int(i)].covers(point)]
        return self._regions[min(hits)] if hits else None


def _parse_gazetteer(raw: Any, where: str) -> tuple[list[Region], list[list[str]], list[Polygon], list[str]]:
    """Validate a loaded gazetteer; ``ValueError`` naming the file and the region on any problem."""
    if not isinstance(raw, dict):
        raise ValueError(f'{where}: the top level must be an object with a "regions" list')
    if "source" in raw and not isinstance(raw["source"], str):
        raise ValueError(f'{where}: "source" must be a string')
    ignore_raw = raw.get("ignore", [])
    if not isinstance(ignore_raw, list) or not all(isinstance(p, str) for p in ignore_raw):
        raise ValueError(f'{where}: "ignore" must be a list of strings')
    ignore = [p for p in (normalise_text(s) for s in ignore_raw) if p]
    items = raw.get("regions")
    if not isinstance(items, list) or not items:
        raise ValueError(f'{where}: "regions" must be a non-empty list')

    regions: list[Region] = []
    keywords: list[list[str]] = []
    polygons: list[Polygon] = []
    codes: set[str] = set()
    names: set[str] = set()
    for index, item in enumerate(items):
        label = f"{where}: region #{index + 1}"
        if not isinstance(item, dict):
            raise ValueError(f"{label}: must be an object")
        code, name = item.get("code"), item.get("name")
        if isinstance(code, str) and code:
            label = f"{label} ({code})"
        for field in ("code", "name", "keywords", "polygon"):
            if field not in item:
                raise ValueError(f'{label}: missing required field "{field}"')
        if not isinstance(code, str) or not _CODE_RE.match(code):
            raise ValueError(f'{label}: code {code!r} must be a lower-case ASCII slug like "huaqiao"')
        if code in codes:
            raise ValueError(f"{label}: duplicate code {code!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{label}: name must be a non-empty string")
        label = f"{where}: region #{index + 1} ({code} {name})"
        if name in names:
            raise ValueError(f"{label}: duplicate name {name!r}")
        codes.add(code)
        names.add(name)
        keywords.append(_parse_keywords(item["keywords"], label))
        polygons.append(_parse_polygon(item["polygon"], label))
        regions.append(Region(code=code, name=name))

    for i in range(len(polygons)):
        for j in range(i + 1, len(polygons)):
            if polygons[i].intersection(polygons[j]).area > _OVERLAP_TOLERANCE:
                raise ValueError(
                    f"{where}: polygons of regions {regions[i].code} ({regions[i].name}) and "
                    f"{regions[j].code} ({regions[j].name}) overlap"
                )
    return regions, keywords, polygons, ignore


def _parse_keywords(value: Any, label: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{label}: keywords must be a non-empty list of strings")
    result: list[str] = []
    for keyword in value:
        if not isinstance(keyword, str):
            raise ValueError(f"{label}: keyword {keyword!r} is not a string")
        normalised = normalise_text(keyword)
        if not normalised:
            raise ValueError(f"{label}: keyword {keyword!r} is empty once spaces and punctuation are removed")
        if normalised not in result:
            result.append(normalised)
    return result


def _parse_polygon(value: Any, label: str) -> Polygon:
    if not isinstance(value, list):
        raise ValueError(f"{label}: polygon must be a list of [lng, lat] points")
    points: list[tuple[float, float]] = []
    for position, point in enumerate(value, start=1):
        if (
            not isinstance(point, Sequence)
            or isinstance(point, str)
            or len(point) != 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in point)
        ):
            raise ValueError(f"{label}: polygon point {position} must be [lng, lat] numbers, got {point!r}")
        lng, lat = float(point[0]), float(point[1])
        try:
            check_coordinates(lat, lng)
        except ValueError as exc:
            raise ValueError(f"{label}: polygon point {position} [{point[0]}, {point[1]}]: {exc}") from exc
        points.append((lng, lat))
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()  # a closed ring is accepted as well as an open one
    if len(points) < 3:
        raise ValueError(f"{label}: polygon needs at least 3 distinct points")
    polygon = Polygon(points)
    if not polygon.is_valid:
        raise ValueError(f"{label}: polygon is not valid: {explain_validity(polygon)}")
    if polygon.area <= 0:
        raise ValueError(f"{label}: polygon has no area")
    return polygon
