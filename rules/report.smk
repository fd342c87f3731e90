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
        code=code("stance.evaluate.report_cli", "stance.evaluate.dataset_report"),
    shell:
        "stance report dataset --manifest {input.manifest}"
        " --sheet-clips {params.sheet_clips} --out {params.outdir} > {log} 2>&1"
