rule tiny_depth_model:
    output:
        directory(TINY_DEPTH_MODEL),
    log:
        "logs/tiny_depth_model.log",
    benchmark:
        "benchmarks/tiny_depth_model.tsv"
    conda:
        "../envs/cues.yaml"
    params:
        code=code("stance.depth.model"),
    shell:
        "stance models make-tiny depth --out {output:q} > {log:q} 2>&1"


rule video_model:
    output:
        directory("results/models/{size}-cogvideox-i2v"),
    log:
        "logs/{size}_video_model.log",
    benchmark:
        "benchmarks/{size}_video_model.tsv"
    wildcard_constraints:
        size="|".join(BUILT_FROM_NOTHING),
    conda:
        "../envs/train.yaml"
    params:
        code=code("stance.train.tiny", "stance.train.codec"),
    shell:
        "stance models make-tiny video --size {wildcards.size} --out {output:q} > {log:q} 2>&1"


rule fitted_video_model:
    input:
        renders=lambda wildcards: shard_dirs("render", ["train"]),
    output:
        directory(stance_config.built_video_model("smallpca")),
    log:
        "logs/smallpca_video_model.log",
    benchmark:
        "benchmarks/smallpca_video_model.tsv"
    conda:
        "../envs/train.yaml"
    params:
        code=code("stance.train.tiny", "stance.train.codec"),
    shell:
        "stance models make-tiny video --size smallpca --fit-renders {input.renders:q}"
        " --out {output:q} > {log:q} 2>&1"
