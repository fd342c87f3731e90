rule encode_shard:
    input:
        render="results/render/{split}/{shard}",
        model=video_model_input,
    output:
        directory("results/train/cache/{split}/{shard}"),
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
        "stance train encode --render {input.render:q}"
        " --model {params.model:q} --max-text {params.max_text}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"


rule pretrain_backbone:
    input:
        cache=lambda wildcards: shard_dirs("train", ["train"], folder="cache"),
        model=video_model_input,
    output:
        report(
            directory("results/train/pretrained"),
            patterns=["{plot}.png"],  # a wildcard: a literal name registers nothing
            caption="../report/captions/loss_curve.rst",
            category="Training",
            subcategory="pretrained backbone",
        ),
    log:
        "logs/pretrain_backbone.log",
    benchmark:
        "benchmarks/pretrain_backbone.tsv"
    conda:
        "../envs/train.yaml"
    threads: training_threads()
    resources:  # operational: how the run is babysat (no rerun, the run resumes)
        nodes=config["train"]["num_nodes"],
        checkpoint_every=config["train"]["checkpoint_every"],
        keep_checkpoints=config["train"]["keep_checkpoints"],
        stop_before_limit_s=config["train"]["stop_before_limit_s"],
    params:
        model=config["models"]["video"],
        settings=pretrain_settings(),
        runs="results/train/runs",
        launcher=pretrain_launcher(),  # shell code built from validated values
        code=code("stance.train.pretraining"),
    shell:
        "{params.launcher} train pretrain --cache {input.cache:q}"
        " --model {params.model:q}"
        " --settings {params.settings:q} --runs {params.runs:q}"
        " --checkpoint-every {resources.checkpoint_every}"
        " --keep-checkpoints {resources.keep_checkpoints}"
        " --stop-before-limit-s {resources.stop_before_limit_s}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"


rule train_variant:
    input:
        cache=lambda wildcards: shard_dirs("train", ["train"], folder="cache"),
        cues=lambda wildcards: shard_dirs("cues", ["train"]),
        model=video_model_input,
        init=pretrained_input,
        val_render=lambda wildcards: validation_dirs("render"),
        val_cues=lambda wildcards: validation_dirs("cues"),
    output:
        report(
            directory("results/train/{variant}"),
            patterns=["{plot}.png"],  # a wildcard: a literal name registers nothing
            caption="../report/captions/loss_curve.rst",
            category="Training",
            subcategory="{variant}",
        ),
    log:
        "logs/train_variant/{variant}.log",
    benchmark:
        "benchmarks/train_variant/{variant}.tsv"
    priority: variant_priority
    conda:
        "../envs/train.yaml"
    threads: variant_training_threads()
    resources:  # operational: how the run is babysat (no rerun, the run resumes)
        nodes=config["train"]["num_nodes"],
        checkpoint_every=config["train"]["checkpoint_every"],
        keep_checkpoints=config["train"]["keep_checkpoints"],
        stop_before_limit_s=config["train"]["stop_before_limit_s"],
    params:
        model=config["models"]["video"],
        settings=variant_settings,
        runs="results/train/runs",
        launcher=train_launcher(),  # shell code built from validated values
        init=lambda wildcards, input: ["--init", input.init] if input.init else [],
        validation=lambda wildcards, input: (
            ["--val-render", *input.val_render, "--val-cues", *input.val_cues]
            if input.val_render
            else []
        ),
        # the trainer's code only: the validation probe (generate/validation.py and the
        # sampling and tracking code it imports) watches the run and leaves its weights as
        # they would be (tested), so editing evaluation or sampling code retrains nothing;
        # a run's validation.csv keeps the measurement it was made with
        code=code("stance.train.trainer"),
    shell:
        "{params.launcher} train fit --cache {input.cache:q} --cues {input.cues:q}"
        " --variant {wildcards.variant:q} --model {params.model:q} {params.init:q} {params.validation:q}"
        " --settings {params.settings:q} --runs {params.runs:q}"
        " --checkpoint-every {resources.checkpoint_every}"
        " --keep-checkpoints {resources.keep_checkpoints}"
        " --stop-before-limit-s {resources.stop_before_limit_s}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"
