rule cue_shard:
    input:
        render="results/render/{split}/{shard}",
        depth="results/depth/{split}/{shard}",
    output:
        directory("results/cues/{split}/{shard}"),
    log:
        "logs/cue_shard/{split}/{shard}.log",
    benchmark:
        "benchmarks/cue_shard/{split}/{shard}.tsv"
    conda:
        "../envs/cues.yaml"
    params:
        settings=settings("cues", without=("from_video",)),
        code=code("stance.cues.runner"),
    shell:
        "stance cues shard --render {input.render:q} --depth {input.depth:q}"
        " --settings {params.settings:q} --code-hash {params.code:q}"
        " --out {output:q} > {log:q} 2>&1"


rule cue_dz_report:
    input:
        render=lambda wildcards: shard_dirs("render"),
        cues=lambda wildcards: shard_dirs("cues"),
    output:
        table="results/cues/dz_report.csv",
        card="results/cues/dz_report.md",
    log:
        "logs/cue_dz_report.log",
    benchmark:
        "benchmarks/cue_dz_report.tsv"
    conda:
        "../envs/cues.yaml"
    params:
        settings=settings("cues", without=("from_video",)),
        code=code("stance.cues.runner"),
    shell:
        "stance cues dz-report --render {input.render:q} --cues {input.cues:q}"
        " --settings {params.settings:q} --out {output.table:q} > {log:q} 2>&1"


rule physics_iq_cues:
    input:
        unpack(physics_iq_inputs),
        model=depth_model_input,
    output:
        directory("results/cues/physics_iq"),
    log:
        "logs/physics_iq_cues.log",
    benchmark:
        "benchmarks/physics_iq_cues.tsv"
    conda:
        "../envs/cues.yaml"
    threads: 2
    resources:  # operational: Snakemake does not rerun a job when these change
        depth_batch_size=config["depth"]["batch_size"],
        depth_device=config["depth"]["device"],
    params:
        descriptions=physics_iq_descriptions_arg,
        settings=settings("cues", only=("dz", "mass", "from_video")),
        depth_model=config["models"]["depth"],
        depth_settings=settings("depth"),
        size=config["render"]["resolution"],
        fps=config["render"]["fps"],
        code=code("stance.cues.from_video"),
    shell:
        "stance cues physics-iq --benchmark {input.benchmark:q} {params.descriptions:q}"
        " --settings {params.settings:q} --size {params.size} --fps {params.fps}"
        " --depth-model {params.depth_model:q} --depth-settings {params.depth_settings:q}"
        " --batch-size {resources.depth_batch_size} --device {resources.depth_device:q}"
        " --code-hash {params.code:q} --out {output:q} > {log:q} 2>&1"
