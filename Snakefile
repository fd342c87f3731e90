# STANCE pipeline: Kubric data -> depth -> instance cues -> training -> evaluation.
# Stages are added to the DAG as they are implemented; `all` runs what exists.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/render.smk"
include: "rules/depth.smk"
include: "rules/cues.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# Cheap gathers run on the submit host, not as Slurm jobs.
localrules:
    all,
    render_manifest,
    report_dataset,
    report_cues,
    cue_dz_report,
    evaluate_tables,


rule all:
    default_target: True
    input:
        "results/render/manifest.parquet",
        "results/report/dataset.md",
        "results/report/cues.md",
        expand("results/train/{variant}", variant=VARIANTS),
        generated_dirs(),
        "results/evaluate/tables.md",
        expand("results/report/videos/{variant}", variant=VARIANTS),
