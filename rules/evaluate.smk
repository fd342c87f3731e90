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
        generated=generated_arg,
        settings=settings(
            "evaluate",
            only=("pv_source", "scale", "lossy_masks", "threshold", "external_dir"),
        ),
        features=feature_network_args(),
        code=code(
            "stance.evaluate.metrics",
            "stance.evaluate.fvd",
            "stance.evaluate.videomae",
        ),
    shell:
        "stance evaluate shard --render {input.render:q} --method {wildcards.method:q}"
        " {params.generated:q} {params.features:q} --settings {params.settings:q}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"


rule evaluate_tables:
    input:
        evaluated,
    output:
        tables="results/evaluate/tables.md",
        table1=report(
            "results/evaluate/table1.csv",
            caption="../report/captions/table1.rst",
            category="Results",
        ),
        plot=report(
            "results/evaluate/physics_iq.png",
            caption="../report/captions/physics_iq.rst",
            category="Results",
        ),
        cue_plot=report(
            "results/evaluate/cue_following.png",
            caption="../report/captions/cue_following.rst",
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
            only=(
                "bootstrap",
                "pv_source",
                "stance_variant",
                "scale",
                "lossy_masks",
                "threshold",
            ),
        ),
        sampling=sampling_settings(),
        code=code("stance.evaluate.tables"),
    shell:
        "stance evaluate tables {input:q} --settings {params.settings:q}"
        " --sampling {params.sampling:q} --out {params.outdir:q} > {log:q} 2>&1"


# One job per variant scores all its seeds: each view's takes are prepared once.
rule physics_iq_score:
    input:
        unpack(physics_iq_inputs),
        generated=expand(
            f"results/generate/{{{{variant}}}}/physics_iq/{PHYSICS_IQ_RUN}",
            run=PHYSICS_IQ_RUNS,
            allow_missing=True,
        ),
    output:
        expand(
            f"results/evaluate/physics_iq/{{{{variant}}}}/{PHYSICS_IQ_RUN}.parquet",
            run=PHYSICS_IQ_RUNS,
            allow_missing=True,
        ),
    log:
        "logs/physics_iq_score/{variant}.log",
    benchmark:
        "benchmarks/physics_iq_score/{variant}.tsv"
    conda:
        "../envs/evaluate.yaml"
    params:
        descriptions=physics_iq_descriptions_arg,
        settings=settings(
            "evaluate",
            only=(
                "scale",
                "lossy_masks",
                "threshold",
                "physics_iq_track",
                "physics_iq_prompts",
            ),
        ),
        record=lambda wildcards: json.dumps(
            {"variant": wildcards.variant, "runs": [int(r) for r in PHYSICS_IQ_RUNS]},
            sort_keys=True,
        ),
        fps=config["render"]["fps"],
        code=code("stance.evaluate.physics_iq_benchmark"),
    shell:
        "stance evaluate physics-iq --benchmark {input.benchmark:q} {params.descriptions:q}"
        " --generated {input.generated:q} --fps {params.fps} --settings {params.settings:q}"
        " --record {params.record:q} --out {output:q} > {log:q} 2>&1"


rule physics_iq_tables:
    input:
        physics_iq_runs,
    output:
        table="results/evaluate/physics_iq_benchmark.md",
        csv="results/evaluate/physics_iq_benchmark.csv",
        plot=report(
            "results/evaluate/physics_iq_benchmark.png",
            caption="../report/captions/physics_iq_benchmark.rst",
            category="Results",
        ),
    log:
        "logs/physics_iq_tables.log",
    benchmark:
        "benchmarks/physics_iq_tables.tsv"
    conda:
        "../envs/evaluate.yaml"
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.table),
        fps=config["render"]["fps"],
        code=code("stance.evaluate.physics_iq_benchmark"),
    shell:
        "stance evaluate physics-iq-tables {input:q} --fps {params.fps}"
        " --out {params.outdir:q} > {log:q} 2>&1"
