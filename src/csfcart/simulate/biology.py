"""Cell types, cell states, gene modules and claim readouts of the synthetic cohorts.

Everything here is an assumption written down once (see SCIENCE.md of the project):
marker programs follow the published CSF atlases, library sizes the real CSF medians of
Schafflick et al. 2020 (10x Genomics 3' v3).

Two kinds of gene lists live here and are kept apart on purpose:

* :data:`READOUTS` are the claims' readouts as SCIENCE.md defines them (the genes a
  claim is *measured* on). The truth of a claim is computed over these genes, from the
  simulator's expected expression.
* :data:`MODULES` are the biology the simulator *plants* effects on. They overlap the
  readouts only in part, as real biology would: an analysis is never scored on the very
  genes the effect was written into.
"""

from __future__ import annotations

#: Mitochondrially encoded genes as they appear in a GRCh38 10x reference.
MT_GENES = [
    "MT-ND1", "MT-ND2", "MT-CO1", "MT-CO2", "MT-ATP8", "MT-ATP6", "MT-CO3",
    "MT-ND3", "MT-ND4L", "MT-ND4", "MT-ND5", "MT-ND6", "MT-CYB",
]  # fmt: skip

#: Cytosolic ribosomal protein genes.
RIBO_GENES = [f"RPL{i}" for i in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19)] + [
    f"RPS{i}" for i in (2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 18, 19, 20, 23, 24, 25)
] + ["RPL10A", "RPL13A", "RPL18A", "RPL21", "RPL22", "RPL23", "RPL23A", "RPL24", "RPL26",
     "RPL27", "RPL27A", "RPL28", "RPL29", "RPL30", "RPL31", "RPL32", "RPL34", "RPL35",
     "RPL35A", "RPL36", "RPL37", "RPL37A", "RPL38", "RPL39", "RPL41", "RPLP0", "RPLP1",
     "RPLP2", "RPS3A", "RPS10", "RPS15A", "RPS17", "RPS21", "RPS26", "RPS27", "RPS27A",
     "RPS28", "RPS29", "RPSA"]  # fmt: skip

#: Immunoglobulin constant and light-chain genes.
IG_GENES = ["IGHG1", "IGHG2", "IGHG3", "IGHG4", "IGHA1", "IGHA2", "IGHM", "IGHD",
            "IGKC", "IGLC1", "IGLC2", "IGLC3", "JCHAIN"]  # fmt: skip

#: The claims' readouts as the analysis scores them (SCIENCE.md's gene lists): the genes a
#: claim is measured on. A program scored in a cell type leaves out that type's identity
#: markers (the project's marker table: C1QA, C1QB and TREM2 of microglia-like cells), and
#: C7's microglia-side readout holds the genes of the B-lineage <-> microglia-like pairs less
#: C8's cytokines. The truth of a claim is computed over these genes, from the simulator's
#: expected expression, each gene weighing the same.
READOUTS: dict[str, list[str]] = {
    "b_microglia_partners": ["TNFSF13B", "TNFRSF13B", "TNFRSF13C", "TNFRSF17", "TNFSF13", "MIF", "CD74",
                             "CXCR4", "LTA", "LTBR", "LTB", "TNFRSF1A", "TNFRSF1B", "IL6R", "SPP1", "CD44",
                             "CXCR5", "HLA-DRA", "CD4"],
    "inflammatory_cytokines": ["IL1B", "TNF", "IL6", "CXCL10", "CCL3", "CCL4", "CXCL13",
                               "CCL2", "CXCL8", "IL1A"],
    "microglia_activation": ["APOE", "SPP1", "C1QC", "CD74", "HLA-DRA", "FN1", "HLA-DRB1",
                             "HLA-DPA1", "HLA-DPB1"],
    "t_exhaustion": ["PDCD1", "HAVCR2", "LAG3", "TIGIT", "TOX", "CTLA4", "ENTPD1"],
    # Ig UMIs of antibody-secreting cells (C5): IGHD is not secreted
    "asc_immunoglobulin": ["IGHG1", "IGHG2", "IGHG3", "IGHG4", "IGHA1", "IGHA2", "IGHM",
                           "IGKC", "IGLC1", "IGLC2", "IGLC3", "JCHAIN"],
}  # fmt: skip

#: A readout gene counts in the truth of a program claim where the scored cells' pseudobulk
#: holds this many of its counts per sample, expected over the cohort's samples: genes too
#: sparse to measure are left out, as the analysis leaves them out.
READOUT_MIN_COUNTS = 10.0

#: Gene modules the simulator plants effects on and varies from cell to cell. Each
#: effect module overlaps its readout only in part (noted beside it).
MODULES: dict[str, list[str]] = {
    # 7 of the 10 cytokine readout genes (not IL6, CXCL13, IL1A) and NF-kB targets
    "inflammatory_response": ["IL1B", "TNF", "CXCL10", "CCL3", "CCL4", "CCL2", "CXCL8",
                              "NFKBIA", "SOD2", "PTGS2", "IL1RN", "G0S2", "IER3", "CCL20",
                              "CXCL2"],
    # disease-associated microglia: 6 of the 12 activation readout genes
    "dam_activation": ["APOE", "SPP1", "TREM2", "CD74", "HLA-DRA", "HLA-DRB1", "LPL", "CST7",
                       "ITGAX", "CD9", "GPNMB", "LGALS3", "CTSB", "CTSD", "FTL"],
    # homeostatic microglia genes, lost on activation (they are also annotation markers)
    "microglia_homeostatic": ["P2RY12", "TMEM119", "CX3CR1", "SALL1", "OLFML3", "GPR34"],
    # 5 of the 7 exhaustion readout genes (not CTLA4, ENTPD1) and tumour-like exhaustion
    "exhaustion": ["PDCD1", "HAVCR2", "LAG3", "TIGIT", "TOX", "CXCL13", "LAYN", "BATF",
                   "TNFRSF9", "SNX9"],
    "cytotoxic_proliferation": ["GZMB", "PRF1", "MKI67", "TOP2A", "GZMA", "NKG7", "TYMS",
                                "STMN1", "HMGB2", "CENPF"],
    # microglia-like signals to B-lineage cells, and the receptors of B-lineage signals
    "b_microglia_ligands": ["TNFSF13B", "TNFSF13", "SPP1", "MIF", "TNF", "IL6", "GAS6",
                            "CXCL13", "HLA-DRA"],
    "b_microglia_receptors": ["LTBR", "TNFRSF1A", "TNFRSF1B", "IL6R", "CD44", "CD74",
                              "CXCR4", "CD40"],
    # modules that vary from cell to cell in every type (co-expression, no treatment effect)
    "interferon": ["ISG15", "IFIT1", "IFIT3", "MX1", "IFI6", "IFI44L", "OAS1", "STAT1",
                   "IRF7", "XAF1"],
    "stress": ["FOS", "JUN", "JUNB", "DUSP1", "HSPA1A", "HSPA1B", "IER2", "EGR1", "KLF6",
               "ZFP36"],
    "mhc_class_ii": ["HLA-DRA", "HLA-DRB1", "HLA-DPA1", "HLA-DPB1", "HLA-DQA1", "HLA-DQB1",
                     "CD74"],
}  # fmt: skip

#: log2 SD from cell to cell of the shared modules' activity (every cell type).
MODULE_CELL_SD: dict[str, float] = {"interferon": 0.7, "stress": 0.6, "mhc_class_ii": 0.3}

#: Marker programs per cell state: gene -> fold change over the lineage's profile.
_HI, _MID, _LO = 40.0, 12.0, 4.0

#: The lineage of each cell type: types of one lineage share a background profile.
LINEAGE: dict[str, str] = {
    "CD4_T": "T", "CD8_T": "T", "Treg": "T", "CAR_T": "T", "NK": "NK",
    "naive_B": "B", "memory_B": "B", "plasma": "plasma",
    "CD14_mono": "myeloid", "CD16_mono": "myeloid", "mDC": "myeloid",
    "border_macrophage": "myeloid", "microglia_like": "myeloid", "pDC": "pDC",
}  # fmt: skip

_T_CORE = {"CD3D": _HI, "CD3E": _HI, "CD3G": _MID, "TRAC": _HI, "CD2": _MID, "IL32": _MID}
_MYELOID_CORE = {"TYROBP": _HI, "FCER1G": _MID, "CST3": _HI, "AIF1": _MID, "CD74": _MID,
                 "HLA-DRA": _MID, "CSF1R": _LO, "LST1": _LO}  # fmt: skip
_B_CORE = {"MS4A1": _HI, "CD79A": _HI, "CD79B": _HI, "CD19": _MID, "BANK1": _MID,
           "CD22": _MID, "PAX5": _MID, "CXCR5": _MID, "LTB": _MID, "CD74": _HI,
           "HLA-DRA": _HI}  # fmt: skip


def _with(*parts: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in parts:
        out.update(part)
    return out


#: Named cell states, each a marker program over its lineage's profile. A cell type is a
#: region of a continuum between two states (see :data:`CELL_TYPES`).
STATES: dict[str, dict[str, float]] = {
    "CD4_naive": _with(_T_CORE, {"CD4": _MID, "IL7R": _MID, "CCR7": _HI, "SELL": _MID,
                                 "TCF7": _MID, "LEF1": _MID, "MAL": _MID, "CD28": _LO,
                                 "LTB": _MID}),
    "CD4_effector_memory": _with(_T_CORE, {"CD4": _MID, "IL7R": _HI, "ANXA1": _MID,
                                           "KLRB1": _MID, "CD40LG": _MID, "LTB": _LO,
                                           "S100A4": _MID, "GZMK": _LO, "LTA": _LO,
                                           "CD28": _LO}),
    "Treg": _with(_T_CORE, {"CD4": _MID, "FOXP3": _HI, "IL2RA": _HI, "CTLA4": _MID,
                            "TIGIT": _LO, "IKZF2": _LO, "BATF": _LO, "RTKN2": _MID,
                            "IL7R": 1.5, "LTB": _LO}),
    "CD8_GZMK": _with(_T_CORE, {"CD8A": _HI, "CD8B": _HI, "GZMK": _HI, "CCL5": _MID,
                                "NKG7": _LO, "CST7": _LO, "GZMA": _LO, "LTA": _LO}),
    "CD8_GZMB": _with(_T_CORE, {"CD8A": _MID, "CD8B": _MID, "GZMB": _MID, "GZMH": _HI,
                                "CCL5": _HI, "NKG7": _HI, "CST7": _MID, "GZMA": _MID,
                                "FGFBP2": _MID, "CX3CR1": _LO, "PRF1": _LO, "KLRD1": _LO}),
    "NK": {"GNLY": _HI, "NKG7": _HI, "KLRD1": _HI, "PRF1": _HI, "KLRF1": _MID, "NCAM1": _MID,
           "FCGR3A": _MID, "GZMB": _MID, "TYROBP": _MID, "FCER1G": _MID, "KLRB1": _LO,
           "CD247": _MID, "CCL5": _LO},
    "B_naive": _with(_B_CORE, {"IGHD": _HI, "IGHM": _HI, "TCL1A": _HI, "FCER2": _MID,
                               "IL4R": _MID, "YBX3": _LO, "TNFRSF13C": _MID}),
    "B_memory": _with(_B_CORE, {"CD27": _MID, "IGHG1": _MID, "IGHA1": _MID, "IGHM": _LO,
                                "TNFRSF13B": _MID, "AIM2": _MID, "CD44": _MID,
                                "TNFRSF13C": _LO}),
    "plasma": {"MZB1": _HI, "JCHAIN": 400.0, "SDC1": _MID, "XBP1": _HI, "PRDM1": _MID,
               "TNFRSF17": _HI, "CD38": _HI, "IGHG1": 1500.0, "IGHG2": 400.0, "IGHG3": 250.0,
               "IGHG4": 150.0, "IGKC": 1500.0, "IGLC2": 600.0, "IGLC1": 200.0, "IGLC3": 150.0,
               "IGHA1": 150.0, "DERL3": _MID, "TXNDC5": _HI, "FKBP11": _MID, "CD44": _MID,
               "CD79A": _LO},
    "mono_classical": _with(_MYELOID_CORE, {"CD14": _HI, "LYZ": _HI, "S100A8": _HI,
                                            "S100A9": _HI, "VCAN": _HI, "FCN1": _HI,
                                            "CD68": _MID, "MNDA": _MID, "IL1B": _LO,
                                            "CCL3": _LO, "CXCL8": _LO, "MIF": _LO}),
    "mono_nonclassical": _with(_MYELOID_CORE, {"FCGR3A": _HI, "LST1": _HI, "MS4A7": _HI,
                                               "CDKN1C": _MID, "AIF1": _HI, "CSF1R": _MID,
                                               "FCER1G": _HI, "IFITM3": _MID, "LYZ": _LO,
                                               "TNF": _LO, "CX3CR1": _LO}),
    "mDC": _with(_MYELOID_CORE, {"CD1C": _HI, "FCER1A": _HI, "CLEC10A": _HI, "CLEC9A": _MID,
                                 "HLA-DQA1": _HI, "HLA-DRA": _HI, "CD74": _HI, "LYZ": _MID,
                                 "HLA-DPA1": _MID, "HLA-DPB1": _MID, "XCR1": _LO,
                                 "IRF8": _MID}),
    "pDC": {"LILRA4": _HI, "IL3RA": _HI, "IRF7": _HI, "TCF4": _HI, "CLEC4C": _HI,
            "GZMB": _MID, "PLD4": _HI, "SERPINF1": _MID, "IRF8": _MID, "ITM2C": _MID},
    "border_macrophage": _with(_MYELOID_CORE, {"MRC1": _HI, "LYVE1": _HI, "CD163": _HI,
                                               "F13A1": _HI, "CD68": _MID, "CSF1R": _MID,
                                               "C1QA": _MID, "C1QB": _MID, "STAB1": _MID,
                                               "SELENOP": _MID, "FOLR2": _HI, "APOE": _MID,
                                               "SIGLEC1": _MID, "DAB2": _MID, "MS4A6A": _MID,
                                               "MAF": _MID, "CH25H": _LO}),
    "microglia_like": _with(_MYELOID_CORE, {"P2RY12": _HI, "TMEM119": _MID, "TREM2": _MID,
                                            "C1QA": _HI, "C1QB": _HI, "C1QC": _MID,
                                            "GAS6": _MID, "CX3CR1": _HI, "CSF1R": _HI,
                                            "APOE": _MID, "SPP1": _LO, "FN1": _LO,
                                            "TNFSF13B": _MID, "TNFSF13": _MID, "CXCL13": _LO,
                                            "MIF": _LO, "LTBR": _MID, "TNFRSF1A": _MID,
                                            "IL6R": _LO, "CD44": _LO, "SALL1": _MID,
                                            "OLFML3": _MID, "GPR34": _MID, "IL1B": _LO,
                                            "CCL3": _LO, "CCL4": _LO, "TNF": _LO,
                                            "CCL2": _LO, "CXCL10": _LO, "IL6": _LO}),
    "CAR_T": _with(_T_CORE, {"GZMB": _HI, "PRF1": _MID, "MKI67": _MID, "TOP2A": _MID,
                             "TYMS": _MID, "NKG7": _MID, "GZMA": _MID, "HMGB2": _MID,
                             "STMN1": _MID, "IL2RA": _LO, "IFNG": _LO}),
}  # fmt: skip


#: Each cell type as a region of a continuum between two states: cells sit at a position
#: u ~ Beta(a, b) between ``states[0]`` (u = 0) and ``states[1]`` (u = 1), their log
#: expression interpolated. Types that share a continuum (CD14 / CD16 monocytes, naive /
#: memory B cells) overlap in its middle, as intermediate monocytes do.
CELL_TYPES: dict[str, dict] = {
    "CD4_T": {"states": ("CD4_naive", "CD4_effector_memory"), "beta": (1.3, 1.3)},
    "CD8_T": {"states": ("CD8_GZMK", "CD8_GZMB"), "beta": (1.5, 2.5)},
    "Treg": {"states": ("Treg", "CD4_effector_memory"), "beta": (1.4, 6.0)},
    "NK": {"states": ("NK", "CD8_GZMB"), "beta": (1.0, 8.0)},
    "naive_B": {"states": ("B_naive", "B_memory"), "beta": (1.2, 6.0)},
    "memory_B": {"states": ("B_naive", "B_memory"), "beta": (6.0, 1.5)},
    "plasma": {"states": ("plasma", "plasma"), "beta": (1.0, 1.0)},
    "CD14_mono": {"states": ("mono_classical", "mono_nonclassical"), "beta": (1.2, 7.0)},
    "CD16_mono": {"states": ("mono_classical", "mono_nonclassical"), "beta": (7.0, 1.5)},
    "mDC": {"states": ("mDC", "mono_classical"), "beta": (1.0, 9.0)},
    "pDC": {"states": ("pDC", "pDC"), "beta": (1.0, 1.0)},
    "border_macrophage": {"states": ("border_macrophage", "microglia_like"), "beta": (1.0, 12.0)},
    "microglia_like": {"states": ("microglia_like", "border_macrophage"), "beta": (1.0, 10.0)},
    "CAR_T": {"states": ("CAR_T", "CD8_GZMB"), "beta": (1.3, 4.0)},
}

#: Cell types the project's marker table does not list, for variants that test that the
#: analysis leaves them unassigned instead of forcing them into the nearest listed type.
#: Choroid plexus epithelium reaches the CSF (as do neutrophils and erythrocytes); beside its
#: own genes it expresses some that pDC use as markers (TCF4, SERPINF1, ITM2C), which is
#: what pulled real epithelial clusters into a pDC label. Kept apart from :data:`STATES`,
#: :data:`CELL_TYPES` and :data:`LINEAGE`: a cohort without these types draws exactly as if
#: they did not exist; one with them gets their genes and state on a random stream of its own.
UNLISTED_STATES: dict[str, dict[str, float]] = {
    "choroid_plexus_epithelium": {"TTR": _HI, "KRT8": _HI, "KRT18": _HI, "KRT19": _MID, "ELF3": _MID,
                                  "CLDN4": _MID, "EPCAM": _MID, "FOLR1": _MID, "CLIC6": _MID,
                                  "KCNJ13": _MID, "OTX2": _LO, "CDH1": _MID, "TCF4": _MID,
                                  "SERPINF1": _MID, "ITM2C": _MID},
}  # fmt: skip
UNLISTED_TYPES: dict[str, dict] = {
    "choroid_plexus_epithelium": {"states": ("choroid_plexus_epithelium", "choroid_plexus_epithelium"),
                                  "beta": (1.0, 1.0), "lineage": "epithelial"},
}  # fmt: skip

#: Sub-states a cell can switch into: probability at baseline, log2 shifts of modules.
#: Treatment moves the probability (``effects.states`` of a dataset), so a fall in
#: activation moves cells' homeostatic markers too and can carry them across a label.
SUBSTATES: dict[str, dict] = {
    "activated": {
        "cell_type": "microglia_like",
        "p_baseline": 0.6,
        "log2fc": {"dam_activation": 2.0, "microglia_homeostatic": -1.5, "inflammatory_response": 0.7},
    },
}

#: Fraction of CAR-T cells that are CD8 (CD8 > CD4 as in the NMOSD / MS studies).
CAR_T_CD8_FRACTION = 0.7
CAR_T_CD8 = {"CD8A": _HI, "CD8B": _HI, "CCL5": _MID, "NKG7": _MID}
CAR_T_CD4 = {"CD4": _MID, "IL7R": _LO}

#: Median UMIs per cell by type: the real CSF medians of Schafflick et al. 2020 where
#: measured (reference/csf_umi_per_celltype_schafflick2020.tsv), myeloid-like otherwise.
MEDIAN_UMIS: dict[str, float] = {
    "CD4_T": 5370, "CD8_T": 4400, "Treg": 5370, "NK": 4471, "naive_B": 5414,
    "memory_B": 5414, "plasma": 23860, "CD14_mono": 8156, "CD16_mono": 9806,
    "mDC": 11336, "pDC": 9886, "border_macrophage": 10000, "microglia_like": 10000,
    "CAR_T": 7000, "choroid_plexus_epithelium": 6000,
}  # fmt: skip

#: Groups of cell types as the claims name them (SCIENCE.md).
MYELOID = ["CD14_mono", "CD16_mono", "mDC", "border_macrophage", "microglia_like"]
T_CELLS = ["CD4_T", "CD8_T", "Treg", "CAR_T"]
B_LINEAGE = ["naive_B", "memory_B"]
ASC = ["plasma"]
#: B-lineage cells as partners of microglia-like cells (C7): antibody-secreting cells too.
B_AXIS = ["naive_B", "memory_B", "plasma"]
#: The simulated types in the lineages the claims name (the registry's groups), from the
#: groups above: how the simulator's truth resolves a readout's lineages.
CLAIM_LINEAGE: dict[str, str] = {
    **dict.fromkeys(T_CELLS, "T"), "NK": "NK", **dict.fromkeys(B_LINEAGE, "B"), **dict.fromkeys(ASC, "plasma"),
    **dict.fromkeys(MYELOID, "myeloid"), "microglia_like": "microglia-like", "pDC": "pDC",
}  # fmt: skip

#: Candidate B / microglia-like ligand-receptor pairs of SCIENCE.md (ligand, receptor).
B_MICROGLIA_PAIRS: list[tuple[str, str]] = [
    ("TNFSF13B", "TNFRSF13B"), ("TNFSF13B", "TNFRSF13C"), ("TNFSF13B", "TNFRSF17"),
    ("TNFSF13", "TNFRSF13B"), ("TNFSF13", "TNFRSF17"), ("MIF", "CD74"), ("MIF", "CXCR4"),
    ("LTA", "LTBR"), ("LTB", "LTBR"), ("TNF", "TNFRSF1A"), ("TNF", "TNFRSF1B"),
    ("IL6", "IL6R"), ("SPP1", "CD44"), ("CXCL13", "CXCR5"), ("HLA-DRA", "CD4"),
]  # fmt: skip


def marker_genes() -> list[str]:
    """All genes named by a state, module, readout or gene family, in a stable order."""
    seen: dict[str, None] = {}
    for genes in (MT_GENES, RIBO_GENES, IG_GENES, *READOUTS.values(), *MODULES.values()):
        seen.update(dict.fromkeys(genes))
    for markers in (*STATES.values(), CAR_T_CD8, CAR_T_CD4):
        seen.update(dict.fromkeys(markers))
    for pair in B_MICROGLIA_PAIRS:
        seen.update(dict.fromkeys(pair))
    return list(seen)
