"""A public dataset fetched by the workflow: a tiny archive in GEO's exact layout (GSE138266's
``GSE..._RAW.tar`` of ``GSM<id>_<donor>_<tissue>_GRCh38_{barcodes,genes,matrix}`` files, 10x v2)
served from 127.0.0.1, then download, unpack, ingest and the rest of the DAG."""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from csfcart.datasets import read_dataset
from csfcart.download import sha256sum
from csfcart.simulate.cohort import parse_cohort
from csfcart.simulate.write import simulate_cohort
from tests.conftest import ROOT, run_snakemake

pytestmark = pytest.mark.e2e
ARCHIVE = "GSE000001_RAW.tar"


def geo_archive(tmp: Path) -> tuple[Path, list[dict]]:
    """Baseline samples of a tiny synthetic cohort, repackaged as GEO deposits them."""
    raw = read_dataset(ROOT / "config" / "datasets" / "csf_null_tiny.yaml")["simulation"]
    cohort = parse_cohort({**raw, "n_patients": 4}, name="geo_test", where="test")
    wanted = [s["sample_id"] for s in cohort.samples() if s["timepoint"] == "baseline"]
    sim = simulate_cohort(cohort, tmp / "sim", samples=wanted)
    files = tmp / "geo_files"
    files.mkdir()
    rows = []
    for i, s in enumerate(pd.read_csv(sim / "samples.tsv", sep="\t").to_dict("records")):
        donor = ("MS" if s["patient_id"] in ("P01", "P02") else "PTC") + f"{10000 + int(s['patient_id'][1:])}"
        tissue = "CSF" if s["compartment"] == "CSF" else "PBMCs"
        prefix = f"GSM{4104100 + i}_{donor}_{tissue}_GRCh38_"
        src = sim / s["path"] / "filtered_feature_bc_matrix"  # the simulator lays samples out as Cell Ranger does
        shutil.copy(src / "matrix.mtx.gz", files / f"{prefix}matrix.mtx.gz")
        shutil.copy(src / "barcodes.tsv.gz", files / f"{prefix}barcodes.tsv.gz")
        with gzip.open(src / "features.tsv.gz", "rt") as fin, gzip.open(files / f"{prefix}genes.tsv.gz", "wt") as out:
            out.writelines("\t".join(line.split("\t")[:2]) + "\n" for line in fin)  # v2: id, symbol
        rows.append({"sample_id": f"{donor}_{s['compartment']}", "patient_id": donor, "timepoint": "baseline",
                     "compartment": s["compartment"], "condition": "MS" if donor.startswith("MS") else "control",
                     "path": f"raw/{prefix}"})  # fmt: skip
    archive = tmp / "served" / ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w") as tar:  # GEO's RAW.tar: flat, uncompressed, gzipped members
        for f in sorted(files.iterdir()):
            tar.add(f, arcname=f.name)
    return archive, rows


class Server:
    """A local HTTP server of one folder that counts the requests it answers."""

    def __init__(self, folder: Path):
        self.hits = []
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def do_GET(self):
                hits.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("geo")
    archive, rows = geo_archive(tmp)
    sheet = tmp / "samples.tsv"
    pd.DataFrame(rows).to_csv(sheet, sep="\t", index=False)
    server = Server(archive.parent)
    yield {"tmp": tmp, "archive": archive, "sheet": sheet, "server": server}
    server.close()


def config(geo, name, **download):
    """A dataset of the served archive; ``download`` overrides url/dir/sha256."""
    tmp = geo["tmp"]
    spec = {"url": f"{geo['server'].url}/{ARCHIVE}", "dir": str(tmp / name / "cache"), **download}
    doc = {"dataset": "geo_test", "samples": str(geo["sheet"]), "download": spec, "claims": ["M1", "M2"],
           "results": str(tmp / name / "results"), "integration": {"method": "harmony"},
           "reference_condition": "control"}  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, Path(spec["dir"]), tmp / name / "results" / "geo_test"


def test_download_unpack_and_the_whole_dag(geo):
    cfg, cache, results = config(geo, "full")
    proc = run_snakemake("-c2", "--workflow-profile", "workflow/profiles/default", "--configfile", str(cfg))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert geo["server"].hits == [f"/{ARCHIVE}"]
    lock = json.loads((cache / "download.lock").read_text())
    assert lock["sha256"] == sha256sum(geo["archive"]) and lock["size"] == geo["archive"].stat().st_size
    assert not list(cache.glob("*.part"))
    claims = pd.read_csv(results / "claims.tsv", sep="\t").set_index("claim_id")
    assert list(claims.index) == ["M1", "M2"]
    assert (claims["n_patients"] == 4).all()  # 2 MS and 2 control donors with CSF
    assert claims["verdict"].isin(["reproduced", "contradicted", "inconclusive"]).all()
    assert len(pd.read_csv(results / "qc" / "summary.tsv", sep="\t")) == 8
    # a second run fetches nothing and has nothing to do
    again = run_snakemake("-n", "--configfile", str(cfg))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert geo["server"].hits == [f"/{ARCHIVE}"]


def test_a_corrupted_archive_is_refused_and_leaves_nothing(geo):
    cfg, cache, _ = config(geo, "corrupt", sha256="0" * 64)
    proc = run_snakemake(str(cache / ARCHIVE), "-c1", "--configfile", str(cfg))
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "SHA-256" in text and "does not match" in text and "by hand" in text, text[-3000:]
    assert not cache.exists() or not [p for p in cache.iterdir() if p.name != "download.lock"]


def test_without_network_it_says_how_to_provide_the_archive(geo):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/{ARCHIVE}"
    cfg, cache, _ = config(geo, "offline", url=dead)
    proc = run_snakemake(str(cache / "raw.done"), "-c1", "--configfile", str(cfg))
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"put it at {cache / ARCHIVE}" in text, text[-3000:]
    assert not (cache / ARCHIVE).exists()
    # the file provided by hand: no download, and the rest of the workflow takes it from there
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(geo["archive"], cache / ARCHIVE)
    proc = run_snakemake(str(cache / "raw.done"), "-c1", "--configfile", str(cfg))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "rule download" not in proc.stdout + proc.stderr
    assert len(list((cache / "raw").iterdir())) == 24
