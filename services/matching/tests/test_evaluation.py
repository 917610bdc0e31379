"""The evaluation command on a small slice of SciFact: same engine code, real model, real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from techbridge_matching import evaluation

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[3]
SCIFACT = Path(os.environ.get("TECHBRIDGE_SCIFACT_DIR", REPO.parent / "shared" / "data" / "scifact"))


def test_metrics_on_hand_made_runs():
    qrels = {"q": {"a": 1, "b": 1}}
    assert evaluation.ndcg_at(["a", "b", "x"], qrels["q"]) == pytest.approx(1.0)
    assert evaluation.ndcg_at(["x", "a"], qrels["q"]) == pytest.approx((1 / 1.5849625) / (1 + 1 / 1.5849625))
    assert evaluation.recall_at(["x", "a"], qrels["q"]) == 0.5
    assert evaluation.evaluate({"q": ["b", "a"]}, qrels)["ndcg@10"] == 1.0


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory):
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip(f"SciFact not found at {SCIFACT} (set TECHBRIDGE_SCIFACT_DIR)")
    qrels = evaluation.read_qrels(SCIFACT / "qrels" / "train.tsv")
    queries = evaluation.read_jsonl(SCIFACT / "queries.train.jsonl")[:30]
    wanted = {d for q in queries for d in qrels.get(q["_id"], {})}
    corpus, fillers = [], 0
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if doc["_id"] in wanted or fillers < 60:
                fillers += doc["_id"] not in wanted
                corpus.append(doc)
    out = tmp_path_factory.mktemp("scifact")
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(out / "qrels.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in queries:
            for d, s in qrels.get(q["_id"], {}).items():
                f.write(f"{q['_id']}\t{d}\t{s}\n")
    return out


def test_eval_command_writes_a_trec_run_and_hybrid_beats_chance(scifact_slice, capsys):
    run = scifact_slice / "hybrid.trec"
    assert evaluation.main(["--corpus", str(scifact_slice / "corpus.jsonl"), "--queries", str(scifact_slice / "queries.jsonl"),
                            "--qrels", str(scifact_slice / "qrels.tsv"), "--run", str(run), "--mode", "hybrid",
                            "--cache", str(scifact_slice / "vectors.npz")]) == 0
    lines = run.read_text().splitlines()
    qid, q0, docid, rank, score, tag = lines[0].split()
    assert q0 == "Q0" and rank == "1" and tag == "techbridge-hybrid" and float(score) > 0
    per_query = {}
    for line in lines:
        per_query.setdefault(line.split()[0], []).append(int(line.split()[3]))
    assert all(ranks == list(range(1, len(ranks) + 1)) and len(ranks) <= 100 for ranks in per_query.values())
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # ~100 documents, 30 claims: a working engine finds most cited abstracts near the top.
    assert metrics["queries"] > 20 and metrics["ndcg@10"] > 0.6 and metrics["recall@100"] > 0.9

    bm25 = scifact_slice / "bm25.trec"
    evaluation.main(["--corpus", str(scifact_slice / "corpus.jsonl"), "--queries", str(scifact_slice / "queries.jsonl"),
                     "--qrels", str(scifact_slice / "qrels.tsv"), "--run", str(bm25), "--mode", "bm25"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ndcg@10"] > 0.5
