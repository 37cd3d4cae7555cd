#!/usr/bin/env python3
"""Generate the fictional demo grid registry used by gridbot's demos and tests.

Writes two files:

* ``data/reference/demo/registry.yml``  - streets, communities, grids, buildings,
  landmarks, people, party branches, the units, party organisations and 党群服务中心
  of 双报到 and 附近的党组织, the resources the units offer (三张清单), the spaces
  residents, branches and units book with /yuyue (共享空间) and the
  study library (党员学习资料库);
* ``data/reference/demo/grids.geojson`` - one polygon per grid.

Everything is made up: names, phone numbers, Telegram ids and places. The layout
imitates a Beijing sub-district (lat ~39.93, lon ~116.45): one street, two
communities, four residential estates (小区) and eight grids. The grids of one
estate tile it and share an exact border; estates are separated by streets, so
some points fall in no grid at all. Building numbers restart in every estate, so
aliases such as "3号楼" are deliberately ambiguous across estates.

The output is deterministic: fixed coordinates plus a seeded random generator,
so running the script twice produces byte-identical files.

Usage:  python3 scripts/make_demo_registry.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import yaml

SEED = 20240601
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "reference" / "demo"
PRECISION = 6  # decimal places for every coordinate (about 0.1 m)

Point = tuple[float, float]  # (lon, lat), GeoJSON order

# --------------------------------------------------------------------------------------
# Static layout
# --------------------------------------------------------------------------------------

STREET = {"code": "ST-HP", "name": "和平街道"}

COMMUNITIES = [
    {"code": "C-HPL", "name": "和平里社区", "short": "和平里",
     # How residents reach the office and its 党群服务中心 (public numbers, made up).
     "contact": {"phone": "010-6420-0001", "address": "和平里东街11号", "hours": "周一至周五 8:30-17:30",
                 "center_name": "和平里社区党群服务中心", "center_phone": "010-6420-0002",
                 "center_address": "和平里东街11号一层", "center_hours": "每天 8:30-20:00"}},
    {"code": "C-QNH", "name": "青年湖社区", "short": "青年湖",
     "contact": {"phone": "010-6420-0101", "address": "青年湖北街3号", "hours": "周一至周五 8:30-17:30",
                 "center_name": "青年湖社区党群服务中心", "center_phone": "010-6420-0102",
                 "center_address": "青年湖北街3号院内", "center_hours": "周一至周六 9:00-19:00"}},
]

# Each estate is a convex quadrilateral given by its corners (SW, SE, NE, NW) in
# (lon, lat). It is cut into two grids by a line between two opposite edges:
#   split "ew": a west grid and an east grid; t_south / t_north are the fractions
#               along the south and north edges where the cut meets them;
#   split "ns": a south grid and a north grid; t_west / t_east are the fractions
#               along the west and east edges.
# The gaps between estates (about 0.001 deg, ~90 m) are the streets.
ESTATES = [
    {
        "code": "HPL",
        "community": "C-HPL",
        "name": "和平里小区",
        "short": "和平里",
        "corners": [
            (116.444000, 39.931000),
            (116.450000, 39.931200),
            (116.449800, 39.934100),
            (116.444200, 39.933900),
        ],
        # Cut at exactly lon 116.447 (the midpoint of both edges), so the shared
        # border is a vertical line that is easy to hit with a test point.
        "split": "ew",
        "t_a": 0.5,
        "t_b": 0.5,
        "grids": ["G-HPL-01", "G-HPL-02"],  # west, east
    },
    {
        "code": "YHY",
        "community": "C-HPL",
        "name": "樱花园小区",
        "short": "樱花园",
        "corners": [
            (116.451000, 39.931300),
            (116.457100, 39.931000),
            (116.456800, 39.934200),
            (116.451200, 39.934300),
        ],
        "split": "ew",
        "t_a": 0.45,
        "t_b": 0.55,
        "grids": ["G-HPL-03", "G-HPL-04"],  # west, east
    },
    {
        "code": "QNH",
        "community": "C-QNH",
        "name": "青年湖小区",
        "short": "青年湖",
        "corners": [
            (116.444100, 39.925600),
            (116.449900, 39.925800),
            (116.450000, 39.930200),
            (116.443900, 39.930000),
        ],
        "split": "ns",
        "t_a": 0.5,
        "t_b": 0.45,
        "grids": ["G-QNH-02", "G-QNH-01"],  # south, north
    },
    {
        "code": "ADL",
        "community": "C-QNH",
        "name": "安德里小区",
        "short": "安德里",
        "corners": [
            (116.451100, 39.926000),
            (116.457000, 39.925700),
            (116.457200, 39.929800),
            (116.451000, 39.930000),
        ],
        "split": "ew",
        "t_a": 0.52,
        "t_b": 0.48,
        "grids": ["G-QNH-03", "G-QNH-04"],  # west, east
    },
]

GRID_ORDINALS = ["第一", "第二", "第三", "第四"]

# 双报到 and 附近的党组织: units near the communities, party organisations (the communities'
# 党委, two grid branches' offices, the units' own), and the 党群服务中心. Points sit on the
# streets between the estates, where such offices face the road.
UNITS = [
    {"code": "U-HPH", "name": "和平医院", "community": "C-HPL", "address": "和平里北街8号",
     "lat": 39.934800, "lon": 116.447500},
    {"code": "U-HPS", "name": "和平里小学", "community": "C-HPL", "address": "和平里东街20号",
     "lat": 39.932700, "lon": 116.450500},
    {"code": "U-QLF", "name": "青年湖律师事务所", "community": "C-QNH", "address": "青年湖北街15号",
     "lat": 39.930600, "lon": 116.446000},
    {"code": "U-ADW", "name": "安德里供水所", "community": "C-QNH", "address": "安德路6号",
     "lat": 39.925200, "lon": 116.454000},
]
ORGANISATIONS = [
    {"code": "O-C-HPL", "name": "和平里社区党委", "kind": "committee", "community": "C-HPL",
     "address": "和平里东街11号", "hours": "周一至周五 8:30-17:30", "phone": "010-6420-0001",
     "lat": 39.934500, "lon": 116.447000},
    {"code": "O-C-QNH", "name": "青年湖社区党委", "kind": "committee", "community": "C-QNH",
     "address": "青年湖北街3号", "hours": "周一至周五 8:30-17:30", "phone": "010-6420-0101",
     "lat": 39.930500, "lon": 116.447000},
    {"code": "O-BR-HPL-01", "name": "和平里第一网格党支部", "kind": "branch", "community": "C-HPL",
     "branch": "BR-HPL-01", "address": "和平里小区1号楼一层党员活动室", "hours": "每周六 9:00-11:00",
     "phone": "010-6420-0011", "lat": 39.933500, "lon": 116.445200},
    {"code": "O-BR-QNH-03", "name": "青年湖第三网格党支部", "kind": "branch", "community": "C-QNH",
     "branch": "BR-QNH-03", "address": "安德里小区南门党员先锋岗", "hours": "每天 8:00-10:00",
     "phone": "010-6420-0131", "lat": 39.925900, "lon": 116.452500},
    {"code": "O-U-HPH", "name": "和平医院党委", "kind": "unit", "unit": "U-HPH", "address": "和平里北街8号",
     "hours": "周一至周五 8:00-17:00", "phone": "010-6420-1200", "lat": 39.934800, "lon": 116.447500},
    {"code": "O-U-HPS", "name": "和平里小学党支部", "kind": "unit", "unit": "U-HPS", "address": "和平里东街20号",
     "hours": "周一至周五 8:00-16:30", "phone": "010-6420-1300", "lat": 39.932700, "lon": 116.450500},
    {"code": "O-U-QLF", "name": "青年湖律师事务所党支部", "kind": "unit", "unit": "U-QLF",
     "address": "青年湖北街15号", "hours": "周一至周五 9:00-18:00", "phone": "010-6420-1400",
     "lat": 39.930600, "lon": 116.446000},
]
SERVICE_CENTRES = [
    {"code": "SC-HPL", "name": "和平里社区党群服务中心", "community": "C-HPL", "address": "和平里东街11号一层",
     "hours": "每天 8:30-20:00", "phone": "010-6420-0002", "lat": 39.934500, "lon": 116.447100},
    {"code": "SC-QNH", "name": "青年湖社区党群服务中心", "community": "C-QNH", "address": "青年湖北街3号院内",
     "hours": "周一至周六 9:00-19:00", "phone": "010-6420-0102", "lat": 39.930500, "lon": 116.447200},
    {"code": "SC-ST-HP", "name": "和平街道党群服务中心", "address": "安德路1号",
     "hours": "周一至周日 9:00-21:00", "phone": "010-6420-9000", "lat": 39.930600, "lon": 116.450500},
]

# 三张清单: what the units' party organisations offer (kind, quantity, the days it is available).
RESOURCES = [
    {"code": "R-HPH-01", "organisation": "O-U-HPH", "community": "C-HPL", "kind": "专业服务",
     "title": "义诊和健康讲座", "quantity": 4, "from": "2026-01-01", "to": "2027-12-31"},
    {"code": "R-HPS-01", "organisation": "O-U-HPS", "community": "C-HPL", "kind": "场地",
     "title": "课后活动教室", "quantity": 2, "from": "2026-01-01", "to": "2027-12-31"},
    {"code": "R-QLF-01", "organisation": "O-U-QLF", "community": "C-QNH", "kind": "专业服务",
     "title": "法律咨询", "quantity": 8, "from": "2026-01-01", "to": "2027-12-31"},
]

# 共享空间: rooms the communities lend (/yuyue); managers are demo people (P-0069 and P-0070 are the
# communities' admins, P-0061 and P-0062 grid workers of 和平里).
SPACES = [
    {"code": "SP-HPL-MR", "community": "C-HPL", "name": "党群服务中心会议室", "kind": "会议室", "capacity": 20,
     "hours": "daily 08:30-20:00", "equipment": ["投影仪", "话筒", "白板"], "needs_approval": True,
     "managers": ["P-0069"], "bookers": ["party_org", "enterprise"], "slot_minutes": 60,
     "address": "和平里东街11号一层"},
    {"code": "SP-HPL-AR", "community": "C-HPL", "name": "一号楼活动室", "kind": "活动室", "capacity": 30,
     "hours": "daily 09:00-21:00", "equipment": ["桌椅", "音响", "乒乓球台"], "needs_approval": False,
     "managers": ["P-0061"], "bookers": ["party_org", "resident", "enterprise"], "slot_minutes": 60,
     "address": "和平里小区1号楼一层"},
    {"code": "SP-HPL-BK", "community": "C-HPL", "name": "邻里书吧", "kind": "书吧", "capacity": 8,
     "hours": "tue-sun 09:00-18:00", "equipment": ["图书", "阅读灯"], "needs_approval": False,
     "managers": ["P-0062"], "bookers": ["resident"], "slot_minutes": 120, "address": "和平里小区2号楼底商"},
    {"code": "SP-QNH-MR", "community": "C-QNH", "name": "党群服务中心会议室", "kind": "会议室", "capacity": 15,
     "hours": "mon-sat 09:00-19:00", "equipment": ["投影仪", "白板"], "needs_approval": True,
     "managers": ["P-0070"], "bookers": ["party_org", "enterprise"], "slot_minutes": 60,
     "address": "青年湖北街3号院内"},
]

# 党员学习资料库: what a new member finds under /xuexi. A community's items are read by every
# branch of it, a branch's by that branch; texts are short study notes written for the demo, links
# point at the public party-education sites.
LIBRARY = [
    {"code": "LIB-HPL-01", "community": "C-HPL", "topic": "党章党规", "kind": "link",
     "title": "共产党员网：党章党规和学习专题", "url": "https://www.12371.cn/", "date": "2026-09-01"},
    {"code": "LIB-HPL-02", "community": "C-HPL", "topic": "理论学习", "kind": "link",
     "title": "学习强国学习平台", "url": "https://www.xuexi.cn/", "date": "2026-09-05"},
    {"code": "LIB-HPL-03", "community": "C-HPL", "topic": "基层治理", "kind": "text",
     "title": "学习提纲：网格化治理与“一网格一支部”", "date": "2026-10-10",
     "text": "一、为什么把支部建在网格上：网格是最小的治理单元，几百户居民的事，支部看得见、够得着。\n"
             "二、党员怎么做：认领楼栋，常走访；群众点单、社区派单、党员领单，办完要回访。\n"
             "三、讨论：本网格最近三个月居民反映最多的问题是什么？我们先办哪一件？"},
    {"code": "LIB-HPL-04", "community": "C-HPL", "topic": "为民服务", "kind": "text",
     "title": "接诉即办：居民诉求怎么办结", "date": "2026-10-20",
     "text": "1. 首接负责：谁先接到，谁跟到底。\n"
             "2. 按时限响应：一般问题24小时内响应、7天内办结；供暖、水电、电梯2小时内响应。\n"
             "3. 办结后回访：问居民满意不满意，不满意就重新办。\n"
             "4. 三率：响应率、解决率、满意率，每月公布。"},
    {"code": "LIB-HPL-05", "community": "C-HPL", "topic": "基层治理", "kind": "text",
     "title": "协商议事的六个步骤", "date": "2026-11-02",
     "text": "提出议题 → 征求意见 → 协商讨论 → 形成决议 → 公示结果 → 抓好落实。\n"
             "议事要让楼里的居民都能说上话，结果要公开，落实情况要回头看。"},
    {"code": "LIB-BR-HPL-01-01", "branch": "BR-HPL-01", "topic": "支部工作", "kind": "text",
     "title": "和平里第一网格党支部第四季度学习计划", "date": "2026-10-01",
     "text": "10月：主题党日，清理楼道杂物。\n11月：学习会，基层治理。\n12月：支部党员大会，年度总结和民主评议。"},
    {"code": "LIB-QNH-01", "community": "C-QNH", "topic": "党章党规", "kind": "link",
     "title": "共产党员网：党章党规和学习专题", "url": "https://www.12371.cn/", "date": "2026-09-01"},
    {"code": "LIB-QNH-02", "community": "C-QNH", "topic": "为民服务", "kind": "text",
     "title": "入户走访的五个要点", "date": "2026-10-15",
     "text": "一看：居住环境和安全隐患；二问：身体和生活困难；三听：对社区的意见；"
             "四记：当场记下诉求；五办：能办的马上办，办不了的报网格。"},
    {"code": "LIB-QNH-03", "community": "C-QNH", "topic": "理论学习", "kind": "text",
     "title": "学习提纲：全心全意为人民服务", "date": "2026-11-05",
     "text": "党员的身份要亮出来：在楼门口、在志愿岗、在居民群里。\n讨论：这个月您为邻居做了哪件小事？"},
]

# Buildings sit on a 3 x 3 lattice in grid-local coordinates (u runs west -> east,
# v runs south -> north, both 0..1 across the grid quadrilateral). The lattice
# leaves a strip on the east side and along the edges for gates and landmarks.
BUILDING_U = [0.17, 0.42, 0.67]
BUILDING_V = [0.80, 0.50, 0.20]  # north row first, so numbers run like reading order
JITTER = 0.02  # max random shift in local coordinates

# Landmarks: (estate code, suffix for the code, grid, u, v, name suffix, aliases).
# Aliases use "{s}" for the estate's short name.
GATES = {
    "EG": ("东门", ["东门", "{s}东门"]),
    "WG": ("西门", ["西门", "{s}西门"]),
    "SG": ("南门", ["南门", "{s}南门"]),
    "NG": ("北门", ["北门", "{s}北门"]),
}
LANDMARKS = [
    # gates, each placed just inside the estate edge it opens on
    ("HPL", "EG", "G-HPL-02", 0.88, 0.50),
    ("HPL", "WG", "G-HPL-01", 0.12, 0.35),
    ("HPL", "SG", "G-HPL-01", 0.55, 0.12),
    ("YHY", "SG", "G-HPL-04", 0.30, 0.12),
    ("YHY", "NG", "G-HPL-03", 0.55, 0.88),
    ("QNH", "EG", "G-QNH-02", 0.88, 0.50),
    ("QNH", "SG", "G-QNH-02", 0.55, 0.12),
    ("QNH", "NG", "G-QNH-01", 0.30, 0.88),
    ("ADL", "EG", "G-QNH-04", 0.88, 0.35),
    ("ADL", "WG", "G-QNH-03", 0.12, 0.65),
    # other places residents name when they report a problem
    ("HPL", "GD", "G-HPL-01", 0.86, 0.60),
    ("YHY", "PK", "G-HPL-04", 0.86, 0.75),
    ("QNH", "MK", "G-QNH-02", 0.86, 0.20),
    ("QNH", "PK", "G-QNH-01", 0.86, 0.70),
    ("ADL", "KG", "G-QNH-03", 0.86, 0.30),
    ("ADL", "GD", "G-QNH-04", 0.86, 0.80),
]
OTHER_LANDMARKS = {
    "GD": ("花园", ["小区花园", "花园", "{s}花园"]),
    "PK": ("地下车库入口", ["地下车库入口", "车库入口", "地库入口", "{s}车库"]),
    "MK": ("菜市场", ["菜市场", "{s}菜市场"]),
    "KG": ("幼儿园门口", ["幼儿园门口", "幼儿园", "{s}幼儿园"]),
}

# Party members per branch besides the secretary (5-8), residents per grid.
MEMBERS_PER_BRANCH = [6, 5, 7, 8, 6, 7, 5, 8]
RESIDENTS_PER_GRID = [3, 2, 3, 2, 3, 2, 3, 2]
# Grids whose grid worker is also a party member of the grid's branch.
WORKER_IS_MEMBER = {"G-HPL-02", "G-QNH-03"}

SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许傅沈曾彭吕"
    "苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江"
    "史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
)
GIVEN_NAMES = [
    # older generation
    "建国",
    "建华",
    "国强",
    "志强",
    "德明",
    "振华",
    "卫东",
    "红梅",
    "秀英",
    "桂兰",
    "淑珍",
    "玉兰",
    "凤英",
    "春生",
    "永刚",
    "立新",
    "素芬",
    "金凤",
    "保国",
    "建设",
    "建军",
    "爱华",
    "丽华",
    "桂芳",
    "宝山",
    "长顺",
    "玉珍",
    "树林",
    "秀兰",
    "明亮",
    # middle-aged
    "海燕",
    "晓东",
    "伟",
    "静",
    "敏",
    "磊",
    "勇",
    "军",
    "丽娟",
    "红霞",
    "志刚",
    "海涛",
    "晓红",
    "立伟",
    "雪梅",
    "春燕",
    "建伟",
    "国华",
    "丹",
    "晓明",
    "燕",
    "鹏",
    "亮",
    # younger
    "子涵",
    "浩然",
    "思远",
    "雨桐",
    "欣怡",
    "梓萱",
    "俊杰",
    "一诺",
    "宇轩",
    "佳怡",
    "诗琪",
    "梓豪",
    "嘉懿",
    "晨曦",
    "博文",
    "心怡",
]

CN_DIGITS = "零一二三四五六七八九"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def rnd(x: float) -> float:
    return round(x, PRECISION)


def lerp(a: Point, b: Point, t: float) -> Point:
    """Point at fraction t from a to b, rounded so shared vertices stay identical."""
    return (rnd(a[0] + (b[0] - a[0]) * t), rnd(a[1] + (b[1] - a[1]) * t))


def bilinear(quad: list[Point], u: float, v: float) -> Point:
    """Map local (u, v) in the unit square onto a convex quad given as
    (south-west, south-east, north-east, north-west); interior maps to interior."""
    p00, p10, p11, p01 = quad
    lon = (1 - u) * (1 - v) * p00[0] + u * (1 - v) * p10[0] + u * v * p11[0] + (1 - u) * v * p01[0]
    lat = (1 - u) * (1 - v) * p00[1] + u * (1 - v) * p10[1] + u * v * p11[1] + (1 - u) * v * p01[1]
    return (rnd(lon), rnd(lat))


def chinese_number(n: int) -> str:
    """1..99 as Chinese numerals: 3 -> 三, 10 -> 十, 12 -> 十二, 20 -> 二十."""
    if not 1 <= n <= 99:
        raise ValueError(n)
    tens, ones = divmod(n, 10)
    if tens == 0:
        return CN_DIGITS[ones]
    head = "" if tens == 1 else CN_DIGITS[tens]
    return head + "十" + (CN_DIGITS[ones] if ones else "")


def split_estate(estate: dict) -> dict[str, list[Point]]:
    """Cut an estate quad into two grid quads, each listed SW, SE, NE, NW
    (counter-clockwise in lon/lat). The two quads share the cut edge exactly."""
    sw, se, ne, nw = estate["corners"]
    first, second = estate["grids"]
    if estate["split"] == "ew":
        s_cut = lerp(sw, se, estate["t_a"])
        n_cut = lerp(nw, ne, estate["t_b"])
        return {first: [sw, s_cut, n_cut, nw], second: [s_cut, se, ne, n_cut]}
    w_cut = lerp(sw, nw, estate["t_a"])
    e_cut = lerp(se, ne, estate["t_b"])
    return {first: [sw, se, e_cut, w_cut], second: [w_cut, e_cut, ne, nw]}


# --------------------------------------------------------------------------------------
# YAML output: block style overall, flow style for short lists and street entries
# --------------------------------------------------------------------------------------


class FlowMap(dict):
    """A mapping that is written on one line, like ``{code: ST-HP, name: 和平街道}``."""


class Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key ("streets:\n  - ...").
        super().increase_indent(flow, False)


def _represent_list(dumper: Dumper, data: list) -> yaml.Node:
    scalars = all(not isinstance(item, (dict, list)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=scalars)


def _represent_flowmap(dumper: Dumper, data: FlowMap) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _represent_str(dumper: Dumper, data: str) -> yaml.Node:
    # Digit-only strings (phone numbers, building numbers) in double quotes; several lines as a block.
    style = '"' if data.isdigit() else "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


Dumper.add_representer(list, _represent_list)
Dumper.add_representer(FlowMap, _represent_flowmap)
Dumper.add_representer(str, _represent_str)

HEADER = """\
# gridbot demo registry - GENERATED by scripts/make_demo_registry.py; do not edit by hand,
# change the script and run it again.
# Everything here is FICTIONAL: the street, communities, estates, people, phone numbers,
# Telegram user ids and chat ids are made up for demos and tests.
# Grid polygons are in grids.geojson next to this file. Coordinates are WGS-84 (crs below).
"""


# --------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------


def build() -> tuple[dict, dict]:
    rng = random.Random(SEED)

    estates_by_code = {e["code"]: e for e in ESTATES}
    grid_quads: dict[str, list[Point]] = {}
    grid_estate: dict[str, dict] = {}
    for estate in ESTATES:
        for code, quad in split_estate(estate).items():
            grid_quads[code] = quad
            grid_estate[code] = estate

    # Grids in code order: G-HPL-01..04, G-QNH-01..04.
    grid_codes = sorted(grid_quads)
    grids = []
    for code in grid_codes:
        community_code = "C-" + code.split("-")[1]
        community = next(c for c in COMMUNITIES if c["code"] == community_code)
        seq = int(code.split("-")[2])
        grids.append(
            {
                "code": code,
                "community": community_code,
                "name": f"{community['short']}{GRID_ORDINALS[seq - 1]}网格",
                "workers": [],
            }
        )

    # Buildings: 9 per grid, numbered 1..18 across each estate (first grid of the
    # estate gets 1..9, the second 10..18).
    buildings = []
    buildings_by_grid: dict[str, list[str]] = {}
    for estate in ESTATES:
        for offset, grid_code in enumerate(sorted(estate["grids"])):
            quad = grid_quads[grid_code]
            buildings_by_grid[grid_code] = []
            for row, v in enumerate(BUILDING_V):
                for col, u in enumerate(BUILDING_U):
                    number = offset * 9 + row * 3 + col + 1
                    ju = rng.uniform(-JITTER, JITTER)
                    jv = rng.uniform(-JITTER, JITTER)
                    lon, lat = bilinear(quad, u + ju, v + jv)
                    code = f"B-{grid_code[2:]}-{number:02d}"
                    buildings_by_grid[grid_code].append(code)
                    buildings.append(
                        {
                            "code": code,
                            "grid": grid_code,
                            "address": f"{estate['name']}{number}号楼",
                            "number": str(number),
                            "aliases": [
                                f"{number}号楼",
                                f"{chinese_number(number)}号楼",
                                f"{number}栋",
                                f"{number}幢",
                                f"{estate['short']}{number}号楼",
                            ],
                            "lat": lat,
                            "lon": lon,
                        }
                    )
    buildings.sort(key=lambda b: b["code"])

    # Landmarks.
    landmarks = []
    for estate_code, kind, grid_code, u, v in LANDMARKS:
        estate = estates_by_code[estate_code]
        assert grid_code in estate["grids"], (estate_code, grid_code)
        suffix, aliases = GATES.get(kind) or OTHER_LANDMARKS[kind]
        lon, lat = bilinear(grid_quads[grid_code], u, v)
        landmarks.append(
            {
                "code": f"L-{estate_code}-{kind}",
                "grid": grid_code,
                "name": f"{estate['name']}{suffix}",
                "aliases": [a.format(s=estate["short"]) for a in aliases],
                "lat": lat,
                "lon": lon,
            }
        )

    # People. Names are drawn without repetition so every demo person is unique.
    used_names: set[str] = set()

    def new_name() -> str:
        while True:
            name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
            if name not in used_names:
                used_names.add(name)
                return name

    people: list[dict] = []

    def new_person(roles: list[str], building: str | None) -> dict:
        n = len(people) + 1
        person = {
            "code": f"P-{n:04d}",
            "name": new_name(),
            "telegram_id": 700000000 + n,
            "phone": f"1380000{n:04d}",  # 138-0000-xxxx: an obviously fake block
        }
        if building:
            person["building"] = building
        person["roles"] = roles
        people.append(person)
        return person

    # Branch members first (secretary, then members), grid by grid. Members live in
    # their own grid; in every branch one member lives elsewhere (building omitted:
    # e.g. a 双报到 member or a community worker registered here).
    branches = []
    for index, grid in enumerate(grids):
        grid_code = grid["code"]
        grid_buildings = buildings_by_grid[grid_code]
        half = len(grid_buildings) // 2  # party groups split the grid's buildings
        count = 1 + MEMBERS_PER_BRANCH[index]
        branch_people = []
        for i in range(count):
            if i == count - 1:
                building = None
            else:
                # Alternate between the two halves so both party groups have people.
                pool = grid_buildings[:half] if i % 2 == 0 else grid_buildings[half:]
                building = rng.choice(pool)
            branch_people.append(new_person(["member"], building))
        branches.append({"grid": grid_code, "people": branch_people})

    # Grid workers: one per grid; some are also party members of the grid's branch.
    for grid, branch in zip(grids, branches, strict=True):
        if grid["code"] in WORKER_IS_MEMBER:
            person = new_person(["member", "grid_worker"], None)
            branch["people"].append(person)
        else:
            person = new_person(["grid_worker"], None)
        grid["workers"] = [person["code"]]

    # Community admins: one per community. The first community's admin is also its 战时 指挥长
    # (commander: declares a mobilisation, /dongyuan), so a demo has one.
    communities = []
    for index, community in enumerate(COMMUNITIES):
        admin = new_person(["community_admin"], None)
        communities.append(
            {
                "code": community["code"],
                "street": STREET["code"],
                "name": community["name"],
                **community["contact"],
                "admins": [admin["code"]],
                **({"commanders": [admin["code"]]} if index == 0 else {}),
            }
        )

    # Residents (some of them volunteers) spread over the grids.
    resident_no = 0
    for grid, how_many in zip(grids, RESIDENTS_PER_GRID, strict=True):
        for _ in range(how_many):
            resident_no += 1
            roles = ["resident", "volunteer"] if resident_no % 3 == 0 else ["resident"]
            new_person(roles, rng.choice(buildings_by_grid[grid["code"]]))

    # Branch records with party groups for the larger branches (>= 7 members).
    building_of = {p["code"]: p.get("building") for p in people}
    branch_records = []
    chat_base = 1001000000000
    for index, (grid, branch) in enumerate(zip(grids, branches, strict=True)):
        grid_code = grid["code"]
        members = [p["code"] for p in branch["people"]]
        record: dict = {
            "code": f"BR-{grid_code[2:]}",
            "grid": grid_code,
            "name": f"{grid['name']}党支部",
            "chat_id": -(chat_base + index + 1),
            "secretary": members[0],
            "members": members,
        }
        if len(members) >= 7:
            grid_buildings = buildings_by_grid[grid_code]
            half = len(grid_buildings) // 2
            halves = [grid_buildings[:half], grid_buildings[half:]]
            groups = []
            for g, owned in enumerate(halves):
                # Members who live in the group's buildings; the secretary leads
                # the branch, so a group leader is the first other member.
                group_members = [m for m in members if building_of[m] in owned]
                leader = next(m for m in group_members if m != members[0])
                groups.append(
                    {
                        "code": f"PG-{grid_code[2:]}-{g + 1}",
                        "name": f"{GRID_ORDINALS[g]}党小组",
                        "leader": leader,
                        "members": group_members,
                        "buildings": owned,
                    }
                )
            record["groups"] = groups
        branch_records.append(record)

    registry = {
        # The datum of every coordinate here (core.registry.coordinates): WGS-84, as GPS and
        # Telegram give; a registry drawn on Chinese map data would say gcj02 and be converted.
        "crs": "wgs84",
        "streets": [FlowMap(STREET)],
        "communities": communities,
        "grids": grids,
        "buildings": buildings,
        "landmarks": landmarks,
        "people": people,
        "branches": branch_records,
        "units": UNITS,
        "organisations": ORGANISATIONS,
        "service_centres": SERVICE_CENTRES,
        "resources": RESOURCES,
        "spaces": SPACES,
        "library": LIBRARY,
    }

    features = []
    for grid in grids:
        quad = grid_quads[grid["code"]]
        ring = [list(p) for p in quad] + [list(quad[0])]  # SW, SE, NE, NW: counter-clockwise
        features.append(
            {
                "type": "Feature",
                "properties": {"code": grid["code"], "name": grid["name"]},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    geojson = {"type": "FeatureCollection", "features": features}
    return registry, geojson


def dump_geojson(geojson: dict) -> str:
    """GeoJSON with one coordinate pair per line: readable and diff-friendly."""
    lines = ["{", '  "type": "FeatureCollection",', '  "features": [']
    for i, feature in enumerate(geojson["features"]):
        ring = feature["geometry"]["coordinates"][0]
        coords = ",\n".join(
            f"          [{lon:.{PRECISION}f}, {lat:.{PRECISION}f}]" for lon, lat in ring
        )
        props = json.dumps(feature["properties"], ensure_ascii=False)
        lines += [
            "    {",
            '      "type": "Feature",',
            f'      "properties": {props},',
            '      "geometry": {',
            '        "type": "Polygon",',
            '        "coordinates": [[',
            coords,
            "        ]]",
            "      }",
            "    }" + ("," if i < len(geojson["features"]) - 1 else ""),
        ]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args()

    registry, geojson = build()
    args.out.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(registry, Dumper=Dumper, allow_unicode=True, sort_keys=False, width=200)
    (args.out / "registry.yml").write_text(HEADER + text, encoding="utf-8")
    (args.out / "grids.geojson").write_text(dump_geojson(geojson), encoding="utf-8")
    print(
        f"wrote {args.out / 'registry.yml'} and {args.out / 'grids.geojson'}: "
        f"{len(registry['grids'])} grids, {len(registry['buildings'])} buildings, "
        f"{len(registry['landmarks'])} landmarks, {len(registry['people'])} people, "
        f"{len(registry['branches'])} branches, {len(registry['units'])} units, "
        f"{len(registry['organisations'])} party organisations, {len(registry['service_centres'])} service centres, "
        f"{len(registry['spaces'])} spaces, "
        f"{len(registry['library'])} library items"
    )


if __name__ == "__main__":
    main()
