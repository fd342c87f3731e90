rule report_dataset:
    input:
        manifest="results/render/manifest.parquet",
        shards=lambda wildcards: shard_dirs("render"),
    output:
        card="results/report/dataset.md",
        table="results/report/dataset.csv",
        sheet=report(
            "results/report/contact_sheet.png",
            caption="../report/captions/contact_sheet.rst",
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
        code=code("stance.report.dataset"),
    shell:
        "stance report dataset --manifest {input.manifest:q}"
        " --sheet-clips {params.sheet_clips} --out {params.outdir:q} > {log:q} 2>&1"


rule report_cues:
    input:
        cues=lambda wildcards: shard_dirs("cues"),
        dz_report="results/cues/dz_report.csv",
    output:
        card="results/report/cues.md",
        sheet=report(
            "results/report/cue_sheet.png",
            caption="../report/captions/cue_sheet.rst",
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
        code=code("stance.report.cues"),
    shell:
        "stance report cues --cues {input.cues:q} --dz-report {input.dz_report:q}"
        " --sheet-clips {params.sheet_clips} --out {params.outdir:q} > {log:q} 2>&1"


rule report_videos:
    input:
        render=lambda wildcards: shard_dirs("render", EVAL_SPLITS)[0],
        generated=lambda wildcards: shard_dirs(
            "generate", EVAL_SPLITS, wildcards.variant
        )[0],
    output:
        report(
            directory("results/report/videos/{variant}"),
            patterns=["{clip}.mp4"],
            caption="../report/captions/videos.rst",
            category="Videos",
            subcategory="{variant}",
        ),
    log:
        "logs/report_videos/{variant}.log",
    conda:
        "../envs/evaluate.yaml"
    params:
        clips=config["evaluate"]["side_by_side_clips"],
        fps=config["render"]["fps"],
        code=code("stance.report.videos"),
    shell:
        "stance report videos --render {input.render:q} --generated {input.generated:q}"
        " --clips {params.clips} --fps {params.fps} --out {output:q} > {log:q} 2>&1"


rule report_results:
    input:
        unpack(results_page_inputs),
        tables="results/evaluate/tables.md",
        trained=expand("results/train/{variant}", variant=VARIANTS) + pretrained_input(),
        model=video_model_input,
        render=lambda wildcards: shard_dirs("render", EVAL_SPLITS),
    output:
        page="results/report/results.md",
        losses=report(
            "results/report/loss_curves.png",
            caption="../report/captions/loss_curves.rst",
            category="Results",
        ),
        sheet=report(
            "results/report/cue_comparison.png",
            caption="../report/captions/cue_comparison.rst",
            category="Results",
        ),
        videos=report(
            directory("results/report/cue_comparison"),
            patterns=["{clip}.mp4"],
            caption="../report/captions/cue_comparison.rst",
            category="Results",
        ),
    log:
        "logs/report_results.log",
    conda:
        "../envs/evaluate.yaml"
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.page),
        uncued=lambda wildcards, input: (
            ["--uncued", *input.uncued] if "uncued" in input.keys() else []
        ),
        clips=config["evaluate"]["side_by_side_clips"],
        fps=config["render"]["fps"],
        run_name=config["run_name"],
        model=config["models"]["video"],
        code=code("stance.report.results"),
    shell:
        "stance report results --tables {input.tables:q} --trained {input.trained:q}"
        " --render {input.render:q} --cued {input.cued:q} {params.uncued:q}"
        " --clips {params.clips} --fps {params.fps} --run-name {params.run_name:q}"
        " --model {params.model:q}"
        " --out {params.outdir:q} > {log:q} 2>&1"
