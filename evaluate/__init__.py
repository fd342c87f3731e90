"""Evaluation stage (`stance evaluate`, rules/evaluate.smk, results/evaluate/): Physics-IQ,
FVD / content-debiased FVD, PSNR/SSIM and trajectory errors per clip (`metrics`), and the
paper's results tables (`tables`)."""
