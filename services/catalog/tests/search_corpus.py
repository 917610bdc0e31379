"""A fixed bilingual corpus with known answers, for the search tests on both stores."""

from __future__ import annotations

U1, U2, U3 = "org-fudan", "org-sjtu", "org-tongji"


def doc(key, org, title_zh, title_en, abstract_zh, abstract_en, ipc, ip_type, trl, modes, price, keywords=(), **kw):
    return key, org, {
        "title_zh": title_zh, "title_en": title_en, "abstract_zh": abstract_zh, "abstract_en": abstract_en,
        "confidential_details": kw.pop("secret", "内部工艺参数"), "keywords": list(keywords), "fields": kw.pop("fields", []),
        "ipc_codes": ipc, "ip_type": ip_type, "trl": trl, "transfer_modes": modes,
        "asking_price": {"amount": price, "currency": "CNY"} if price is not None else None,
        "negotiable": price is None,
        "ip_records": [] if ip_type in ("know_how", "prototype") else [
            {"number": f"CN2023{key}", "kind": ip_type, "legal_status": "granted"}],
        **kw,
    }


# Published in this order (so recency order is the reverse).
CORPUS = [
    doc("separator", U1, "锂电池隔膜", "Lithium battery separator",
        "陶瓷涂覆隔膜，提高热稳定性。", "Ceramic coated separator improving thermal stability of the battery.",
        ["H01M 50/449"], "invention_patent", 6, ["assignment", "exclusive_licence"], 50_000_000, ["隔膜"]),
    doc("cathode", U2, "锂离子电池正极材料", "Cathode material for lithium-ion batteries",
        "高镍三元正极材料的包覆改性。", "Coating modification of nickel-rich cathodes.",
        ["H01M 4/525"], "invention_patent", 5, ["non_exclusive_licence"], None),
    doc("solid", U1, "固态电池电解质", "Solid-state battery electrolyte",
        "硫化物固态电解质，界面采用石墨烯涂层。", "Sulfide electrolyte with a graphene interface coating.",
        ["H01M 10/0562"], "invention_patent", 4, ["co_development"], 80_000_000),
    doc("graphene", U2, "石墨烯导热膜", "Graphene thermal film",
        "用于手机散热的石墨烯导热膜。", "Thermal film for phone heat spreading.",
        ["C01B 32/184"], "utility_model", 7, ["assignment"], 3_000_000),
    doc("recycle", U3, "废旧锂电池回收工艺", "Recycling of spent lithium batteries",
        "湿法冶金回收钴镍锂。", "Hydrometallurgical recovery of cobalt, nickel and lithium.",
        ["H01M 10/54"], "know_how", 8, ["technical_service"], 1_000_000),
    doc("imaging", U3, "医学影像分割软件", "Deep learning medical image segmentation",
        "基于深度学习的CT影像分割。", "Segments organs in CT images with deep neural networks.",
        ["G06T 7/11"], "software_copyright", 7, ["non_exclusive_licence"], 2_000_000, ["AI"]),
    doc("rice", U1, "水稻抗病新品种", "Disease-resistant rice variety",
        "抗稻瘟病的高产水稻。", "High-yield rice resistant to blast.",
        ["A01H 6/46"], "plant_variety", 9, ["assignment"], 5_000_000),
    doc("layout", U2, "低功耗芯片版图", "Low power SoC layout",
        "物联网芯片版图设计。", "Layout of an IoT system on chip.",
        ["H01L 27/02"], "ic_layout", 5, ["exclusive_licence"], 20_000_000),
    doc("perovskite", U3, "", "Perovskite solar cell with a stable interface",
        "", "Perovskite solar cells that keep 95% efficiency after 1000 hours.",
        ["H01L 31/18"], "invention_patent", 3, ["co_development"], None),
    doc("bms", U3, "电池管理系统算法", "Battery management system algorithm",
        "电动汽车电池管理系统的荷电状态估计。", "State of charge estimation for electric vehicle packs.",
        ["H02J 7/00"], "software_copyright", 6, ["technical_service"], 500_000),
]

KEYS = [k for k, _, _ in CORPUS]
