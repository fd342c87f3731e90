rule report_dataset:
    input:
        manifest="results/render/manifest.parquet",
        shards=render_shard_dirs,
    output:
        card="results/report/dataset.md",
        table="results/report/dataset.csv",
        sheet=report(
            "results/report/contact_sheet.png",
            caption="../evaluate/report_captions/contact_sheet.rst",
            category="Dataset",
        ),
    log:
        "logs/report_dataset.log",
    benchmark:
        "benchmarks/report_dataset.tsv"
    conda:
        "../envs/evaluate.yaml"
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.card),
        sheet_clips=8,
        code=code("stance.evaluate.dataset_report"),
    shell:
        "stance report dataset --manifest {input.manifest}"
        " --sheet-clips {params.sheet_clips} --out {params.outdir} > {log} 2>&1"


rule report_cues:
    input:
        cues=lambda wildcards: shard_dirs("cues"),
        dz_report="results/cues/dz_report.csv",
    output:
        card="results/report/cues.md",
        sheet=report(
            "results/report/cue_sheet.png",
            caption="../evaluate/report_captions/cue_sheet.rst",
            category="Instance Cues",
        ),
    log:
        "logs/report_cues.log",
    benchmark:
        "benchmarks/report_cues.tsv"
    conda:
        "../envs/evaluate.yaml"
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.card),
        sheet_clips=8,
        code=code("stance.evaluate.cue_report"),
    shell:
        "stance report cues --cues {input.cues:q} --dz-report {input.dz_report}"
        " --sheet-clips {params.sheet_clips} --out {params.outdir} > {log} 2>&1"
