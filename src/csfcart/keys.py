"""Names of AnnData slots used across the workflow, defined once."""

COUNTS = "counts"  # layers: raw UMI counts, kept through the whole DAG
UNCORRECTED = "counts_uncorrected"  # layers of the QC files: the counts before the soup was removed
EMBEDDING = {"scvi": "X_scVI", "harmony": "X_harmony"}  # obsm: integrated embeddings
UMAP = "X_umap"
CELL_TYPE = "cell_type"
CLUSTER = "cluster"
CAR_POSITIVE = "car_positive"
CAR_T = "CAR_T"  # the cell type of CAR-T cells
CONFIDENCE = "annotation_confidence"
LOW_CONFIDENCE = "low_confidence"
UNASSIGNED = "unassigned"  # cells of clusters that express no listed type's markers
OWN_LABEL = "own_label"  # the user's own cell-type labels (annotation.labels)
SAMPLE_KEYS = ["sample_id", "patient_id", "timepoint", "compartment", "batch"]
