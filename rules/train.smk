rule encode_shard:
    input:
        render="results/render/{split}/{shard}",
        model=video_model_input,
    output:
        directory("results/latents/{split}/{shard}"),
    log:
        "logs/encode_shard/{split}/{shard}.log",
    benchmark:
        "benchmarks/encode_shard/{split}/{shard}.tsv"
    conda:
        "../envs/train.yaml"
    params:
        model=config["models"]["video"],
        max_text=config["train"]["max_text_seq_length"],
        code=code("stance.train.encode"),
    shell:
        "stance train encode --render {input.render}"
        " --model {params.model} --max-text {params.max_text}"
        " --code-hash {params.code} --out {output} > {log} 2>&1"


rule train_variant:
    input:
        cache=lambda wildcards: split_shard_dirs("latents", ["train"]),
        cues=lambda wildcards: split_shard_dirs("cues", ["train"]),
        model=video_model_input,
    output:
        report(
            directory("results/train/{variant}"),
            patterns=["loss_curve.png"],
            caption="../evaluate/report_captions/loss_curve.rst",
            category="Training",
            subcategory="{variant}",
        ),
    log:
        "logs/train_variant/{variant}.log",
    benchmark:
        "benchmarks/train_variant/{variant}.tsv"
    conda:
        "../envs/train.yaml"
    resources:
        nodes=config["train"]["num_nodes"],
    params:
        model=config["models"]["video"],
        settings=variant_settings,
        runs="results/runs",
        launcher=train_launcher(),
        code=code("stance.train.trainer"),
    shell:
        "{params.launcher} train fit --cache {input.cache:q} --cues {input.cues:q}"
        " --variant {wildcards.variant}"
        " --model {params.model} --settings {params.settings:q} --runs {params.runs}"
        " --code-hash {params.code} --out {output} > {log} 2>&1"


rule generate_shard:
    input:
        cues="results/cues/{split}/{shard}",
        render="results/render/{split}/{shard}",  # captions from the clips' instances
        trained="results/train/{variant}",
        model=video_model_input,
    output:
        directory("results/generate/{variant}/{split}/{shard}"),
    log:
        "logs/generate_shard/{variant}/{split}/{shard}.log",
    benchmark:
        "benchmarks/generate_shard/{variant}/{split}/{shard}.tsv"
    conda:
        "../envs/train.yaml"
    params:
        model=config["models"]["video"],
        settings=settings("generate"),
        max_text=config["train"]["max_text_seq_length"],
        frames=config["render"]["frames"],
        fps=config["render"]["fps"],
        code=code("stance.train.generate"),
    shell:
        "stance generate shard --cues {input.cues} --trained {input.trained}"
        " --model {params.model} --settings {params.settings:q}"
        " --max-text {params.max_text} --frames {params.frames} --fps {params.fps}"
        " --code-hash {params.code} --out {output} > {log} 2>&1"
