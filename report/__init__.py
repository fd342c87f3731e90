"""Report stage (`stance report`, rules/report.smk, results/report/): the dataset card,
cue pictures and side-by-side videos, and the captions of Snakemake's HTML report
(`captions/`). The results tables belong to the evaluate stage."""
