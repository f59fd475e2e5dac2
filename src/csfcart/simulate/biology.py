"""Cell types, marker programs and gene families of the synthetic CSF / blood cohorts.

Everything here is an assumption written down once (see SCIENCE.md of the project):
marker programs follow the published CSF atlases, library sizes the real CSF medians of
Schafflick et al. 2020 (10x Genomics 3' v3).
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

#: Immunoglobulin constant and light-chain genes (the intrathecal antibody readout).
IG_GENES = ["IGHG1", "IGHG2", "IGHG3", "IGHG4", "IGHA1", "IGHA2", "IGHM", "IGHD",
            "IGKC", "IGLC1", "IGLC2", "IGLC3", "JCHAIN"]  # fmt: skip

#: Gene programs shared by the simulator, the workflow's program scores and the truth.
PROGRAMS: dict[str, list[str]] = {
    "inflammatory_cytokines": ["IL1B", "TNF", "IL6", "CXCL10", "CCL3", "CCL4", "CXCL13",
                               "CCL2", "CXCL8", "IL1A"],
    "microglia_activation": ["APOE", "SPP1", "C1QA", "C1QB", "C1QC", "CD74", "HLA-DRA",
                             "TREM2", "FN1", "HLA-DRB1", "HLA-DPA1", "HLA-DPB1"],
    "t_exhaustion": ["PDCD1", "HAVCR2", "LAG3", "TIGIT", "TOX", "CTLA4", "ENTPD1"],
    "naive_b": ["IGHD", "IGHM", "TCL1A", "FCER2", "IL4R", "YBX3"],
    "immunoglobulin": ["IGHG1", "IGHG2", "IGHG3", "IGHG4", "IGKC", "IGLC1", "IGLC2",
                       "IGLC3", "JCHAIN"],
    "cytotoxic_proliferation": ["GZMB", "PRF1", "MKI67", "TOP2A", "GZMA", "NKG7", "TYMS"],
    # ligands and receptors of the B-lineage / microglia-like axis (liana consensus spelling)
    "b_microglia_ligands": ["TNFSF13B", "TNFSF13", "SPP1", "CXCL13", "MIF", "TNF", "IL6"],
    "b_microglia_receptors": ["TNFRSF13B", "TNFRSF13C", "TNFRSF17", "CD74", "CXCR4",
                              "LTBR", "TNFRSF1A", "TNFRSF1B", "IL6R", "CD44", "CXCR5"],
}  # fmt: skip

#: Marker programs per cell type: gene -> fold change over the shared base profile.
_HI, _MID, _LO = 60.0, 20.0, 6.0

CELL_TYPES: dict[str, dict[str, float]] = {
    "CD4_T": {"CD3D": _HI, "CD3E": _HI, "CD3G": _MID, "CD4": _MID, "IL7R": _HI, "CD2": _MID,
              "TRAC": _HI, "LTB": _MID, "CCR7": _MID, "TCF7": _MID, "LEF1": _LO, "CD28": _LO,
              "MAL": _LO, "CD40LG": _MID, "LTA": _LO},
    "CD8_T": {"CD3D": _HI, "CD3E": _HI, "CD3G": _MID, "CD8A": _HI, "CD8B": _HI, "GZMK": _HI,
              "CCL5": _HI, "NKG7": _MID, "TRAC": _HI, "CD2": _MID, "GZMH": _MID, "CST7": _MID,
              "GZMA": _MID, "LTA": _LO},
    "Treg": {"CD3D": _HI, "CD3E": _HI, "CD4": _MID, "FOXP3": _HI, "IL2RA": _HI, "CTLA4": _MID,
             "TIGIT": _MID, "IKZF2": _MID, "TRAC": _HI, "BATF": _MID, "RTKN2": _MID},
    "NK": {"GNLY": _HI, "NKG7": _HI, "KLRD1": _HI, "PRF1": _HI, "KLRF1": _MID, "NCAM1": _MID,
           "FCGR3A": _MID, "GZMB": _MID, "TYROBP": _MID, "FCER1G": _MID, "KLRB1": _LO},
    "naive_B": {"MS4A1": _HI, "CD79A": _HI, "CD79B": _HI, "CD19": _MID, "IGHD": _HI,
                "IGHM": _HI, "TCL1A": _HI, "FCER2": _MID, "IL4R": _MID, "BANK1": _MID,
                "CD22": _MID, "PAX5": _MID, "CXCR5": _MID, "YBX3": _LO, "LTB": _MID,
                "TNFRSF13C": _MID, "CD74": _HI, "HLA-DRA": _HI},
    "memory_B": {"MS4A1": _HI, "CD79A": _HI, "CD79B": _HI, "CD19": _MID, "CD27": _HI,
                 "IGHG1": _MID, "IGHA1": _MID, "IGHM": _LO, "BANK1": _MID, "CD22": _MID,
                 "PAX5": _MID, "CXCR5": _MID, "TNFRSF13B": _MID, "AIM2": _MID, "LTB": _MID,
                 "CD74": _HI, "HLA-DRA": _HI, "CD44": _MID},
    "plasma": {"MZB1": _HI, "JCHAIN": 400.0, "SDC1": _MID, "XBP1": _HI, "PRDM1": _MID,
               "TNFRSF17": _HI, "CD38": _HI, "IGHG1": 1500.0, "IGHG2": 400.0, "IGHG3": 250.0,
               "IGHG4": 150.0, "IGKC": 1500.0, "IGLC2": 600.0, "IGLC1": 200.0, "IGLC3": 150.0,
               "IGHA1": 150.0, "DERL3": _MID, "TXNDC5": _HI, "FKBP11": _MID, "CD44": _MID},
    "CD14_mono": {"CD14": _HI, "LYZ": _HI, "S100A8": _HI, "S100A9": _HI, "VCAN": _HI,
                  "FCN1": _HI, "CSF1R": _MID, "CD68": _MID, "TYROBP": _HI, "FCER1G": _MID,
                  "CST3": _HI, "CD74": _MID, "HLA-DRA": _MID, "MNDA": _MID, "IL1B": _LO,
                  "CCL3": _LO, "CXCL8": _LO, "MIF": _LO},
    "CD16_mono": {"FCGR3A": _HI, "LST1": _HI, "MS4A7": _HI, "CDKN1C": _MID, "AIF1": _HI,
                  "CSF1R": _MID, "TYROBP": _HI, "FCER1G": _HI, "CST3": _HI, "CD74": _MID,
                  "HLA-DRA": _MID, "LYZ": _LO, "IFITM3": _MID, "TNF": _LO},
    "mDC": {"CD1C": _HI, "FCER1A": _HI, "CLEC10A": _HI, "CLEC9A": _MID, "HLA-DQA1": _HI,
            "HLA-DRA": _HI, "CD74": _HI, "CST3": _HI, "LYZ": _MID, "HLA-DPA1": _MID,
            "HLA-DPB1": _MID, "XCR1": _LO, "IRF8": _MID},
    "pDC": {"LILRA4": _HI, "IL3RA": _HI, "IRF7": _HI, "TCF4": _HI, "CLEC4C": _HI,
            "GZMB": _MID, "PLD4": _HI, "SERPINF1": _MID, "IRF8": _MID, "ITM2C": _MID},
    "border_macrophage": {"MRC1": _HI, "LYVE1": _HI, "CD163": _HI, "F13A1": _HI,
                          "CD68": _MID, "CSF1R": _MID, "C1QA": _MID, "C1QB": _MID,
                          "STAB1": _MID, "SELENOP": _MID, "FOLR2": _HI, "APOE": _MID,
                          "CD74": _MID, "HLA-DRA": _MID, "TYROBP": _MID},
    "microglia_like": {"P2RY12": _HI, "TMEM119": _HI, "TREM2": _MID, "C1QA": _HI,
                       "C1QB": _HI, "C1QC": _MID, "GAS6": _MID, "CX3CR1": _HI, "CSF1R": _HI,
                       "APOE": _MID, "SPP1": _MID, "CD74": _HI, "HLA-DRA": _HI, "FN1": _LO,
                       "TNFSF13B": _MID, "TNFSF13": _MID, "CXCL13": _LO, "MIF": _LO,
                       "LTBR": _MID, "TNFRSF1A": _MID, "IL6R": _LO, "CD44": _LO,
                       "SALL1": _MID, "OLFML3": _MID, "TYROBP": _MID, "IL1B": _LO,
                       "CCL3": _LO, "CCL4": _LO, "TNF": _LO, "CCL2": _LO, "CXCL10": _LO,
                       "IL6": _LO},
    "CAR_T": {"CD3D": _HI, "CD3E": _HI, "TRAC": _HI, "CD2": _MID, "GZMB": _HI, "PRF1": _MID,
              "MKI67": _MID, "TOP2A": _MID, "TYMS": _MID, "NKG7": _MID, "GZMA": _MID,
              "HMGB2": _MID, "STMN1": _MID, "IL2RA": _LO, "IFNG": _LO},
}  # fmt: skip

#: Fraction of CAR-T cells that are CD8 (CD8 > CD4 as in the NMOSD / MS studies).
CAR_T_CD8_FRACTION = 0.7

#: Median UMIs per cell by type: the real CSF medians of Schafflick et al. 2020 where
#: measured (reference/csf_umi_per_celltype_schafflick2020.tsv), myeloid-like otherwise.
MEDIAN_UMIS: dict[str, float] = {
    "CD4_T": 5370, "CD8_T": 4400, "Treg": 5370, "NK": 4471, "naive_B": 5414,
    "memory_B": 5414, "plasma": 23860, "CD14_mono": 8156, "CD16_mono": 9806,
    "mDC": 11336, "pDC": 9886, "border_macrophage": 10000, "microglia_like": 10000,
    "CAR_T": 7000,
}  # fmt: skip

#: Cell types whose transcripts carry the cytokine program.
MYELOID = ["CD14_mono", "CD16_mono", "mDC", "border_macrophage", "microglia_like"]
T_CELLS = ["CD4_T", "CD8_T", "Treg", "CAR_T"]
B_LINEAGE = ["naive_B", "memory_B"]
ASC = ["plasma"]


def marker_genes() -> list[str]:
    """All genes named by a marker program, gene family or program, in a stable order."""
    seen: dict[str, None] = {}
    for genes in (MT_GENES, RIBO_GENES, IG_GENES, *PROGRAMS.values()):
        seen.update(dict.fromkeys(genes))
    for markers in CELL_TYPES.values():
        seen.update(dict.fromkeys(markers))
    return list(seen)
