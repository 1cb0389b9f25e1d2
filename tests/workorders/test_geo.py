"""Region lookup for work orders: gazetteer keywords for addresses, polygons for WeChat locations."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from workorders.geo import DEFAULT_GAZETTEER, GazetteerGeocoder, Geocoder, Region, distance_m, normalise_text


@pytest.fixture(scope="module")
def geocoder() -> GazetteerGeocoder:
    return GazetteerGeocoder()


@pytest.fixture(scope="module")
def raw_data() -> dict[str, Any]:
    return json.loads(DEFAULT_GAZETTEER.read_text(encoding="utf-8"))


def write_json(directory: Path, data: Any, name: str = "districts.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def square(lng: float, lat: float, size: float = 0.01) -> list[list[float]]:
    return [[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size]]


# --- addresses, written the way residents write them -------------------------------------------

ADDRESSES = [
    ("江苏省昆山市花桥镇绿地大道188号", "huaqiao"),
    ("花桥 光明路地铁站旁边小区，没水了", "huaqiao"),
    ("ＫＵＮＳＨＡＮ　花桥，兆丰路　３号楼２单元", "huaqiao"),  # full-width letters, digits, spaces
    ("花桥经济开发区光明路", "huaqiao"),  # 开发区 inside 花桥经济开发区 does not count
    ("昆山市周庄镇全福路43号", "zhouzhuang"),
    ("周庄古镇里面，沈厅附近的水管漏了！！", "zhouzhuang"),
    ("我家在张浦德国工业园边上", "zhangpu"),
    ("昆山张浦镇亲和路３３１号", "zhangpu"),
    ("巴城正仪老街那边", "bacheng"),
    ("苏州市昆山市巴城镇石牌中华路1288号", "bacheng"),
    ("江苏省昆山是千灯镇石浦恒升路101号", "qiandeng"),  # typo 市→是 in an unrelated part
    ("千灯古镇顾炎武故居对面", "qiandeng"),
    ("陆家镇菉溪路22号", "lujia"),
    ("江苏生苏州市昆山陆家镇陆丰西路88号", "lujia"),  # typo 省→生
    ("周市镇新镇路681号", "zhoushi"),
    ("昆山市周市镇华城美地12幢", "zhoushi"),
    ("淀山湖镇北苑路288号", "dianshanhu"),
    ("锦溪镇锦东路368号", "jinxi"),
    ("锦溪古镇五保湖边上", "jinxi"),
    ("昆山开发区前进东路", "kaifaqu"),
    ("开发区蓬朗那边一个小区", "kaifaqu"),
    ("昆山高新区前进西路168号", "gaoxinqu"),
    ("昆山高新技术产业开发区", "gaoxinqu"),  # not 昆山开发区, though it contains 开发区
]


@pytest.mark.parametrize(("address", "code"), ADDRESSES)
async def test_address_maps_to_region(geocoder: GazetteerGeocoder, address: str, code: str) -> None:
    region = await geocoder.region_for_address(address)
    assert region is not None, address
    assert region.code == code


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "北京市朝阳区建国路88号",
        "江苏省苏州市昆山市",  # the city prefix alone says nothing about the region
        "上海市浦东新区陆家嘴环路1000号",  # 陆家嘴 (Shanghai) contains 陆家 and is ignored
        "上海市黄浦区陆家浜路1号",
    ],
)
async def test_unknown_address_is_none(geocoder: GazetteerGeocoder, address: str) -> None:
    assert await geocoder.region_for_address(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "玉山镇司徒街",  # 玉山镇 is split between 开发区 and 高新区
        "陆家花桥交界那块",  # two regions, keywords of equal length
        "锦溪镇淀山湖风景区",  # two town names of equal length, one each
    ],
)
async def test_ambiguous_address_is_none(geocoder: GazetteerGeocoder, address: str) -> None:
    assert await geocoder.region_for_address(address) is None


async def test_longest_keyword_wins(geocoder: GazetteerGeocoder) -> None:
    # 前进东路 (4) is longer than 玉山镇 (3), which both zones share.
    assert await geocoder.region_for_address("玉山镇前进东路767号") == Region("kaifaqu", "昆山开发区")


async def test_tie_broken_by_more_distinct_keywords(geocoder: GazetteerGeocoder) -> None:
    # 玉山镇 and 中华园 are both 3 long: 开发区 matches two keywords, 高新区 one.
    assert await geocoder.region_for_address("昆山市玉山镇中华园西路") == Region("kaifaqu", "昆山开发区")


async def test_every_region_found_by_its_name(geocoder: GazetteerGeocoder) -> None:
    for region in geocoder.regions:
        assert await geocoder.region_for_address(f"江苏省昆山市{region.name}") == region


async def test_every_unshared_keyword_finds_its_region(geocoder: GazetteerGeocoder, raw_data: dict[str, Any]) -> None:
    owners: dict[str, set[str]] = {}
    for item in raw_data["regions"]:
        for keyword in item["keywords"]:
            owners.setdefault(keyword, set()).add(item["code"])
    for keyword, codes in owners.items():
        region = await geocoder.region_for_address(keyword)
        if len(codes) == 1:
            assert region is not None and region.code in codes, keyword
        else:
            assert region is None, keyword


def synthetic(tmp_path: Path) -> GazetteerGeocoder:
    """A tiny gazetteer whose keywords are chosen to exercise the matching rules."""
    data = {
        "source": "test",
        "regions": [
            {
                "code": "town",
                "name": "周庄",
                "keywords": ["周庄", "周庄镇", "东街", "甲村"],
                "polygon": square(120.0, 31.0),
            },
            {"code": "road", "name": "某区", "keywords": ["周庄路", "西街", "乙村"], "polygon": square(120.01, 31.0)},
        ],
    }
    return GazetteerGeocoder(write_json(tmp_path, data))


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("周庄镇", "town"),
        ("某某小区周庄路5号", "road"),  # a street named after a town: 周庄路 (3) beats 周庄 (2)
        ("周庄镇周庄路", None),  # 周庄镇 and 周庄路 are both 3 long, one keyword each
        ("周庄镇东街周庄路", "town"),  # tie on length, but two distinct keywords against one
        ("东街西街", None),
        ("东街甲村西街", "town"),
        ("西街乙村东街", "road"),
        ("周 庄 路", "road"),  # spaces do not break a keyword
    ],
)
async def test_matching_rules(tmp_path: Path, address: str, code: str | None) -> None:
    region = await synthetic(tmp_path).region_for_address(address)
    assert (region.code if region else None) == code


def test_normalise_text() -> None:
    assert normalise_text("花桥镇　绿地大道（１８８号）ＡＢ") == "花桥镇绿地大道188号ab"
    assert normalise_text("\t、。！…·—") == ""


# --- points --------------------------------------------------------------------------------------

# Approximate town centres (WGS-84), rounded: each must fall in its own region and no other.
TOWN_CENTRES = [
    ("kaifaqu", 31.370, 121.030),
    ("gaoxinqu", 31.384, 120.951),  # Kunshan city centre
    ("huaqiao", 31.300, 121.100),
    ("bacheng", 31.446, 120.877),
    ("zhoushi", 31.445, 121.000),
    ("lujia", 31.316, 121.047),
    ("zhangpu", 31.277, 120.947),
    ("qiandeng", 31.250, 120.990),
    ("dianshanhu", 31.178, 121.005),
    ("jinxi", 31.180, 120.905),
    ("zhouzhuang", 31.117, 120.847),
]


@pytest.mark.parametrize(("code", "lat", "lng"), TOWN_CENTRES)
async def test_town_centre_maps_to_region(geocoder: GazetteerGeocoder, code: str, lat: float, lng: float) -> None:
    region = await geocoder.region_for_point(lat, lng)
    assert region is not None and region.code == code


async def test_each_region_contains_its_representative_point(geocoder: GazetteerGeocoder) -> None:
    for region in geocoder.regions:
        point = geocoder.polygon(region.code).representative_point()
        assert await geocoder.region_for_point(point.y, point.x) == region


def test_every_region_has_a_listed_centre(geocoder: GazetteerGeocoder) -> None:
    assert {code for code, _, _ in TOWN_CENTRES} == {r.code for r in geocoder.regions}


@pytest.mark.parametrize(
    ("lat", "lng"),
    [
        (31.2304, 121.4737),  # People's Square, Shanghai
        (31.2989, 120.5853),  # Suzhou city centre
        (0.0, 0.0),
    ],
)
async def test_point_outside_service_area_is_none(geocoder: GazetteerGeocoder, lat: float, lng: float) -> None:
    assert await geocoder.region_for_point(lat, lng) is None


@pytest.mark.parametrize(
    ("lat", "lng"),
    [
        (math.nan, 120.95),
        (31.38, math.nan),
        (math.inf, 120.95),
        (31.38, -math.inf),
        (90.5, 120.95),
        (-91.0, 120.95),
        (31.38, 180.5),
        (120.95, 31.38),  # latitude and longitude swapped
        ("31.38", None),
        (True, 120.95),
    ],
)
async def test_invalid_point_raises(geocoder: GazetteerGeocoder, lat: Any, lng: Any) -> None:
    with pytest.raises(ValueError):
        await geocoder.region_for_point(lat, lng)


# --- the packaged data ---------------------------------------------------------------------------


def test_packaged_gazetteer_shape(raw_data: dict[str, Any]) -> None:
    assert "GIS" in raw_data["source"] and "not survey data" in raw_data["source"].lower()
    regions = raw_data["regions"]
    assert 10 <= len(regions) <= 12
    assert len({r["code"] for r in regions}) == len(regions)
    for item in regions:
        assert item["code"].isascii() and item["code"].islower(), item["code"]
        assert len(item["keywords"]) >= 4, item["code"]
        assert 6 <= len(item["polygon"]) <= 12, item["code"]


def test_packaged_polygons_valid_and_disjoint(geocoder: GazetteerGeocoder) -> None:
    polygons = {r.code: geocoder.polygon(r.code) for r in geocoder.regions}
    for code, polygon in polygons.items():
        assert polygon.is_valid, code
        assert polygon.area > 0, code
    for (a, pa), (b, pb) in itertools.combinations(polygons.items(), 2):
        assert pa.intersection(pb).area < 1e-12, (a, b)


def test_geocoder_satisfies_protocol(geocoder: GazetteerGeocoder) -> None:
    assert isinstance(geocoder, Geocoder)


# --- bad files, as an admin might write them -----------------------------------------------------


def minimal() -> dict[str, Any]:
    return {
        "source": "test",
        "regions": [
            {"code": "east", "name": "东区", "keywords": ["东区"], "polygon": square(120.01, 31.0)},
            {"code": "west", "name": "西区", "keywords": ["西区"], "polygon": square(120.0, 31.0)},
        ],
    }


def test_minimal_file_loads(tmp_path: Path) -> None:
    geocoder = GazetteerGeocoder(write_json(tmp_path, minimal()))
    assert [r.code for r in geocoder.regions] == ["east", "west"]
    # A point on the shared border goes to the region listed first.
    assert geocoder.locate(31.005, 120.01) == Region("east", "东区")


def mutate(path: str, value: Any) -> dict[str, Any]:
    """``minimal()`` with ``value`` set at a dotted path ("regions.0.code"); ``...`` deletes the key."""
    data = copy.deepcopy(minimal())
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2], "top level"),
        (mutate("regions", []), '"regions" must be a non-empty list'),
        (mutate("regions.0.polygon", ...), 'region #1 (east): missing required field "polygon"'),
        (mutate("regions.1.keywords", ...), "(west): missing required field"),
        (mutate("regions.1.code", "east"), "duplicate code 'east'"),
        (mutate("regions.0.code", "东区"), "slug"),
        (mutate("regions.1.name", "东区"), "duplicate name"),
        (mutate("regions.0.keywords", []), "(east 东区): keywords"),
        (mutate("regions.0.keywords", ["，。"]), "empty once spaces and punctuation are removed"),
        (
            mutate("regions.0.polygon", [[120.0, 31.0], [120.01, 31.01], [120.01, 31.0], [120.0, 31.01]]),
            "(east 东区): polygon is not valid: Self-intersection",
        ),
        (mutate("regions.0.polygon", [[120.0, 31.0], [120.01, 31.0]]), "at least 3"),
        (mutate("regions.0.polygon", [[31.0, 120.0], [31.0, 120.01], [31.01, 120.01]]), "latitude 120.0"),
        (mutate("regions.0.polygon.1", [120.01, "31.0"]), "point 2 must be [lng, lat]"),
        (mutate("regions.0.polygon.2", [120.02, math.nan]), "finite"),
        (mutate("regions.0.polygon", square(120.005, 31.0)), "polygons of regions east (东区) and west (西区) overlap"),
        (mutate("ignore", "陆家嘴"), '"ignore" must be a list'),
    ],
)
def test_bad_file_raises_naming_the_problem(tmp_path: Path, data: Any, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        GazetteerGeocoder(write_json(tmp_path, data))
    assert expected in str(info.value)


def test_not_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "districts.json"
    path.write_text('{"regions": [', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        GazetteerGeocoder(path)


def test_closed_ring_accepted(tmp_path: Path) -> None:
    ring = [*square(120.0, 31.0), [120.0, 31.0]]
    geocoder = GazetteerGeocoder(write_json(tmp_path, mutate("regions.1.polygon", ring)))
    assert geocoder.locate(31.005, 120.005) == Region("west", "西区")


# --- distance ------------------------------------------------------------------------------------


def test_distance_of_a_thousandth_degree_of_latitude() -> None:
    assert distance_m(31.0, 121.0, 31.001, 121.0) == pytest.approx(111.2, abs=1.0)


def test_distance_properties() -> None:
    assert distance_m(31.3, 121.0, 31.3, 121.0) == 0.0
    assert distance_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(111_195, rel=1e-3)  # 1° on the equator
    a, b = (31.384, 120.951), (31.2304, 121.4737)
    assert distance_m(*a, *b) == pytest.approx(distance_m(*b, *a))
    # A degree of longitude shrinks with cos(latitude).
    assert distance_m(31.3, 121.0, 31.3, 121.001) == pytest.approx(111.2 * math.cos(math.radians(31.3)), abs=1.0)


def test_distance_rejects_invalid_coordinates() -> None:
    with pytest.raises(ValueError):
        distance_m(math.nan, 121.0, 31.0, 121.0)
    with pytest.raises(ValueError):
        distance_m(31.0, 121.0, 91.0, 121.0)
