"""Multi-sample integration: peak merging, combining samples, the sample covariate,
within-sample negatives, query mapping by peak overlap and batch-mixing metrics."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import DATA, SNARE_H5MU, SNARE_LABELS
from helpers import SMALL_CLI_ARGS, SMALL_MODEL

from sci2cl.align import peak_mapping
from sci2cl.cli import main
from sci2cl.data import InputTransform, MultiomeDataset
from sci2cl.embed import TrainedModel
from sci2cl.errors import InputError
from sci2cl.evaluate import EvaluationConfig, evaluate_embedding
from sci2cl.io import assemble_multiome, read_multiome
from sci2cl.model import Sci2clModule
from sci2cl.model.covariate import negatives_mask
from sci2cl.model.inter import info_nce
from sci2cl.peaks import merge_intervals, overlap_matrix, parse_intervals, recount_fragments
from sci2cl.preprocess import PrepareConfig, prepare
from sci2cl.samples import COVERAGE, combine_samples

LIBRARIES = DATA / "snare_libraries"


def _names(intervals) -> list[str]:
    return intervals.names()


# --- intervals -----------------------------------------------------------------------------


def test_merge_overlap_adjacency_and_chromosomes():
    a = parse_intervals(["chr1:100-200", "chr1:150-300", "chr2:0-10", "chr1:300-400"])
    b = parse_intervals(["chr1_250_260", "chr1-1000-1100", "chr2:5-20", "chrX:1-2"])
    merged = merge_intervals([a, b])
    # overlapping (also within one set) -> one region; bookended chr1:300-400 stays apart;
    # same coordinates on another chromosome never merge
    assert _names(merged) == [
        "chr1:100-300",
        "chr1:300-400",
        "chr1:1000-1100",
        "chr2:0-20",
        "chrX:1-2",
    ]
    contained = merge_intervals([parse_intervals(["chr1:0-1000", "chr1:10-20", "chr1:999-1500"])])
    assert _names(contained) == ["chr1:0-1500"]


def test_overlap_matrix_maps_each_peak_once_and_conserves_counts():
    a = parse_intervals(["chr1:100-200", "chr1:150-300", "chr2:0-10", "chr1:300-400"])
    b = parse_intervals(["chr1:250-260", "chr2:5-20"])
    merged = merge_intervals([a, b])
    mapping = overlap_matrix(a, merged)
    assert (np.asarray(mapping.sum(axis=1)).ravel() == 1).all()
    counts = sp.random(5, len(a), density=0.6, random_state=0, format="csr") * 10
    np.testing.assert_allclose((counts @ mapping).sum(axis=1), counts.sum(axis=1))
    # a long query spanning several targets counts in each; no overlap -> empty row
    span = overlap_matrix(parse_intervals(["chr1:0-10000", "chr3:1-5"]), merged).toarray()
    assert span.tolist() == [[1, 1, 0], [0, 0, 0]]


def test_parse_rejects_non_intervals():
    with pytest.raises(ValueError, match="not a genomic interval"):
        parse_intervals(["chr1:100-200", "GAPDH"])


def test_recount_fragments_counts_cut_sites(tmp_path):
    regions = parse_intervals(["chr1:100-200", "chr1:300-400", "chr2:0-50"])
    lines = [
        "# comment",
        "chr1\t90\t150\tAAA\t3",  # cut sites 90 (outside), 149 (region 0)
        "chr1\t120\t180\tAAA\t1",  # both in region 0
        "chr1\t150\t350\tBBB\t1",  # 150 in region 0, 349 in region 1
        "chr2\t10\t20\tBBB\t1",  # both in region 2
        "chr2\t10\t20\tZZZ\t1",  # barcode not a cell
        "chr9\t10\t20\tAAA\t1",  # contig without regions
        "chr1\t110\t130\tAAA\t1",  # region 0 again, in a later chunk: summed across chunks
    ]
    path = tmp_path / "fragments.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    counts = recount_fragments(path, ["AAA", "BBB"], regions, chunksize=2)
    assert counts.toarray().tolist() == [[5, 0, 0], [1, 1, 2]]


# --- combining prepared samples ------------------------------------------------------------


@pytest.fixture(scope="module")
def libraries() -> list[md.MuData]:
    config = PrepareConfig(n_top_genes=500, n_top_peaks=800)
    return [
        prepare(read_multiome(LIBRARIES / f"{name}.h5mu"), config, name)[0]
        for name in ("snare_a", "snare_b")
    ]


def test_combine_merges_peaks_and_keeps_counts(libraries):
    combined = combine_samples(libraries)
    a, b = libraries
    info = combined.uns["sci2cl"]["combine"]
    assert info["samples"] == ["snare_a", "snare_b"]
    assert max(a["atac"].n_vars, b["atac"].n_vars) < combined["atac"].n_vars
    assert combined["atac"].n_vars < a["atac"].n_vars + b["atac"].n_vars
    assert combined.n_obs == a.n_obs + b.n_obs
    assert list(combined.obs["sample"].unique()) == ["snare_a", "snare_b"]
    assert combined.obs_names[0] == f"snare_a:{a.obs_names[0]}"
    atac = combined["atac"].X
    for i, sample in enumerate((a, b)):
        rows = np.flatnonzero(combined.obs["sample"].to_numpy() == info["samples"][i])
        np.testing.assert_allclose(atac[rows].sum(axis=1), sample["atac"].X.sum(axis=1))
        cover = combined["atac"].varm[COVERAGE][:, i]
        # jittered neighbours of one sample may overlap and merge: at most one region per peak
        assert sample["atac"].n_vars - 10 <= cover.sum() <= sample["atac"].n_vars
        assert atac[rows][:, ~cover].nnz == 0
    # genes: union by default (absent = uncovered), intersection on request
    genes_a, genes_b = set(a["rna"].var_names), set(b["rna"].var_names)
    assert set(combined["rna"].var_names) == genes_a | genes_b
    common = combine_samples(libraries, genes="common")
    assert set(common["rna"].var_names) == genes_a & genes_b
    assert common["rna"].varm[COVERAGE].all()


def test_combine_rejects_samples_without_shared_genes_or_intervals(libraries):
    a, b = libraries
    renamed = b.copy()
    renamed.mod["rna"].var_names = [f"x{g}" for g in renamed["rna"].var_names]
    with pytest.raises(InputError, match="share no gene"):
        combine_samples([a, renamed], genes="common")
    no_intervals = b.copy()
    no_intervals.mod["atac"].var = pd.DataFrame(
        index=[f"peak{i}" for i in range(no_intervals["atac"].n_vars)]
    )
    with pytest.raises(InputError, match="snare_b: ATAC peaks without genomic intervals"):
        combine_samples([a, no_intervals])


# --- the sample covariate ------------------------------------------------------------------


def _dataset(combined: md.MuData, codes: np.ndarray) -> MultiomeDataset:
    counts = {m: sp.csr_matrix(combined[m].X, dtype=np.float32) for m in ("rna", "atac")}
    transforms = {m: InputTransform.fit(counts[m]) for m in counts}
    return MultiomeDataset(counts, transforms, codes)


def test_batch_covariate_changes_reconstruction_not_encoding(libraries):
    combined = combine_samples(libraries)
    codes = pd.factorize(combined.obs["sample"])[0]
    data = _dataset(combined, codes)
    n_features = {m: data.n_features(m) for m in ("rna", "atac")}
    torch.manual_seed(0)
    module = Sci2clModule(n_features, replace(SMALL_MODEL, n_samples=2)).eval()
    k = SMALL_MODEL.decoder_features_per_step
    batch = data.batch(np.arange(8), k)
    flipped = data.batch(np.arange(8), k)
    flipped.sample = 1 - flipped.sample
    with torch.no_grad():
        for a, b in zip(
            module.encode(batch).values(), module.encode(flipped).values(), strict=True
        ):
            torch.testing.assert_close(a, b)
        z = module.encode(batch)["rna"]
        decoder = module.decoders["rna"]
        own = decoder(z, batch.rna.library, sample=batch.sample)["mu"]
        other = decoder(z, batch.rna.library, sample=flipped.sample)["mu"]
        assert not torch.allclose(own, other)
        assert torch.isfinite(module.loss(batch)["loss"])
    # one sample: no covariate, the same parameters as before
    plain = Sci2clModule(n_features, SMALL_MODEL)
    assert plain.decoders["rna"].body[0][0].in_features == SMALL_MODEL.latent_dim
    assert module.decoders["rna"].body[0][0].in_features == SMALL_MODEL.latent_dim + 2


def test_within_sample_negatives_mask_info_nce():
    torch.manual_seed(0)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    sample = torch.tensor([0, 0, 0, 1, 1, 2])
    mask = negatives_mask(sample, "within_sample")
    assert negatives_mask(sample, "any") is None
    # cell 5 is alone of its sample in the batch: it keeps every cell as negative
    assert mask[5].all() and mask[:, 5].all() and not mask[0, 3]
    masked = info_nce(a, b, 0.5, mask)
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / 0.5
    rows = [logits[i, mask[i]].logsumexp(0) - logits[i, i] for i in range(6)]
    cols = [logits[mask[:, j], j].logsumexp(0) - logits[j, j] for j in range(6)]
    expected = 0.5 * (torch.stack(rows).mean() + torch.stack(cols).mean())
    torch.testing.assert_close(masked, expected)
    assert masked < info_nce(a, b, 0.5)  # fewer negatives, lower loss


def test_old_payload_without_sample_fields_loads():
    """A format /2 file (tests/data/legacy_model) from before the sample fields existed."""
    payload = torch.load(DATA / "legacy_model" / "snare.model.pt", weights_only=False)
    del payload["samples"]
    for key in ("n_samples", "batch_covariate", "negatives"):
        del payload["model_config"][key]
    loaded = TrainedModel.from_payload(payload)
    assert loaded.samples == [] and loaded.module.config.n_samples == 1


# --- query -> reference peak mapping -------------------------------------------------------


def test_peak_mapping_by_name_then_overlap():
    var = pd.DataFrame(
        {"interval": ["chr1:100-200", "chr1:180-260", "chr1:500-600", "chr2:0-10"]},
        index=["chr1:100-200", "chr1:180-260", "chr1:500-600", "chr2:0-10"],
    )
    model = ["chr1:100-200", "chr1:240-300", "chr1:550-700", "chr3:0-10"]
    mapping = peak_mapping(var, model).toarray()
    # by name: only the exact peak (not also the overlapping 180-260); by overlap otherwise
    assert mapping.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert peak_mapping(pd.DataFrame(index=["p1", "p2"]), model) is None


# --- evaluate: batch mixing ----------------------------------------------------------------


def test_batch_metrics_mixed_vs_separated():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 100)
    centers = {"a": (0, 0), "b": (20, 0), "c": (0, 20)}
    base = np.array([centers[lab] for lab in labels]) + rng.normal(size=(300, 2))
    batches = np.tile(["s1", "s2"], 150)
    config = EvaluationConfig(seeds=(0,), paper_protocol=False)
    mixed = evaluate_embedding(base, labels, config, batches)
    shift = np.where(batches == "s1", 0, 100)[:, None]
    separated = evaluate_embedding(base + shift, labels, config, batches)
    assert mixed["batch_entropy"] > 0.9 and separated["batch_entropy"] < 0.05
    assert mixed["ilisi"] > 1.8 and separated["ilisi"] < 1.05
    assert mixed["graph_connectivity"] > 0.95 and separated["graph_connectivity"] <= 0.55
    assert mixed["kmeans_nmi"] > 0.95


# --- CLI: train on two samples with different peak sets, embed a query, evaluate ------------


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result


def test_cli_joint_train_embed_query_and_evaluate(tmp_path):
    for name in ("snare_a", "snare_b"):
        invoke(
            "prepare",
            "--input",
            LIBRARIES / f"{name}.h5mu",
            "--output-prefix",
            tmp_path / name,
            "--sample",
            name,
            "--n-top-peaks",
            "1000",
        )
    result = invoke(
        "train",
        "--input",
        tmp_path / "snare_a.prepared.h5mu",
        "--input",
        tmp_path / "snare_b.prepared.h5mu",
        "--output-prefix",
        tmp_path / "joint",
        "--negatives",
        "within_sample",
        *SMALL_CLI_ARGS,
    )
    assert "combined 2 samples" in result.stderr and "merged peaks" in result.stderr
    table = pd.read_parquet(tmp_path / "joint.embeddings.parquet")
    assert set(table["sample"]) == {"snare_a", "snare_b"}
    model = TrainedModel.load(tmp_path / "joint.model.pt")
    assert model.samples == ["snare_a", "snare_b"]
    assert model.module.config.n_samples == 2
    assert model.module.config.negatives == "within_sample"
    # sample-conditioned decoders: the joint stays in the latents' space (docs/method.md)
    assert model.module.config.joint_components == 0
    assert table.shape[1] == 3 + 2 * model.module.config.latent_dim

    # query: the unsplit subset with the original (unshifted) peaks -> mapped by overlap
    invoke(
        "embed",
        "--model",
        tmp_path / "joint.model.pt",
        "--input",
        SNARE_H5MU,
        "--output-prefix",
        tmp_path / "query",
    )
    query = pd.read_parquet(tmp_path / "query.embeddings.parquet")
    assert len(query) > 1000 and np.isfinite(query.iloc[:, 3:].to_numpy()).all()

    invoke(
        "evaluate",
        "--input",
        tmp_path / "joint.embeddings.parquet",
        "--labels",
        SNARE_LABELS,
        "--label-column",
        "cluster (remapped)",
        "--batch-column",
        "sample",
        "--no-paper-protocol",
        "--seeds",
        "1",
        "--output",
        tmp_path / "metrics.json",
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_batches"] == 2 and metrics["batch_column"] == "sample"
    # the libraries are halves of one experiment: the joint space mixes them (two separated
    # samples score ~0 on both, see test_batch_metrics_mixed_vs_separated)
    assert metrics["batch_entropy"] > 0.8 and metrics["ilisi_scaled"] > 0.7, metrics


def test_cli_fragments_must_match_inputs(tmp_path):
    mdata = read_multiome(SNARE_H5MU)
    small = assemble_multiome(mdata["rna"][:50].copy(), mdata["atac"][:50].copy())
    prepared, _ = prepare(small, PrepareConfig(min_cells_per_gene=0, min_cells_per_peak=0), "s")
    prepared.write(tmp_path / "s.prepared.h5mu")
    (tmp_path / "f.tsv.gz").write_bytes(gzip.compress(b""))
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--input",
            str(tmp_path / "s.prepared.h5mu"),
            "--fragments",
            str(tmp_path / "f.tsv.gz"),
            "--fragments",
            str(tmp_path / "f.tsv.gz"),
            "--output-prefix",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2 and "2 fragments file(s) for 1 sample(s)" in result.output
    assert not list(tmp_path.glob("out*"))
