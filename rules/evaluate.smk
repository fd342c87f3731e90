wildcard_constraints:
    method="|".join(METHODS) if METHODS else "no-method",


rule evaluate_shard:
    input:
        unpack(method_inputs),
        render="results/render/{split}/{shard}",
    output:
        "results/evaluate/{method}/{split}/{shard}.parquet",
    log:
        "logs/evaluate_shard/{method}/{split}/{shard}.log",
    benchmark:
        "benchmarks/evaluate_shard/{method}/{split}/{shard}.tsv"
    conda:
        "../envs/evaluate.yaml"
    params:
        extra=method_args,
        settings=settings(
            "evaluate",
            only=("pv_source", "scale", "lossy_masks", "threshold", "external_dir"),
        ),
        fvd=feature_network_args(),
        code=code(
            "stance.evaluate.metrics",
            "stance.evaluate.fvd",
            "stance.evaluate.videomae",
        ),
    shell:
        "stance evaluate shard --render {input.render} --method {wildcards.method}"
        " {params.extra} {params.fvd} --settings {params.settings:q}"
        " --out {output} > {log} 2>&1"


rule evaluate_tables:
    input:
        evaluated,
    output:
        tables="results/evaluate/tables.md",
        table1=report(
            "results/evaluate/table1.csv",
            caption="../evaluate/report_captions/table1.rst",
            category="Results",
        ),
        plot=report(
            "results/evaluate/physics_iq.png",
            caption="../evaluate/report_captions/physics_iq.rst",
            category="Results",
        ),
    log:
        "logs/evaluate_tables.log",
    benchmark:
        "benchmarks/evaluate_tables.tsv"
    conda:
        "../envs/evaluate.yaml"
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.tables),
        settings=settings(
            "evaluate",
            only=("bootstrap", "pv_source", "stance_variant", "scale", "lossy_masks"),
        ),
        variants=json.dumps(config["train"]["variants"], sort_keys=True),
        sampling=sampling_settings(),
        code=code("stance.evaluate.tables"),
    shell:
        "stance evaluate tables {input:q} --settings {params.settings:q}"
        " --variants {params.variants:q} --sampling {params.sampling:q}"
        " --out {params.outdir} > {log} 2>&1"


rule evaluate_videos:
    input:
        render=lambda wildcards: f"results/render/{EVAL_SPLITS[0]}/{shards.shard_name(0)}",
        generated=lambda wildcards: (
            f"results/generate/{wildcards.variant}/{EVAL_SPLITS[0]}/{shards.shard_name(0)}"
        ),
    output:
        report(
            directory("results/report/videos/{variant}"),
            patterns=["{clip}.mp4"],
            caption="../evaluate/report_captions/videos.rst",
            category="Videos",
            subcategory="{variant}",
        ),
    log:
        "logs/evaluate_videos/{variant}.log",
    conda:
        "../envs/evaluate.yaml"
    params:
        clips=config["evaluate"]["side_by_side_clips"],
        fps=config["render"]["fps"],
        code=code("stance.evaluate.side_by_side"),
    shell:
        "stance evaluate videos --render {input.render} --generated {input.generated}"
        " --clips {params.clips} --fps {params.fps} --out {output} > {log} 2>&1"
