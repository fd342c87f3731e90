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
    resources:  # operational: the same videos under any profile (no rerun)
        memory_profile=config["generate"]["memory_profile"],
    params:
        model=config["models"]["video"],
        settings=settings("generate", without=("splits",)),
        max_text=config["train"]["max_text_seq_length"],
        frames=config["render"]["frames"],
        fps=config["render"]["fps"],
        code=code("stance.generate.jobs"),
    shell:
        "stance generate shard --cues {input.cues:q} --trained {input.trained:q}"
        " --model {params.model:q} --settings {params.settings:q}"
        " --max-text {params.max_text} --frames {params.frames} --fps {params.fps}"
        " --memory-profile {resources.memory_profile}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"


rule physics_iq_generate:
    input:
        cues="results/cues/physics_iq",
        trained="results/train/{variant}",
        model=video_model_input,
    output:
        directory(f"results/generate/{{variant}}/physics_iq/{PHYSICS_IQ_RUN}"),
    log:
        "logs/physics_iq_generate/{variant}/run_{run}.log",
    benchmark:
        "benchmarks/physics_iq_generate/{variant}/run_{run}.tsv"
    conda:
        "../envs/train.yaml"
    resources:  # operational: the same videos under any profile (no rerun)
        memory_profile=config["generate"]["memory_profile"],
    params:
        model=config["models"]["video"],
        settings=settings("generate", only=stance_config.SAMPLING_KEYS),
        seed=lambda wildcards: config["generate"]["seed"] + int(wildcards.run) - 1,
        max_text=config["train"]["max_text_seq_length"],
        fps=config["render"]["fps"],
        code=code("stance.generate.jobs"),
    shell:
        "stance generate physics-iq --cues {input.cues:q} --trained {input.trained:q}"
        " --model {params.model:q} --settings {params.settings:q} --seed {params.seed}"
        " --max-text {params.max_text} --fps {params.fps}"
        " --memory-profile {resources.memory_profile}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"
