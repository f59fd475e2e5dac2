# Read the workflow's annotated.h5ad in R with hdf5r alone (Debian: r-cran-hdf5r).
# Usage: Rscript scripts/read_annotated.R results/<dataset>/annotated.h5ad
# Prints what it read; source() it and use `cell_type`, `obs_names`, `latent` and `counts`
# (a Matrix::dgCMatrix, genes x cells, when the Matrix package is installed).
suppressMessages(library(hdf5r))
args <- commandArgs(trailingOnly = TRUE)
f <- H5File$new(args[1], mode = "r")

# obs: each categorical column is stored as codes (0-based) and categories
read_column <- function(group, name) {
  node <- group[[name]]
  if (inherits(node, "H5Group")) {
    levels <- node[["categories"]]$read()
    return(factor(levels[node[["codes"]]$read() + 1], levels = levels))
  }
  node$read()
}
obs <- f[["obs"]]
obs_names <- obs[[h5attr(obs, "_index")]]$read()
cell_type <- read_column(obs, "cell_type")
sample_id <- read_column(obs, "sample_id")

# the integrated embedding (hdf5r returns it as components x cells)
latent <- t(f[["obsm/X_scVI"]]$read())

# raw counts: CSR (cells x genes) in layers/counts, read as CSC of genes x cells
node <- f[["layers/counts"]]
shape <- h5attr(node, "shape")
data <- node[["data"]]$read()
indices <- node[["indices"]]$read()
indptr <- node[["indptr"]]$read()
genes <- f[["var"]][[h5attr(f[["var"]], "_index")]]$read()
if (requireNamespace("Matrix", quietly = TRUE)) {
  counts <- Matrix::sparseMatrix(i = indices + 1, p = indptr, x = data, dims = rev(shape),
                                 dimnames = list(genes, obs_names))
}
f$close_all()

cat("cells", length(cell_type), "\n")
cat("genes", length(genes), "\n")
cat("counts_total", format(sum(data), scientific = FALSE), "\n")
cat("latent", dim(latent), "\n")
tab <- table(cell_type)
for (n in names(tab)) cat("type", n, tab[[n]], "\n")
