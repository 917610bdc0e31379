"""The one versioned table of default valuation parameters, each figure with its source.

A valuation records `TABLE_VERSION` and every figure it took from here, so it can be reproduced
after the table changes. Never edit a published version in place: add a new `DefaultsTable`
with a new version, make it `CURRENT`, and keep the old one in `TABLES`.

Figures are indicative ranges as an analyst would quote them from the named sources, rounded;
they are starting points that a requester overrides with evidence about the technology at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Range:
    """Low / most likely / high; used as a triangular distribution when taken as a default."""

    low: float
    mode: float
    high: float
    source: str


@dataclass(frozen=True)
class Figure:
    value: float
    source: str


@dataclass(frozen=True)
class Industry:
    key: str
    label: str
    ipc_prefixes: tuple[str, ...]
    royalty_rate: Range  # share of net sales


@dataclass(frozen=True)
class DefaultsTable:
    version: str
    published: str
    industries: tuple[Industry, ...]
    fallback_industry: str
    discount_rate_by_trl: dict[int, Range]  # risk-adjusted (venture-capital stage) rates for relief-from-royalty
    success_probability_by_trl: dict[int, Figure]  # probability of reaching the market, for rNPV
    rnpv_discount_rate: Range  # cost of capital once technical risk is in the probabilities
    tax_rate: Figure
    risk_free_rate: Figure
    real_option_volatility: Range
    exclusivity_factor: dict[str, Figure]  # value of a right relative to an assignment
    territory_factor: dict[str, Figure]  # value of a right relative to a worldwide one
    statutory_term_years: dict[str, Figure]  # ip type -> years from filing
    notes: tuple[str, ...] = field(default_factory=tuple)

    def industry(self, key: str) -> Industry:
        for ind in self.industries:
            if ind.key == key:
                return ind
        raise KeyError(key)

    def industry_for(self, ipc_codes: list[str], fields: list[str] | None = None) -> Industry:
        """The industry of the most specific IPC prefix matching any of the codes."""
        best: tuple[int, Industry] | None = None
        for code in ipc_codes:
            norm = normalise_ipc(code)
            for ind in self.industries:
                for prefix in ind.ipc_prefixes:
                    if norm.startswith(prefix) and (best is None or len(prefix) > best[0]):
                        best = (len(prefix), ind)
        return best[1] if best else self.industry(self.fallback_industry)


def normalise_ipc(code: str) -> str:
    """'h01m 10/052' -> 'H01M10/052' (spaces dropped, upper case)."""
    return "".join(code.split()).upper()


def ipc_subclass(code: str) -> str:
    """The IPC subclass, e.g. 'H01M 10/052' -> 'H01M'."""
    return normalise_ipc(code)[:4]


_PARR = "R. L. Parr, Royalty Rates for Licensing Intellectual Property (Wiley, 2007), industry tables"
_KL = "S. Kemmerer & J. Lu, 'Profitability and royalty rates across industries', les Nouvelles 47(1), 2012"
_RAZ = "R. Razgaitis, Valuation and Pricing of Technology-Based Intellectual Property (Wiley, 2003)"
_VC = (
    "Venture-capital target rates by stage: Scherlis & Sahlman, 'A method for valuing high-risk, "
    "long-term investments', HBS 9-288-006 (1987); Plummer, QED Report on Venture Capital (1987); "
    "summarised in Damodaran, The Dark Side of Valuation (2nd ed., 2010), ch. 11"
)
_SUCCESS = (
    "Probability of reaching the market by readiness stage: life-science phase transition rates from "
    "BIO/Informa/QLS, Clinical Development Success Rates 2006-2015 (2016) and Wong, Siah & Lo, "
    "Biostatistics 20(2), 2019, mapped to TRL; engineering stages by analogy (platform estimate)"
)

INDUSTRIES: tuple[Industry, ...] = (
    Industry("pharmaceuticals", "Pharmaceuticals", ("A61K", "A61P", "C07D", "C07K"),
             Range(0.03, 0.06, 0.12, f"{_PARR}; {_KL}")),
    Industry("biotechnology", "Biotechnology", ("C12N", "C12P", "C12Q", "C12M"),
             Range(0.03, 0.05, 0.10, f"{_PARR}; {_KL}")),
    Industry("medical_devices", "Medical devices", ("A61B", "A61F", "A61M", "A61N", "A61L"),
             Range(0.03, 0.05, 0.08, f"{_PARR}; {_KL}")),
    Industry("chemicals_materials", "Chemicals and materials", ("C01", "C03", "C04", "C08", "C09", "C22", "C23", "C25"),
             Range(0.02, 0.04, 0.06, f"{_PARR}; {_KL}")),
    Industry("energy_batteries", "Energy storage and power", ("H01M", "H02J", "H02S", "F03D", "H01L31"),
             Range(0.02, 0.035, 0.06, f"{_PARR}; {_KL}")),
    Industry("semiconductors", "Semiconductors and electronics", ("H01L", "H10", "H03", "H05K"),
             Range(0.01, 0.03, 0.05, f"{_PARR}; {_KL}")),
    Industry("telecommunications", "Telecommunications", ("H04",),
             Range(0.01, 0.03, 0.05, f"{_PARR}; {_KL}")),
    Industry("software_computing", "Software and computing", ("G06", "G16", "G05B"),
             Range(0.05, 0.10, 0.20, f"{_PARR}; {_KL}")),
    Industry("instruments", "Measuring and optical instruments", ("G01", "G02", "G03"),
             Range(0.02, 0.04, 0.07, f"{_PARR}; {_KL}")),
    Industry("automotive_transport", "Automotive and transport", ("B60", "B61", "B62", "B64", "F02"),
             Range(0.01, 0.025, 0.05, f"{_PARR}; {_KL}")),
    Industry("machinery", "Machinery and manufacturing", ("B2", "B3", "F1", "F16"),
             Range(0.02, 0.04, 0.06, f"{_PARR}; {_KL}")),
    Industry("agriculture_food", "Agriculture and food", ("A01", "A21", "A23"),
             Range(0.02, 0.035, 0.06, f"{_PARR}; {_KL}")),
    Industry("general", "General technology (no specific industry matched)", (),
             Range(0.02, 0.04, 0.07, f"{_RAZ}: typical 2-7 % of net sales across industries")),
)

V2026_1 = DefaultsTable(
    version="2026.1",
    published="2026-11-01",
    industries=INDUSTRIES,
    fallback_industry="general",
    discount_rate_by_trl={
        1: Range(0.50, 0.60, 0.70, _VC + " (start-up stage 50-70 %)"),
        2: Range(0.50, 0.60, 0.70, _VC + " (start-up stage 50-70 %)"),
        3: Range(0.40, 0.50, 0.60, _VC + " (first stage 40-60 %)"),
        4: Range(0.40, 0.50, 0.60, _VC + " (first stage 40-60 %)"),
        5: Range(0.35, 0.42, 0.50, _VC + " (second stage 35-50 %)"),
        6: Range(0.30, 0.35, 0.40, _VC + " (later stage 30-40 %)"),
        7: Range(0.25, 0.30, 0.35, _VC + " (bridge / pre-IPO 25-35 %)"),
        8: Range(0.18, 0.22, 0.28, _VC + " (bridge / pre-IPO, lower bound, plus established-firm IP premium)"),
        9: Range(0.12, 0.15, 0.20, "Established-business cost of capital plus an intangible-asset premium: "
                 "Damodaran, cost of capital by sector (January 2026 data), + 3-5 points for IP risk"),
    },
    success_probability_by_trl={
        1: Figure(0.05, _SUCCESS + " (basic principles: below phase-I entry)"),
        2: Figure(0.07, _SUCCESS),
        3: Figure(0.10, _SUCCESS + " (proof of concept ~ phase I to approval 10 %)"),
        4: Figure(0.15, _SUCCESS + " (laboratory validation ~ phase II entry 15 %)"),
        5: Figure(0.25, _SUCCESS),
        6: Figure(0.35, _SUCCESS + " (relevant-environment demonstration ~ phase III entry 35-50 %)"),
        7: Figure(0.50, _SUCCESS),
        8: Figure(0.75, _SUCCESS + " (qualified system ~ regulatory submission 75-90 %)"),
        9: Figure(0.90, _SUCCESS + " (proven in operation; commercial risk only)"),
    },
    rnpv_discount_rate=Range(0.08, 0.10, 0.12, "Weighted average cost of capital of technology firms: "
                             "Damodaran, cost of capital by sector (January 2026 data), rounded"),
    tax_rate=Figure(0.25, "PRC Enterprise Income Tax Law, art. 4 (25 %); qualifying high-tech "
                    "enterprises 15 % (art. 28) - override per request"),
    risk_free_rate=Figure(0.02, "China Government Bond 10-year yield, about 1.7-2.3 % during 2025 "
                          "(ChinaBond yield curve), rounded"),
    real_option_volatility=Range(0.30, 0.50, 0.80, "Volatility of early-stage technology projects: "
                                 "Kodukula & Papudesu, Project Valuation Using Real Options (2006); "
                                 "Damodaran (2010) ch. 11 - proxies from small-cap technology equities"),
    exclusivity_factor={
        "assignment": Figure(1.00, "Reference: full ownership"),
        "exclusive": Figure(0.90, _RAZ + ": exclusive licences price close to assignment"),
        "non_exclusive": Figure(0.50, _RAZ + ": non-exclusive rights commonly at about half of exclusive"),
    },
    territory_factor={
        "worldwide": Figure(1.00, "Reference: worldwide rights"),
        "national": Figure(0.70, "Platform estimate: China-only rights for technologies with export markets"),
        "regional": Figure(0.40, "Platform estimate: provincial / municipal rights"),
    },
    statutory_term_years={
        "invention_patent": Figure(20, "PRC Patent Law art. 42: 20 years from filing"),
        "utility_model": Figure(10, "PRC Patent Law art. 42: 10 years from filing"),
        "software_copyright": Figure(50, "PRC Copyright Law art. 23: 50 years (legal-person works)"),
        "ic_layout": Figure(10, "Regulations on the Protection of Layout-Designs of Integrated Circuits art. 12: 10 years"),
        "plant_variety": Figure(15, "Regulations on the Protection of New Varieties of Plants art. 34: 15 years "
                                "(20 for vines, forest and fruit trees)"),
    },
    notes=(
        "Royalty ranges are shares of the licensee's net sales; they are inputs to relief-from-royalty, "
        "not prices.",
        "Discount rates for relief-from-royalty include technical risk (venture-capital stage rates); "
        "rNPV uses a cost of capital because its risk sits in the success probabilities. Do not "
        "apply both to the same cash flows.",
        "Know-how and prototypes have no statutory term: the requester states the economic life.",
    ),
)

TABLES: dict[str, DefaultsTable] = {V2026_1.version: V2026_1}
CURRENT = V2026_1


def table(version: str | None = None) -> DefaultsTable:
    if version is None:
        return CURRENT
    return TABLES[version]


def territory_scope(territory: str | None) -> str:
    """Free-text territory -> worldwide | national | regional."""
    t = (territory or "").strip().lower()
    if t in {"", "worldwide", "global", "world", "全球", "世界"}:
        return "worldwide"
    if t in {"cn", "china", "prc", "national", "中国", "全国", "mainland china"}:
        return "national"
    return "regional"


def exclusivity_of(mode: str | None, exclusive: bool | None) -> str:
    if mode == "assignment" or mode == "equity":
        return "assignment"
    if exclusive or mode == "exclusive_licence":
        return "exclusive"
    return "non_exclusive"
