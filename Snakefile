# STANCE pipeline: Kubric data -> depth -> instance cues -> training -> generation ->
# evaluation -> report. One rule file, one `stance <stage>` command, one stance.<stage>
# package and one results/<stage>/ folder per stage. Default target: everything.
#   snakemake --cores 2                                    # tiny embedded config
#   snakemake --profile slurm --configfile=configs/paper.yaml
from snakemake.utils import min_version

from stance.scheduling import coalesce_wakeups

min_version("9.0")
coalesce_wakeups()  # one scheduler wake-up timer, not one per finished job


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/render.smk"
include: "rules/depth.smk"
include: "rules/cues.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
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
    physics_iq_tables,


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
        "results/report/results.md",
        ["results/evaluate/physics_iq_benchmark.md"] if PHYSICS_IQ else [],
